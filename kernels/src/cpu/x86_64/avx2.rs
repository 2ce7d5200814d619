//! AVX2 + FMA + F16C kernels (Haswell and later), following ggml-cpu's x86 `quants.c` / `vec.cpp`:
//! nibbles unpacked with and/shift, `vpmaddubsw` + `vpmaddwd` for an exact i32 dot per block, one
//! f32 FMA per block into a vector accumulator, a horizontal sum at the end. f16 scales are widened
//! with F16C `vcvtph2ps`.
//!
//! Integer parts are exact for *every* byte pattern, including `-128` activations that ggml's
//! `vpsignb` trick gets wrong: Q4_0/Q5_0 dot the unsigned codes and subtract `8 * sum(y)`
//! (`16 * sum(y)`) per block, and Q8_0/Q8_1 weights are widened to i16 (no `vpmaddubsw`
//! saturation). The f32 sums are reassociated (eight lanes, then a tree), so results agree with
//! [`crate::reference`] only to rounding; the activation quantizers are byte-identical to it.

use core::arch::x86_64::*;
use core::ptr::read_unaligned;

use half::f16;

use crate::blocks::QK;
use crate::cpu::driver::{product_with, ProductFn};
use crate::reference::{self, check_row};
use crate::QuantType;

/// Proof that the CPU supports AVX2, FMA and F16C: the only constructor is [`Avx2::detect`].
#[derive(Clone, Copy, Debug)]
pub struct Avx2 {
    _proof: (),
}

impl Avx2 {
    /// `Some` iff the running CPU (and OS) support AVX2, FMA and F16C.
    pub fn detect() -> Option<Avx2> {
        if crate::x86_feature!("avx2") && crate::x86_feature!("fma") && crate::x86_feature!("f16c")
        {
            Some(Avx2 { _proof: () })
        } else {
            None
        }
    }

    /// Same contract as [`crate::TypeInfo::vec_dot`] for `ty` (every [`QuantType`]).
    pub fn vec_dot(self, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        check_row(ty, n, w.len());
        check_row(ty.info().vec_dot_type, n, x.len());
        let (w, x) = (w.as_ptr(), [x.as_ptr()]);
        // SAFETY: `self` proves avx2+fma+f16c (only `detect` builds it); `w` and `x` hold exactly one
        // row of `n` elements in `ty` / its vec_dot_type, checked just above.
        let [v] = unsafe {
            match ty {
                QuantType::F32 => dot_f32::<1>(n, w, x),
                QuantType::F16 => dot_f16::<1>(n, w, x),
                QuantType::BF16 => dot_bf16::<1>(n, w, x),
                QuantType::Q4_0 => dot_q4_0::<1>(n, w, x),
                QuantType::Q4_1 => dot_q4_1::<1>(n, w, x),
                QuantType::Q5_0 => dot_q5_0::<1>(n, w, x),
                QuantType::Q5_1 => dot_q5_1::<1>(n, w, x),
                QuantType::Q8_0 => dot_q8_0::<1>(n, w, x),
                QuantType::Q8_1 => dot_q8_1::<1>(n, w, x),
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
            QuantType::F32 => mm_f32,
            QuantType::F16 => mm_f16,
            QuantType::BF16 => mm_bf16,
            QuantType::Q4_0 => mm_q4_0,
            QuantType::Q4_1 => mm_q4_1,
            QuantType::Q5_0 => mm_q5_0,
            QuantType::Q5_1 => mm_q5_1,
            QuantType::Q8_0 => mm_q8_0,
            QuantType::Q8_1 => mm_q8_1,
            // K-quants: `Kernels` routes them to `cpu::kquants` before calling this module.
            _ => unreachable!("{ty} is dispatched by cpu::kquants"),
        };
        // SAFETY: `self` proves avx2+fma+f16c (only `detect` builds it), the kernels'
        // features; each computes the row-major product of its type under `ProductFn`'s contract.
        unsafe { product_with::<false>(kernel, ty, out, w, rows, x_act, act_stride, t, n) }
    }

    /// Same contract and bytes as [`crate::reference::quantize_activations`]: Q8_0, Q8_1 and F16
    /// are vectorized (ggml's AVX2 `quantize_row_q8_{0,1}` and `vcvtps2ph`), F32 and BF16 use the
    /// reference.
    pub fn quantize_activations(self, ty: QuantType, x: &[f32], out: &mut [u8]) {
        check_row(ty, x.len(), out.len());
        match ty {
            // SAFETY: `self` proves avx2+fma+f16c; out is exactly row_bytes(x.len()) (checked above).
            QuantType::Q8_0 => unsafe { quantize_q8::<false>(x, out) },
            // SAFETY: as above.
            QuantType::Q8_1 => unsafe { quantize_q8::<true>(x, out) },
            // SAFETY: as above.
            QuantType::F16 => unsafe { quantize_f16(x, out) },
            _ => reference::quantize_activations(ty, x, out),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers. All are inlined into the kernels, which carry the same target features.

/// Two consecutive f16 at `p` widened to `[p[0], p[1], 0, 0]` (`d, m` of Q4_1 or `d, s` of Q8_1).
///
/// # Safety
/// 4 readable bytes at `p`; the CPU has F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load_f16x2(p: *const u8) -> __m128 {
    // SAFETY: the caller guarantees 4 readable bytes; read_unaligned accepts any alignment.
    let bits = unsafe { read_unaligned(p.cast::<i32>()) };
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits))
}

/// One f16 at `p` widened to `[p[0], 0, 0, 0]`.
///
/// # Safety
/// 2 readable bytes at `p`; the CPU has F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load_f16x1(p: *const u8) -> __m128 {
    // SAFETY: the caller guarantees 2 readable bytes.
    let bits = unsafe { read_unaligned(p.cast::<u16>()) };
    _mm_cvtph_ps(_mm_cvtsi32_si128(bits as i32))
}

