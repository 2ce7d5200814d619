//! `ingot convert` runs in bounded memory: a synthetic 2.2 GB llama-shaped checkpoint converts with a
//! peak resident set far below its size.
//!
//! The test writes, on the fly, a Hugging Face directory (`config.json`, three safetensors shards
//! and their index, the `tiny-llama` fixture's tokenizer) whose F32 tensors total 2.2 GB, and a GGUF
//! file with the same tensors in F32. Tensor data are zeros written as holes (sparse files), so
//! making the input costs no disk bandwidth; reading it through the converter's memory maps still
//! faults in every page, which is what a real checkpoint costs. Each file is converted to Q8_0 by
//! the `ingot` binary in a child process whose peak RSS is measured twice: by polling `VmHWM` in
//! `/proc/<pid>/status` while it runs, and by the child's own report (`peak RSS ... MiB` on its
//! summary line, `VmHWM` of `/proc/self/status` read after the output is committed). Both must stay
//! under [`BOUND_MIB`] (1/8 of the input); reading the shards whole, as the converter did
//! before, peaked above the input size. The outputs must load and run one token.
//!
//! Linux only (`/proc`); the files are deleted at the end.

mod common;

use common::testdata;
use ingot_kernels::QuantType;
use ingot_runtime::gguf::writer::OwnedValue;
use ingot_runtime::gguf::{GgufFile, GgufStreamWriter, TensorDecl};
use ingot_runtime::model::{Model, Session, SessionParams};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Peak resident set allowed to one conversion at `--threads 2`, in MiB: the program itself (about
/// 10 MiB) and, per thread, one batch of rows (16 MiB of f32 scratch, its mapped source pages and
/// its quantized output), with room for the allocator; about 1/8 of the 2,090 MiB input. Measured:
/// 81 MiB from the HF directory, 94 MiB from the GGUF file.
const BOUND_MIB: u64 = 256;

const HIDDEN: usize = 2048;
const HEADS: usize = 16;
const KV_HEADS: usize = 4;
const HEAD_DIM: usize = 128;
const FFN: usize = 8192;
const LAYERS: usize = 9;
const VOCAB: usize = 260; // the tiny-llama fixture's tokenizer
const SHARDS: usize = 3;

/// HF name, shape (outermost first), GGUF name, in checkpoint order.
fn tensors() -> Vec<(String, Vec<usize>, String)> {
    let (q, kv) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    let mut t = vec![(
        "model.embed_tokens.weight".to_string(),
        vec![VOCAB, HIDDEN],
        "token_embd.weight".to_string(),
    )];
    for l in 0..LAYERS {
        for (hf, shape, gguf) in [
            ("input_layernorm", vec![HIDDEN], "attn_norm"),
            ("self_attn.q_proj", vec![q, HIDDEN], "attn_q"),
            ("self_attn.k_proj", vec![kv, HIDDEN], "attn_k"),
            ("self_attn.v_proj", vec![kv, HIDDEN], "attn_v"),
            ("self_attn.o_proj", vec![HIDDEN, q], "attn_output"),
            ("post_attention_layernorm", vec![HIDDEN], "ffn_norm"),
            ("mlp.gate_proj", vec![FFN, HIDDEN], "ffn_gate"),
            ("mlp.up_proj", vec![FFN, HIDDEN], "ffn_up"),
            ("mlp.down_proj", vec![HIDDEN, FFN], "ffn_down"),
        ] {
            t.push((
                format!("model.layers.{l}.{hf}.weight"),
                shape,
                format!("blk.{l}.{gguf}.weight"),
            ));
        }
    }
    t.push((
        "model.norm.weight".into(),
        vec![HIDDEN],
        "output_norm.weight".into(),
    ));
    t
}

/// A file writer that turns all-zero writes into holes (a seek), so that gigabytes of zeros cost
/// neither disk space nor bandwidth. `finish` sets the length, which covers a trailing hole.
struct Sparse {
    file: std::fs::File,
    len: u64,
}

impl Write for Sparse {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.iter().all(|&b| b == 0) {
            self.file.seek(SeekFrom::Current(buf.len() as i64))?;
        } else {
            self.file.write_all(buf)?;
        }
        self.len += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Sparse {
    fn create(path: &Path) -> Sparse {
        Sparse {
            file: std::fs::File::create(path).unwrap(),
            len: 0,
        }
    }
    fn finish(self) {
        self.file.set_len(self.len).unwrap();
    }
}

/// Writes `n` zero bytes through `w` in 16 MiB pieces.
fn zeros(mut w: impl FnMut(&[u8]), mut n: usize) {
    let z = vec![0u8; 16 << 20];
    while n > 0 {
        let k = n.min(z.len());
        w(&z[..k]);
        n -= k;
    }
}

/// Writes the synthetic Hugging Face directory; returns the bytes of tensor data.
fn write_hf(dir: &Path) -> u64 {
    std::fs::create_dir_all(dir).unwrap();
    let fixture = testdata("hf/tiny-llama");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture.join(f), dir.join(f)).unwrap();
    }
    let config = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": HIDDEN, "num_hidden_layers": LAYERS, "num_attention_heads": HEADS,
        "num_key_value_heads": KV_HEADS, "head_dim": HEAD_DIM, "intermediate_size": FFN,
        "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 256,
        "vocab_size": VOCAB, "tie_word_embeddings": true, "bos_token_id": 258, "eos_token_id": 259,
    });
    std::fs::write(dir.join("config.json"), config.to_string()).unwrap();

    let all = tensors();
    let per_shard = all.len().div_ceil(SHARDS);
    let mut weight_map = serde_json::Map::new();
    let mut total = 0u64;
    for (s, part) in all.chunks(per_shard).enumerate() {
        let name = format!("model-{:05}-of-{SHARDS:05}.safetensors", s + 1);
        // Header: every tensor F32 at consecutive offsets.
        let mut header = serde_json::Map::new();
        let mut offset = 0usize;
        for (hf, shape, _) in part {
            let bytes = shape.iter().product::<usize>() * 4;
            header.insert(
                hf.clone(),
                serde_json::json!({"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + bytes]}),
            );
            weight_map.insert(hf.clone(), name.clone().into());
            offset += bytes;
        }
        let mut h = serde_json::Value::Object(header).to_string().into_bytes();
        h.resize(h.len().next_multiple_of(8), b' ');
        let mut w = Sparse::create(&dir.join(&name));
        w.write_all(&(h.len() as u64).to_le_bytes()).unwrap();
        w.write_all(&h).unwrap();
        // Norm weights are ones (a zero norm weight would make every activation zero); the rest
        // zeros.
        for (_, shape, gguf) in part {
            let n = shape.iter().product::<usize>();
            if gguf.ends_with("norm.weight") {
                let ones: Vec<u8> = (0..n).flat_map(|_| 1f32.to_le_bytes()).collect();
                w.write_all(&ones).unwrap();
            } else {
                zeros(|b| w.write_all(b).unwrap(), n * 4);
            }
        }
        w.finish();
        total += offset as u64;
    }
    let index = serde_json::json!({"metadata": {"total_size": total}, "weight_map": weight_map});
    std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    total
}

/// Writes the same tensors as an F32 GGUF file with the metadata of `like` (a converted file).
fn write_gguf(path: &Path, like: &Path) -> u64 {
    let file = GgufFile::open(like).unwrap();
    let g = file.parse().unwrap();
    let meta: Vec<(String, OwnedValue)> = g
        .metadata()
        .iter()
        .filter(|(k, _)| *k != "general.file_type")
        .map(|(k, v)| (k.to_string(), OwnedValue::from(*v)))
        .collect();
    let decls: Vec<TensorDecl> = tensors()
        .into_iter()
        .map(|(_, shape, gguf)| TensorDecl {
            name: gguf,
            dims: shape.iter().rev().map(|&d| d as u64).collect(),
            ty: QuantType::F32,
        })
        .collect();
    let mut w = GgufStreamWriter::new(Sparse::create(path), &meta, &decls).unwrap();
    let mut total = 0;
    for d in &decls {
        let n = d.n_bytes().unwrap() as usize;
        if d.name.ends_with("norm.weight") {
            let ones: Vec<u8> = (0..n / 4).flat_map(|_| 1f32.to_le_bytes()).collect();
            w.write(&ones).unwrap();
        } else {
            zeros(|b| w.write(b).unwrap(), n);
        }
        total += n as u64;
    }
    w.finish().unwrap().finish();
    total
}

/// `VmHWM` of a live process, in KiB.
fn vm_hwm_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Converts `input` to Q8_0 at `output` in a child process; returns (polled peak RSS, the child's
/// own report) in MiB.
fn convert_measured(input: &Path, output: &Path) -> (f64, f64) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(["convert", input.to_str().unwrap(), "-o"])
        .arg(output)
        .args(["--type", "Q8_0", "--threads", "2", "-q"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ingot");
    let mut polled = 0;
    let status = loop {
        if let Some(k) = vm_hwm_kib(child.id()) {
            polled = polled.max(k);
        }
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    let reported: f64 = err
        .split("peak RSS ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no peak RSS in the summary: {err}"));
    eprintln!("{}", err.trim_end());
    (polled as f64 / 1024.0, reported)
}

/// Loads a converted file and runs one token (zeros in, finite logits out).
fn check_loads(path: &Path) {
    let file = GgufFile::open(path).unwrap();
    let model = Model::from_file(&file).unwrap();
    let g = file.parse().unwrap();
    assert_eq!(g.tensors().len(), tensors().len());
    for t in g.tensors() {
        let want = if t.name.ends_with("norm.weight") {
            QuantType::F32
        } else {
            QuantType::Q8_0
        };
        assert_eq!(t.ty, want, "{}", t.name);
    }
    let mut s = Session::new(
        &model,
        SessionParams {
            n_ctx: 8,
            n_batch: 8,
            n_threads: 1,
            ..Default::default()
        },
    )
    .unwrap();
    let logits = s.prefill(&[258]).unwrap();
    assert_eq!(logits.len(), VOCAB);
    assert!(logits.iter().all(|v| v.is_finite()));
}

#[test]
#[cfg(target_os = "linux")]
fn multi_gigabyte_conversion_stays_bounded() {
    let root = std::env::temp_dir().join(format!("ingot-convert-memory-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let (hf, out_hf, gguf, out_gguf): (PathBuf, PathBuf, PathBuf, PathBuf) = (
        root.join("synthetic-llama"),
        root.join("from-hf.q8_0.gguf"),
        root.join("synthetic.f32.gguf"),
        root.join("from-gguf.q8_0.gguf"),
    );

    let input = write_hf(&hf);
    assert!(input >= 2 << 30, "{input} bytes");
    let (polled, reported) = convert_measured(&hf, &out_hf);
    eprintln!(
        "HF {:.0} MiB -> Q8_0: peak RSS {polled:.1} MiB polled, {reported:.1} MiB reported (bound {BOUND_MIB} MiB)",
        input as f64 / 1048576.0
    );
    assert!(polled <= BOUND_MIB as f64 && reported <= BOUND_MIB as f64);
    check_loads(&out_hf);

    let input = write_gguf(&gguf, &out_hf);
    std::fs::remove_dir_all(&hf).unwrap();
    std::fs::remove_file(&out_hf).unwrap();
    assert!(input >= 2 << 30, "{input} bytes");
    let (polled, reported) = convert_measured(&gguf, &out_gguf);
    eprintln!(
        "GGUF {:.0} MiB -> Q8_0: peak RSS {polled:.1} MiB polled, {reported:.1} MiB reported (bound {BOUND_MIB} MiB)",
        input as f64 / 1048576.0
    );
    assert!(polled <= BOUND_MIB as f64 && reported <= BOUND_MIB as f64);
    check_loads(&out_gguf);
    std::fs::remove_dir_all(&root).unwrap();
}
