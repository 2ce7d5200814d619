//! Every [`Kernels`] path available on the host against the scalar reference, one test body per
//! property run over [`Isa::ALL`] (`Kernels::for_isa` returning `None` skips that ISA; the scalar
//! path always runs, and each test prints which ISAs it covered), plus the AVX-VNNI kernels with
//! `vpdpbusd` emulated ([`Kernels::avxvnni_emulated`]) on every AVX2 host:
//!
//! - `vec_dot` within a per-type rounding bound of the reference, at lengths
//!   `{1,2,3,7,8,15,16,17,31,33,255,1023}` blocks and shifted (odd) byte offsets;
//! - the integer part of every block dot exact for *all* byte patterns (power-of-two scales make
//!   every f32 step exact, so SIMD and reference must agree bit for bit);
//! - `matvec` and `matmul` bitwise equal to per-row `vec_dot` of the same path;
//! - activation quantizers byte-identical to [`ingot_kernels::quantize_activations`].
//!
//! Inputs come from a seeded splitmix64, so every failure reproduces.

mod common;
use common::{shifted, SplitMix64, LENGTH_BLOCKS, OFFSETS, U32};

use half::f16;
use ingot_kernels::blocks::QK;
use ingot_kernels::{quantize_activations, Isa, Kernels, QuantType};

impl SplitMix64 {
    /// Values whose scale changes every 32 elements, with all-zero, all-equal and all-positive
    /// blocks and rare outliers.
    fn values(&mut self, n: usize) -> Vec<f32> {
        let mut v = Vec::with_capacity(n);
        while v.len() < n {
            let scale = 2f32.powi((self.next_u64() % 16) as i32 - 10);
            let kind = self.next_u64() % 16;
            for _ in 0..QK.min(n - v.len()) {
                v.push(match kind {
                    0 => 0.0,
                    1 => 0.75 * scale,
                    2 => self.unit() * scale + 3.0 * scale,
                    _ if self.next_u64().is_multiple_of(64) => self.unit() * scale * 20.0,
                    _ => self.unit() * scale,
                });
            }
        }
        v
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// The paths this host can run; prints which ran and which were skipped.
fn paths(test: &str) -> Vec<Kernels> {
    let mut ran = Vec::new();
    let mut skipped = Vec::new();
    let mut ks = Vec::new();
    for isa in Isa::ALL {
        match Kernels::for_isa(isa) {
            Some(k) => {
                assert_eq!(k.isa(), isa);
                ran.push(isa.name());
                ks.push(k);
            }
            None => skipped.push(isa.name()),
        }
    }
    // The AVX-VNNI kernel bodies on CPUs without AVX-VNNI (tests/avxvnni.rs: bitwise the AVX2 path).
    if let Some(k) = Kernels::avxvnni_emulated() {
        ran.push("avxvnni (emulated)");
        ks.push(k);
    }
    assert!(ran.contains(&"scalar"), "the scalar path must always run");
    eprintln!("{test}: ran {ran:?}, skipped (not on this CPU) {skipped:?}");
    ks
}

fn weights(ty: QuantType, x: &[f32]) -> Vec<u8> {
    let mut out = vec![0u8; ty.row_bytes(x.len()).unwrap()];
    (ty.info().from_f32)(x, &mut out);
    out
}

fn activations(ty: QuantType, x: &[f32]) -> Vec<u8> {
    let act = ty.info().vec_dot_type;
    let mut out = vec![0u8; act.row_bytes(x.len()).unwrap()];
    quantize_activations(act, x, &mut out);
    out
}

fn f16_at(b: &[u8], at: usize) -> f64 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]])).to_f64()
}

