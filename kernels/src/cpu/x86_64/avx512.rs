//! AVX-512 VNNI kernels (Ice Lake, Sapphire Rapids, Zen 4 and later): the integer block dot is one
//! `vpdpbusd` (u8 x i8 -> i32, no i16 saturation step), on 256-bit vectors (`avx512vl`) so
//! one block is one register and the per-block f32 work is as in [`super::avx2`].
//!
//! Exactness for every byte pattern: Q4/Q5 codes are the unsigned operand; Q4_0/Q5_0 subtract
//! `dpbusd(8 | 16, y)`; Q8_0/Q8_1 weights are biased to unsigned (`w ^ 0x80 = w + 128`) and
//! `dpbusd(128, y)` is subtracted, all in i32.
//!
//! F16 follows ggml's AVX-512 build (`ggml_vec_dot_f16` with the `GGML_F32Cx16` macros, and
//! tinyBLAS's one-accumulator loop, see [`Avx512Vnni::dot_f16_ggml`] and
//! [`Avx512Vnni::dot_f16_sgemm`]); F32 and BF16 run the AVX2 kernels, which this token implies.

use core::arch::x86_64::*;

use half::f16;

use super::avx2::{hsum_ps, load32, load_f16x1, load_f16x2, nibbles32, q5_high_bits, Avx2};
use crate::blocks::QK;
use crate::cpu::driver::{product_with, ProductFn};
use crate::reference::check_row;
use crate::QuantType;

/// Proof that the CPU supports AVX-512 F/BW/VL + VNNI as well as AVX2, FMA and F16C: the only
/// constructor is [`Avx512Vnni::detect`].
#[derive(Clone, Copy, Debug)]
pub struct Avx512Vnni {
    avx2: Avx2,
}

impl Avx512Vnni {
    /// `Some` iff the running CPU (and OS, for the zmm/opmask state) support AVX-512 F, BW, VL and
    /// VNNI plus everything [`Avx2::detect`] checks.
    pub fn detect() -> Option<Avx512Vnni> {
        let avx2 = Avx2::detect()?;
        if crate::x86_feature!("avx512f")
            && crate::x86_feature!("avx512bw")
            && crate::x86_feature!("avx512vl")
            && crate::x86_feature!("avx512vnni")
        {
            Some(Avx512Vnni { avx2 })
        } else {
            None
        }
    }

    /// The AVX2 token this one implies.
    pub fn avx2(self) -> Avx2 {
        self.avx2
    }

    /// Same contract as [`crate::TypeInfo::vec_dot`] for `ty` (every [`QuantType`]).
    pub fn vec_dot(self, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        check_row(ty, n, w.len());
        check_row(ty.info().vec_dot_type, n, x.len());
        let (wp, xp) = (w.as_ptr(), [x.as_ptr()]);
        // SAFETY: `self` proves avx512f/bw/vl/vnni + avx2/fma/f16c (only `detect` builds it); `w`
        // and `x` hold exactly one row of `n` elements in `ty` / its vec_dot_type (checked above).
        let [v] = unsafe {
            match ty {
                QuantType::Q4_0 => dot_q4_0::<1>(n, wp, xp),
                QuantType::Q4_1 => dot_q4_1::<1>(n, wp, xp),
                QuantType::Q5_0 => dot_q5_0::<1>(n, wp, xp),
                QuantType::Q5_1 => dot_q5_1::<1>(n, wp, xp),
                QuantType::Q8_0 => dot_q8_0::<1>(n, wp, xp),
                QuantType::Q8_1 => dot_q8_1::<1>(n, wp, xp),
                QuantType::F16 => [dot_f16_ggml(wp.cast(), xp[0].cast(), n, n)],
                QuantType::F32 | QuantType::BF16 => return self.avx2.vec_dot(ty, n, w, x),
                // K-quants: `Kernels` routes them to `cpu::kquants` before calling this module.
                _ => unreachable!("{ty} is dispatched by cpu::kquants"),
            }
        };
        v
    }

