//! AVX2 kernels for the packed layouts of [`crate::packed`] (CPUs without AVX-512): one weight
//! row per 32-bit lane, eight rows per register, a group's 16 rows in two halves. Without VNNI the
//! integer dot is `vpmaddubsw` (unsigned codes x signed activations, pairs into i16) and one
//! `vpmaddwd` into i32 per row.
//!
//! - Q4_0: codes 0..15, pairs at most 2 * 15 * 128 = 3840 in magnitude, so the eight 4-byte steps
//!   of a block also add up in i16 without saturation (8 * 3840 < 32768), minus the exact
//!   `8 * sum(y)`.
//! - Q8_0: ggml's AVX2 sign trick, `|q|` times `y` with `q`'s sign in one `vpmaddubsw` (pairs at
//!   most 2 * 128 * 127 for activation codes in -127..=127, the range every Q8 quantizer writes);
//!   ggml's eight lane sums per row (one accumulator per chunk), as the AVX-512 kernel.
//! - Q4_1: low and high nibbles of each chunk against their activations, eight lane sums and
//!   `summs`, as the AVX-512 kernel.
//! - Q5_0 / Q5_1: as Q4_1 with bit 4 of each code from `qh` (`vpshufb`, `vpcmpeqb`), codes 0..31
//!   (pairs at most 2 * 31 * 128); Q5_0 minus the exact `16 * sum(y)` per lane.
//!
//! Exact for every weight byte pattern (and every activation byte but Q8_0's -128, which no
//! quantizer writes); the float steps are the reference's, so the result is bitwise
//! [`crate::packed::matmul_packed_reference`], and for Q8_0, Q4_1, Q5_0 and Q5_1 bitwise the
//! row-major AVX2 product (ggml's AVX2 `vec_dot_q8_0_q8_0` / `vec_dot_q4_1_q8_1` /
//! `vec_dot_q5_0_q8_0` / `vec_dot_q5_1_q8_1` order).
//!
//! The AVX-VNNI path ([`super::avxvnni`]) runs these same kernels with each integer dot one
//! `vpdpbusd` ([`PackedDot`]: [`Maddubs`] here, [`Vnni`] there): the same exact i32 lanes, so the
//! same bits.

use core::arch::x86_64::*;

use super::avx2::Avx2;
use super::avxvnni::{AvxVnni, Dpbusd, Emulated, Native};
use crate::blocks::QK;
use crate::cpu::driver::{panels_x_tiles, product_with, q4_0_tokens, GroupLanes, ProductFn};
use crate::packed::{PACK_ROWS, Q8_0_MAX_BLOCKS};
use crate::QuantType;

/// Bytes of one packed Q4_0 group-block (16 rows).
const GB: usize = 16 * 18;
/// Bytes of one Q8_0 activation block.
const XB: usize = 34;
/// Tokens per tile (16 ymm registers: eight of codes, the rest for accumulators).
const TT: usize = 4;
/// Blocks per scale-table chunk (the tables live on the stack).
const CHUNK_NB: usize = 128;
/// Weight bytes per row panel, revisited once per token group: sized to stay in L2.
const PANEL_BYTES: usize = 512 * 1024;

