//! `ingot convert` end to end, and ingot's quantizers against ggml's committed bytes.
//!
//! - Every supported type: the tiny synthetic model converts, loads in ingot's loader, runs a forward
//!   pass, keeps its metadata, gets `general.file_type` / `general.quantization_version`, and each
//!   tensor holds exactly the reference quantizer's bytes of the source values.
//! - Refusals and failures (requantize without permission, bad type, truncated input, NaN in a tensor
//!   after writing began, missing directory) leave no output file and no temporary file, and an
//!   existing output file untouched.
//! - `--tensor-type` overrides.
//! - `testdata/peer/quantize.json`: FNV hashes of ggml's quantized and dequantized bytes for the seeded
//!   rows of `tools/peer/src/quant_inputs.rs` and real SmolLM2 rows, made by
//!   `ingot-peer quantize-parity`; ingot must reproduce every one without llama.cpp.

mod common;

#[path = "../tools/peer/src/quant_inputs.rs"]
#[allow(dead_code)]
mod quant_inputs;

use common::{model_path, testdata, tiny_model, Tiny};
use ingot_kernels::QuantType;
use ingot_runtime::gguf::writer::OwnedValue;
use ingot_runtime::gguf::{Gguf, Value};
use ingot_runtime::model::{Model, Session, SessionParams};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn ingot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(args)
        .output()
        .expect("run ingot")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh empty directory for one test.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ingot-convert-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The tiny model with F32 weight matrices (token_embd stays Q8_0 as `tiny_model` makes it).
fn tiny_f32() -> Vec<u8> {
    tiny_model(&Tiny {
        weight_type: QuantType::F32,
        ..Tiny::default()
    })
    .to_bytes()
}