    /// `out[j * rows + r] = vec_dot(ty, n, W[r], X[j])`: see [`crate::Kernels::matmul`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        let kernel: ProductFn = match ty {
            QuantType::Q4_0 => mmt_q4_0,
            QuantType::Q4_1 => mmt_q4_1,
            QuantType::Q5_0 => mm_q5_0,
            QuantType::Q5_1 => mm_q5_1,
            QuantType::Q8_0 => mmt_q8_0,
            QuantType::Q8_1 => mmt_q8_1,
            QuantType::F16 => mm_f16,
            QuantType::F32 | QuantType::BF16 => {
                return self.avx2.matmul(ty, out, w, rows, x_act, act_stride, t, n)
            }
            // K-quants: `Kernels` routes them to `cpu::kquants` before calling this module.
            _ => unreachable!("{ty} is dispatched by cpu::kquants"),
        };
        // SAFETY: `self` proves avx512f/bw/vl/vnni + avx2/fma/f16c (only `detect` builds it),
        // the kernels' features; each computes the row-major product of its type under
        // `ProductFn`'s contract.
        unsafe { product_with::<false>(kernel, ty, out, w, rows, x_act, act_stride, t, n) }
    }

    /// ggml's `ggml_vec_dot_f16` as built for AVX-512 (no AVX512-FP16), over a row that ggml sees
    /// as `n_pad >= x.len()` elements whose tail past `x.len()` is zero (llama.cpp's padded KV
    /// cells): four 16-lane FMA accumulators over 64-element steps up to `n_pad & !63`, reduced
    /// `(a0 + a2) + (a1 + a3)` then by `_mm512_reduce_add_ps`, the rest summed in f64.
    pub fn dot_f16_ggml(self, x: &[f16], y: &[f16], n_pad: usize) -> f32 {
        assert_eq!(x.len(), y.len());
        assert!(n_pad >= x.len());
        // SAFETY: `self` proves avx512f/bw/vl + fma/f16c; both slices hold x.len() elements.
        unsafe { dot_f16_ggml(x.as_ptr().cast(), y.as_ptr().cast(), x.len(), n_pad) }
    }

    /// One element of llamafile's `tinyBLAS<16, __m512, __m512, ggml_fp16_t, ggml_fp16_t, float>`
    /// (ggml's F16 x F16 matrix product when the batch has two or more columns): a single
    /// 16-lane FMA accumulator over 16-element steps, a zero-filled masked last step, then
    /// `_mm512_reduce_add_ps`. Zero padding past `a.len()` does not change the result.
    pub fn dot_f16_sgemm(self, a: &[f16], b: &[f16]) -> f32 {
        assert_eq!(a.len(), b.len());
        // SAFETY: `self` proves avx512f/bw/vl + fma/f16c; both slices hold a.len() elements.
        unsafe { dot_f16_sgemm(a.as_ptr().cast(), b.as_ptr().cast(), a.len()) }
    }

    /// `out[r] = dot(x[r * stride..][..y.len()], y)` for each `r < out.len()`: bitwise
    /// [`Avx512Vnni::dot_f16_sgemm`] per row when `batched`, else [`Avx512Vnni::dot_f16_ggml`]
    /// with `n_pad`. Four rows at a time share each load and conversion of `y`.
    ///
    /// # Panics
    /// If `x` is shorter than the last row's end, or `n_pad < y.len()` (ggml order).
    pub fn dot_f16_rows(
        self,
        batched: bool,
        x: &[f16],
        stride: usize,
        y: &[f16],
        n_pad: usize,
        out: &mut [f32],
    ) {
        let (n, rows) = (y.len(), out.len());
        if rows == 0 {
            return;
        }
        super::assert_rows_fit("dot_f16_rows", x.len(), rows, stride, n);
        assert!(batched || n_pad >= n, "dot_f16_rows: n_pad < len");
        let (xp, yp) = (x.as_ptr().cast::<u16>(), y.as_ptr().cast::<u16>());
        let mut r = 0;
        while r < rows {
            let k = (rows - r).min(4);
            let xs: [*const u16; 4] =
                core::array::from_fn(|i| xp.wrapping_add((r + i.min(k - 1)) * stride));
            // The next four rows into L1 while these are summed: strided rows (the transposed V
            // cache) are each on their own page, where the hardware prefetcher does not follow.
            for i in r + 4..(r + 8).min(rows) {
                // SAFETY: `self` proves the CPU features prefetch_tile needs; a prefetch reads
                // nothing architecturally and never faults.
                unsafe { prefetch_tile(xp.wrapping_add(i * stride).cast(), 0, 2 * n) };
            }
            // SAFETY: `self` proves avx512f/bw/vl + fma/f16c; rows r..r + k (k >= 1; unused slots
            // repeat the last row) each hold n f16 in x (asserted above), y holds n.
            let v = unsafe {
                if batched {
                    dot_f16_sgemm4(xs, yp, n)
                } else {
                    dot_f16_ggml4(xs, yp, n, n_pad)
                }
            };
            out[r..r + k].copy_from_slice(&v[..k]);
            r += k;
        }
    }

    /// As [`Avx2::quantize_activations`] (the AVX-512 build of ggml produces the same bytes).
    pub fn quantize_activations(self, ty: QuantType, x: &[f32], out: &mut [u8]) {
        self.avx2.quantize_activations(ty, x, out)
    }
}

/// `sum(a_u8 * b_i8)` over groups of four bytes into eight i32 lanes: one `vpdpbusd`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn dpbusd(a: __m256i, b: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(_mm256_setzero_si256(), a, b)
}

// Block kernels: same contract as in `avx2` (the CPU has this module's features; `w` holds one
// row of `n` elements of the weight type, each `x[k]` one row of its vec_dot_type).

/// Q4_0 / Q5_0 x Q8_0: `(dw * dx) * (dpbusd(q, y) - dpbusd(c, y))`.
macro_rules! dot_sym {
    ($name:ident, $bs:literal, $c:literal, $codes:expr) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let c = _mm256_set1_epi8($c);
            let mut acc = [_mm256_setzero_ps(); T];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK blocks of $bs bytes at w and 34 bytes at each x[k]
                // (kernel contract).
                unsafe {
                    let wb = w.add(ib * $bs);
                    let dw = load_f16x1(wb);
                    let q = $codes(wb);
                    for k in 0..T {
                        let xb = x[k].add(ib * 34);
                        let d = _mm_mul_ss(dw, load_f16x1(xb));
                        let y = load32(xb.add(2));
                        let i = _mm256_sub_epi32(dpbusd(q, y), dpbusd(c, y));
                        let s = _mm256_cvtepi32_ps(i);
                        acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s, acc[k]);
                    }
                }
            }
            let mut out = [0.0; T];
            for k in 0..T {
                out[k] = hsum_ps(acc[k]);
            }
            out
        }
    };
}

/// Q4_1 / Q5_1 x Q8_1: `(dw * dx) * dpbusd(q, y)` by FMA plus `mw * sx` summed apart.
macro_rules! dot_asym {
    ($name:ident, $bs:literal, $codes:expr) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let mut acc = [_mm256_setzero_ps(); T];
            // Lane 0 accumulates mw * sx by scalar FMA: gcc -O3 contracts ggml's
            // `summs += m * s` into `vfmadd231ss`.
            let mut summs = [_mm_setzero_ps(); T];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK blocks of $bs bytes at w and 36 bytes at each x[k]
                // (kernel contract).
                unsafe {
                    let wb = w.add(ib * $bs);
                    let dm = load_f16x2(wb);
                    let mw = _mm_movehdup_ps(dm);
                    let q = $codes(wb);
                    for k in 0..T {
                        let xb = x[k].add(ib * 36);
                        let ds = load_f16x2(xb);
                        let p = _mm_mul_ss(dm, ds); // dw * dx
                        summs[k] = _mm_fmadd_ss(mw, _mm_movehdup_ps(ds), summs[k]);
                        let s = _mm256_cvtepi32_ps(dpbusd(q, load32(xb.add(4))));
                        acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), s, acc[k]);
                    }
                }
            }
            let mut out = [0.0; T];
            for k in 0..T {
                out[k] = hsum_ps(acc[k]) + _mm_cvtss_f32(summs[k]);
            }
            out
        }
    };
}