/// The integer dots of the packed kernels, each `acc +` the exact sum over every 4-byte group of
/// unsigned codes times signed activations, into i32 lanes: [`Maddubs`] (AVX2) or [`Vnni`]
/// (`vpdpbusd`, native or emulated). Both give the same lanes, so the kernels' results are
/// bitwise the same.
pub(super) trait PackedDot: Copy {
    /// Q4_0: `acc + sum_i dot4(codes[i], y[OFFS[i]..][..4] in every lane)`, codes 0..15. The
    /// activation bytes are broadcast where used, so that no more than one is live at a time.
    ///
    /// # Safety
    /// 32 readable bytes at `y`; the CPU has the implementor's features (callers inline it into a
    /// function that has them).
    unsafe fn q4_0_block(acc: __m256i, codes: &[__m256i; 8], y: *const u8) -> __m256i;
    /// `acc + dot4(a, b)` for codes `a` in 0..31 (Q4_1, Q5_0, Q5_1).
    ///
    /// # Safety
    /// The CPU has the implementor's features (as [`PackedDot::q4_0_block`]).
    unsafe fn small(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
    /// `dot4(q, b)` for signed bytes: any `q` (Q8_0 codes), `b` in -127..=127 (a Q8_0
    /// activation's bytes). `corr` is `-128 * (sum of the lane's four b)`, for the implementors
    /// that bias `q` to unsigned bytes (`vpdpbusd` multiplies unsigned by signed); the others
    /// ignore it ([`PackedDot::BIASED`]).
    ///
    /// # Safety
    /// The CPU has the implementor's features (as [`PackedDot::q4_0_block`]).
    unsafe fn signed(corr: __m256i, q: __m256i, b: __m256i) -> __m256i;
    /// Whether [`PackedDot::signed`] reads `corr`.
    const BIASED: bool;
}

/// Activation byte offset of each Q4_0 code register's 4-byte steps (low, high nibbles per chunk).
const OFFS: [usize; 8] = [0, 16, 4, 20, 8, 24, 12, 28];

/// The 4 bytes at `p` in every 32-bit lane.
///
/// # Safety
/// 4 readable bytes at `p`; the CPU has AVX2.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn broadcast4(p: *const u8) -> __m256i {
    // SAFETY: the caller guarantees 4 readable bytes; read_unaligned accepts any alignment.
    _mm256_set1_epi32(unsafe { core::ptr::read_unaligned(p.cast()) })
}

/// AVX2: `vpmaddubsw` (pairs into i16) and `vpmaddwd` into i32, exact for the operands each method
/// gets (module docs).
#[derive(Clone, Copy, Debug)]
pub(super) struct Maddubs;

impl PackedDot for Maddubs {
    /// The eight steps add up in i16 (each pair at most 2 * 15 * 128, all eight 8 * 3840 < 32768),
    /// then one `vpmaddwd`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_0_block(acc: __m256i, codes: &[__m256i; 8], y: *const u8) -> __m256i {
        // SAFETY: OFFS[i] + 4 <= 32 readable bytes at y (caller).
        let ys = |i: usize| unsafe { broadcast4(y.add(OFFS[i])) };
        let mut s16 = _mm256_maddubs_epi16(codes[0], ys(0));
        for (i, &c) in codes.iter().enumerate().skip(1) {
            s16 = _mm256_add_epi16(s16, _mm256_maddubs_epi16(c, ys(i)));
        }
        _mm256_add_epi32(_mm256_madd_epi16(s16, _mm256_set1_epi16(1)), acc)
    }

    /// Pairs at most 2 * 31 * 128 in magnitude: no saturation.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn small(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        let s = _mm256_madd_epi16(_mm256_maddubs_epi16(a, b), _mm256_set1_epi16(1));
        _mm256_add_epi32(s, acc)
    }

    /// ggml's own AVX2 way: `|q|` (unsigned, up to 128) times `b` with `q`'s sign (`vpsignb`,
    /// which also zeroes `b` where `q` is 0), so each `vpmaddubsw` pair is at most
    /// 2 * 128 * 127 < 32768 in magnitude: exact.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn signed(_corr: __m256i, q: __m256i, b: __m256i) -> __m256i {
        let p = _mm256_maddubs_epi16(_mm256_abs_epi8(q), _mm256_sign_epi8(b, q));
        _mm256_madd_epi16(p, _mm256_set1_epi16(1))
    }

    const BIASED: bool = false;
}

/// AVX-VNNI: one `vpdpbusd` per 4-byte dot (no i16 step, exact for every byte).
#[derive(Clone, Copy, Debug)]
pub(super) struct Vnni<D>(D);