/// The integer codes of block `b` of a quantized row, centred (`q - 8`, `q - 16`) for the
/// symmetric 4/5-bit types; `None` for the float types.
fn codes(ty: QuantType, row: &[u8], b: usize) -> Option<[i32; QK]> {
    let bb = ty.block_bytes();
    let blk = &row[b * bb..(b + 1) * bb];
    let q4 = |qs: &[u8], j: usize| {
        if j < 16 {
            (qs[j] & 15) as i32
        } else {
            (qs[j - 16] >> 4) as i32
        }
    };
    let qh = |at: usize, j: usize| {
        let h = u32::from_le_bytes(blk[at..at + 4].try_into().unwrap());
        (((h >> j) & 1) << 4) as i32
    };
    Some(core::array::from_fn(|j| match ty {
        QuantType::Q4_0 => q4(&blk[2..], j) - 8,
        QuantType::Q4_1 => q4(&blk[4..], j),
        QuantType::Q5_0 => q4(&blk[6..], j) + qh(2, j) - 16,
        QuantType::Q5_1 => q4(&blk[8..], j) + qh(4, j),
        QuantType::Q8_0 => blk[2 + j] as i8 as i32,
        QuantType::Q8_1 => blk[4 + j] as i8 as i32,
        _ => 0,
    }))
    .filter(|_| ty.block_elems() == QK)
}

/// Allowed |SIMD - reference| for one dot product, relative to `S`, the sum of the absolute values
/// of what gets added: `sum_b |dw*dx| * sum_i |qw_i * qx_i| + |mw * sx|` for the block types,
/// `sum_i |w_i * x_i|` for the float types.
///
/// Why: both paths compute the same exact integer block dots and f16-exact scales; they differ
/// only in the order of the f32 additions (the reference adds block terms left to right, the SIMD
/// paths keep 8 lanes (x4 chains for floats) and add them as a tree at the end; the float
/// reference sums in f64). Each path's error is at most (additions in its longest chain + the few
/// roundings per term) * u * S, so the difference is bounded by (2 * chain + 16) * u * S with the
/// chain `nb` blocks, or `n / 8` elements for the float types. The bound is a worst case; typical
/// differences are far smaller.
fn dot_tolerance(ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f64 {
    let act = ty.info().vec_dot_type;
    let (chain, s) = if ty.block_elems() == 1 {
        let mut wf = vec![0f32; n];
        let mut xf = vec![0f32; n];
        (ty.info().to_f32)(w, &mut wf);
        (act.info().to_f32)(x, &mut xf);
        let s: f64 = wf
            .iter()
            .zip(&xf)
            .map(|(a, b)| (*a as f64 * *b as f64).abs())
            .sum();
        (n / 8, s)
    } else {
        let nb = n / QK;
        let mut s = 0.0;
        for b in 0..nb {
            let (qw, qx) = (codes(ty, w, b).unwrap(), codes(act, x, b).unwrap());
            let (wb, xb) = (b * ty.block_bytes(), b * act.block_bytes());
            let d = (f16_at(w, wb) * f16_at(x, xb)).abs();
            let isum: f64 = qw
                .iter()
                .zip(&qx)
                .map(|(a, b)| (*a as f64 * *b as f64).abs())
                .sum();
            s += d * isum;
            if matches!(ty, QuantType::Q4_1 | QuantType::Q5_1) {
                s += (f16_at(w, wb + 2) * f16_at(x, xb + 2)).abs();
            }
        }
        (nb, s)
    };
    (2 * chain + 16) as f64 * U32 * s
}

#[test]
fn vec_dot_matches_reference_within_rounding() {
    let mut rng = SplitMix64(0x5eed_51d0);
    for k in paths("vec_dot_matches_reference_within_rounding") {
        // K-quants are held to bitwise equality instead (`k_quant_dots_equal_reference_bitwise`).
        for ty in QuantType::ALL.into_iter().filter(|t| !t.is_k_quant()) {
            for &blocks in &LENGTH_BLOCKS {
                // The float types get a tail that is not a multiple of the vector width too.
                let n =
                    blocks * ty.block_elems() + if ty.block_elems() == 1 { blocks % 7 } else { 0 };
                let w = weights(ty, &rng.values(n));
                let x = activations(ty, &rng.values(n));
                let want = (ty.info().vec_dot)(n, &w, &x);
                let tol = dot_tolerance(ty, n, &w, &x);
                for off in OFFSETS {
                    let (ws, xs) = (shifted(&w, off), shifted(&x, off + 2));
                    let got = k.vec_dot(ty, n, &ws[off..], &xs[off + 2..]);
                    let err = (got as f64 - want as f64).abs();
                    assert!(
                        err <= tol,
                        "{} {ty} n={n} off={off}: got {got}, reference {want}, |diff| {err:e} > {tol:e}",
                        k.isa()
                    );
                }
            }
        }
    }
}

/// A reference dot product: `(n, weight row, activation row) -> f32`.
type DotFn = fn(usize, &[u8], &[u8]) -> f32;

/// The reference a path's K-quant dot must equal bitwise: ggml's x86 order
/// (`reference::vec_dot_*_x86`, what llama.cpp computes on x86) for the types the AVX2 and AVX-512
/// paths compute that way, ggml's `_generic` order otherwise.
fn k_quant_reference(isa: Isa, ty: QuantType) -> DotFn {
    use ingot_kernels::reference::*;
    if !matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni) {
        return ty.info().vec_dot;
    }
    match ty {
        QuantType::Q6_K => vec_dot_q6_k_q8_k_x86,
        QuantType::Q5_K => vec_dot_q5_k_q8_k_x86,
        QuantType::Q4_K => vec_dot_q4_k_q8_k_x86,
        QuantType::Q3_K => vec_dot_q3_k_q8_k_x86,
        QuantType::Q2_K => vec_dot_q2_k_q8_k_x86,
        _ => ty.info().vec_dot,
    }
}