/// Q8_0 x Q8_0 (`$bs = 34`, `$qo = 2`) and Q8_1 x Q8_1 (36, 4): `(dw * dx) * (dpbusd(w + 128, y)
/// - dpbusd(128, y))`.
macro_rules! dot_q8 {
    ($name:ident, $bs:literal, $qo:literal) => {
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let bias = _mm256_set1_epi8(-128);
            let mut acc = [_mm256_setzero_ps(); T];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK blocks of $bs bytes at w and at each x[k] (kernel contract).
                unsafe {
                    let wb = w.add(ib * $bs);
                    let dw = load_f16x1(wb);
                    let q = _mm256_xor_si256(load32(wb.add($qo)), bias);
                    for k in 0..T {
                        let xb = x[k].add(ib * $bs);
                        let d = _mm_mul_ss(dw, load_f16x1(xb));
                        let y = load32(xb.add($qo));
                        let i = _mm256_sub_epi32(dpbusd(q, y), dpbusd(bias, y));
                        let s = _mm256_cvtepi32_ps(i);
                        acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s, acc[k]);
                    }
                }
            }
            let mut out = [0.0; T];
            for k in 0..T {
                out[k] = hsum_ps(acc[k]);
            }
            out
        }
    };
}

/// Q4 codes of the block at `wb` whose `qs` start at byte `QS`.
///
/// # Safety
/// `QS + 16` readable bytes at `wb`; AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_codes<const QS: usize>(wb: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    unsafe { nibbles32(wb.add(QS)) }
}

/// Q5 codes of the block at `wb` with `qh` at byte `QH` and `qs` at `QH + 4`.
///
/// # Safety
/// `QH + 20` readable bytes at `wb`; AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q5_codes<const QH: usize>(wb: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    unsafe { _mm256_or_si256(nibbles32(wb.add(QH + 4)), q5_high_bits(wb.add(QH))) }
}

dot_sym!(dot_q4_0, 18, 8, q4_codes::<2>);
dot_sym!(dot_q5_0, 22, 16, q5_codes::<2>);
dot_asym!(dot_q4_1, 20, q4_codes::<4>);
dot_asym!(dot_q5_1, 24, q5_codes::<4>);
dot_q8!(dot_q8_0, 34, 2);
dot_q8!(dot_q8_1, 36, 4);

// ---------------------------------------------------------------------------------------------
// Matrix-vector kernels (decode: one token). A one-row dot is bound by its accumulator chain
// (one FMA per block, each waiting on the last); `R` rows side by side give `R` independent chains
// and share the activation block's load and its `dpbusd(c, y)`. Each row's lanes run exactly the
// instruction sequence of its `dot_*::<1>` kernel above, so the results are bitwise the same.
// ---------------------------------------------------------------------------------------------

/// Symmetric types (`q * y - c * y` per block): Q4_0 / Q5_0 (codes minus 8 / 16) and Q8_0 (bias
/// 128, see `dot_q8`); `$bs` weight block bytes, `$c` the byte whose `dpbusd` with `y` is
/// subtracted, `$codes` the unsigned codes of one weight block.
macro_rules! rows_sym {
    ($name:ident, $bs:literal, $xbs:literal, $c:literal, $codes:expr) => {
        /// `R` rows `w[r]` of `n` elements dotted with the one activation row `x` (Q8_0, or Q8_1
        /// for Q8_1 weights).
        ///
        /// # Safety
        /// `n / QK` weight blocks at each `w[r]` and activation blocks at `x`; the CPU has this
        /// module's features.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<const R: usize>(
            n: usize,
            w: [*const u8; R],
            x: *const u8,
            pf: *const u8,
        ) -> [f32; R] {
            let c = _mm256_set1_epi8($c);
            let mut acc = [_mm256_setzero_ps(); R];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK blocks of $bs bytes at each w[r] and $xbs bytes at x
                // (caller).
                unsafe {
                    prefetch_tile(pf, ib * R * $bs, R * $bs);
                    let xb = x.add(ib * $xbs);
                    let dx = load_f16x1(xb);
                    let y = load32(xb.add($xbs - 32));
                    let cy = dpbusd(c, y);
                    for r in 0..R {
                        let wb = w[r].add(ib * $bs);
                        let d = _mm_mul_ss(load_f16x1(wb), dx);
                        let i = _mm256_sub_epi32(dpbusd($codes(wb), y), cy);
                        let s = _mm256_cvtepi32_ps(i);
                        acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s, acc[r]);
                    }
                }
            }
            let mut out = [0.0; R];
            for r in 0..R {
                out[r] = hsum_ps(acc[r]);
            }
            out
        }
    };
}

/// Asymmetric types (`dpbusd(q, y)` plus `mw * sx`): Q4_1 / Q5_1 x Q8_1, as `dot_asym`.
macro_rules! rows_asym {
    ($name:ident, $bs:literal, $codes:expr) => {
        /// `R` rows `w[r]` of `n` elements dotted with the one Q8_1 activation row `x`.
        ///
        /// # Safety
        /// `n / QK` weight blocks at each `w[r]` and activation blocks at `x`; the CPU has this
        /// module's features.
        #[inline]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<const R: usize>(
            n: usize,
            w: [*const u8; R],
            x: *const u8,
            pf: *const u8,
        ) -> [f32; R] {
            let mut acc = [_mm256_setzero_ps(); R];
            let mut summs = [_mm_setzero_ps(); R];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK blocks of $bs bytes at each w[r] and 36 bytes at x
                // (caller).
                unsafe {
                    prefetch_tile(pf, ib * R * $bs, R * $bs);
                    let xb = x.add(ib * 36);
                    let ds = load_f16x2(xb);
                    let sx = _mm_movehdup_ps(ds);
                    let y = load32(xb.add(4));
                    for r in 0..R {
                        let wb = w[r].add(ib * $bs);
                        let dm = load_f16x2(wb);
                        let p = _mm_mul_ss(dm, ds);
                        summs[r] = _mm_fmadd_ss(_mm_movehdup_ps(dm), sx, summs[r]);
                        let s = _mm256_cvtepi32_ps(dpbusd($codes(wb), y));
                        acc[r] = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), s, acc[r]);
                    }
                }
            }
            let mut out = [0.0; R];
            for r in 0..R {
                out[r] = hsum_ps(acc[r]) + _mm_cvtss_f32(summs[r]);
            }
            out
        }
    };
}