/// ggml's `bytes_from_nibbles_32`: 16 bytes of `qs` -> 32 codes 0..16 in element order (low
/// nibbles are elements 0..16, high nibbles 16..32; see [`crate::blocks`]).
///
/// # Safety
/// 16 readable bytes at `p`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn nibbles32(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 16 readable bytes; loadu accepts any alignment.
    let lo = unsafe { _mm_loadu_si128(p.cast()) };
    let v = _mm256_set_m128i(_mm_srli_epi16::<4>(lo), lo);
    _mm256_and_si256(v, _mm256_set1_epi8(0x0f))
}

/// Bit 4 of the 32 Q5 codes from the `qh` u32 at `p`: byte `i` is `0x10` iff bit `i` is set
/// (ggml's `bytes_from_bits_32`, then masked).
///
/// # Safety
/// 4 readable bytes at `p`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q5_high_bits(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 4 readable bytes.
    let qh = unsafe { read_unaligned(p.cast::<i32>()) };
    // Byte i takes byte i / 8 of qh, then every bit but bit (i % 8) is forced on.
    let shuf = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(qh), shuf);
    let bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe));
    let set = _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}

/// 32 bytes at `p`, unaligned.
///
/// # Safety
/// 32 readable bytes at `p`; the CPU has AVX.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn load32(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 32 readable bytes; loadu accepts any alignment.
    unsafe { _mm256_loadu_si256(p.cast()) }
}

/// ggml's `hsum_float_8`: (high half + low half), then lanes 0+2 / 1+3, then 0+1.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn hsum_ps(v: __m256) -> f32 {
    let r = _mm_add_ps(_mm256_extractf128_ps::<1>(v), _mm256_castps256_ps128(v));
    let r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    let r = _mm_add_ss(r, _mm_movehdup_ps(r));
    _mm_cvtss_f32(r)
}

/// Wrapping sum of the 8 i32 lanes (ggml's `hsum_i32_8`; order is irrelevant for wrapping adds).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum_epi32(v: __m256i) -> i32 {
    let r = _mm_add_epi32(_mm256_extracti128_si256::<1>(v), _mm256_castsi256_si128(v));
    let r = _mm_add_epi32(r, _mm_unpackhi_epi64(r, r));
    let r = _mm_add_epi32(r, _mm_shuffle_epi32::<0b01>(r));
    _mm_cvtsi128_si32(r)
}

/// Sum of adjacent u8 x i8 products into i32 lanes: `vpmaddubsw` then `vpmaddwd` with ones.
/// Exact when every pair sum fits i16, i.e. `a <= 127` (true for 4- and 5-bit codes and for the
/// constants 1, 8 and 16 used here).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn dot_u8i8_small(a: __m256i, b: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1))
}