/// The K-quant dot products on every path are bitwise equal to their reference
/// ([`k_quant_reference`]): ggml's `_generic` order (eight exact i32 lanes per super-block,
/// `sums[l] += d * lane[l]` in f32, lanes added in order at the end) or, on x86, ggml's x86 order
/// (other lanes, one FMA per block, a pairwise final sum). A SIMD kernel can keep exactly either
/// order, so no tolerance is needed. Rows of random
/// values (per-32 scale changes, outliers, zero blocks) and rows of random bytes (every code and
/// scale pattern; f16 scales made finite), at odd offsets.
#[test]
fn k_quant_dots_equal_reference_bitwise() {
    let mut rng = SplitMix64(0x6b9a_0001);
    for k in paths("k_quant_dots_equal_reference_bitwise") {
        for ty in QuantType::ALL.into_iter().filter(|t| t.is_k_quant()) {
            for blocks in [1usize, 2, 3, 7, 8, 17] {
                let n = blocks * ty.block_elems();
                for case in 0..3 {
                    let (w, x) = if case < 2 {
                        (weights(ty, &rng.values(n)), activations(ty, &rng.values(n)))
                    } else {
                        let mut w = rng.bytes(ty.row_bytes(n).unwrap());
                        // Finite f16 scales: clear bit 14 of every 2-byte word at the f16 fields.
                        let (d_at, dmin_at): (usize, Option<usize>) = match ty {
                            QuantType::Q2_K => (80, Some(82)),
                            QuantType::Q3_K => (108, None),
                            QuantType::Q4_K | QuantType::Q5_K => (0, Some(2)),
                            QuantType::Q6_K => (208, None),
                            _ => (usize::MAX, None),
                        };
                        for b in 0..blocks {
                            for at in [Some(d_at), dmin_at].into_iter().flatten() {
                                if at != usize::MAX {
                                    w[b * ty.block_bytes() + at + 1] &= 0xbf;
                                }
                            }
                        }
                        let x = activations(ty, &rng.values(n));
                        if ty == QuantType::Q8_K {
                            (activations(ty, &rng.values(n)), x)
                        } else {
                            (w, x)
                        }
                    };
                    let want = k_quant_reference(k.isa(), ty)(n, &w, &x);
                    for off in OFFSETS {
                        let (ws, xs) = (shifted(&w, off), shifted(&x, off + 2));
                        let got = k.vec_dot(ty, n, &ws[off..], &xs[off + 2..]);
                        assert_eq!(
                            got.to_bits(),
                            want.to_bits(),
                            "{} {ty} n={n} case {case} off={off}: got {got}, reference {want}",
                            k.isa()
                        );
                    }
                }
            }
        }
    }
}