/// Unsigned Q8 weight codes `w + 128` of the block at `wb` whose `qs` start at byte `QO`.
///
/// # Safety
/// `QO + 32` readable bytes at `wb`; the CPU has this module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_codes<const QO: usize>(wb: *const u8) -> __m256i {
    // SAFETY: forwarded from the caller.
    unsafe { _mm256_xor_si256(load32(wb.add(QO)), _mm256_set1_epi8(-128)) }
}

rows_sym!(rows1_q4_0, 18, 34, 8, q4_codes::<2>);
rows_sym!(rows1_q5_0, 22, 34, 16, q5_codes::<2>);
rows_sym!(rows1_q8_0, 34, 34, -128, q8_codes::<2>);
rows_sym!(rows1_q8_1, 36, 36, -128, q8_codes::<4>);
rows_asym!(rows1_q4_1, 20, q4_codes::<4>);
rows_asym!(rows1_q5_1, 24, q5_codes::<4>);

/// Rows per matrix-vector step: enough independent FMA chains to cover the FMA latency.
const MV_ROWS: usize = 4;
/// How many steps ahead the matrix-vector kernels prefetch their rows. Rows side by side are not
/// one sequential stream, which the hardware prefetchers need to keep up with DRAM (measured on
/// a 30 MB matrix: 25 GB/s for one row at a time, 7 GB/s for four without software prefetch).
const MV_PF_STEPS: usize = 3;

/// Matrix-vector driver: `out[r] = vec_dot(W[r], x)` for every row, [`MV_ROWS`] rows per step.
///
/// # Safety
/// As `cpu::matmul_body!` with `t == 1`; the CPU has this module's features.
macro_rules! matvec_body {
    ($kern:ident, $out:ident, $w:ident, $rb:ident, $rows:ident, $x:ident, $n:ident) => {{
        debug_assert_eq!($out.len(), $rows);
        let row = |r: usize| $w.wrapping_add(r * $rb);
        let mut r = 0;
        while r + MV_ROWS <= $rows {
            // Prefetch target only (may lie past W: prefetches never fault).
            let pf = row(r + MV_PF_STEPS * MV_ROWS);
            // SAFETY: rows r..r + MV_ROWS < rows and the one activation row are in bounds
            // (caller); the enclosing function has the kernel's target features.
            let v = unsafe { $kern::<MV_ROWS>($n, core::array::from_fn(|k| row(r + k)), $x, pf) };
            $out[r..r + MV_ROWS].copy_from_slice(&v);
            r += MV_ROWS;
        }
        while r < $rows {
            // SAFETY: as above, for row r alone.
            let [v] = unsafe { $kern::<1>($n, [row(r)], $x, row(r + MV_PF_STEPS)) };
            $out[r] = v;
            r += 1;
        }
    }};
}

/// gcc 12's `_mm512_reduce_add_ps`: 8 + 8, 4 + 4, then `[0] + [2]`, `[1] + [3]`, then the two.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn reduce_add16(v: __m512) -> f32 {
    let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)));
    let t3 = _mm256_add_ps(hi, _mm512_castps512_ps256(v));
    let t6 = _mm_add_ps(_mm256_extractf128_ps::<1>(t3), _mm256_castps256_ps128(t3));
    let t8 = _mm_add_ps(t6, _mm_shuffle_ps::<0b01_00_11_10>(t6, t6));
    _mm_cvtss_f32(_mm_add_ss(t8, _mm_movehdup_ps(t8)))
}

/// `len` (<= 16) f16 at `p` widened to f32, zeros past `len`.
///
/// # Safety
/// `len` readable f16 at `p`; the CPU has avx512f/bw/vl.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn load_f16x16(p: *const u16, len: usize) -> __m512 {
    debug_assert!(len <= 16);
    let h = if len == 16 {
        // SAFETY: 16 readable f16 (caller); loadu accepts any alignment.
        unsafe { _mm256_loadu_si256(p.cast()) }
    } else {
        // SAFETY: masked-off lanes are not accessed; the first `len` are readable (caller).
        unsafe { _mm256_maskz_loadu_epi16(((1u32 << len) - 1) as u16, p.cast()) }
    };
    _mm512_cvtph_ps(h)
}

/// See [`Avx512Vnni::dot_f16_ggml`].
///
/// # Safety
/// `n` readable f16 at `x` and `y`; `n_pad >= n`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_f16_ggml(x: *const u16, y: *const u16, n: usize, n_pad: usize) -> f32 {
    let np = n_pad & !63;
    let vec_end = n.min(np);
    let mut sum = [_mm512_setzero_ps(); 4];
    let mut i = 0;
    while i < vec_end {
        let len = (vec_end - i).min(16);
        // SAFETY: i + len <= n elements at x and y (caller).
        let (ax, ay) = unsafe { (load_f16x16(x.add(i), len), load_f16x16(y.add(i), len)) };
        let j = (i / 16) % 4;
        sum[j] = _mm512_fmadd_ps(ax, ay, sum[j]);
        i += 16;
    }
    let s0 = _mm512_add_ps(sum[0], sum[2]);
    let s1 = _mm512_add_ps(sum[1], sum[3]);
    let mut sumf = f64::from(reduce_add16(_mm512_add_ps(s0, s1)));
    for i in np..n {
        // SAFETY: i < n (caller).
        let (a, b) = unsafe { (*x.add(i), *y.add(i)) };
        sumf += f64::from(f16::from_bits(a).to_f32() * f16::from_bits(b).to_f32());
    }
    sumf as f32
}