fn convert(input: &Path, output: &Path, extra: &[&str]) -> Output {
    let mut args = vec![
        "convert",
        input.to_str().unwrap(),
        "-o",
        output.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    ingot(&args)
}

fn f32_values(ty: QuantType, data: &[u8], n: usize) -> Vec<f32> {
    let mut x = vec![0f32; n];
    (ty.info().to_f32)(data, &mut x);
    x
}

/// The metadata minus the two keys the converter sets, as comparable strings.
fn kept_metadata(g: &Gguf<'_>) -> Vec<(String, String)> {
    g.metadata()
        .iter()
        .filter(|(k, _)| !matches!(*k, "general.file_type" | "general.quantization_version"))
        .map(|(k, v)| (k.to_string(), format!("{:?}", OwnedValue::from(*v))))
        .collect()
}

#[test]
fn every_type_converts_loads_and_runs() {
    let dir = scratch("types");
    let input = dir.join("tiny-f32.gguf");
    std::fs::write(&input, tiny_f32()).unwrap();
    let src_bytes = std::fs::read(&input).unwrap();
    let src = Gguf::parse(&src_bytes).unwrap();
    for (name, ty, ftype) in [
        ("F32", QuantType::F32, 0),
        ("f16", QuantType::F16, 1),
        ("BF16", QuantType::BF16, 32),
        ("Q8_0", QuantType::Q8_0, 7),
        ("q4_0", QuantType::Q4_0, 2),
        ("Q4_1", QuantType::Q4_1, 3),
        ("Q5_0", QuantType::Q5_0, 8),
        ("Q5_1", QuantType::Q5_1, 9),
    ] {
        let out = dir.join(format!("tiny-{name}.gguf"));
        let o = convert(&input, &out, &["--type", name, "--threads", "2"]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("converted ") && err.contains(" MiB -> "),
            "{err}"
        );
        assert!(err.contains("token_embd.weight"), "progress lines: {err}");

        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        assert_eq!(kept_metadata(&g), kept_metadata(&src), "{name}");
        assert_eq!(
            g.get_u64("general.file_type").unwrap(),
            Some(ftype),
            "{name}"
        );
        assert_eq!(g.get("general.file_type"), Some(Value::U32(ftype as u32)));
        assert_eq!(g.get("general.quantization_version"), Some(Value::U32(2)));
        assert_eq!(g.tensors().len(), src.tensors().len());
        for (t, s) in g.tensors().iter().zip(src.tensors()) {
            assert_eq!((t.name, t.shape()), (s.name, s.shape()));
            let want_ty = if t.n_dims == 1 {
                QuantType::F32
            } else if t.name == "token_embd.weight"
                && matches!(
                    ty,
                    QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1
                )
            {
                QuantType::Q8_0
            } else {
                ty
            };
            assert_eq!(t.ty, want_ty, "{name}: {}", t.name);
            // The bytes are the reference quantizer's of the source values (a copy when unchanged).
            let n = s.n_elements() as usize;
            let x = f32_values(s.ty, s.data, n);
            let mut want = vec![0u8; t.data.len()];
            (t.ty.info().from_f32)(&x, &mut want);
            assert!(t.data == want.as_slice(), "{name}: {} bytes", t.name);
        }
        // ingot's loader takes it and a forward pass gives finite logits.
        let model = Model::from_gguf(g).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut s = Session::new(
            &model,
            SessionParams {
                n_ctx: 16,
                n_batch: 4,
                n_threads: 1,
                ..Default::default()
            },
        )
        .unwrap();
        let logits = s.prefill(&[104, 101, 108, 108]).unwrap();
        assert!(logits.iter().all(|v| v.is_finite()), "{name}");
    }
    // Only the outputs and the input: no temporary files left behind.
    assert_eq!(entries(&dir).len(), 9, "{:?}", entries(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn requantizing_needs_allow_requantize() {
    let dir = scratch("requant");
    let input = dir.join("tiny-q8.gguf");
    std::fs::write(&input, tiny_model(&Tiny::default()).to_bytes()).unwrap();
    let out = dir.join("out.gguf");
    let o = convert(&input, &out, &["--type", "Q4_0"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("--allow-requantize") && err.contains("Q8_0"),
        "{err}"
    );
    assert_eq!(entries(&dir), ["tiny-q8.gguf"]);

    // Same type: a copy, allowed. To a float type: allowed.
    assert!(convert(&input, &out, &["--type", "Q8_0", "-q"])
        .status
        .success());
    let copy = std::fs::read(&out).unwrap();
    let (a, b) = (Gguf::parse(&copy).unwrap(), std::fs::read(&input).unwrap());
    let b = Gguf::parse(&b).unwrap();
    for (t, s) in a.tensors().iter().zip(b.tensors()) {
        assert!(t.data == s.data, "{}", t.name);
    }
    assert!(convert(&input, &out, &["--type", "F32", "-q"])
        .status
        .success());

    // Allowed: through f32, so the bytes are Q4_0 of the dequantized Q8_0 values.
    let o = convert(
        &input,
        &out,
        &["--type", "Q4_0", "--allow-requantize", "-q"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let (t, s) = (
        g.tensor("blk.0.attn_q.weight").unwrap(),
        b.tensor("blk.0.attn_q.weight").unwrap(),
    );
    assert_eq!(t.ty, QuantType::Q4_0);
    let x = f32_values(s.ty, s.data, s.n_elements() as usize);
    let mut want = vec![0u8; t.data.len()];
    (QuantType::Q4_0.info().from_f32)(&x, &mut want);
    assert!(t.data == want.as_slice());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn failures_leave_no_output_and_keep_an_existing_file() {
    let dir = scratch("atomic");
    let good = dir.join("good.gguf");
    std::fs::write(&good, tiny_f32()).unwrap();
    let out = dir.join("out.gguf");

    // Unsupported and unknown types, before anything is opened.
    for ty in ["Q3_K_L", "IQ2_XS", "Q9_9"] {
        let o = convert(&good, &out, &["--type", ty]);
        assert!(!o.status.success());
        let err = stderr(&o);
        assert!(
            err.contains("supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K"),
            "{err}"
        );
    }
    // A truncated input.
    let full = std::fs::read(&good).unwrap();
    let trunc = dir.join("trunc.gguf");
    std::fs::write(&trunc, &full[..full.len() - 100]).unwrap();
    let o = convert(&trunc, &out, &["--type", "Q8_0"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("past the end"), "{}", stderr(&o));
    // A missing output directory.
    let o = convert(&good, &dir.join("no/such/out.gguf"), &["--type", "Q8_0"]);
    assert!(!o.status.success());
    assert_eq!(entries(&dir), ["good.gguf", "trunc.gguf"]);

    // A NaN in the last tensor: the failure comes after the header and the other tensors were
    // written to the temporary file. An existing output stays as it was.
    std::fs::write(&out, b"previous contents").unwrap();
    let mut w = tiny_model(&Tiny {
        weight_type: QuantType::F32,
        ..Tiny::default()
    });
    let mut bad = vec![0.25f32; 64 * 32];
    bad[64 * 31 + 5] = f32::NAN;
    w.add_tensor(
        "blk.9.extra.weight",
        &[64, 32],
        QuantType::F32,
        bad.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    let nan = dir.join("nan.gguf");
    std::fs::write(&nan, w.to_bytes()).unwrap();
    let o = convert(&nan, &out, &["--type", "Q8_0"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("blk.9.extra.weight") && err.contains("row 31 element 5"),
        "{err}"
    );
    assert!(
        err.contains("[  21/21]"),
        "the failure happened while writing: {err}"
    );
    assert_eq!(std::fs::read(&out).unwrap(), b"previous contents");
    assert_eq!(
        entries(&dir),
        ["good.gguf", "nan.gguf", "out.gguf", "trunc.gguf"]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tensor_type_overrides_apply() {
    let dir = scratch("override");
    let input = dir.join("in.gguf");
    std::fs::write(&input, tiny_f32()).unwrap();
    let out = dir.join("out.gguf");
    let o = convert(
        &input,
        &out,
        &[
            "--type",
            "Q4_0",
            "--tensor-type",
            "attn_v=Q8_0",
            "--tensor-type",
            "blk.1.ffn_*=f16",
            "--tensor-type",
            "^token_embd=Q5_1",
            "--tensor-type",
            "norm=Q4_0",
            "--allow-requantize",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("(--tensor-type attn_v=Q8_0)"),
        "{}",
        stderr(&o)
    );
    let bytes = std::fs::read(&out).unwrap();
    let g = Gguf::parse(&bytes).unwrap();
    let ty = |n: &str| g.tensor(n).unwrap().ty;
    assert_eq!(ty("blk.0.attn_v.weight"), QuantType::Q8_0);
    assert_eq!(ty("blk.1.attn_v.weight"), QuantType::Q8_0);
    assert_eq!(ty("blk.1.ffn_up.weight"), QuantType::F16);
    assert_eq!(ty("blk.1.ffn_down.weight"), QuantType::F16);
    assert_eq!(ty("blk.0.ffn_down.weight"), QuantType::Q4_0);
    assert_eq!(ty("blk.0.attn_q.weight"), QuantType::Q4_0);
    assert_eq!(ty("token_embd.weight"), QuantType::Q5_1);
    // Overrides never touch 1-D tensors (as llama.cpp).
    assert_eq!(ty("blk.0.attn_norm.weight"), QuantType::F32);
    Model::from_gguf(g).unwrap();

    let o = convert(&input, &out, &["--type", "Q4_0", "--tensor-type", "attn_v"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("PATTERN=TYPE"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Byte compatibility with ggml, from the committed fixture.

fn hex(h: u64) -> String {
    format!("{h:016x}")
}

/// The SmolLM2 rows of the fixture's `smollm2` set, dequantized by ingot (bit-exact with ggml's
/// `to_float`, which `quantize-parity` checks).
fn smollm2_rows() -> Vec<f32> {
    let file = ingot_runtime::gguf::GgufFile::open(model_path()).unwrap();
    let g = file.parse().unwrap();
    let mut all = Vec::new();
    for (name, rows) in quant_inputs::SMOLLM2_ROWS {
        let t = g.tensor(name).unwrap();
        let n = t.dims[0] as usize;
        let data = &t.data[..t.ty.row_bytes(n).unwrap() * rows];
        all.extend(f32_values(t.ty, data, n * rows));
    }
    all
}

#[test]
fn quantizers_reproduce_ggml_bytes_from_the_fixture() {
    let text = std::fs::read_to_string(testdata("peer/quantize.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let sets = fixture["sets"].as_object().unwrap();
    let mut inputs: Vec<(String, Vec<f32>)> = quant_inputs::random_sets(quant_inputs::SEED)
        .into_iter()
        .map(|(n, x)| (n.to_string(), x))
        .collect();
    inputs.push(("smollm2".into(), smollm2_rows()));
    assert_eq!(inputs.len(), sets.len(), "the fixture's sets");
    let mut checked = 0;
    for (name, x) in &inputs {
        let want = &sets[name.as_str()];
        assert_eq!(
            want["input_fnv"].as_str().unwrap(),
            hex(quant_inputs::fnv1a(&quant_inputs::f32_bytes(x))),
            "set {name}: the inputs changed; remake the fixture (testdata/README.md)"
        );
        for ty in [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q5_0,
            QuantType::Q5_1,
            QuantType::Q8_0,
            QuantType::Q8_1,
            QuantType::F16,
            QuantType::BF16,
        ] {
            let mut q = vec![0u8; ty.row_bytes(x.len()).unwrap()];
            (ty.info().from_f32)(x, &mut q);
            let h = &want[ty.name()];
            assert_eq!(
                h["quant_fnv"].as_str().unwrap(),
                hex(quant_inputs::fnv1a(&q)),
                "set {name}, {ty}: quantized bytes differ from ggml's"
            );
            if let Some(d) = h.get("dequant_fnv") {
                let y = f32_values(ty, &q, x.len());
                assert_eq!(
                    d.as_str().unwrap(),
                    hex(quant_inputs::fnv1a(&quant_inputs::f32_bytes(&y))),
                    "set {name}, {ty}: dequantized values differ from ggml's"
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * sets.len());
}

/// SmolLM2 (Q4_1) requantized to Q8_0 and Q4_0 by ingot holds exactly the tensors (names, types,
/// bytes) that `llama_model_quantize` with `allow_requantize` writes (hashes in the fixture).
#[test]
fn smollm2_requantized_like_llama_quantize() {
    let text = std::fs::read_to_string(testdata("peer/quantize.json")).unwrap();
    let fixture: serde_json::Value = serde_json::from_str(&text).unwrap();
    let dir = scratch("smollm2");
    for ty in ["Q8_0", "Q4_0"] {
        let out = dir.join(format!("smollm2-{ty}.gguf"));
        let mut policy = ingot_convert::Policy::new(ingot_convert::policy::parse_type(ty).unwrap());
        policy.allow_requantize = true;
        let opts = ingot_convert::Options { policy, threads: 4 };
        ingot_convert::convert(&model_path(), &out, &opts, &mut |_| {}).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        let g = Gguf::parse(&bytes).unwrap();
        let mut ts: Vec<(&str, u32, &[u8])> = g
            .tensors()
            .iter()
            .map(|t| (t.name, t.ty.ggml_id(), t.data))
            .collect();
        assert_eq!(
            fixture["llama_quantize_tensors_fnv"][ty].as_str().unwrap(),
            hex(quant_inputs::tensors_fnv(&mut ts)),
            "{ty}: ingot's tensors differ from llama_model_quantize's (compare with `ingot-peer gguf-diff`)"
        );
        std::fs::remove_file(&out).unwrap();
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