/// A row of `nb` blocks of `ty` with random codes (every byte pattern, including -128 in Q8
/// blocks) and power-of-two f16 scales (`d` in {0.5, 1}, `m`/`s` in {+-0.5, +-1, +-2}): every
/// product and partial sum is then exact in f32 for these lengths, in any order, so any
/// difference from the reference is an integer-arithmetic bug.
fn exact_row(rng: &mut SplitMix64, ty: QuantType, nb: usize) -> Vec<u8> {
    let mut row = rng.bytes(ty.row_bytes(nb * QK).unwrap());
    let put = |row: &mut [u8], at: usize, v: f32| {
        row[at..at + 2].copy_from_slice(&f16::from_f32(v).to_bits().to_le_bytes())
    };
    for b in 0..nb {
        let at = b * ty.block_bytes();
        put(&mut row, at, [0.5, 1.0][(rng.next_u64() % 2) as usize]);
        if matches!(ty, QuantType::Q4_1 | QuantType::Q5_1 | QuantType::Q8_1) {
            put(
                &mut row,
                at + 2,
                [0.5, -1.0, 2.0, -0.5][(rng.next_u64() % 4) as usize],
            );
        }
    }
    row
}

#[test]
fn block_integer_dots_are_exact_for_all_byte_patterns() {
    let mut rng = SplitMix64(0xe4ac_7000);
    for k in paths("block_integer_dots_are_exact_for_all_byte_patterns") {
        for ty in QuantType::ALL.into_iter().filter(|t| t.block_elems() == QK) {
            let act = ty.info().vec_dot_type;
            for nb in [1, 2, 3, 7] {
                for rep in 0..64 {
                    let mut w = exact_row(&mut rng, ty, nb);
                    let mut x = exact_row(&mut rng, act, nb);
                    if rep == 0 {
                        // Extreme codes: every weight byte 0xff (q = 15 / 31 / -1), every
                        // activation -128.
                        for b in 0..nb {
                            let (wq, xq) = (ty.block_bytes() - 16, act.block_bytes() - QK);
                            let wb = b * ty.block_bytes();
                            w[wb + wq..wb + ty.block_bytes()].fill(0xff);
                            if matches!(ty, QuantType::Q8_0 | QuantType::Q8_1) {
                                w[wb + ty.block_bytes() - QK..wb + ty.block_bytes()].fill(0x80);
                            }
                            let xb = b * act.block_bytes();
                            x[xb + xq..xb + act.block_bytes()].fill(0x80);
                        }
                    }
                    let n = nb * QK;
                    let want = (ty.info().vec_dot)(n, &w, &x);
                    let (ws, xs) = (shifted(&w, 1), shifted(&x, 3));
                    let got = k.vec_dot(ty, n, &ws[1..], &xs[3..]);
                    assert_eq!(
                        got.to_bits(),
                        want.to_bits(),
                        "{} {ty} nb={nb} rep={rep}: got {got}, reference {want}",
                        k.isa()
                    );
                }
            }
        }
    }
}

/// Where token `j` of a path's batched product of `t` tokens with a matrix of `rows` rows follows
/// another order than `vec_dot`, its reference, as llama.cpp on x86 chooses: the repacked gemm
/// (tokens of whole groups of four) and gemv (the others) for Q4_K, and on AVX-512 Q2_K, matrices
/// with a multiple of 8 rows; otherwise ggml-cpu's tiled matmul for every K-quant from
/// `TILED_MIN_TOKENS` tokens.
fn batched_reference(isa: Isa, ty: QuantType, rows: usize, t: usize, j: usize) -> Option<DotFn> {
    use ingot_kernels::reference::*;
    let x86 = matches!(isa, Isa::Avx2 | Isa::AvxVnni | Isa::Avx512Vnni);
    if !x86 || !ty.is_k_quant() || ty == QuantType::Q8_K {
        return None;
    }
    let gemm = j < t - t % 4;
    let repacked = rows.is_multiple_of(8)
        && (ty == QuantType::Q4_K || (ty == QuantType::Q2_K && isa == Isa::Avx512Vnni));
    if repacked {
        return Some(match (ty, gemm) {
            (QuantType::Q4_K, true) => vec_dot_q4_k_q8_k_repack_gemm,
            (QuantType::Q4_K, false) => vec_dot_q4_k_q8_k_repack,
            (_, true) => |n, w, x| vec_dot_q2_k_q8_k_repack(n, w, x, true),
            (_, false) => |n, w, x| vec_dot_q2_k_q8_k_repack(n, w, x, false),
        });
    }
    if t < TILED_MIN_TOKENS {
        return None;
    }
    Some(match ty {
        QuantType::Q6_K => vec_dot_q6_k_q8_k_tiled,
        QuantType::Q5_K => |n, w, x| vec_dot_k_q8_k_tiled(QuantType::Q5_K, n, w, x),
        QuantType::Q4_K => |n, w, x| vec_dot_k_q8_k_tiled(QuantType::Q4_K, n, w, x),
        QuantType::Q3_K => |n, w, x| vec_dot_k_q8_k_tiled(QuantType::Q3_K, n, w, x),
        _ => |n, w, x| vec_dot_k_q8_k_tiled(QuantType::Q2_K, n, w, x),
    })
}