/// [`dot_f16_ggml`] of four rows `x[i]` with one `y`, each row's operations unchanged: ggml's
/// accumulator `j` takes the 16-element steps `i` with `(i / 16) % 4 == j`. Written with four
/// named accumulator sets (64 elements per loop turn, then at most four steps) so that all 16
/// accumulators stay in registers; indexing them by a run-time `j` put them on the stack, a
/// store-to-load chain per step.
///
/// # Safety
/// `n` readable f16 at each `x[i]` and at `y`; `n_pad >= n`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_f16_ggml4(x: [*const u16; 4], y: *const u16, n: usize, n_pad: usize) -> [f32; 4] {
    let np = n_pad & !63;
    let vec_end = n.min(np);
    let zero = _mm512_setzero_ps();
    let mut sum = [[zero; 4]; 4]; // sum[j][r]
    let mut i = 0;
    while i + 64 <= vec_end {
        // SAFETY: i + 64 <= n elements at y and every x[r] (caller).
        unsafe {
            let ys: [__m512; 4] = core::array::from_fn(|j| load_f16x16(y.add(i + 16 * j), 16));
            for r in 0..4 {
                for j in 0..4 {
                    let ax = load_f16x16(x[r].add(i + 16 * j), 16);
                    sum[j][r] = _mm512_fmadd_ps(ax, ys[j], sum[j][r]);
                }
            }
        }
        i += 64;
    }
    // The last steps (fewer than four; the last may be partial) go to accumulators 0, 1, 2, 3 in turn.
    for acc in sum.iter_mut() {
        if i >= vec_end {
            break;
        }
        let len = (vec_end - i).min(16);
        // SAFETY: i + len <= n elements at y and every x[r] (caller).
        unsafe {
            let ay = load_f16x16(y.add(i), len);
            for r in 0..4 {
                acc[r] = _mm512_fmadd_ps(load_f16x16(x[r].add(i), len), ay, acc[r]);
            }
        }
        i += 16;
    }
    core::array::from_fn(|r| {
        let s0 = _mm512_add_ps(sum[0][r], sum[2][r]);
        let s1 = _mm512_add_ps(sum[1][r], sum[3][r]);
        let mut sumf = f64::from(reduce_add16(_mm512_add_ps(s0, s1)));
        for i in np..n {
            // SAFETY: i < n (caller).
            let (a, b) = unsafe { (*x[r].add(i), *y.add(i)) };
            sumf += f64::from(f16::from_bits(a).to_f32() * f16::from_bits(b).to_f32());
        }
        sumf as f32
    })
}

/// [`dot_f16_sgemm`] of four rows `a[i]` with one `b`, each row's operations unchanged.
///
/// # Safety
/// `n` readable f16 at each `a[i]` and at `b`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_f16_sgemm4(a: [*const u16; 4], b: *const u16, n: usize) -> [f32; 4] {
    let mut acc = [_mm512_setzero_ps(); 4];
    let mut l = 0;
    while l < n {
        let len = (n - l).min(16);
        // SAFETY: l + len <= n elements at b and every a[r] (caller).
        let bv = unsafe { load_f16x16(b.add(l), len) };
        for r in 0..4 {
            // SAFETY: as above.
            let av = unsafe { load_f16x16(a[r].add(l), len) };
            acc[r] = _mm512_fmadd_ps(av, bv, acc[r]);
        }
        l += 16;
    }
    [
        reduce_add16(acc[0]),
        reduce_add16(acc[1]),
        reduce_add16(acc[2]),
        reduce_add16(acc[3]),
    ]
}

/// See [`Avx512Vnni::dot_f16_sgemm`].
///
/// # Safety
/// `n` readable f16 at `a` and `b`; the CPU has this module's features.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn dot_f16_sgemm(a: *const u16, b: *const u16, n: usize) -> f32 {
    let mut acc = _mm512_setzero_ps();
    let mut l = 0;
    while l < n {
        let len = (n - l).min(16);
        // SAFETY: l + len <= n elements at a and b (caller).
        let (av, bv) = unsafe { (load_f16x16(a.add(l), len), load_f16x16(b.add(l), len)) };
        acc = _mm512_fmadd_ps(av, bv, acc);
        l += 16;
    }
    reduce_add16(acc)
}

/// F16 x F16 rows x tokens: one [`dot_f16_ggml`] per pair, so bitwise equal to `vec_dot`.
///
/// # Safety
/// As `cpu::matmul_body!`; the CPU has this module's features.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mm_f16(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    x: *const u8,
    stride: usize,
    t: usize,
    n: usize,
) {
    debug_assert_eq!(out.len(), t * rows);
    for r in 0..rows {
        for j in 0..t {
            // SAFETY: row r of W and token j of X hold n f16 each (caller).
            out[j * rows + r] =
                unsafe { dot_f16_ggml(w.add(r * rb).cast(), x.add(j * stride).cast(), n, n) };
        }
    }
}

macro_rules! matmul_fns {
    ($($mm:ident => $kern:ident, $rows1:ident),* $(,)?) => {$(
        /// Rows x tokens driver for one type: see `cpu::matmul_body!` for the safety contract.
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $mm(
            out: &mut [f32], w: *const u8, rb: usize, rows: usize,
            x: *const u8, stride: usize, t: usize, n: usize,
        ) {
            if t == 1 {
                matvec_body!($rows1, out, w, rb, rows, x, n)
            } else {
                matmul_body!($kern, out, w, rb, rows, x, stride, t, n)
            }
        }
    )*};
}
matmul_fns!(mm_q5_0 => dot_q5_0, rows1_q5_0, mm_q5_1 => dot_q5_1, rows1_q5_1);

