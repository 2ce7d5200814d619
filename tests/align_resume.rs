//! `ingot train sft | rm | dpo | ppo --resume`: for each alignment stage, N steps (PPO: iterations)
//! straight and N/2 + resume + N/2 write the same bytes — parameters, AdamW's moments, the
//! checkpoint's metadata (step, data generator), the reward head and its moments, PPO's value head,
//! iteration count, KL coefficient and shuffler — and the same metrics. Tiny sizes, seconds each: a
//! one-block model pretrained for a few steps on the committed Macbeth excerpt.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const MACBETH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/text/macbeth_40k.txt");

fn ingot(args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(args)
        .output()
        .expect("run ingot");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "ingot {args:?} failed:\n{err}");
    err
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("align-resume-{name}"));
    let _ = fs::remove_dir_all(&dir);
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A tiny pretrained model (byte-level BPE with ChatML's control tokens), then its SFT run, made once.
fn sft_run() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let root = scratch("base");
        let pre = root.join("pretrain");
        #[rustfmt::skip]
        ingot(&[
            "train", "pretrain", "--data", MACBETH, "--out", s(&pre), "--tokenizer", "bpe",
            "--vocab-size", "320", "--ctx", "256", "--layers", "1", "--width", "32", "--heads", "2",
            "--ffn", "64", "--batch", "2", "--steps", "4", "--eval-every", "4", "--eval-batches", "1",
            "--threads", "2",
        ]);
        let sft = root.join("sft");
        #[rustfmt::skip]
        ingot(&[
            "train", "sft", "--init", s(&pre), "--out", s(&sft), "--corpus", MACBETH,
            "--heldout-prompts", "20", "--steps", "4", "--batch", "4", "--lr", "1e-3",
            "--threads", "2",
        ]);
        sft.to_path_buf()
    })
}

/// A tiny reward model on [`sft_run`], made once.
fn rm_run() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let rm = sft_run().parent().unwrap().join("rm");
        #[rustfmt::skip]
        ingot(&[
            "train", "rm", "--init", s(sft_run()), "--out", s(&rm), "--corpus", MACBETH,
            "--heldout-prompts", "20", "--prompts", "16", "--answers", "3", "--gap", "0.1",
            "--steps", "4", "--batch", "4", "--lr", "1e-3", "--threads", "2",
        ]);
        rm
    })
}

/// The metrics lines without their wall-clock field.
fn metrics(run: &Path) -> Vec<serde_json::Value> {
    fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("elapsed_s");
            v
        })
        .collect()
}

/// Runs `stage` with `args` for `n` steps straight (`--out A`), and again saving at `n/2` (`--out B`,
/// both checkpoints kept); copies B's half-way checkpoint alone into `C` and resumes it there to `n`.
/// The final checkpoints of A and C must hold the same bytes in `files`, and their metrics agree.
/// `half` and `last` name the checkpoint directories (PPO's count optimizer updates).
fn straight_vs_resumed(stage: &str, args: &[&str], n: u64, half: u64, last: u64, files: &[&str]) {
    let a = scratch(&format!("{stage}-straight"));
    let b = scratch(&format!("{stage}-saving"));
    let c = scratch(&format!("{stage}-resumed"));
    let steps = n.to_string();
    let every = (n / 2).to_string();
    let run = |out: &Path, extra: &[&str]| {
        let mut v = vec!["train", stage, "--out", s(out), "--steps", &steps];
        v.extend_from_slice(args);
        v.extend_from_slice(extra);
        ingot(&v)
    };
    run(&a, &["--threads", "2"]);
    run(
        &b,
        &["--threads", "2", "--save-every", &every, "--keep", "2"],
    );
    let name = |k: u64| format!("step-{k:08}");
    let from = c.join(name(half));
    fs::create_dir_all(&from).unwrap();
    for e in fs::read_dir(b.join(name(half))).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), from.join(e.file_name())).unwrap();
    }
    let log = run(&c, &["--resume", s(&from), "--threads", "1"]);
    assert!(log.contains("resumed from"), "{log}");
    for f in files {
        let x = fs::read(a.join(name(last)).join(f)).unwrap();
        let y = fs::read(c.join(name(last)).join(f)).unwrap();
        assert!(
            x == y,
            "{stage}: {f} differs between the straight and the resumed run"
        );
    }
    let (ma, mc) = (metrics(&a), metrics(&c));
    let tail = &ma[ma.len() - mc.len()..];
    assert!(
        !mc.is_empty() && tail == mc,
        "{stage}: metrics differ:\n{ma:?}\n{mc:?}"
    );
}

