//! `kernel-parity`: ingot's kernels (the path `Kernels::best()` picks) and its ggml-exact attention
//! helpers against the ggml CPU backend linked into this binary, on seeded random rows.
//!
//! Per type: weight rows are quantized by ggml's `from_float_ref`, activations by both sides'
//! `from_float` (byte mismatches reported), and the dot products of the *same* bytes compared
//! bitwise (`vec_dot` of `ggml_get_type_traits_cpu`). Then `ggml_vec_dot_f16`,
//! `ggml_vec_soft_max_f32` and `ggml_vec_swiglu_f32` (exported by ggml-cpu) against
//! `ingot_runtime::model::ops`.

use half::f16;
use ingot_kernels::{Kernels, QuantType};
use ingot_runtime::model::ops;
use llama_cpp_sys_2 as sys;

extern "C" {
    fn ggml_vec_dot_f16(n: i32, s: *mut f32, bs: usize, x: *const u16, bx: usize, y: *const u16, by: usize, nrc: i32);
    fn ggml_vec_soft_max_f32(n: i32, y: *mut f32, x: *const f32, max: f32) -> f64;
    fn ggml_vec_swiglu_f32(n: i32, y: *mut f32, x: *const f32, g: *const f32);
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-s, s), with an occasional outlier as real activations have.
    fn f32(&mut self, s: f32) -> f32 {
        let u = (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0;
        if self.next() % 97 == 0 { u * s * 20.0 } else { u * s }
    }
}

#[derive(Default)]
struct Tally {
    cases: usize,
    mismatches: usize,
    max_rel: f64,
}
impl Tally {
    fn add(&mut self, ours: f32, theirs: f32) {
        self.cases += 1;
        if ours.to_bits() != theirs.to_bits() {
            self.mismatches += 1;
            let rel = f64::from((ours - theirs).abs()) / f64::from(theirs.abs()).max(1e-30);
            self.max_rel = self.max_rel.max(rel);
        }
    }
    fn line(&self, what: &str) -> String {
        format!("{what:<28} {:>5} cases  {:>5} bitwise mismatches  max rel diff {:.3e}", self.cases, self.mismatches, self.max_rel)
    }
}

fn ggml_type(t: QuantType) -> sys::ggml_type {
    match t {
        QuantType::F32 => sys::GGML_TYPE_F32,
        QuantType::F16 => sys::GGML_TYPE_F16,
        QuantType::BF16 => sys::GGML_TYPE_BF16,
        QuantType::Q4_0 => sys::GGML_TYPE_Q4_0,
        QuantType::Q4_1 => sys::GGML_TYPE_Q4_1,
        QuantType::Q5_0 => sys::GGML_TYPE_Q5_0,
        QuantType::Q5_1 => sys::GGML_TYPE_Q5_1,
        QuantType::Q8_0 => sys::GGML_TYPE_Q8_0,
        QuantType::Q8_1 => sys::GGML_TYPE_Q8_1,
        // Q2_K..Q8_K: ingot's ids are ggml's.
        k => k.ggml_id() as sys::ggml_type,
    }
}

