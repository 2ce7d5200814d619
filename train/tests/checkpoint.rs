//! Checkpoints: a run interrupted by save + drop + load continues bit-identically (every parameter and
//! moment byte, the sampler, the losses), and a damaged checkpoint is a clear error, never a panic.

use std::fs;
use std::path::{Path, PathBuf};

use ingot_train::checkpoint::{self, DataMeta};
use ingot_train::data::{train_val_split, CharTokenizer, TextTokenizer};
use ingot_train::pretrain::{StepStats, TrainConfig, Trainer};
use ingot_train::{AdamW, AdamWConfig, Config, Error, Model, Schedule};

const STEPS: u64 = 8;

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("checkpoint-{name}"));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

struct Setup {
    tok: CharTokenizer,
    ids: Vec<u32>,
    data: DataMeta,
}

fn setup() -> Setup {
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/text/macbeth_40k.txt"
    ))
    .unwrap();
    let tok = CharTokenizer::from_text(&text);
    let ids = tok.encode(&text).unwrap();
    let data = DataMeta {
        sources: vec!["testdata/text/macbeth_40k.txt".into()],
        files: 1,
        corpus_sha256: "0".repeat(64),
        tokens: ids.len() as u64,
        val_fraction: 0.1,
    };
    Setup { tok, ids, data }
}