const CHECKPOINT: &[&str] = &[
    "model.safetensors",
    "optimizer.safetensors",
    "checkpoint.json",
];

#[test]
fn sft_resumes_bit_identically() {
    let pre = sft_run().parent().unwrap().join("pretrain");
    #[rustfmt::skip]
    straight_vs_resumed("sft", &[
        "--init", s(&pre), "--corpus", MACBETH, "--heldout-prompts", "20", "--batch", "4",
        "--lr", "1e-3", "--eval-every", "3",
    ], 6, 3, 6, CHECKPOINT);
}

#[test]
fn rm_resumes_bit_identically() {
    // The resumed run's directory lacks the sampled pairs: it samples them again (same seed).
    #[rustfmt::skip]
    straight_vs_resumed("rm", &[
        "--init", s(sft_run()), "--corpus", MACBETH, "--heldout-prompts", "20", "--prompts", "16",
        "--answers", "3", "--gap", "0.5", "--batch", "4", "--lr", "1e-3", "--eval-every", "3",
    ], 6, 3, 6, &[CHECKPOINT, &["reward_head.safetensors", "align_state.safetensors"]].concat());
}

#[test]
fn dpo_resumes_bit_identically() {
    let rm = rm_run();
    #[rustfmt::skip]
    straight_vs_resumed("dpo", &[
        "--init", s(sft_run()), "--pairs", s(&rm.join("pairs.jsonl")),
        "--heldout-pairs", s(&rm.join("pairs-heldout.jsonl")), "--batch", "4", "--lr", "1e-3",
        "--eval-every", "3",
    ], 6, 3, 6, CHECKPOINT);
}

#[test]
fn ppo_resumes_bit_identically() {
    let rm = rm_run();
    // 4 rollouts in minibatches of 2, 2 epochs: 4 optimizer updates per iteration. An adaptive KL
    // controller with a small target, so its coefficient moves and must be restored.
    #[rustfmt::skip]
    straight_vs_resumed("ppo", &[
        "--init", s(sft_run()), "--reward-model", s(rm), "--corpus", MACBETH,
        "--heldout-prompts", "20", "--batch", "4", "--minibatch", "2", "--ppo-epochs", "2",
        "--lr", "1e-3", "--kl-target", "0.5", "--kl-horizon", "8",
    ], 4, 8, 16, &[CHECKPOINT, &["align_state.safetensors"]].concat());
}

#[test]
fn resume_refuses_another_run() {
    let sft = sft_run();
    let pre = sft.parent().unwrap().join("pretrain");
    let out = scratch("refuse");
    // another batch than the run that wrote the checkpoint
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "train",
            "sft",
            "--init",
            s(&pre),
            "--out",
            s(&out),
            "--corpus",
            MACBETH,
        ])
        .args([
            "--heldout-prompts",
            "20",
            "--steps",
            "8",
            "--batch",
            "3",
            "--lr",
            "1e-3",
        ])
        .args(["--resume", s(sft)])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("--batch"), "{err}");
    // a checkpoint without the stage's state (an SFT checkpoint given to PPO)
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "train",
            "ppo",
            "--init",
            s(sft),
            "--reward-model",
            s(rm_run()),
        ])
        .args([
            "--out",
            s(&out),
            "--corpus",
            MACBETH,
            "--heldout-prompts",
            "20",
        ])
        .args([
            "--steps",
            "2",
            "--batch",
            "4",
            "--lr",
            "1e-3",
            "--resume",
            s(sft),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("align_state"), "{err}");
}