/// One f16 at `p` as f32 (`half`'s conversion, built without `std`, is a software routine).
///
/// # Safety
/// 2 readable bytes at `p`; the CPU has F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn f16_at(p: *const u8) -> f32 {
    // SAFETY: forwarded from the caller.
    _mm_cvtss_f32(unsafe { load_f16x1(p) })
}

/// [`crate::packed::q8_0_scale_and_sum`] in AVX2 (the packed kernels' per-call tables): the Q8_0
/// block at `xb`'s scale, and the sum of its 32 codes by `vpsadbw` over the codes + 128.
///
/// # Safety
/// 34 readable bytes at `xb`; the CPU has AVX2 and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn q8_0_scale_and_sum(xb: *const u8) -> (f32, i32) {
    // SAFETY: the scale, then 32 codes, within the caller's 34 bytes.
    let (d, q) = unsafe { (f16_at(xb), load32(xb.add(2))) };
    let biased = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
    // Four u64 lanes, each below 2^32: their i32 halves sum to the same total.
    let sum = hsum_epi32(_mm256_sad_epu8(biased, _mm256_setzero_si256()));
    (d, sum - 32 * 128)
}

/// `dst[c] = bias * (sum of the 4 signed codes at code + 4c)` for `c = 0..8`: the per-lane
/// corrections the packed Q8_0 and Q5_0 kernels subtract, for one block of 32 activation codes.
///
/// # Safety
/// 32 readable bytes at `code`, 8 writable `i32` at `dst` (any alignment); the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) unsafe fn quad_sums(code: *const u8, bias: i32, dst: *mut i32) {
    // SAFETY: the caller's 32 bytes.
    let q = unsafe { load32(code) };
    let quads = dot_u8i8_small(_mm256_set1_epi8(1), q);
    let v = _mm256_mullo_epi32(quads, _mm256_set1_epi32(bias));
    // SAFETY: the caller's 8 writable i32; storeu accepts any alignment.
    unsafe { _mm256_storeu_si256(dst.cast(), v) };
}

// ---------------------------------------------------------------------------------------------
// Block kernels: `n` elements (whole blocks), one weight row at `w`, T activation rows at `x`.
// Safety contract of each: the CPU has avx2+fma+f16c; `w` holds one row of `n` elements of the
// weight type and each `x[k]` one row of `n` elements of its vec_dot_type.