impl<D: Dpbusd> PackedDot for Vnni<D> {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn q4_0_block(acc: __m256i, codes: &[__m256i; 8], y: *const u8) -> __m256i {
        let mut acc = acc;
        for i in 0..8 {
            // SAFETY: OFFS[i] + 4 <= 32 readable bytes at y; the caller has D's features.
            acc = unsafe { D::dpbusd(acc, codes[i], broadcast4(y.add(OFFS[i]))) };
        }
        acc
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn small(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: the caller has D's features.
        unsafe { D::dpbusd(acc, a, b) }
    }

    /// `q + 128` as unsigned bytes: `dot4(q + 128, b) + corr`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn signed(corr: __m256i, q: __m256i, b: __m256i) -> __m256i {
        let u = _mm256_xor_si256(q, _mm256_set1_epi8(-128));
        // SAFETY: the caller has D's features.
        unsafe { D::dpbusd(corr, u, b) }
    }

    const BIASED: bool = true;
}

/// The AVX-VNNI path's packed product (`NATIVE`: `k` has AVX-VNNI, else the emulation): the AVX2
/// kernels with [`Vnni`] dots. As [`Avx2::matmul_packed`].
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul_packed_vnni<const NATIVE: bool>(
    k: AvxVnni,
    ty: QuantType,
    out: &mut [f32],
    w: &[u8],
    rows: usize,
    x: &[u8],
    stride: usize,
    t: usize,
    n: usize,
) {
    assert_eq!(NATIVE, k.is_native());
    let kernel = if NATIVE {
        kernel_for(
            ty,
            [
                lanes_native::<Q8_0>,
                lanes_native::<Q4_1>,
                lanes_native::<Q5_0>,
                lanes_native::<Q5_1>,
                q4_0_native,
            ],
        )
    } else {
        kernel_for(
            ty,
            [
                lanes_emulated::<Q8_0>,
                lanes_emulated::<Q4_1>,
                lanes_emulated::<Q5_0>,
                lanes_emulated::<Q5_1>,
                q4_0_emulated,
            ],
        )
    };
    // SAFETY: native: `k` is native (asserted), so `AvxVnni::detect` found avx2/fma/f16c +
    // avxvnni; emulated: `k` holds the Avx2 token (avx2/fma/f16c): the kernels' features. Each
    // computes the packed product of its type under `ProductFn`'s contract.
    unsafe { product_with::<true>(kernel, ty, out, w, rows, x, stride, t, n) }
}

/// The kernel of `ty` among one dot's `[Q8_0, Q4_1, Q5_0, Q5_1, Q4_0]` kernels (Q4_0 for any other
/// type: `check_matmul_packed` rejects what is not packable).
fn kernel_for(ty: QuantType, kernels: [ProductFn; 5]) -> ProductFn {
    match ty {
        QuantType::Q8_0 => kernels[0],
        QuantType::Q4_1 => kernels[1],
        QuantType::Q5_0 => kernels[2],
        QuantType::Q5_1 => kernels[3],
        _ => kernels[4],
    }
}