/// `matvec` and `matmul` give, bit for bit, what `vec_dot` gives for every (row, token), except for
/// the batched K-quant products that follow another of llama.cpp's orders on x86
/// ([`batched_reference`]: K-quant matrices of 7 rows (not repacked by ggml) and 16 rows (Q4_K and
/// Q2_K repacked)); `matmul_part` on a split of the rows gives the bits of the whole `matmul`.
#[test]
fn matvec_and_matmul_equal_per_row_vec_dot_bitwise() {
    let mut rng = SplitMix64(0x3a7_3a7);
    for k in paths("matvec_and_matmul_equal_per_row_vec_dot_bitwise") {
        for ty in QuantType::ALL {
            let act = ty.info().vec_dot_type;
            let row_counts: &[usize] = if ty.is_k_quant() { &[7, 16] } else { &[7] };
            for (blocks, &rows) in [1usize, 3, 18, 33]
                .into_iter()
                .flat_map(|b| row_counts.iter().map(move |r| (b, r)))
            {
                let n = blocks * ty.block_elems() + if ty.block_elems() == 1 { 5 } else { 0 };
                let (rb, arb) = (ty.row_bytes(n).unwrap(), act.row_bytes(n).unwrap());
                let w = weights(ty, &rng.values(n * rows));
                let ws = shifted(&w, 1);
                let w = &ws[1..];
                for t in [1usize, 2, 3, 4, 5, 8, 9] {
                    // Activation rows at an odd stride, the whole buffer at an odd address.
                    let stride = arb + 3;
                    let mut xa = vec![0x5au8; 1 + (t - 1) * stride + arb];
                    for j in 0..t {
                        let at = 1 + j * stride;
                        quantize_activations(act, &rng.values(n), &mut xa[at..at + arb]);
                    }
                    let x_act = &xa[1..];
                    let mut out = vec![f32::NAN; t * rows];
                    k.matmul(ty, &mut out, w, rows, x_act, stride, t, n);
                    // The same product in two parts (rows 0..split and split..rows).
                    let split = rows / 2;
                    let mut parts = [
                        vec![f32::NAN; t * split],
                        vec![f32::NAN; t * (rows - split)],
                    ];
                    for (p, (r0, r1)) in parts.iter_mut().zip([(0, split), (split, rows)]) {
                        let wp = &w[r0 * rb..r1 * rb];
                        k.matmul_part(ty, rows, p, wp, r1 - r0, x_act, stride, t, n);
                    }
                    for j in 0..t {
                        let xj = &x_act[j * stride..j * stride + arb];
                        let mut mv = vec![f32::NAN; rows];
                        k.matvec(ty, &mut mv, w, xj, n);
                        for r in 0..rows {
                            let wr = &w[r * rb..(r + 1) * rb];
                            let want = k.vec_dot(ty, n, wr, xj);
                            let ctx = format!(
                                "{} {ty} n={n} rows={rows} t={t} row {r} token {j}",
                                k.isa()
                            );
                            let want_mm = match batched_reference(k.isa(), ty, rows, t, j) {
                                Some(f) => f(n, wr, xj),
                                None => want,
                            };
                            let want_mv = match batched_reference(k.isa(), ty, rows, 1, 0) {
                                Some(f) => f(n, wr, xj),
                                None => want,
                            };
                            assert_eq!(
                                out[j * rows + r].to_bits(),
                                want_mm.to_bits(),
                                "matmul {ctx}"
                            );
                            let (p, pr, prows) = if r < split {
                                (&parts[0], r, split)
                            } else {
                                (&parts[1], r - split, rows - split)
                            };
                            assert_eq!(
                                p[j * prows + pr].to_bits(),
                                want_mm.to_bits(),
                                "matmul_part {ctx}"
                            );
                            assert_eq!(mv[r].to_bits(), want_mv.to_bits(), "matvec {ctx}");
                        }
                    }
                }
            }
        }
    }
}