// ---------------------------------------------------------------------------------------------
// Register-tiled matmul for Q4_0 / Q4_1 x Q8_0 / Q8_1 and Q8_0 / Q8_1.
//
// One zmm holds the same block of two weight rows (`[row a | row b]`, 8 lanes each), so each
// lane runs exactly the ymm instruction sequence of the `dot_*::<1>` kernels above: the integer
// block dot (the same exact i32 per group of four bytes, computed by an equivalent identity),
// `p = dw * dx` rounded once, `acc = fma(p, s, acc)` with blocks in order, and the same final
// `hsum_ps` (+ `summs` for Q4_1). A tile is `RP` row pairs x `TT` tokens: each weight block is
// decoded once per tile and each activation block loaded once per tile (a 32-byte broadcast), and
// the activation scales are converted once per token group into a stack table shared by all rows.
//
// Integer identities (exact, no overflow: every partial sum is below 2^17 in magnitude):
// - Q8: `sum(w * y) = sum((y + 128) * w) - 128 * sum(w)`: `vpdpbusd` with the unsigned operand
//   `y ^ 0x80` and the signed `w`, accumulating onto `-dpbusd(128, w)` (per row and block).
// - Q4_0: the same with the signed codes `q - 8`.
// - Q4_1: `dpbusd(q, y)` as in `dot_q4_1`.
// ---------------------------------------------------------------------------------------------

/// Most blocks per row the tiled kernels take (n <= 8192 elements); longer rows, and single
/// tokens, use `cpu::matmul_body!`.
const TILE_MAX_NB: usize = 256;
/// Tokens per tile (and per activation-scale table).
const TILE_TT: usize = 8;
/// How many tiles ahead the tile kernels prefetch weight rows (decode streams them from DRAM).
const TILE_PF_TILES: usize = 2;
/// Weight bytes per row panel: a panel is revisited once per token group, so it should stay in L2.
const PANEL_BYTES: usize = 256 * 1024;

/// The f16 at `a` and the one at `b` widened to `[a x8 | b x8]`.
///
/// # Safety
/// 2 readable bytes at `a` and at `b`; the CPU has this module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn f16_pair16(a: *const u8, b: *const u8) -> __m512 {
    // SAFETY: 2 readable bytes at each (caller); read_unaligned accepts any alignment.
    let (ha, hb) = unsafe {
        (
            core::ptr::read_unaligned(a.cast::<i16>()),
            core::ptr::read_unaligned(b.cast::<i16>()),
        )
    };
    _mm512_cvtph_ps(_mm256_set_m128i(_mm_set1_epi16(hb), _mm_set1_epi16(ha)))
}

/// The 32 bytes at `a` and at `b` as `[a | b]`.
///
/// # Safety
/// 32 readable bytes at `a` and at `b`; the CPU has this module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn load32_pair(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: forwarded from the caller.
    unsafe { _mm512_inserti64x4::<1>(_mm512_castsi256_si512(load32(a)), load32(b)) }
}

/// [`nibbles32`] of the 16 `qs` bytes at `a` and at `b`, as `[a | b]`.
///
/// # Safety
/// 16 readable bytes at `a` and at `b`; the CPU has this module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn nibbles_pair(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: 16 readable bytes at each (caller); loadu accepts any alignment.
    let (la, lb) = unsafe { (_mm_loadu_si128(a.cast()), _mm_loadu_si128(b.cast())) };
    let v = _mm512_inserti64x4::<1>(
        _mm512_castsi256_si512(_mm256_broadcastsi128_si256(la)),
        _mm256_broadcastsi128_si256(lb),
    );
    // 16-bit lanes of the odd 128-bit quarters shift by 4 (the high nibbles), as in nibbles32.
    let counts = _mm512_set_epi16(
        4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0, 0, 0, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0, 0, 0, 0,
        0, 0,
    );
    _mm512_and_si512(_mm512_srlv_epi16(v, counts), _mm512_set1_epi8(0x0f))
}

/// Signed Q8 codes of the blocks at `a` and `b` (`qs` at byte `QO`), as `[a | b]`.
///
/// # Safety
/// `QO + 32` readable bytes at `a` and at `b`; the CPU has this module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q8_pair<const QO: usize>(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: forwarded from the caller.
    unsafe { load32_pair(a.add(QO), b.add(QO)) }
}

/// Signed Q4_0 codes `q - 8` of the blocks at `a` and `b`, as `[a | b]`.
///
/// # Safety
/// 18 readable bytes at `a` and at `b`; the CPU has this module's features.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn q4_0_pair(a: *const u8, b: *const u8) -> __m512i {
    // SAFETY: forwarded from the caller.
    let q = unsafe { nibbles_pair(a.add(2), b.add(2)) };
    _mm512_sub_epi8(q, _mm512_set1_epi8(8))
}

/// Prefetches `len` bytes (rounded up to whole lines) at `base + off` into L1: the weight rows of
/// a later tile, walked at the rate the current tile consumes its own.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn prefetch_tile(base: *const u8, off: usize, len: usize) {
    let mut o = 0;
    while o < len {
        // A prefetch never faults, whatever the address; wrapping_add keeps the arithmetic safe.
        _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(off + o).cast());
        o += 64;
    }
}

/// Upper 8 lanes of `v`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn hi256(v: __m512) -> __m256 {
    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(v)))
}