pub fn cmd_kernel_parity(rows: usize, seed: u64) -> Result<(), Box<dyn std::error::Error>> {
    // SAFETY: plain initialisation of ggml-cpu's tables (idempotent).
    unsafe { sys::ggml_cpu_init() };
    let k = Kernels::best();
    println!("ingot kernels: {:?}; {rows} rows per type, lengths 32..=4096 (whole blocks), seed {seed}", k.isa());
    let mut rng = Rng(seed);
    let mut all_ok = true;
    for wt in [QuantType::Q4_1, QuantType::Q8_0, QuantType::F16, QuantType::Q4_0, QuantType::Q5_0, QuantType::Q5_1] {
        let at = wt.info().vec_dot_type;
        // SAFETY: the trait tables are static and valid for every ggml type.
        let (wtr, cpu_w, cpu_a) = unsafe {
            (*sys::ggml_get_type_traits(ggml_type(wt)), *sys::ggml_get_type_traits_cpu(ggml_type(wt)), *sys::ggml_get_type_traits_cpu(ggml_type(at)))
        };
        let (mut dot, mut quant) = (Tally::default(), Tally::default());
        let mut quant_bytes = (0usize, 0usize);
        for _ in 0..rows {
            let n = 32 * (1 + (rng.next() % 128) as usize);
            let scale = [0.02f32, 0.5, 3.0][(rng.next() % 3) as usize];
            let wf: Vec<f32> = (0..n).map(|_| rng.f32(scale)).collect();
            let xf: Vec<f32> = (0..n).map(|_| rng.f32(1.0)).collect();
            let mut w = vec![0u8; wt.row_bytes(n).unwrap()];
            let mut xg = vec![0u8; at.row_bytes(n).unwrap()];
            let mut xi = vec![0u8; at.row_bytes(n).unwrap()];
            // SAFETY: buffers sized by row_bytes for n elements, n a multiple of the block size.
            unsafe {
                wtr.from_float_ref.unwrap()(wf.as_ptr(), w.as_mut_ptr().cast(), n as i64);
                cpu_a.from_float.unwrap()(xf.as_ptr(), xg.as_mut_ptr().cast(), n as i64);
            }
            k.quantize_activations(at, &xf, &mut xi);
            quant.cases += 1;
            let diff = xg.iter().zip(&xi).filter(|(a, b)| a != b).count();
            if diff > 0 {
                quant.mismatches += 1;
            }
            quant_bytes.0 += diff;
            quant_bytes.1 += xg.len();
            let mut theirs = 0.0f32;
            // SAFETY: one row each of n elements, nrc = 1.
            unsafe { cpu_w.vec_dot.unwrap()(n as i32, &mut theirs, 0, w.as_ptr().cast(), 0, xg.as_ptr().cast(), 0, 1) };
            dot.add(k.vec_dot(wt, n, &w, &xg), theirs);
        }
        println!("{}", dot.line(&format!("vec_dot {wt:?} x {at:?}")));
        println!("{:<28} {:>5} rows   {:>5} rows differ ({} of {} bytes)", format!("from_float {at:?}"), quant.cases, quant.mismatches, quant_bytes.0, quant_bytes.1);
        all_ok &= dot.mismatches == 0 && quant.mismatches == 0;
    }

    // Attention helpers.
    let ops = ops::Ops::new(&k);
    let (mut vd, mut sm, mut sw, mut ex) = (Tally::default(), Tally::default(), Tally::default(), Tally::default());
    for _ in 0..rows {
        let n = 1 + (rng.next() % 700) as usize;
        let n_pad = n.div_ceil(256) * 256;
        let x: Vec<f16> = (0..n_pad).map(|i| if i < n { f16::from_f32(rng.f32(1.0)) } else { f16::ZERO }).collect();
        let y: Vec<f16> = (0..n_pad).map(|i| if i < n { f16::from_f32(rng.f32(1.0)) } else { f16::ZERO }).collect();
        for (len, pad) in [(n, n), (n, n_pad)] {
            let mut theirs = 0.0f32;
            // SAFETY: pad f16 at x and y.
            unsafe { ggml_vec_dot_f16(pad as i32, &mut theirs, 0, x.as_ptr().cast(), 0, y.as_ptr().cast(), 0, 1) };
            vd.add(ops.dot_f16_ggml(&x[..len], &y[..len], pad), theirs);
        }
        // soft_max over a padded, masked row
        let mut s: Vec<f32> = (0..n_pad).map(|i| if i < n { rng.f32(4.0) } else { f32::NEG_INFINITY }).collect();
        let max = s.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut yg = vec![0.0f32; n_pad];
        // SAFETY: n_pad floats in and out.
        let sum_g = unsafe { ggml_vec_soft_max_f32(n_pad as i32, yg.as_mut_ptr(), s.as_ptr(), max) };
        let sum_i = ops::soft_max(&mut s[..n], max);
        sm.add(sum_i as f32, sum_g as f32);
        sm.add((sum_i - sum_g) as f32 + 1.0, 1.0);
        for i in 0..n {
            ex.add(s[i], yg[i]);
        }
        // swiglu
        let m = 16 * (1 + (rng.next() % 100) as usize) + (rng.next() % 16) as usize;
        let g: Vec<f32> = (0..m).map(|_| rng.f32(6.0)).collect();
        let u: Vec<f32> = (0..m).map(|_| rng.f32(2.0)).collect();
        let mut yg = vec![0.0f32; m];
        // SAFETY: m floats each.
        unsafe { ggml_vec_swiglu_f32(m as i32, yg.as_mut_ptr(), g.as_ptr(), u.as_ptr()) };
        let mut gi = g.clone();
        ops::swiglu(&mut gi, &u);
        for i in 0..m {
            sw.add(gi[i], yg[i]);
        }
    }
    println!("{}", vd.line("ggml_vec_dot_f16 (padded)"));
    println!("{}", sm.line("soft_max sums"));
    println!("{}", ex.line("soft_max values"));
    println!("{}", sw.line("swiglu values"));
    all_ok &= vd.mismatches + sm.mismatches + ex.mismatches + sw.mismatches == 0;
    println!("{}", if all_ok { "ALL BITWISE EQUAL" } else { "MISMATCHES FOUND" });
    Ok(())
}