/// Q4_0 x Q8_0: per block `(dw * dx) * sum((q - 8) * y)`, with `sum(q*y) - sum(8*y)` in i16.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_0<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
    let c8 = _mm256_set1_epi8(8);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of 18 bytes at w and 34 bytes at each x[k] (kernel contract).
        unsafe {
            let wb = w.add(ib * 18);
            let dw = load_f16x1(wb);
            let q = nibbles32(wb.add(2));
            for k in 0..T {
                let xb = x[k].add(ib * 34);
                let d = _mm_mul_ss(dw, load_f16x1(xb));
                let y = load32(xb.add(2));
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(c8, y));
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
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

/// Q4_1 x Q8_1: per block `(dw * dx) * sum(q * y)` by FMA, plus `mw * sx` summed separately and
/// added at the end (ggml's `summs`).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q4_1<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    // Lane 0 accumulates mw * sx by scalar FMA (gcc contracts ggml's `summs += m * s`).
    let mut summs = [_mm_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of 20 bytes at w and 36 bytes at each x[k] (kernel contract).
        unsafe {
            let wb = w.add(ib * 20);
            let dm = load_f16x2(wb);
            let mw = _mm_movehdup_ps(dm);
            let q = nibbles32(wb.add(4));
            for k in 0..T {
                let xb = x[k].add(ib * 36);
                let ds = load_f16x2(xb);
                let p = _mm_mul_ss(dm, ds); // dw * dx
                summs[k] = _mm_fmadd_ss(mw, _mm_movehdup_ps(ds), summs[k]);
                let s = _mm256_cvtepi32_ps(dot_u8i8_small(q, load32(xb.add(4))));
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

/// Q5_0 x Q8_0: as Q4_0 with 5-bit codes and offset 16.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_0<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
    let c16 = _mm256_set1_epi8(16);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of 22 bytes at w and 34 bytes at each x[k] (kernel contract).
        unsafe {
            let wb = w.add(ib * 22);
            let dw = load_f16x1(wb);
            let q = _mm256_or_si256(nibbles32(wb.add(6)), q5_high_bits(wb.add(2)));
            for k in 0..T {
                let xb = x[k].add(ib * 34);
                let d = _mm_mul_ss(dw, load_f16x1(xb));
                let y = load32(xb.add(2));
                let p = _mm256_sub_epi16(_mm256_maddubs_epi16(q, y), _mm256_maddubs_epi16(c16, y));
                let s = _mm256_cvtepi32_ps(_mm256_madd_epi16(p, ones));
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

/// Q5_1 x Q8_1: as Q4_1 with 5-bit codes.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q5_1<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
    let mut acc = [_mm256_setzero_ps(); T];
    let mut summs = [_mm_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of 24 bytes at w and 36 bytes at each x[k] (kernel contract).
        unsafe {
            let wb = w.add(ib * 24);
            let dm = load_f16x2(wb);
            let mw = _mm_movehdup_ps(dm);
            let q = _mm256_or_si256(nibbles32(wb.add(8)), q5_high_bits(wb.add(4)));
            for k in 0..T {
                let xb = x[k].add(ib * 36);
                let ds = load_f16x2(xb);
                let p = _mm_mul_ss(dm, ds);
                summs[k] = _mm_fmadd_ss(mw, _mm_movehdup_ps(ds), summs[k]);
                let s = _mm256_cvtepi32_ps(dot_u8i8_small(q, load32(xb.add(4))));
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

/// Q8_0 x Q8_0 (`$bs = 34`, `$qo = 2`) and Q8_1 x Q8_1 (36, 4; the `s` fields are ignored):
/// per block `(dw * dx) * sum(qw * qx)`, both operands widened to i16 so that every byte
/// pattern (including -128 * -128) is exact. The eight i32 lanes are ggml's: lane `l` is the
/// sum over bytes `4l..4l + 4` (`vpmaddwd` pairs, `vphaddd`, then `vpermq` puts the 64-bit
/// quarters back in order), so the float steps are ggml's AVX2 `vec_dot_q8_0_q8_0` and the
/// packed Q8_0 product's ([`crate::packed`]).
macro_rules! dot_q8 {
    ($name:ident, $bs:literal, $qo:literal) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let mut acc = [_mm256_setzero_ps(); T];
            for ib in 0..n / QK {
                // SAFETY: ib < n / QK blocks of $bs bytes at w and at each x[k] (kernel contract).
                unsafe {
                    let wb = w.add(ib * $bs);
                    let dw = load_f16x1(wb);
                    let w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add($qo).cast()));
                    let w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(wb.add($qo + 16).cast()));
                    for k in 0..T {
                        let xb = x[k].add(ib * $bs);
                        let d = _mm_mul_ss(dw, load_f16x1(xb));
                        let y0 = _mm256_cvtepi8_epi16(_mm_loadu_si128(xb.add($qo).cast()));
                        let y1 = _mm256_cvtepi8_epi16(_mm_loadu_si128(xb.add($qo + 16).cast()));
                        // [c0 c1 c4 c5 | c2 c3 c6 c7] -> [c0 .. c7].
                        let i =
                            _mm256_hadd_epi32(_mm256_madd_epi16(w0, y0), _mm256_madd_epi16(w1, y1));
                        let s = _mm256_cvtepi32_ps(_mm256_permute4x64_epi64::<0b11_01_10_00>(i));
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
dot_q8!(dot_q8_0, 34, 2);
dot_q8!(dot_q8_1, 36, 4);

/// Float dot products: 8 lanes x 4 independent FMA chains per token over 32-element steps, then
/// 8-element steps into chain 0, then a scalar f32 tail (`n % 8` elements). `$load8(p, i)` widens
/// elements `i..i+8` at `p` to f32; `$load1(p, i)` widens element `i`.
macro_rules! dot_float {
    ($name:ident, $load8:ident, $load1:ident) => {
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $name<const T: usize>(n: usize, w: *const u8, x: [*const u8; T]) -> [f32; T] {
            let mut acc = [[_mm256_setzero_ps(); 4]; T];
            let mut i = 0;
            while i + 32 <= n {
                for u in 0..4 {
                    // SAFETY: i + 8u + 8 <= n and w holds n elements (kernel contract).
                    let wv = unsafe { $load8(w, i + 8 * u) };
                    for k in 0..T {
                        // SAFETY: as for w; x[k] holds n elements.
                        let xv = unsafe { $load8(x[k], i + 8 * u) };
                        acc[k][u] = _mm256_fmadd_ps(wv, xv, acc[k][u]);
                    }
                }
                i += 32;
            }
            while i + 8 <= n {
                // SAFETY: i + 8 <= n and w holds n elements (kernel contract).
                let wv = unsafe { $load8(w, i) };
                for k in 0..T {
                    // SAFETY: as for w; x[k] holds n elements.
                    let xv = unsafe { $load8(x[k], i) };
                    acc[k][0] = _mm256_fmadd_ps(wv, xv, acc[k][0]);
                }
                i += 8;
            }
            let mut out = [0.0f32; T];
            for k in 0..T {
                let a = &acc[k];
                let s = _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
                let mut tail = 0.0f32;
                for j in i..n {
                    // SAFETY: j < n and both operands hold n elements (kernel contract).
                    tail += unsafe { $load1(w, j) * $load1(x[k], j) };
                }
                out[k] = hsum_ps(s) + tail;
            }
            out
        }
    };
}

/// # Safety
/// Elements `i..i+8` readable at `p`; AVX.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f32x8(p: *const u8, i: usize) -> __m256 {
    // SAFETY: the caller guarantees 32 readable bytes at p + 4i; loadu accepts any alignment.
    unsafe { _mm256_loadu_ps(p.add(4 * i).cast()) }
}

/// # Safety
/// Element `i` readable at `p`.
#[inline]
unsafe fn f32x1(p: *const u8, i: usize) -> f32 {
    // SAFETY: the caller guarantees 4 readable bytes at p + 4i.
    unsafe { read_unaligned(p.add(4 * i).cast::<f32>()) }
}

/// # Safety
/// Elements `i..i+8` (16 bytes) readable at `p`; F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn f16x8(p: *const u8, i: usize) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes at p + 2i.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.add(2 * i).cast()) })
}

/// # Safety
/// Element `i` readable at `p`.
#[inline]
unsafe fn f16x1(p: *const u8, i: usize) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes at p + 2i.
    f16::from_bits(unsafe { read_unaligned(p.add(2 * i).cast::<u16>()) }).to_f32()
}

/// # Safety
/// Elements `i..i+8` (16 bytes) readable at `p`; AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn bf16x8(p: *const u8, i: usize) -> __m256 {
    // SAFETY: the caller guarantees 16 readable bytes at p + 2i.
    let h = unsafe { _mm_loadu_si128(p.add(2 * i).cast()) };
    _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
}

/// # Safety
/// Element `i` readable at `p`.
#[inline]
unsafe fn bf16x1(p: *const u8, i: usize) -> f32 {
    // SAFETY: the caller guarantees 2 readable bytes at p + 2i.
    f32::from_bits((unsafe { read_unaligned(p.add(2 * i).cast::<u16>()) } as u32) << 16)
}

dot_float!(dot_f32, f32x8, f32x1);
dot_float!(dot_f16, f16x8, f16x1);
dot_float!(dot_bf16, bf16x8, bf16x1);

macro_rules! matmul_fns {
    ($($mm:ident => $kern:ident),* $(,)?) => {$(
        /// Rows x tokens driver for one type: see `cpu::matmul_body!` for the safety contract.
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = "avx2,fma,f16c")]
        unsafe fn $mm(
            out: &mut [f32], w: *const u8, rb: usize, rows: usize,
            x: *const u8, stride: usize, t: usize, n: usize,
        ) {
            matmul_body!($kern, out, w, rb, rows, x, stride, t, n)
        }
    )*};
}
matmul_fns!(
    mm_f32 => dot_f32, mm_f16 => dot_f16, mm_bf16 => dot_bf16,
    mm_q4_0 => dot_q4_0, mm_q4_1 => dot_q4_1, mm_q5_0 => dot_q5_0, mm_q5_1 => dot_q5_1,
    mm_q8_0 => dot_q8_0, mm_q8_1 => dot_q8_1,
);

// ---------------------------------------------------------------------------------------------
// Activation quantizers.

/// ggml-cpu's AVX2 `quantize_row_q8_0` (`Q81 = false`) / `quantize_row_q8_1` (`Q81 = true`),
/// instruction for instruction, so the bytes match [`crate::reference::quantize_row_q8_0_x86`]
/// (which models these lanes): `|x|` max over four ymm then a 128/64/32-bit max tree,
/// `id = 127 / amax`, round to nearest even, `vcvtps2dq`, saturating packs, and a lane permute
/// to undo the packs' in-lane order. Scalars go to f16 with `half` (round to nearest even, as
/// `vcvtps2ph` does).
///
/// # Safety
/// The CPU has avx2+fma+f16c; `out.len() == ty.row_bytes(x.len())` (so x is whole blocks).
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_q8<const Q81: bool>(x: &[f32], out: &mut [u8]) {
    let (bs, qo) = if Q81 { (36, 4) } else { (34, 2) };
    debug_assert_eq!(out.len(), x.len() / QK * bs);
    let sign = _mm256_set1_ps(-0.0);
    let perm = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    for (xb, ob) in x.chunks_exact(QK).zip(out.chunks_exact_mut(bs)) {
        let p = xb.as_ptr();
        // SAFETY: xb has QK = 32 f32s, so p..p+32 is readable.
        let (v0, v1, v2, v3) = unsafe {
            (
                _mm256_loadu_ps(p),
                _mm256_loadu_ps(p.add(8)),
                _mm256_loadu_ps(p.add(16)),
                _mm256_loadu_ps(p.add(24)),
            )
        };
        let m = _mm256_andnot_ps(sign, v0);
        let m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v1));
        let m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v2));
        let m = _mm256_max_ps(m, _mm256_andnot_ps(sign, v3));
        let m4 = _mm_max_ps(_mm256_extractf128_ps::<1>(m), _mm256_castps256_ps128(m));
        let m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        let m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        let amax = _mm_cvtss_f32(m4);

        let d = amax / 127.0;
        let id = if amax != 0.0 { 127.0 / amax } else { 0.0 };
        let mul = _mm256_set1_ps(id);
        let i0 = _mm256_cvtps_epi32(_mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(
            v0, mul,
        )));
        let i1 = _mm256_cvtps_epi32(_mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(
            v1, mul,
        )));
        let i2 = _mm256_cvtps_epi32(_mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(
            v2, mul,
        )));
        let i3 = _mm256_cvtps_epi32(_mm256_round_ps::<_MM_FROUND_TO_NEAREST_INT>(_mm256_mul_ps(
            v3, mul,
        )));
        let isum = if Q81 {
            hsum_epi32(_mm256_add_epi32(
                _mm256_add_epi32(i0, i1),
                _mm256_add_epi32(i2, i3),
            ))
        } else {
            0
        };
        let q = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        let q = _mm256_permutevar8x32_epi32(q, perm);
        // SAFETY: ob has bs bytes and qo + 32 == bs.
        unsafe { _mm256_storeu_si256(ob.as_mut_ptr().add(qo).cast(), q) };
        ob[0..2].copy_from_slice(&f16::from_f32(d).to_bits().to_le_bytes());
        if Q81 {
            let s = f16::from_f32(d * isum as f32);
            ob[2..4].copy_from_slice(&s.to_bits().to_le_bytes());
        }
    }
}

/// f32 -> F16 with `vcvtps2ph` (round to nearest even, as `f16::from_f32`), 8 at a time, then
/// a scalar tail.
///
/// # Safety
/// The CPU has F16C; `out.len() == 2 * x.len()`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn quantize_f16(x: &[f32], out: &mut [u8]) {
    debug_assert_eq!(out.len(), 2 * x.len());
    let mut xs = x.chunks_exact(8);
    let mut os = out.chunks_exact_mut(16);
    for (xc, oc) in (&mut xs).zip(&mut os) {
        // SAFETY: xc has 8 f32s and oc 16 bytes; loadu/storeu accept any alignment.
        unsafe {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(xc.as_ptr()));
            _mm_storeu_si128(oc.as_mut_ptr().cast(), h);
        }
    }
    for (v, o) in xs
        .remainder()
        .iter()
        .zip(os.into_remainder().chunks_exact_mut(2))
    {
        o.copy_from_slice(&f16::from_f32(*v).to_bits().to_le_bytes());
    }
}