/// Tile kernel for Q4_0 x Q8_0 (`q4_0_pair`, 18, 34, 2) and Q8_0 / Q8_1 (`q8_pair`): `RP` row
/// pairs `w[p] = [a, b]` x `TT` tokens `x[k]`, returning `out[p][h][k] = vec_dot(w[p][h], x[k])`.
macro_rules! tile_sym {
    ($name:ident, $codes:expr, $wbs:literal, $xbs:literal, $xqo:literal) => {
        /// # Safety
        /// Each `w[p][h]` holds `nb` weight blocks and each `x[k]` `nb` activation blocks;
        /// `dx[ib * TILE_TT + k]` is the f32 scale of block `ib` of `x[k]` for `ib < nb`; the
        /// CPU has this module's features.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $name<const RP: usize, const TT: usize>(
            nb: usize,
            w: [[*const u8; 2]; RP],
            x: [*const u8; TT],
            dx: *const f32,
            _sx: *const f32,
            pf: *const u8,
        ) -> [[[f32; TT]; 2]; RP] {
            let bias = _mm512_set1_epi8(-128);
            let zero = _mm512_setzero_si512();
            let mut acc = [[_mm512_setzero_ps(); TT]; RP];
            for ib in 0..nb {
                // SAFETY: ib < nb blocks at every w[p][h] and x[k], 8 * nb floats at dx
                // (caller).
                unsafe {
                    prefetch_tile(pf, ib * 2 * RP * $wbs, 2 * RP * $wbs);
                    let mut q = [zero; RP];
                    let mut negc = [zero; RP];
                    let mut dw = [_mm512_setzero_ps(); RP];
                    for p in 0..RP {
                        let (a, b) = (w[p][0].add(ib * $wbs), w[p][1].add(ib * $wbs));
                        q[p] = $codes(a, b);
                        negc[p] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, bias, q[p]));
                        dw[p] = f16_pair16(a, b);
                    }
                    for k in 0..TT {
                        let y = _mm512_broadcast_i64x4(load32(x[k].add(ib * $xbs + $xqo)));
                        let y = _mm512_xor_si512(y, bias);
                        let d = _mm512_set1_ps(*dx.add(ib * TILE_TT + k));
                        for p in 0..RP {
                            let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(negc[p], y, q[p]));
                            acc[p][k] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], d), s, acc[p][k]);
                        }
                    }
                }
            }
            let mut out = [[[0.0; TT]; 2]; RP];
            for p in 0..RP {
                for k in 0..TT {
                    out[p][0][k] = hsum_ps(_mm512_castps512_ps256(acc[p][k]));
                    out[p][1][k] = hsum_ps(hi256(acc[p][k]));
                }
            }
            out
        }
    };
}

tile_sym!(tile_q4_0, q4_0_pair, 18, 34, 2);
tile_sym!(tile_q8_0, q8_pair::<2>, 34, 34, 2);
tile_sym!(tile_q8_1, q8_pair::<4>, 36, 36, 4);

/// Tile kernel for Q4_1 x Q8_1, as [`tile_q4_0`] plus `summs = fma(mw, sx, summs)` per token lane
/// (`sx[ib * TILE_TT + k]` the f32 `s` of block `ib` of `x[k]`).
///
/// # Safety
/// As [`tile_q4_0`], and 8 * nb floats at `sx`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q4_1<const RP: usize, const TT: usize>(
    nb: usize,
    w: [[*const u8; 2]; RP],
    x: [*const u8; TT],
    dx: *const f32,
    sx: *const f32,
    pf: *const u8,
) -> [[[f32; TT]; 2]; RP] {
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); TT]; RP];
    // Lanes k and 8 + k: summs of row a / row b with token k.
    let mut summs = [_mm512_setzero_ps(); RP];
    for ib in 0..nb {
        // SAFETY: ib < nb blocks at every w[p][h] and x[k], 8 * nb floats at dx and sx (caller).
        unsafe {
            prefetch_tile(pf, ib * 2 * RP * 20, 2 * RP * 20);
            let s8 = _mm256_loadu_pd(sx.add(ib * TILE_TT).cast());
            let s16 = _mm512_castpd_ps(_mm512_broadcast_f64x4(s8));
            let mut q = [zero; RP];
            let mut dw = [_mm512_setzero_ps(); RP];
            for p in 0..RP {
                let (a, b) = (w[p][0].add(ib * 20), w[p][1].add(ib * 20));
                q[p] = nibbles_pair(a.add(4), b.add(4));
                dw[p] = f16_pair16(a, b);
                summs[p] = _mm512_fmadd_ps(f16_pair16(a.add(2), b.add(2)), s16, summs[p]);
            }
            for k in 0..TT {
                let y = _mm512_broadcast_i64x4(load32(x[k].add(ib * 36 + 4)));
                let d = _mm512_set1_ps(*dx.add(ib * TILE_TT + k));
                for p in 0..RP {
                    let s = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(zero, q[p], y));
                    acc[p][k] = _mm512_fmadd_ps(_mm512_mul_ps(dw[p], d), s, acc[p][k]);
                }
            }
        }
    }
    let mut out = [[[0.0; TT]; 2]; RP];
    for p in 0..RP {
        let mut sm = [0f32; 16];
        // SAFETY: `sm` has room for 16 floats; storeu accepts any alignment.
        unsafe { _mm512_storeu_ps(sm.as_mut_ptr(), summs[p]) };
        for k in 0..TT {
            out[p][0][k] = hsum_ps(_mm512_castps512_ps256(acc[p][k])) + sm[k];
            out[p][1][k] = hsum_ps(hi256(acc[p][k])) + sm[8 + k];
        }
    }
    out
}