fn fresh(vocab_size: usize, threads: usize) -> Trainer {
    let cfg = Config {
        vocab_size,
        dim: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        ffn_dim: 64,
        max_seq_len: 16,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: false,
    };
    let mut model = Model::<f32>::new(cfg.clone(), threads).unwrap();
    model.init(1337);
    let adamw = AdamWConfig {
        beta2: 0.99,
        ..AdamWConfig::default()
    };
    let opt = AdamW::new(adamw, &cfg);
    let run = TrainConfig {
        batch: 4,
        seq_len: 16,
        grad_accum: 2,
        steps: STEPS,
        schedule: Schedule {
            max_lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 2,
            decay_steps: STEPS,
        },
        grad_clip: 1.0,
        seed: 1338,
    };
    Trainer::new(model, opt, run)
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

fn run_until(t: &mut Trainer, ids: &[u32], stop: u64) -> Vec<StepStats> {
    let mut out = Vec::new();
    while t.step < stop {
        out.push(t.train_step(ids).unwrap());
    }
    out
}

#[test]
fn resume_is_bit_identical() {
    let s = setup();
    let (train, _) = train_val_split(&s.ids, 0.1);

    let mut straight = fresh(s.tok.vocab_size(), 1);
    let straight_stats = run_until(&mut straight, train, STEPS);

    let out = scratch("resume");
    let mut first = fresh(s.tok.vocab_size(), 1);
    run_until(&mut first, train, STEPS / 2);
    checkpoint::save_in_run(&out, &first, &s.tok.clone().into(), &s.data, 2).unwrap();
    drop(first); // the "kill": nothing survives but the files

    let dir = checkpoint::resolve(&out).unwrap();
    assert_eq!(dir, out.join("step-00000004"));
    let ckpt = checkpoint::load(&dir).unwrap();
    assert_eq!(
        ckpt.tokenizer().unwrap(),
        TextTokenizer::Char(s.tok.clone())
    );
    assert_eq!(ckpt.meta.data, s.data);
    // A different thread count on resume: results do not depend on it.
    let mut resumed = ckpt.into_trainer(3).unwrap();
    let resumed_stats = run_until(&mut resumed, train, STEPS);

    assert_eq!(resumed.step, straight.step);
    assert_eq!(resumed.sampler, straight.sampler);
    assert_eq!(resumed.opt.step, straight.opt.step);
    assert_eq!(resumed.config, straight.config);
    assert!(bits(&resumed.model.params) == bits(&straight.model.params));
    assert!(bits(&resumed.opt.m) == bits(&straight.opt.m));
    assert!(bits(&resumed.opt.v) == bits(&straight.opt.v));
    assert_eq!(resumed_stats, straight_stats[STEPS as usize / 2..]);

    // Saving again at the end keeps `keep` = 2 directories and moves `latest`.
    checkpoint::save_in_run(&out, &resumed, &s.tok.clone().into(), &s.data, 2).unwrap();
    checkpoint::save_in_run(&out, &resumed, &s.tok.clone().into(), &s.data, 2).unwrap(); // same step: replaced
    let mut dirs: Vec<String> = fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    assert_eq!(dirs, ["latest", "step-00000004", "step-00000008"]);
    let again = checkpoint::load(&checkpoint::resolve(&out).unwrap()).unwrap();
    assert!(bits(&again.params) == bits(&straight.model.params));
}

/// Saves a small checkpoint into a fresh directory and returns it.
fn saved(name: &str) -> PathBuf {
    let s = setup();
    let mut t = fresh(s.tok.vocab_size(), 1);
    run_until(&mut t, &s.ids, 1);
    let dir = scratch(name).join("ckpt");
    checkpoint::save(&dir, &t, &s.tok.clone().into(), &s.data).unwrap();
    dir
}

fn load_err(dir: &Path) -> String {
    match checkpoint::load(dir) {
        Ok(_) => panic!("loaded a damaged checkpoint"),
        Err(e) => {
            assert!(matches!(e, Error::Checkpoint { .. } | Error::Io { .. }));
            e.to_string()
        }
    }
}

fn edit_json(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let p = dir.join(checkpoint::META_FILE);
    let mut v: serde_json::Value = serde_json::from_slice(&fs::read(&p).unwrap()).unwrap();
    f(&mut v);
    fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
}

#[test]
fn damaged_checkpoints_are_clear_errors() {
    let good = saved("damage");
    checkpoint::load(&good).unwrap();
    let copy = |name: &str| {
        let dir = good.with_file_name(name);
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        for e in fs::read_dir(&good).unwrap() {
            let e = e.unwrap();
            fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        dir
    };
    let expect = |dir: &Path, needle: &str| {
        let msg = load_err(dir);
        assert!(msg.contains(needle), "{msg:?} should mention {needle:?}");
    };

    // Truncated tensor files.
    let d = copy("truncated");
    let p = d.join(checkpoint::MODEL_FILE);
    let len = fs::metadata(&p).unwrap().len();
    for keep in [len - 1, len / 2, 8, 0] {
        fs::write(
            &p,
            &fs::read(good.join(checkpoint::MODEL_FILE)).unwrap()[..keep as usize],
        )
        .unwrap();
        expect(&d, "truncated");
    }
    // A flipped bit in the optimizer moments.
    let d = copy("flipped");
    let p = d.join(checkpoint::OPTIMIZER_FILE);
    let mut bytes = fs::read(&p).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x10;
    fs::write(&p, &bytes).unwrap();
    expect(&d, "corrupted");
    // A missing file.
    let d = copy("missing");
    fs::remove_file(d.join(checkpoint::OPTIMIZER_FILE)).unwrap();
    expect(&d, "cannot read optimizer.safetensors");
    // checkpoint.json truncated, of another version, or disagreeing with the tensors.
    let d = copy("json");
    let json = fs::read(good.join(checkpoint::META_FILE)).unwrap();
    fs::write(d.join(checkpoint::META_FILE), &json[..json.len() / 2]).unwrap();
    expect(&d, "not valid JSON");
    let d = copy("version");
    edit_json(&d, |v| v["version"] = 99.into());
    expect(&d, "version 99 is not supported");
    // Version 1 (character tokenizers only) still loads.
    let d = copy("version1");
    edit_json(&d, |v| v["version"] = 1.into());
    checkpoint::load(&d).unwrap();
    let d = copy("shape");
    edit_json(&d, |v| v["model"]["dim"] = 64.into());
    expect(&d, "has shape [");
    let d = copy("tied");
    edit_json(&d, |v| v["model"]["tied_embeddings"] = true.into());
    expect(&d, "has tensor output.weight");
    let d = copy("vocab");
    edit_json(&d, |v| v["model"]["vocab_size"] = 7.into());
    expect(&d, "tokenizer has");
    let d = copy("huge");
    edit_json(&d, |v| v["model"]["n_layers"] = (1u64 << 40).into());
    expect(&d, "parameters, more than");
    let d = copy("field");
    edit_json(&d, |v| v["rng"]["sampler"] = "x".into());
    expect(&d, "bad field");
    let d = copy("format");
    edit_json(&d, |v| v["format"] = "something".into());
    expect(&d, "not an ingot checkpoint");
    assert!(checkpoint::resolve(&d.with_file_name("nothing-here")).is_err());

    // Any single byte flipped in checkpoint.json or the tensor files, or any truncation: an error
    // or (for a harmless change, such as whitespace) a load, but never a panic.
    let d = copy("fuzz");
    for file in [
        checkpoint::META_FILE,
        checkpoint::MODEL_FILE,
        checkpoint::OPTIMIZER_FILE,
    ] {
        let orig = fs::read(good.join(file)).unwrap();
        let p = d.join(file);
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..150 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let mut bytes = orig.clone();
            let at = (state % bytes.len() as u64) as usize;
            if i % 3 == 0 {
                bytes.truncate(at);
            } else {
                bytes[at] ^= 1 << (state >> 61);
            }
            fs::write(&p, &bytes).unwrap();
            let _ = checkpoint::load(&d);
        }
        fs::write(&p, &orig).unwrap();
    }
    checkpoint::load(&d).unwrap();
}

/// A byte-level BPE tokenizer (format version 2) is stored and comes back identical, with the
/// reserved special tokens at their documented ids; a version 1 file cannot hold one.
#[test]
fn bpe_tokenizer_round_trips() {
    let s = setup();
    let text = fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/text/macbeth_40k.txt"
    ))
    .unwrap();
    let opts = ingot_train::bpe::BpeOptions {
        vocab_size: 400,
        ..Default::default()
    };
    let trained = ingot_train::bpe::train([text.as_str()], &opts).unwrap();
    for (id, t) in [
        (256, "<|endoftext|>"),
        (257, "<|im_start|>"),
        (258, "<|im_end|>"),
    ] {
        assert_eq!(trained.tokens[id], t);
        assert_eq!(trained.token_types[id], 3);
    }
    let tok: TextTokenizer = ingot_train::bpe::BpeTokenizer::new(trained).unwrap().into();
    let ids = tok.encode(&text).unwrap();
    assert_eq!(tok.decode(&ids), text);
    let mut t = fresh(tok.vocab_size(), 1);
    run_until(&mut t, &ids, 1);
    let dir = scratch("bpe").join("ckpt");
    checkpoint::save(&dir, &t, &tok, &s.data).unwrap();
    let ckpt = checkpoint::load(&dir).unwrap();
    assert_eq!(ckpt.meta.version, checkpoint::VERSION);
    let back = ckpt.tokenizer().unwrap();
    assert_eq!(back, tok);
    assert_eq!(back.fingerprint(), tok.fingerprint());
    assert_ne!(
        back.fingerprint(),
        TextTokenizer::Char(s.tok.clone()).fingerprint()
    );
    edit_json(&dir, |v| v["version"] = 1.into());
    assert!(load_err(&dir).contains("version 1 checkpoint can only hold"));
}