/// The entry points of the AVX-VNNI packed products: the kernels below (`#[inline]`, AVX2's
/// features) inlined into functions that have the features of their [`Dpbusd`], so that
/// `vpdpbusd` is one instruction inside the loops. Safety contract: [`mm_lanes`] /
/// [`mm_q4_0x16`], plus the CPU features of the function.
macro_rules! vnni_entries {
    ($lanes:ident, $q4_0:ident, $d:ty, $features:literal) => {
        /// See [`vnni_entries`].
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = $features)]
        unsafe fn $lanes<const KIND: u8>(
            out: &mut [f32],
            w: *const u8,
            rb: usize,
            rows: usize,
            x: *const u8,
            stride: usize,
            t: usize,
            n: usize,
        ) {
            // SAFETY: forwarded from the caller; this function has $d's features.
            unsafe { mm_lanes::<Vnni<$d>, KIND>(out, w, rb, rows, x, stride, t, n) }
        }

        /// See [`vnni_entries`].
        #[allow(clippy::too_many_arguments)]
        #[target_feature(enable = $features)]
        unsafe fn $q4_0(
            out: &mut [f32],
            w: *const u8,
            rb: usize,
            rows: usize,
            x: *const u8,
            stride: usize,
            t: usize,
            n: usize,
        ) {
            // SAFETY: forwarded from the caller; this function has $d's features.
            unsafe { mm_q4_0x16::<Vnni<$d>>(out, w, rb, rows, x, stride, t, n) }
        }
    };
}
vnni_entries!(lanes_native, q4_0_native, Native, "avx2,fma,f16c,avxvnni");
vnni_entries!(lanes_emulated, q4_0_emulated, Emulated, "avx2,fma,f16c");

impl Avx2 {
    /// `out[j * rows + r]` for a packed `w` (any packed type): see
    /// [`crate::Kernels::matmul_packed`].
    ///
    /// # Panics
    /// As [`crate::Kernels::matmul_packed`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_packed(
        self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x: &[u8],
        stride: usize,
        t: usize,
        n: usize,
    ) {
        let kernel = kernel_for(
            ty,
            [
                mm_lanes::<Maddubs, Q8_0>,
                mm_lanes::<Maddubs, Q4_1>,
                mm_lanes::<Maddubs, Q5_0>,
                mm_lanes::<Maddubs, Q5_1>,
                mm_q4_0x16::<Maddubs>,
            ],
        );
        // SAFETY: `self` proves avx2/fma/f16c (only `detect` builds it), the kernels' features;
        // each computes the packed product of its type under `ProductFn`'s contract.
        unsafe { product_with::<true>(kernel, ty, out, w, rows, x, stride, t, n) }
    }
}

/// One token's sums of one 16-row group: rows `8h..8h + 8` in register `h`.
impl GroupLanes for [__m256; 2] {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn zero() -> Self {
        [_mm256_setzero_ps(); 2]
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 16 readable floats at p (caller); loadu accepts any alignment.
        unsafe { [_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))] }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: 16 writable floats at p (caller); storeu accepts any alignment.
        unsafe {
            _mm256_storeu_ps(p, self[0]);
            _mm256_storeu_ps(p.add(8), self[1]);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn scale_and_sum(xb: *const u8) -> (f32, i32) {
        // SAFETY: 34 readable bytes at xb (caller); AVX2 and F16C enabled here.
        unsafe { super::avx2::q8_0_scale_and_sum(xb) }
    }
}

/// One 16-row group x `K` tokens over blocks `b0..b1`, continuing from `acc[k][h]` (token `k`,
/// rows `8h..8h + 8`). Tables as in the AVX-512 kernel, `TT` entries per block.
///
/// # Safety
/// `b1` group-blocks at `g`; `b1` Q8_0 blocks at each `x[k]`; `(b1 - b0) * TT` entries in both
/// tables; the CPU has AVX2, FMA and F16C and the features of `P`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<P: PackedDot, const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    (b0, b1): (usize, usize),
    dx: *const f32,
    cy: *const i32,
    acc: [[__m256; 2]; K],
) -> [[__m256; 2]; K] {
    // Rows-half-major inside the loop (`a[h][k]`), as the registers are used.
    let mut a: [[__m256; K]; 2] = core::array::from_fn(|h| core::array::from_fn(|k| acc[k][h]));
    let m = _mm256_set1_epi8(0x0f);
    for b in b0..b1 {
        let e = (b - b0) * TT;
        for (h, acc_h) in a.iter_mut().enumerate() {
            // SAFETY: b < b1 group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
            unsafe {
                let gb = g.add(b * GB);
                let dw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(16 * h).cast()));
                let mut codes = [_mm256_setzero_si256(); 8];
                for c in 0..4 {
                    let v = _mm256_loadu_si256(gb.add(32 + 64 * c + 32 * h).cast());
                    codes[2 * c] = _mm256_and_si256(v, m);
                    codes[2 * c + 1] = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m);
                }
                for k in 0..K {
                    let y = x[k].add(b * XB + 2);
                    let sumi = P::q4_0_block(_mm256_set1_epi32(*cy.add(e + k)), &codes, y);
                    let p = _mm256_mul_ps(dw, _mm256_set1_ps(*dx.add(e + k)));
                    acc_h[k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), p, acc_h[k]);
                }
            }
        }
    }
    core::array::from_fn(|k| [a[0][k], a[1][k]])
}