/// Tiled rows x tokens driver for one type (`$xbs` activation block bytes, `$asym` whether the
/// activation blocks carry `s`); same contract as `cpu::matmul_body!`, which it falls back to
/// (with `$fallback`) for rows longer than [`TILE_MAX_NB`] blocks.
macro_rules! mm_tiled {
    ($mm:ident, $rows_fn:ident, $tile:ident, $fallback:ident, $rows1:ident, $xbs:literal, $asym:literal) => {
        /// Rows `r0..r1` against tokens `j0..j0 + tt` in tiles of `TT >= tt` tokens, `RP` row
        /// pairs per tile.
        ///
        /// # Safety
        /// As `cpu::matmul_body!` for the whole call; `r0 <= r1 <= rows`, `1 <= tt <= TT`,
        /// `j0 + tt <= t`; `dx` (and `sx` where used) hold the scale tables of tokens
        /// `j0..j0 + tt` (and `TT` entries per block in all).
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $rows_fn<const RP: usize, const TT: usize>(
            out: &mut [f32],
            w: *const u8,
            rb: usize,
            rows: usize,
            (r0, r1): (usize, usize),
            x: *const u8,
            stride: usize,
            j0: usize,
            tt: usize,
            nb: usize,
            (dx, sx): (*const f32, *const f32),
        ) {
            // Lanes k >= tt (1 <= tt <= TT) repeat token j0 + tt - 1; their results are dropped.
            let xs: [*const u8; TT] =
                core::array::from_fn(|k| x.wrapping_add((j0 + k.min(tt - 1)) * stride));
            let row = |r: usize| w.wrapping_add(r * rb);
            let mut r = r0;
            while r + 2 * RP <= r1 {
                let ws: [[*const u8; 2]; RP] =
                    core::array::from_fn(|p| [row(r + 2 * p), row(r + 2 * p + 1)]);
                // Prefetch target only (may lie past W: prefetches never fault).
                let pf = row(r + 2 * RP * TILE_PF_TILES);
                // SAFETY: rows r..r + 2 * RP <= rows and the tokens of `xs` (each below
                // j0 + tt <= t) are in bounds (caller), nb = n / QK blocks each; dx/sx as the
                // caller states.
                let v = unsafe { $tile::<RP, TT>(nb, ws, xs, dx, sx, pf) };
                for (p, v) in v.iter().enumerate() {
                    for (h, v) in v.iter().enumerate() {
                        for (k, &v) in v.iter().enumerate().take(tt) {
                            out[(j0 + k) * rows + r + 2 * p + h] = v;
                        }
                    }
                }
                r += 2 * RP;
            }
            while r < r1 {
                // A lone last row is paired with itself.
                let b = (r + 1).min(r1 - 1);
                let pf = row(r + 2 * TILE_PF_TILES);
                // SAFETY: as above, for rows r and b < r1.
                let [v] = unsafe { $tile::<1, TT>(nb, [[row(r), row(b)]], xs, dx, sx, pf) };
                for k in 0..tt {
                    out[(j0 + k) * rows + r] = v[0][k];
                    out[(j0 + k) * rows + b] = v[1][k];
                }
                r += 2;
            }
        }

        /// Rows x tokens driver: see `cpu::matmul_body!` for the safety contract.
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
        unsafe fn $mm(
            out: &mut [f32],
            w: *const u8,
            rb: usize,
            rows: usize,
            x: *const u8,
            stride: usize,
            t: usize,
            n: usize,
        ) {
            debug_assert_eq!(out.len(), t * rows);
            let nb = n / QK;
            // Decode (one token): a few rows side by side, streamed in order.
            if t == 1 {
                matvec_body!($rows1, out, w, rb, rows, x, n);
                return;
            }
            if nb > TILE_MAX_NB {
                matmul_body!($fallback, out, w, rb, rows, x, stride, t, n);
                return;
            }
            let mut dx = [core::mem::MaybeUninit::<f32>::uninit(); TILE_MAX_NB * TILE_TT];
            let mut sx = [core::mem::MaybeUninit::<f32>::uninit(); TILE_MAX_NB * TILE_TT];
            let panel = ((PANEL_BYTES / rb.max(1)) & !7).max(8);
            let mut r0 = 0;
            while r0 < rows {
                let r1 = (r0 + panel).min(rows);
                let mut j0 = 0;
                while j0 < t {
                    let tt = (t - j0).min(TILE_TT);
                    // Tiles of 1, 2, 4, 6 or 8 tokens (fewer instances of the tile code: the C
                    // library 32 KiB smaller); the lanes past `tt` repeat the last token with zero scales and
                    // are not stored.
                    let tw = if tt > 2 {
                        tt.next_multiple_of(2).max(4)
                    } else {
                        tt
                    };
                    for ib in 0..nb {
                        for k in 0..TILE_TT {
                            let (d, s) = if k >= tt {
                                (0.0, 0.0)
                            } else if $asym {
                                let xb = x.wrapping_add((j0 + k) * stride + ib * $xbs);
                                // SAFETY: block ib of token j0 + k < t is in bounds (caller).
                                let ds = unsafe { load_f16x2(xb) };
                                (_mm_cvtss_f32(ds), _mm_cvtss_f32(_mm_movehdup_ps(ds)))
                            } else {
                                let xb = x.wrapping_add((j0 + k) * stride + ib * $xbs);
                                // SAFETY: as above.
                                let d = unsafe { load_f16x1(xb) };
                                (_mm_cvtss_f32(d), 0.0)
                            };
                            dx[ib * TILE_TT + k].write(d);
                            sx[ib * TILE_TT + k].write(s);
                        }
                    }
                    // The first nb * TILE_TT entries of both tables were written just above.
                    let sc = (dx.as_ptr().cast::<f32>(), sx.as_ptr().cast::<f32>());
                    let rr = (r0, r1);
                    // SAFETY: r0 <= r1 <= rows, j0 + tt <= t, tables filled for nb blocks of
                    // tokens j0..j0 + tt; the caller's guarantees cover the rest.
                    unsafe {
                        match tw {
                            1 => $rows_fn::<2, 1>(out, w, rb, rows, rr, x, stride, j0, tt, nb, sc),
                            2 => $rows_fn::<2, 2>(out, w, rb, rows, rr, x, stride, j0, tt, nb, sc),
                            4 => $rows_fn::<2, 4>(out, w, rb, rows, rr, x, stride, j0, tt, nb, sc),
                            6 => $rows_fn::<2, 6>(out, w, rb, rows, rr, x, stride, j0, tt, nb, sc),
                            _ => $rows_fn::<2, 8>(out, w, rb, rows, rr, x, stride, j0, tt, nb, sc),
                        }
                    }
                    j0 += tt;
                }
                r0 = r1;
            }
        }
    };
}

mm_tiled!(mmt_q4_0, rows_q4_0, tile_q4_0, dot_q4_0, rows1_q4_0, 34, false);
mm_tiled!(mmt_q4_1, rows_q4_1, tile_q4_1, dot_q4_1, rows1_q4_1, 36, true);
mm_tiled!(mmt_q8_0, rows_q8_0, tile_q8_0, dot_q8_0, rows1_q8_0, 34, false);
mm_tiled!(mmt_q8_1, rows_q8_1, tile_q8_1, dot_q8_1, rows1_q8_1, 36, true);
