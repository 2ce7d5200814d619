//! `quantize-parity`, `quantize-file` and `gguf-diff`: ingot's reference quantizers and converter
//! against ggml's and llama.cpp's.
//!
//! `quantize-parity` quantizes the seeded sets of `quant_inputs.rs` and real SmolLM2 rows with ggml
//! (`ggml_quantize_chunk`, cross-checked against `ggml_get_type_traits(t)->from_float_ref`) and with
//! ingot (`QuantType::info().from_f32`), and counts byte mismatches per type; then dequantizes ggml's
//! bytes with both (`to_float` / `to_f32`) and counts bitwise mismatches. With `--out` it writes the
//! FNV-1a hashes of ggml's bytes to a fixture that `tests/convert.rs` checks without llama.cpp.
//! `quantize-file` runs `llama_model_quantize` (what `llama-quantize` does). `gguf-diff` compares two
//! GGUF files tensor by tensor (types, bytes) and key by key.

use crate::quant_inputs::{self, f32_bytes, fnv1a};
use ingot_kernels::QuantType;
use ingot_runtime::gguf::{GgufFile, Value};
use llama_cpp_sys_2 as sys;
use serde_json::{json, Map, Value as Json};
use std::ffi::CString;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// The types compared, with ggml's ids.
const TYPES: [(QuantType, sys::ggml_type); 8] = [
    (QuantType::Q4_0, sys::GGML_TYPE_Q4_0),
    (QuantType::Q4_1, sys::GGML_TYPE_Q4_1),
    (QuantType::Q5_0, sys::GGML_TYPE_Q5_0),
    (QuantType::Q5_1, sys::GGML_TYPE_Q5_1),
    (QuantType::Q8_0, sys::GGML_TYPE_Q8_0),
    (QuantType::Q8_1, sys::GGML_TYPE_Q8_1),
    (QuantType::F16, sys::GGML_TYPE_F16),
    (QuantType::BF16, sys::GGML_TYPE_BF16),
];

pub(crate) fn ggml_quantize(t: sys::ggml_type, x: &[f32], n_per_row: usize) -> Vec<u8> {
    let rows = x.len() / n_per_row;
    // SAFETY: row size from ggml itself; `out` holds `rows` rows; `x` holds rows * n_per_row floats.
    unsafe {
        let rb = sys::ggml_row_size(t, n_per_row as i64);
        let mut out = vec![0u8; rb * rows];
        let n = sys::ggml_quantize_chunk(
            t,
            x.as_ptr(),
            out.as_mut_ptr().cast(),
            0,
            rows as i64,
            n_per_row as i64,
            std::ptr::null(),
        );
        assert_eq!(n, out.len());
        out
    }
}

pub(crate) fn ggml_from_float_ref(t: sys::ggml_type, x: &[f32]) -> Vec<u8> {
    // SAFETY: the trait table is static; from_float_ref writes row_size(t, len) bytes.
    unsafe {
        let tr = &*sys::ggml_get_type_traits(t);
        let mut out = vec![0u8; sys::ggml_row_size(t, x.len() as i64)];
        (tr.from_float_ref.expect("from_float_ref"))(x.as_ptr(), out.as_mut_ptr().cast(), x.len() as i64);
        out
    }
}

pub(crate) fn ggml_to_float(t: sys::ggml_type, q: &[u8], n: usize) -> Option<Vec<f32>> {
    // SAFETY: `q` holds row_size(t, n) bytes (made by ggml for n elements); `y` holds n floats.
    unsafe {
        let tr = &*sys::ggml_get_type_traits(t);
        let f = tr.to_float?;
        let mut y = vec![0f32; n];
        f(q.as_ptr().cast(), y.as_mut_ptr(), n as i64);
        Some(y)
    }
}

/// x86 C `(int8_t)v`: see `c_to_i8` in kernels/src/reference/quants.rs.
fn c_to_i8(v: f32) -> i8 {
    (if v.is_nan() || !(-2_147_483_648.0..2_147_483_648.0).contains(&v) { i32::MIN } else { v as i32 }) as i8
}