/// Tokens `j0..j0 + K` against the row groups `r0..r1`: [`q4_0_tokens`] with [`tile`].
///
/// # Safety
/// As [`mm_q4_0x16`]; `r0 <= r1 <= rows` multiples of 16, `j0 + K <= t`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tokens<P: PackedDot, const K: usize>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    rr: (usize, usize),
    x: *const u8,
    stride: usize,
    j0: usize,
    nb: usize,
) {
    // SAFETY: the caller's contract is `q4_0_tokens`'s (with P's features); this function has
    // AVX2's; the tile gets the chunk's tables for k < K, which is its contract.
    unsafe {
        q4_0_tokens::<[__m256; 2], K, TT, { CHUNK_NB * TT }, true>(
            out,
            (w, rb, rows),
            rr,
            (x, stride, j0),
            nb,
            |g, xs, bb, (dx, cy), acc| tile::<P, K>(g, xs, bb, dx, cy, acc),
        )
    }
}

/// Packed Q4_0 x Q8_0.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed Q4_0 rows of `rb` bytes (`n / QK` blocks each), `x`
/// holds `t` rows of `n / QK` Q8_0 blocks `stride` bytes apart, `out.len() == t * rows`; the CPU
/// has AVX2, FMA and F16C and the features of `P`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mm_q4_0x16<P: PackedDot>(
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
    panels_x_tiles((rows, rb, PANEL_BYTES), t, TT, |rr, j0, k| {
        // SAFETY: rr are multiples of 16 within rows, tokens j0..j0 + k <= t; the caller's
        // guarantees cover the rest.
        unsafe {
            match k {
                1 => tokens::<P, 1>(out, w, rb, rows, rr, x, stride, j0, nb),
                2 => tokens::<P, 2>(out, w, rb, rows, rr, x, stride, j0, nb),
                3 => tokens::<P, 3>(out, w, rb, rows, rr, x, stride, j0, nb),
                _ => tokens::<P, 4>(out, w, rb, rows, rr, x, stride, j0, nb),
            }
        }
    });
}

/// Bytes of one packed Q8_0 group-block (16 rows) and of one Q4_1 group-block.
const GB8: usize = 16 * 34;
const GB41: usize = 16 * 20;
/// Bytes of one Q8_1 activation block.
const XB1: usize = 36;

/// ggml's `hsum_float_8` of eight rows at once: `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 +
/// l7))` over the eight lane sums `l` (each a register of eight rows).
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
fn hsum8_lanes(a: &[__m256; 8]) -> __m256 {
    let lo = _mm256_add_ps(_mm256_add_ps(a[0], a[4]), _mm256_add_ps(a[2], a[6]));
    let hi = _mm256_add_ps(_mm256_add_ps(a[1], a[5]), _mm256_add_ps(a[3], a[7]));
    _mm256_add_ps(lo, hi)
}