/// Floats that stress the activation quantizers: signed zeros, subnormals (f32 and f16), values at
/// f16 rounding ties, f16 overflow, infinities and NaNs.
fn special_values(rng: &mut SplitMix64, n: usize) -> Vec<f32> {
    const SPECIAL: [f32; 14] = [
        0.0,
        -0.0,
        1e-40,
        -3e-8,
        6.0e-8,
        1.0 + 1.0 / 2048.0,
        1.0 + 3.0 / 2048.0,
        65504.0,
        65520.0,
        -1e9,
        f32::MAX,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
    ];
    (0..n)
        .map(|_| match rng.next_u64() % 4 {
            0 => SPECIAL[(rng.next_u64() % SPECIAL.len() as u64) as usize],
            _ => rng.unit() * 3.0,
        })
        .collect()
}

#[test]
fn activation_quantizers_are_byte_identical_to_reference() {
    let mut rng = SplitMix64(0xac7_0001);
    let act_types = [
        QuantType::F32,
        QuantType::F16,
        QuantType::BF16,
        QuantType::Q8_0,
        QuantType::Q8_1,
    ];
    for k in paths("activation_quantizers_are_byte_identical_to_reference") {
        for ty in act_types {
            for &blocks in &LENGTH_BLOCKS {
                // Float types also get lengths that are not multiples of 8.
                let extra = if ty.block_elems() == 1 { blocks % 9 } else { 0 };
                let n = blocks * QK + extra;
                for (case, x) in [rng.values(n), special_values(&mut rng, n)]
                    .into_iter()
                    .enumerate()
                {
                    // Ties at 127/amax == 1: amax = 127 makes x * id == x exactly.
                    let mut x = x;
                    if case == 0 && n >= QK {
                        x[..6].copy_from_slice(&[127.0, 2.5, 0.5, -126.5, 1.5, -0.5]);
                    }
                    let rb = ty.row_bytes(n).unwrap();
                    let mut want = vec![0u8; rb];
                    quantize_activations(ty, &x, &mut want);
                    for off in [0usize, 1] {
                        let mut got = vec![0x77u8; rb + off];
                        k.quantize_activations(ty, &x[..], &mut got[off..]);
                        assert!(
                            got[off..] == want[..],
                            "{} {ty} n={n} case={case} off={off}: bytes differ at {:?}",
                            k.isa(),
                            got[off..].iter().zip(&want).position(|(a, b)| a != b)
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn zero_length_rows_and_empty_batches() {
    for k in paths("zero_length_rows_and_empty_batches") {
        for ty in QuantType::ALL {
            assert_eq!(k.vec_dot(ty, 0, &[], &[]), 0.0, "{} {ty}", k.isa());
            let mut out = [f32::NAN; 2];
            k.matvec(ty, &mut out, &[], &[], 0);
            assert_eq!(out, [0.0, 0.0]);
            k.matmul(ty, &mut [], &[0u8; 0], 0, &[], 0, 0, 0);
        }
    }
}

#[test]
#[should_panic(expected = "x_act has")]
fn matmul_rejects_short_activations() {
    let k = Kernels::best();
    let w = vec![0u8; 2 * 20];
    let mut out = [0.0f32; 4];
    // Two Q8_1 rows of 36 bytes at stride 40 need 76 bytes.
    k.matmul(QuantType::Q4_1, &mut out, &w, 2, &[0u8; 75], 40, 2, 32);
}

#[test]
#[should_panic(expected = "elements need")]
fn vec_dot_rejects_wrong_lengths_on_every_path() {
    let k = Kernels::detect();
    k.vec_dot(QuantType::Q4_0, 32, &[0u8; 18], &[0u8; 33]);
}

#[test]
fn best_is_available_and_named() {
    let k = Kernels::best();
    assert!(Kernels::for_isa(k.isa()).is_some());
    assert_eq!(Isa::from_name(k.isa().name()), Some(k.isa()));
    assert_eq!(Isa::from_name("AVX2"), Some(Isa::Avx2));
    assert_eq!(Isa::from_name("avx512"), Some(Isa::Avx512Vnni));
    assert_eq!(Isa::from_name("avxvnni"), Some(Isa::AvxVnni));
    assert_eq!(Isa::from_name("sse"), None);
    eprintln!(
        "Kernels::best() = {}, detect() = {}",
        k.isa(),
        Kernels::detect().isa()
    );
}

/// The register-tiled matmul paths (row pairs x up to 8 tokens, row panels): every row count
/// 1..=7 and token count 1..=9 (tile edges), at block counts on both sides of one tile's worth,
/// bitwise equal to per-pair `vec_dot`.
#[test]
fn matmul_tile_edges_equal_vec_dot_bitwise() {
    let mut rng = SplitMix64(0x711e_ed9e);
    for k in paths("matmul_tile_edges_equal_vec_dot_bitwise") {
        for ty in [
            QuantType::Q4_0,
            QuantType::Q4_1,
            QuantType::Q8_0,
            QuantType::Q8_1,
        ] {
            let act = ty.info().vec_dot_type;
            for blocks in [1usize, 2, 5, 18] {
                let n = blocks * QK;
                let (rb, arb) = (ty.row_bytes(n).unwrap(), act.row_bytes(n).unwrap());
                for rows in 1..=7usize {
                    let w = weights(ty, &rng.values(n * rows));
                    let ws = shifted(&w, 1);
                    let w = &ws[1..];
                    for t in 1..=9usize {
                        let stride = arb + 1;
                        let mut xa = vec![0xa5u8; 1 + (t - 1) * stride + arb];
                        for j in 0..t {
                            let at = 1 + j * stride;
                            quantize_activations(act, &rng.values(n), &mut xa[at..at + arb]);
                        }
                        let x_act = &xa[1..];
                        let mut out = vec![f32::NAN; t * rows];
                        k.matmul(ty, &mut out, w, rows, x_act, stride, t, n);
                        for j in 0..t {
                            let xj = &x_act[j * stride..j * stride + arb];
                            for r in 0..rows {
                                let want = k.vec_dot(ty, n, &w[r * rb..(r + 1) * rb], xj);
                                assert_eq!(
                                    out[j * rows + r].to_bits(),
                                    want.to_bits(),
                                    "{} {ty} n={n} rows={rows} t={t} row {r} token {j}",
                                    k.isa()
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Rows longer than a row panel and matrices spanning several panels, with a token count that
/// leaves a partial tile: bitwise equal to per-pair `vec_dot`.
#[test]
fn matmul_multi_panel_equal_vec_dot_bitwise() {
    let mut rng = SplitMix64(0x9a4e_1000);
    for k in paths("matmul_multi_panel_equal_vec_dot_bitwise") {
        for ty in [QuantType::Q4_0, QuantType::Q4_1, QuantType::Q8_0] {
            let act = ty.info().vec_dot_type;
            // 2048 x 256 blocks of Q8_0 is ~17 MB; keep it smaller: 600 rows of 96 blocks spans
            // several 256 KB panels.
            for (rows, blocks) in [(600usize, 96usize), (3, 300)] {
                let n = blocks * QK;
                let (rb, arb) = (ty.row_bytes(n).unwrap(), act.row_bytes(n).unwrap());
                let w = weights(ty, &rng.values(n * rows));
                let t = 11;
                let mut xa = vec![0u8; t * arb];
                for j in 0..t {
                    quantize_activations(act, &rng.values(n), &mut xa[j * arb..(j + 1) * arb]);
                }
                let mut out = vec![f32::NAN; t * rows];
                k.matmul(ty, &mut out, &w, rows, &xa, arb, t, n);
                for j in 0..t {
                    let xj = &xa[j * arb..(j + 1) * arb];
                    for r in 0..rows {
                        let want = k.vec_dot(ty, n, &w[r * rb..(r + 1) * rb], xj);
                        assert_eq!(
                            out[j * rows + r].to_bits(),
                            want.to_bits(),
                            "{} {ty} rows={rows} n={n} row {r} token {j}",
                            k.isa()
                        );
                    }
                }
            }
        }
    }
}