/// ggml's `quantize_row_{q4_0,q4_1,q5_0,q5_1}_ref` for one block *as gcc compiles it with
/// `-ffp-contract=fast` and FMA available*: `x*id + 8.5f` (and `(x-min)*id + 0.5f`) fused into one
/// rounding. Used only to explain mismatches; `None` for the types without a contractable add.
fn fma_contracted_block(t: QuantType, x: &[f32]) -> Option<Vec<u8>> {
    let h = 16;
    let f16b = |v: f32| half::f16::from_f32(v).to_bits().to_le_bytes();
    match t {
        QuantType::Q4_0 | QuantType::Q5_0 => {
            let (div, bias, top) = if t == QuantType::Q4_0 { (-8.0f32, 8.5f32, 15i8) } else { (-16.0, 16.5, 31) };
            let (mut amax, mut max) = (0f32, 0f32);
            for &v in x {
                if amax < v.abs() { amax = v.abs(); max = v; }
            }
            let d = max / div;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: Vec<u8> = x.iter().map(|&v| c_to_i8(v.mul_add(id, bias)).min(top) as u8).collect();
            let mut out = f16b(d).to_vec();
            out.extend(pack(t, &q, h));
            Some(out)
        }
        QuantType::Q4_1 | QuantType::Q5_1 => {
            let div = if t == QuantType::Q4_1 { 15.0f32 } else { 31.0 };
            let (mut min, mut max) = (f32::MAX, -f32::MAX);
            for &v in x { if v < min { min = v; } if v > max { max = v; } }
            let d = (max - min) / div;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let q: Vec<u8> = x.iter().map(|&v| {
                let c = c_to_i8((v - min).mul_add(id, 0.5));
                if t == QuantType::Q4_1 { c.min(15) as u8 } else { c as u8 }
            }).collect();
            let mut out = f16b(d).to_vec();
            out.extend(f16b(min));
            out.extend(pack(t, &q, h));
            Some(out)
        }
        _ => None,
    }
}

/// Nibbles (and, for Q5, the `qh` bits first) in ggml's block order.
fn pack(t: QuantType, q: &[u8], h: usize) -> Vec<u8> {
    let qs: Vec<u8> = (0..h).map(|j| (q[j] & 0x0f) | ((q[j + h] & 0x0f) << 4)).collect();
    if matches!(t, QuantType::Q5_0 | QuantType::Q5_1) {
        let mut qh = 0u32;
        for j in 0..h {
            qh |= ((u32::from(q[j]) & 0x10) >> 4) << j;
            qh |= ((u32::from(q[j + h]) & 0x10) >> 4) << (j + h);
        }
        let mut out = qh.to_le_bytes().to_vec();
        out.extend(qs);
        out
    } else {
        qs
    }
}

pub(crate) fn ingot_quantize(t: QuantType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; t.row_bytes(x.len()).expect("whole blocks")];
    (t.info().from_f32)(x, &mut out);
    out
}

/// Mismatching bytes and blocks of two equally long encodings, and the first bad block.
fn byte_diff(t: QuantType, a: &[u8], b: &[u8]) -> (usize, usize, Option<usize>) {
    let bad = bad_blocks(t, a, b);
    let bytes = a.iter().zip(b).filter(|(x, y)| x != y).count();
    (bytes, bad.len(), bad.first().copied())
}

pub(crate) fn bad_blocks(t: QuantType, a: &[u8], b: &[u8]) -> Vec<usize> {
    let bb = t.block_bytes();
    (0..a.len() / bb).filter(|&i| a[i * bb..(i + 1) * bb] != b[i * bb..(i + 1) * bb]).collect()
}

/// Bitwise mismatches of two f32 vectors (NaN equals NaN).
pub(crate) fn f32_diff(a: &[f32], b: &[f32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.to_bits() != y.to_bits() && !(x.is_nan() && y.is_nan())).count()
}

/// Rows of the SmolLM2 tensors in `SMOLLM2_ROWS`, dequantized by ggml; also checks ingot's `to_f32`
/// of the same source bytes bitwise.
pub(crate) fn smollm2_rows(model: &str) -> Res<(Vec<f32>, usize)> {
    let file = GgufFile::open(model)?;
    let g = file.parse()?;
    let mut all = Vec::new();
    let mut mism = 0;
    for (name, rows) in quant_inputs::SMOLLM2_ROWS {
        let t = g.tensor(name).ok_or_else(|| format!("{model} has no tensor {name}"))?;
        let n = t.dims[0] as usize;
        let rb = t.ty.row_bytes(n).unwrap();
        let bytes = &t.data[..rb * rows];
        let gt = TYPES.iter().find(|(q, _)| *q == t.ty).map(|p| p.1).ok_or("source type")?;
        let theirs = ggml_to_float(gt, bytes, n * rows).ok_or("no to_float")?;
        let mut ours = vec![0f32; n * rows];
        (t.ty.info().to_f32)(bytes, &mut ours);
        mism += f32_diff(&ours, &theirs);
        all.extend_from_slice(&theirs);
    }
    Ok((all, mism))
}