/// Rows `8h..8h + 8` of one 16-row Q8_0 group (`g`: its first group-block) x one token over all
/// `nb` blocks, in ggml's eight-lane order: `dx[2b]` is the token's f32 scale of block `b`,
/// `cy[8b + c]` its `-128 * sum(y)` over chunk `c` (read only when `P::BIASED`). Each lane's
/// integer dot is exact ([`PackedDot::signed`]).
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` Q8_0 blocks at `x`; `2 * nb` entries in `dx`, and `8 * nb` in
/// `cy` when `P::BIASED`; `h < 2`; the CPU has AVX2, FMA and F16C and the features of `P`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_q8_0<P: PackedDot>(
    g: *const u8,
    h: usize,
    x: *const u8,
    nb: usize,
    dx: *const f32,
    cy: *const i32,
) -> __m256 {
    let mut acc = [_mm256_setzero_ps(); 8];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, Q8_0 blocks at x, table entries (caller).
        unsafe {
            let gb = g.add(b * GB8);
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(16 * h).cast()));
            let p = _mm256_mul_ps(dw, _mm256_set1_ps(*dx.add(2 * b)));
            let y = x.add(b * XB + 2);
            for (c, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_si256(gb.add(32 + 64 * c + 32 * h).cast());
                let ys = _mm256_set1_epi32(core::ptr::read_unaligned(y.add(4 * c).cast()));
                let corr = if P::BIASED {
                    _mm256_set1_epi32(*cy.add(8 * b + c))
                } else {
                    _mm256_setzero_si256()
                };
                let sumi = P::signed(corr, v, ys);
                *a = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), p, *a);
            }
        }
    }
    hsum8_lanes(&acc)
}

/// Rows `8h..8h + 8` of one 16-row Q4_1 group x one Q8_1 token over all `nb` blocks, in ggml's
/// order (module docs of [`crate::packed`]): `ds[2b]` is the token's f32 `d` of block `b`,
/// `ds[2b + 1]` its `s`. Codes 0..15 against signed activations: `vpmaddubsw` is exact.
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` Q8_1 blocks at `x`; `2 * nb` entries in `ds`; `h < 2`; the CPU
/// has AVX2, FMA and F16C and the features of `P`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_q4_1<P: PackedDot>(
    g: *const u8,
    h: usize,
    x: *const u8,
    nb: usize,
    ds: *const f32,
) -> __m256 {
    let m = _mm256_set1_epi8(0x0f);
    let z = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut summs = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, Q8_1 blocks at x, table entries (caller).
        unsafe {
            let gb = g.add(b * GB41);
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(16 * h).cast()));
            let mw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(32 + 16 * h).cast()));
            let p = _mm256_mul_ps(dw, _mm256_set1_ps(*ds.add(2 * b)));
            summs = _mm256_fmadd_ps(mw, _mm256_set1_ps(*ds.add(2 * b + 1)), summs);
            let y = x.add(b * XB1 + 4);
            for c in 0..4 {
                let v = _mm256_loadu_si256(gb.add(64 + 64 * c + 32 * h).cast());
                let lo = _mm256_and_si256(v, m);
                let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(v), m);
                let ylo = _mm256_set1_epi32(core::ptr::read_unaligned(y.add(4 * c).cast()));
                let yhi = _mm256_set1_epi32(core::ptr::read_unaligned(y.add(16 + 4 * c).cast()));
                let slo = P::small(z, lo, ylo);
                let shi = P::small(z, hi, yhi);
                acc[c] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(slo), p, acc[c]);
                acc[c + 4] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(shi), p, acc[c + 4]);
            }
        }
    }
    _mm256_add_ps(hsum8_lanes(&acc), summs)
}

/// Bytes of one packed Q5_0 / Q5_1 group-block (16 rows).
const GB50: usize = 16 * 22;
const GB51: usize = 16 * 24;

/// Rows `8h..8h + 8` of one 16-row Q5_0 (`Q51 = false`, Q8_0 token) or Q5_1 (`Q51`, Q8_1 token)
/// group x one token over all `nb` blocks, in ggml's eight-lane order. Lane sum `l` takes the
/// nibbles of chunk `l % 4` (low for `l < 4`, high after) and bits `4l..4l + 4` of each row's
/// `qh` as bit 4 (`vpshufb` of the `qh` byte into the row's four bytes, `vpand` + `vpcmpeqb`
/// against the four bits, `& 0x10`): codes 0..31, `vpmaddubsw` pairs at most 2 * 31 * 128, exact.
/// Tables as [`half_q4_1`] (`ds[2b]`, `ds[2b + 1]`); Q5_0 adds `cy[8b + l]` (`-16 * sum(y)` over
/// lane `l`'s four activations).
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` activation blocks at `x`; `2 * nb` entries in `ds` and (Q5_0)
/// `8 * nb` in `cy`; `h < 2`; the CPU has AVX2, FMA and F16C and the features of `P`.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn half_q5<P: PackedDot, const Q51: bool>(
    g: *const u8,
    h: usize,
    x: *const u8,
    nb: usize,
    ds: *const f32,
    cy: *const i32,
) -> __m256 {
    let (gbb, qh_at, xbb) = if Q51 { (GB51, 64, XB1) } else { (GB50, 32, XB) };
    let m = _mm256_set1_epi8(0x0f);
    let z = _mm256_setzero_si256();
    let b16 = _mm256_set1_epi8(0x10);
    // Byte s of each row's qh (dword) into all four bytes of the dword, s = 0..4.
    let base = _mm256_setr_epi8(
        0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12, 0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12,
        12, 12, 12,
    );
    let index: [__m256i; 4] =
        core::array::from_fn(|s| _mm256_add_epi8(base, _mm256_set1_epi8(s as i8)));
    // Bits 4(l % 2) + 0..4 of the selected byte, one per byte of a dword.
    let bits = [
        _mm256_set1_epi32(0x0804_0201),
        _mm256_set1_epi32(0x8040_2010_u32 as i32),
    ];
    let mut acc = [_mm256_setzero_ps(); 8];
    let mut summs = _mm256_setzero_ps();
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, activation blocks at x, table entries (caller).
        unsafe {
            let gb = g.add(b * gbb);
            let dw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(16 * h).cast()));
            let p = _mm256_mul_ps(dw, _mm256_set1_ps(*ds.add(2 * b)));
            if Q51 {
                let mw = _mm256_cvtph_ps(_mm_loadu_si128(gb.add(32 + 16 * h).cast()));
                summs = _mm256_fmadd_ps(mw, _mm256_set1_ps(*ds.add(2 * b + 1)), summs);
            }
            let qh = _mm256_loadu_si256(gb.add(qh_at + 32 * h).cast());
            let y = x.add(b * xbb + xbb - 32);
            for c in 0..4 {
                let v = _mm256_loadu_si256(gb.add(qh_at + 64 + 64 * c + 32 * h).cast());
                let nibs = [
                    _mm256_and_si256(v, m),
                    _mm256_and_si256(_mm256_srli_epi16::<4>(v), m),
                ];
                for (half, nib) in nibs.into_iter().enumerate() {
                    let l = c + 4 * half;
                    let sel = _mm256_and_si256(_mm256_shuffle_epi8(qh, index[l / 2]), bits[l % 2]);
                    let hi = _mm256_and_si256(_mm256_cmpeq_epi8(sel, bits[l % 2]), b16);
                    let code = _mm256_or_si256(nib, hi);
                    let ys = _mm256_set1_epi32(core::ptr::read_unaligned(y.add(4 * l).cast()));
                    let corr = if Q51 {
                        z
                    } else {
                        _mm256_set1_epi32(*cy.add(8 * b + l))
                    };
                    let sumi = P::small(corr, code, ys);
                    acc[l] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(sumi), p, acc[l]);
                }
            }
        }
    }
    let s = hsum8_lanes(&acc);
    if Q51 {
        _mm256_add_ps(s, summs)
    } else {
        s
    }
}

/// Packed types with eight lane sums, the `KIND` of [`mm_lanes`].
const Q8_0: u8 = 0;
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;

/// Packed Q8_0, Q4_1, Q5_0 or Q5_1 (`KIND`; Q8_1 activations for Q4_1 and Q5_1, else Q8_0): row
/// panels, one token at a time (its eight lane sums for eight rows take eight of the 16
/// registers), the token's per-block tables built once per panel.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed rows of `rb` bytes (`n / QK` blocks each, at most
/// [`Q8_0_MAX_BLOCKS`]), `x` holds `t` activation rows of `n / QK` blocks `stride` bytes apart,
/// `out.len() == t * rows`; the CPU has AVX2, FMA and F16C and the features of `P`.
#[allow(clippy::too_many_arguments)]
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mm_lanes<P: PackedDot, const KIND: u8>(
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
    debug_assert_eq!(rows % PACK_ROWS, 0);
    let nb = n / QK;
    assert!(nb <= Q8_0_MAX_BLOCKS);
    let q8_1 = KIND == Q4_1 || KIND == Q5_1;
    let xbb = if q8_1 { XB1 } else { XB };
    // Per block of the current token: its scale (`fs[2b]`) and, Q8_1, its `s` (`fs[2b + 1]`);
    // Q8_0 and Q5_0 the lane corrections `-bias * sum(y)` (`cy[8b + l]`, bias 128 or 16). Only
    // entries b < nb are read, each after it is written.
    let mut fs = [core::mem::MaybeUninit::<f32>::uninit(); 2 * Q8_0_MAX_BLOCKS];
    let mut cy = [core::mem::MaybeUninit::<i32>::uninit(); 8 * Q8_0_MAX_BLOCKS];
    panels_x_tiles((rows, rb, PANEL_BYTES), t, 1, |(r0, r1), j, _| {
        let xj = x.wrapping_add(j * stride);
        for b in 0..nb {
            // SAFETY: block b < nb of token j < t is in bounds (caller).
            let blk = unsafe { core::slice::from_raw_parts(xj.add(b * xbb), xbb) };
            // SAFETY: i + 2 <= 4 <= the block's bytes (d, and s for Q8_1); F16C is enabled here.
            let f16 = |i: usize| unsafe { super::avx2::f16_at(blk.as_ptr().add(i)) };
            fs[2 * b].write(f16(0));
            if q8_1 {
                fs[2 * b + 1].write(f16(2));
            } else if KIND != Q8_0 || P::BIASED {
                let bias = if KIND == Q8_0 { -128 } else { -16 };
                let lanes = cy[8 * b..8 * b + 8].as_mut_ptr().cast();
                // SAFETY: the block's 32 codes; entries 8b..8b + 8 of cy (b < nb <=
                // Q8_0_MAX_BLOCKS, asserted); AVX2 is enabled here.
                unsafe { super::avx2::quad_sums(blk.as_ptr().add(2), bias, lanes) };
            }
        }
        let (fp, cp) = (fs.as_ptr().cast::<f32>(), cy.as_ptr().cast::<i32>());
        let mut g = r0;
        while g < r1 {
            let grp = w.wrapping_add(g * rb);
            for h in 0..2 {
                // SAFETY: rows g..g + 16 are a whole group in bounds, token j < t, the
                // tables' entries for b < nb written just above; this function's features.
                let v = unsafe {
                    match KIND {
                        Q8_0 => half_q8_0::<P>(grp, h, xj, nb, fp, cp),
                        Q4_1 => half_q4_1::<P>(grp, h, xj, nb, fp),
                        Q5_0 => half_q5::<P, false>(grp, h, xj, nb, fp, cp),
                        _ => half_q5::<P, true>(grp, h, xj, nb, fp, cp),
                    }
                };
                // SAFETY: j * rows + g + 8h + 8 <= t * rows = out.len() (g + 16 <= rows,
                // j < t); storeu accepts any alignment.
                unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(j * rows + g + 8 * h), v) };
            }
            g += PACK_ROWS;
        }
    });
}