pub fn cmd_quantize_parity(model: Option<&str>, out: Option<&str>, seed: u64) -> Res<()> {
    // SAFETY: plain initialisation of ggml's tables (idempotent).
    unsafe { sys::ggml_cpu_init() };
    let mut sets: Vec<(String, Vec<f32>)> =
        quant_inputs::random_sets(seed).into_iter().map(|(n, x)| (n.to_string(), x)).collect();
    if let Some(m) = model {
        let (x, mism) = smollm2_rows(m)?;
        println!("smollm2 source rows: {} values, ingot to_f32 vs ggml to_float: {mism} bitwise mismatches", x.len());
        if mism != 0 {
            return Err("source dequantization differs".into());
        }
        sets.push(("smollm2".into(), x));
    }
    let mut fixture = Map::new();
    let mut total_bad = 0usize;
    let mut contracted = 0usize;
    println!("{:<12} {:<5} {:>9} {:>14} {:>14} {:>12} {:>16}", "set", "type", "blocks", "bytes differ", "blocks differ", "ref==chunk", "dequant differ");
    for (set, x) in &sets {
        let mut entry = Map::new();
        entry.insert("values".into(), json!(x.len()));
        entry.insert("input_fnv".into(), json!(format!("{:016x}", fnv1a(&f32_bytes(x)))));
        for (qt, gt) in TYPES {
            // ggml_quantize_chunk has no Q8_1 case (Q8_1 is only ever an activation format).
            let reference = ggml_from_float_ref(gt, x);
            let theirs = if qt == QuantType::Q8_1 { reference.clone() } else { ggml_quantize(gt, x, quant_inputs::ROW) };
            let ours = ingot_quantize(qt, x);
            let (bytes, blocks, first) = byte_diff(qt, &ours, &theirs);
            // Dequantize ggml's bytes both ways (ggml has no Q8_1 dequantizer).
            let deq = ggml_to_float(gt, &theirs, x.len());
            let deq_bad = deq.as_ref().map(|d| {
                let mut y = vec![0f32; x.len()];
                (qt.info().to_f32)(&theirs, &mut y);
                f32_diff(&y, d)
            });
            total_bad += bytes + deq_bad.unwrap_or(0) + usize::from(reference != theirs);
            println!(
                "{set:<12} {:<5} {:>9} {bytes:>14} {blocks:>14} {:>12} {:>16}",
                qt.name(),
                theirs.len() / qt.block_bytes(),
                reference == theirs,
                deq_bad.map_or("n/a".to_string(), |d| d.to_string())
            );
            // Blocks where ggml's bytes are exactly the FMA-contracted computation of the same formula.
            let bad = bad_blocks(qt, &ours, &theirs);
            let (bb, be) = (qt.block_bytes(), qt.block_elems());
            let explained = bad
                .iter()
                .filter(|&&i| fma_contracted_block(qt, &x[i * be..(i + 1) * be]).as_deref() == Some(&theirs[i * bb..(i + 1) * bb]))
                .count();
            if !bad.is_empty() {
                println!("    {explained} of the {} differing blocks are exactly ggml's formula with x*id+c fused into one FMA (gcc -ffp-contract=fast)", bad.len());
                contracted += explained;
            }
            if let Some(i) = first {
                let be = qt.block_elems();
                println!("    first bad block {i}: x = {:?}", &x[i * be..(i + 1) * be]);
                println!("    ggml  {:02x?}", &theirs[i * bb..(i + 1) * bb]);
                println!("    ingot {:02x?}", &ours[i * bb..(i + 1) * bb]);
            }
            let mut h = Map::new();
            h.insert("quant_fnv".into(), json!(format!("{:016x}", fnv1a(&theirs))));
            if let Some(d) = deq {
                h.insert("dequant_fnv".into(), json!(format!("{:016x}", fnv1a(&f32_bytes(&d)))));
            }
            entry.insert(qt.name().into(), Json::Object(h));
        }
        fixture.insert(set.clone(), Json::Object(entry));
    }
    println!("{}", if total_bad == 0 { "ALL BYTES EQUAL".to_string() } else {
        format!("MISMATCHES FOUND ({contracted} differing blocks explained by FMA contraction in this ggml build)")
    });
    // llama.cpp's own requantization of the model (what `llama-quantize --allow-requantize` writes).
    let mut files = Map::new();
    if let (Some(m), Some(_)) = (model, out) {
        for ty in ["Q8_0", "Q4_0"] {
            let tmp = std::env::temp_dir().join(format!("ingot-peer-{}-{ty}.gguf", std::process::id()));
            let h = quantize_file_fnv(m, tmp.to_str().unwrap(), ty)?;
            let _ = std::fs::remove_file(&tmp);
            println!("llama_model_quantize {ty}: tensors_fnv {h:016x}");
            files.insert(ty.into(), json!(format!("{h:016x}")));
        }
    }
    if let Some(path) = out {
        let doc = json!({
            "made_by": "tools/peer: ingot-peer quantize-parity --model M --out testdata/peer/quantize.json",
            "inputs": format!("tools/peer/src/quant_inputs.rs random_sets(seed {seed}), rows of {} values; smollm2 = SMOLLM2_ROWS of the model, dequantized", quant_inputs::ROW),
            "model": model,
            "ggml": "ggml_quantize_chunk (== from_float_ref) and type_traits to_float",
            "llama_cpp_sys_2": "0.1.161",
            // CFLAGS of the cargo build that compiled llama.cpp (the sys crate adds them to CMAKE_C_FLAGS).
            "build_cflags": option_env!("CFLAGS").unwrap_or(""),
            "system_info": crate::system_info(),
            "hash": "FNV-1a 64 of ggml's quantized bytes / of the dequantized f32 little-endian bytes",
            "sets": Json::Object(fixture),
            "llama_quantize_tensors_fnv": Json::Object(files),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
        println!("wrote {path}");
    }
    if total_bad != 0 {
        return Err("ingot's quantizers differ from ggml's".into());
    }
    Ok(())
}

/// llama.cpp's `LLAMA_FTYPE_*` for a type name.
fn ftype(name: &str) -> Res<sys::llama_ftype> {
    Ok(match name.to_ascii_uppercase().as_str() {
        "F32" => sys::LLAMA_FTYPE_ALL_F32,
        "F16" => sys::LLAMA_FTYPE_MOSTLY_F16,
        "BF16" => sys::LLAMA_FTYPE_MOSTLY_BF16,
        "Q4_0" => sys::LLAMA_FTYPE_MOSTLY_Q4_0,
        "Q4_1" => sys::LLAMA_FTYPE_MOSTLY_Q4_1,
        "Q5_0" => sys::LLAMA_FTYPE_MOSTLY_Q5_0,
        "Q5_1" => sys::LLAMA_FTYPE_MOSTLY_Q5_1,
        "Q8_0" => sys::LLAMA_FTYPE_MOSTLY_Q8_0,
        "Q2_K" => sys::LLAMA_FTYPE_MOSTLY_Q2_K,
        "Q3_K_M" => sys::LLAMA_FTYPE_MOSTLY_Q3_K_M,
        "Q4_K_S" => sys::LLAMA_FTYPE_MOSTLY_Q4_K_S,
        "Q4_K_M" => sys::LLAMA_FTYPE_MOSTLY_Q4_K_M,
        "Q5_K_S" => sys::LLAMA_FTYPE_MOSTLY_Q5_K_S,
        "Q5_K_M" => sys::LLAMA_FTYPE_MOSTLY_Q5_K_M,
        "Q6_K" => sys::LLAMA_FTYPE_MOSTLY_Q6_K,
        other => return Err(format!("unknown --type {other}").into()),
    })
}

/// Runs `llama_model_quantize(input -> output, ty, allow_requantize)` quietly and returns `tensors_fnv`.
pub(crate) fn quantize_file_fnv(input: &str, output: &str, ty: &str) -> Res<u64> {
    let (fin, fout) = (CString::new(input)?, CString::new(output)?);
    // SAFETY: as in cmd_quantize_file.
    let rc = unsafe {
        let mut p = sys::llama_model_quantize_default_params();
        p.ftype = ftype(ty)?;
        p.allow_requantize = true;
        sys::llama_model_quantize(fin.as_ptr(), fout.as_ptr(), &p)
    };
    if rc != 0 {
        return Err(format!("llama_model_quantize failed ({rc})").into());
    }
    let file = GgufFile::open(output)?;
    let g = file.parse()?;
    let mut ts: Vec<(&str, u32, &[u8])> = g.tensors().iter().map(|t| (t.name, t.ty.ggml_id(), t.data)).collect();
    Ok(quant_inputs::tensors_fnv(&mut ts))
}

pub fn cmd_quantize_file(input: &str, output: &str, ty: &str, allow_requantize: bool, threads: i32) -> Res<()> {
    let fin = CString::new(input)?;
    let fout = CString::new(output)?;
    // SAFETY: default params by value; the paths outlive the call.
    let rc = unsafe {
        let mut p = sys::llama_model_quantize_default_params();
        p.ftype = ftype(ty)?;
        p.allow_requantize = allow_requantize;
        p.nthread = threads;
        sys::llama_model_quantize(fin.as_ptr(), fout.as_ptr(), &p)
    };
    if rc != 0 {
        return Err(format!("llama_model_quantize failed ({rc})").into());
    }
    let file = GgufFile::open(output)?;
    let g = file.parse()?;
    let mut ts: Vec<(&str, u32, &[u8])> = g.tensors().iter().map(|t| (t.name, t.ty.ggml_id(), t.data)).collect();
    let h = quant_inputs::tensors_fnv(&mut ts);
    println!("wrote {output} (llama_model_quantize, ftype {ty}, allow_requantize {allow_requantize}); tensors_fnv {h:016x}");
    Ok(())
}

fn show(v: &Value<'_>) -> String {
    match v {
        Value::Array(a) => format!("[{:?}; {}] fnv {:016x}", a.elem, a.len, {
            let s: Vec<String> = a.iter().map(|x| format!("{x:?}")).collect();
            fnv1a(s.join("\u{1}").as_bytes())
        }),
        other => format!("{other:?}"),
    }
}

pub fn cmd_gguf_diff(a: &str, b: &str) -> Res<()> {
    let (fa, fb) = (GgufFile::open(a)?, GgufFile::open(b)?);
    let (ga, gb) = (fa.parse()?, fb.parse()?);
    println!("A = {a}\nB = {b}");
    let mut meta_diff = 0;
    for (k, v) in ga.metadata() {
        match gb.get(k) {
            None => {
                meta_diff += 1;
                println!("  key {k}: only in A ({})", show(v))
            }
            Some(w) if show(&w) != show(v) => {
                meta_diff += 1;
                println!("  key {k}: A {} | B {}", show(v), show(&w))
            }
            _ => {}
        }
    }
    for (k, v) in gb.metadata() {
        if ga.get(k).is_none() {
            meta_diff += 1;
            println!("  key {k}: only in B ({})", show(v));
        }
    }
    println!("metadata: {} keys in A, {} in B, {meta_diff} differ", ga.metadata().len(), gb.metadata().len());
    let (mut same_type, mut same_bytes, mut n) = (0, 0, 0);
    for t in ga.tensors() {
        n += 1;
        let Some(u) = gb.tensor(t.name) else {
            println!("  {}: only in A", t.name);
            continue;
        };
        if t.dims != u.dims {
            println!("  {}: dims {:?} vs {:?}", t.name, t.shape(), u.shape());
            continue;
        }
        if t.ty != u.ty {
            println!("  {:<32} type A {} | B {}", t.name, t.ty, u.ty);
            continue;
        }
        same_type += 1;
        if t.data == u.data {
            same_bytes += 1;
        } else {
            let (bytes, blocks, first) = byte_diff(t.ty, t.data, u.data);
            println!("  {:<32} {}: {bytes} bytes in {blocks} blocks differ (first block {first:?})", t.name, t.ty);
        }
    }
    for t in gb.tensors() {
        if ga.tensor(t.name).is_none() {
            println!("  {}: only in B", t.name);
        }
    }
    println!("tensors: {n} in A, {} in B; {same_type} with the same type, {same_bytes} of those byte-identical", gb.tensors().len());
    println!("file sizes: A {} bytes, B {} bytes", fa.bytes().len(), fb.bytes().len());
    Ok(())
}
