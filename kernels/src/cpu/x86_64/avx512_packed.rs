//! AVX-512 VNNI kernels for the packed layouts of [`crate::packed`]: one weight row per 32-bit
//! lane, 16 rows per register, so a block's integer dot for 16 rows is 8 `vpdpbusd` (Q4_0: four
//! 4-byte steps of low nibbles and four of high nibbles; Q8_0: eight 4-byte steps of codes biased
//! to unsigned by `^ 0x80`), each against a broadcast 4-byte slice of the activation block, started
//! from the exact correction `-bias * sum(y)` (bias 8 or 128). Q4_0 then scales the block's sum
//! with one multiply and one FMA; Q8_0 keeps ggml's eight lane sums (one per 4-byte chunk), so
//! each chunk's `vpdpbusd` result is converted and FMA'd into its own accumulator. Q4_1 does the
//! same with unsigned nibbles (no correction) plus `summs`; Q5_0 and Q5_1 as Q8_0 / Q4_1 with the
//! 5-bit codes (bit 4 from `qh` by `vpshufb` + `vptestmb` + a masked add; Q5_0 corrected by
//! `-16 * sum(y)` per chunk). Bitwise equal to [`crate::packed::matmul_packed_reference`].

use core::arch::x86_64::*;

use super::avx512::{prefetch_tile, Avx512Vnni};
use crate::blocks::QK;
use crate::cpu::driver::{panels_x_tiles, product_with, q4_0_tokens, GroupLanes, ProductFn};
use crate::packed::{PACK_ROWS, Q8_0_MAX_BLOCKS};
use crate::QuantType;

/// Bytes of one packed group-block (16 rows): Q8_0 when `Q8`, else Q4_0.
const fn group_block_bytes(q8: bool) -> usize {
    if q8 {
        16 * 34
    } else {
        16 * 18
    }
}
/// Bytes of one Q8_0 activation block.
const XB: usize = 34;
/// Tokens per tile.
const TT: usize = 8;
/// Tokens per Q8_0 tile: its eight lane sums per token stay in registers (24 of 32).
const TT8: usize = 3;
/// Tokens per Q4_1 tile: eight lane sums and `summs` per token (18 registers).
const TT41: usize = 2;
/// Bytes of one Q4_1 group-block (16 rows) and of one Q8_1 activation block.
const GB41: usize = 16 * 20;
const XB1: usize = 36;
/// Blocks per scale-table chunk (the tables live on the stack).
const CHUNK_NB: usize = 128;
/// Weight bytes per row panel, revisited once per token group: sized to stay in L2.
const PANEL_BYTES: usize = 512 * 1024;
/// How far ahead of the group-block it is reading a one-token (decode) product asks for the
/// weights with `prefetcht0`, in bytes. The packed matrix is one sequential stream, yet the
/// hardware prefetchers alone leave it short of DRAM's rate: on the Zen 5 host (stop 27, one
/// thread, `ingot bench` alternated with and without) 8 KiB ahead made decode 14% faster on Q4_1,
/// 11% on Q4_0, 21% on Q5_1 and 3% on Q8_0; 2 and 4 KiB gained less, 16 and 32 KiB less too
/// (BENCHMARKS.md, first section).
const PREFETCH_AHEAD: usize = 8192;

impl Avx512Vnni {
    /// `out[j * rows + r]` for a packed `w`: see [`crate::Kernels::matmul_packed`].
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
        let kernel: ProductFn = match ty {
            QuantType::Q8_0 => mm_packed::<true>,
            QuantType::Q4_1 => mm_packed_lanes::<Q4_1>,
            QuantType::Q5_0 => mm_packed_lanes::<Q5_0>,
            QuantType::Q5_1 => mm_packed_lanes::<Q5_1>,
            _ => mm_packed::<false>,
        };
        // SAFETY: `self` proves avx512f/bw/vl/vnni + avx2/fma/f16c (only `detect` builds it), the
        // kernels' features; each computes the packed product of its type under `ProductFn`'s
        // contract (Q4_0 for any other type: `check_matmul_packed` rejects what is not packable).
        unsafe { product_with::<true>(kernel, ty, out, w, rows, x, stride, t, n) }
    }
}

/// One token's sums of one 16-row group: one register.
impl GroupLanes for __m512 {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn zero() -> Self {
        _mm512_setzero_ps()
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn load(p: *const f32) -> Self {
        // SAFETY: 16 readable floats at p (caller); loadu accepts any alignment.
        unsafe { _mm512_loadu_ps(p) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn store(self, p: *mut f32) {
        // SAFETY: 16 writable floats at p (caller); storeu accepts any alignment.
        unsafe { _mm512_storeu_ps(p, self) }
    }

    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
    unsafe fn scale_and_sum(xb: *const u8) -> (f32, i32) {
        // SAFETY: 34 readable bytes at xb (caller); AVX2 and F16C enabled here.
        unsafe { super::avx2::q8_0_scale_and_sum(xb) }
    }
}

/// One 16-row Q4_0 group (`g`: its first group-block) x `K` tokens over blocks `b0..b1`,
/// continuing from `acc`. `dx[(b - b0) * TT + k]` is token `k`'s f32 scale of block `b`, `cy[..]`
/// its `-8 * sum(y)`.
///
/// # Safety
/// `b1` group-blocks at `g`; `b1` Q8_0 blocks at each `x[k]`; `(b1 - b0) * TT` entries in both
/// tables; the CPU has AVX-512 F/BW/VL + VNNI and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile<const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    (b0, b1): (usize, usize),
    dx: *const f32,
    cy: *const i32,
    mut acc: [__m512; K],
) -> [__m512; K] {
    let m = _mm512_set1_epi8(0x0f);
    // Activation byte offset of each code register's 4-byte steps.
    let offs: [usize; 8] = [0, 16, 4, 20, 8, 24, 12, 28];
    for b in b0..b1 {
        // SAFETY: b < b1 group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
        unsafe {
            let gb = g.add(b * group_block_bytes(false));
            if K == 1 {
                // A prefetch target only: it may lie past the matrix (prefetches never fault).
                prefetch_tile(gb, PREFETCH_AHEAD, group_block_bytes(false));
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.cast()));
            let mut codes = [_mm512_setzero_si512(); 8];
            for c in 0..4 {
                let v = _mm512_loadu_si512(gb.add(32 + 64 * c).cast());
                codes[2 * c] = _mm512_and_si512(v, m);
                codes[2 * c + 1] = _mm512_and_si512(_mm512_srli_epi16::<4>(v), m);
            }
            let e = (b - b0) * TT;
            for k in 0..K {
                let y = x[k].add(b * XB + 2);
                let ys = |o: usize| _mm512_set1_epi32(core::ptr::read_unaligned(y.add(o).cast()));
                let mut s0 = _mm512_set1_epi32(*cy.add(e + k));
                let mut s1 = _mm512_setzero_si512();
                for i in (0..8).step_by(2) {
                    s0 = _mm512_dpbusd_epi32(s0, codes[i], ys(offs[i]));
                    s1 = _mm512_dpbusd_epi32(s1, codes[i + 1], ys(offs[i + 1]));
                }
                let sumi = _mm512_add_epi32(s0, s1);
                let p = _mm512_mul_ps(dw, _mm512_set1_ps(*dx.add(e + k)));
                acc[k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), p, acc[k]);
            }
        }
    }
    acc
}

/// Q4_0 tokens `j0..j0 + K` against the row groups of `rows` (`r0..r1`):
/// [`q4_0_tokens`] with [`tile`].
///
/// # Safety
/// As [`mm_packed`]; `r0 <= r1 <= rows` multiples of 16, `j0 + K <= t`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tokens<const K: usize>(
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
    // SAFETY: the caller's contract is `q4_0_tokens`'s; this function has `__m512`'s features;
    // the tile gets the chunk's tables for k < K, which is its contract.
    unsafe {
        q4_0_tokens::<__m512, K, TT, { CHUNK_NB * TT }, true>(
            out,
            (w, rb, rows),
            rr,
            (x, stride, j0),
            nb,
            |g, xs, bb, (dx, cy), acc| tile::<K>(g, xs, bb, dx, cy, acc),
        )
    }
}

/// One 16-row Q8_0 group (`g`: its first group-block) x `K` tokens over all `nb` blocks, in
/// ggml's eight-lane order (module docs): `dx[b * TT8 + k]` is token `k`'s f32 scale of block `b`,
/// `cy[(b * TT8 + k) * 8 + c]` its `-128 * sum(y)` over chunk `c`. Returns each token's 16 sums.
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` Q8_0 blocks at each `x[k]`; the table entries for `b < nb`,
/// `k < K`; the CPU has AVX-512 F/BW/VL + VNNI and F16C.
#[inline]
#[allow(clippy::needless_range_loop)] // `c` is the chunk: code offset, table entry and lane sum
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q8<const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    nb: usize,
    dx: *const f32,
    cy: *const i32,
) -> [__m512; K] {
    let bias = _mm512_set1_epi8(-128);
    let mut acc = [[_mm512_setzero_ps(); 8]; K];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, Q8_0 blocks at each x[k], table entries (caller).
        unsafe {
            let gb = g.add(b * group_block_bytes(true));
            if K == 1 {
                // A prefetch target only: it may lie past the matrix (prefetches never fault).
                prefetch_tile(gb, PREFETCH_AHEAD, group_block_bytes(true));
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.cast()));
            let p: [__m512; K] =
                core::array::from_fn(|k| _mm512_mul_ps(dw, _mm512_set1_ps(*dx.add(b * TT8 + k))));
            for c in 0..8 {
                let code = _mm512_xor_si512(_mm512_loadu_si512(gb.add(32 + 64 * c).cast()), bias);
                for k in 0..K {
                    let y4 = core::ptr::read_unaligned(x[k].add(b * XB + 2 + 4 * c).cast::<i32>());
                    let c0 = _mm512_set1_epi32(*cy.add((b * TT8 + k) * 8 + c));
                    let sumi = _mm512_dpbusd_epi32(c0, code, _mm512_set1_epi32(y4));
                    acc[k][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), p[k], acc[k][c]);
                }
            }
        }
    }
    core::array::from_fn(|k| hsum8_lanes(&acc[k]))
}

/// ggml's `hsum_float_8` of every row at once: `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 +
/// l7))` over the eight lane sums `l` (each a register of 16 rows).
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
fn hsum8_lanes(a: &[__m512; 8]) -> __m512 {
    let lo = _mm512_add_ps(_mm512_add_ps(a[0], a[4]), _mm512_add_ps(a[2], a[6]));
    let hi = _mm512_add_ps(_mm512_add_ps(a[1], a[5]), _mm512_add_ps(a[3], a[7]));
    _mm512_add_ps(lo, hi)
}

/// Q8_0 tokens `j0..j0 + K` against the row groups of `rows` (`r0..r1`): the scale and correction
/// tables of the whole rows (at most [`Q8_0_MAX_BLOCKS`] blocks, see `packable`), then one
/// [`tile_q8`] per group.
///
/// # Safety
/// As [`mm_packed`]; `r0 <= r1 <= rows` multiples of 16, `j0 + K <= t`, `nb <= Q8_0_MAX_BLOCKS`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tokens_q8<const K: usize>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    (r0, r1): (usize, usize),
    x: *const u8,
    stride: usize,
    j0: usize,
    nb: usize,
) {
    assert!(nb <= Q8_0_MAX_BLOCKS);
    let xs: [*const u8; K] = core::array::from_fn(|k| x.wrapping_add((j0 + k) * stride));
    // Only entries b < nb, k < K are read, each after it is written.
    let mut dx = [core::mem::MaybeUninit::<f32>::uninit(); Q8_0_MAX_BLOCKS * TT8];
    let mut cy = [core::mem::MaybeUninit::<i32>::uninit(); Q8_0_MAX_BLOCKS * TT8 * 8];
    for b in 0..nb {
        for (k, xk) in xs.iter().enumerate() {
            // SAFETY: block b < nb of token j0 + k < t is in bounds (caller): 34 bytes.
            let blk = unsafe { core::slice::from_raw_parts(xk.add(b * XB), XB) };
            // SAFETY: the block's first two bytes; F16C is enabled here.
            dx[b * TT8 + k].write(unsafe { super::avx2::f16_at(blk.as_ptr()) });
            let e = (b * TT8 + k) * 8;
            // SAFETY: the block's 32 codes; entries e..e + 8 of cy, as b < nb <=
            // Q8_0_MAX_BLOCKS (asserted) and k < TT8; AVX2 is enabled here.
            unsafe {
                super::avx2::quad_sums(blk.as_ptr().add(2), -128, cy[e..e + 8].as_mut_ptr().cast())
            };
        }
    }
    let tables = (dx.as_ptr().cast::<f32>(), cy.as_ptr().cast::<i32>());
    let mut g = r0;
    while g < r1 {
        // SAFETY: rows g..g + 16 are a whole group in bounds, tokens in bounds, the tables'
        // entries for b < nb, k < K written just above; the CPU has the features (this
        // function's).
        let v = unsafe { tile_q8::<K>(w.wrapping_add(g * rb), xs, nb, tables.0, tables.1) };
        for (k, v) in v.iter().enumerate() {
            // SAFETY: (j0 + k) * rows + g + 16 <= t * rows = out.len() (caller: g + 16 <= rows,
            // j0 + k < t); storeu accepts any alignment.
            unsafe { _mm512_storeu_ps(out.as_mut_ptr().add((j0 + k) * rows + g), *v) };
        }
        g += PACK_ROWS;
    }
}

/// One 16-row Q4_1 group (`g`) x `K` Q8_1 tokens over all `nb` blocks, in ggml's order (module
/// docs of [`crate::packed`]): `ds[(b * TT41 + k) * 2]` is token `k`'s f32 `d` of block `b`, the
/// next entry its `s`. Returns each token's 16 sums.
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` Q8_1 blocks at each `x[k]`; the table entries for `b < nb`,
/// `k < K`; the CPU has AVX-512 F/BW/VL + VNNI and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q4_1<const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    nb: usize,
    ds: *const f32,
) -> [__m512; K] {
    let m = _mm512_set1_epi8(0x0f);
    let zero = _mm512_setzero_si512();
    let mut acc = [[_mm512_setzero_ps(); 8]; K];
    let mut summs = [_mm512_setzero_ps(); K];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, Q8_1 blocks at each x[k], table entries (caller).
        unsafe {
            let gb = g.add(b * GB41);
            if K == 1 {
                // A prefetch target only: it may lie past the matrix (prefetches never fault).
                prefetch_tile(gb, PREFETCH_AHEAD, GB41);
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.cast()));
            let mw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.add(32).cast()));
            let mut p = [_mm512_setzero_ps(); K];
            for k in 0..K {
                let e = (b * TT41 + k) * 2;
                p[k] = _mm512_mul_ps(dw, _mm512_set1_ps(*ds.add(e)));
                summs[k] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*ds.add(e + 1)), summs[k]);
            }
            for c in 0..4 {
                let v = _mm512_loadu_si512(gb.add(64 + 64 * c).cast());
                let lo = _mm512_and_si512(v, m);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(v), m);
                for k in 0..K {
                    let y = x[k].add(b * XB1 + 4);
                    let ylo = core::ptr::read_unaligned(y.add(4 * c).cast::<i32>());
                    let yhi = core::ptr::read_unaligned(y.add(16 + 4 * c).cast::<i32>());
                    let slo = _mm512_dpbusd_epi32(zero, lo, _mm512_set1_epi32(ylo));
                    let shi = _mm512_dpbusd_epi32(zero, hi, _mm512_set1_epi32(yhi));
                    acc[k][c] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(slo), p[k], acc[k][c]);
                    acc[k][c + 4] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(shi), p[k], acc[k][c + 4]);
                }
            }
        }
    }
    core::array::from_fn(|k| _mm512_add_ps(hsum8_lanes(&acc[k]), summs[k]))
}

/// Packed Q8_0 (`Q8`) or Q4_0 weights x Q8_0 activations.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed rows of `rb` bytes (`n / QK` blocks each), `x`
/// holds `t` rows of `n / QK` Q8_0 blocks `stride` bytes apart, `out.len() == t * rows`; the CPU
/// has AVX-512 F/BW/VL + VNNI and F16C.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mm_packed<const Q8: bool>(
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
    let tt = if Q8 { TT8 } else { TT };
    panels_x_tiles((rows, rb, PANEL_BYTES), t, tt, |rr, j0, k| {
        // SAFETY: rr are multiples of 16 within rows, tokens j0..j0 + k <= t, k <= the type's
        // tile; `packable` (checked by the caller) bounds nb for Q8_0; the caller's guarantees
        // cover the rest.
        unsafe {
            match (Q8, k) {
                (true, 1) => tokens_q8::<1>(out, w, rb, rows, rr, x, stride, j0, nb),
                (true, 2) => tokens_q8::<2>(out, w, rb, rows, rr, x, stride, j0, nb),
                (true, _) => tokens_q8::<3>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 1) => tokens::<1>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 2) => tokens::<2>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 3) => tokens::<3>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 4) => tokens::<4>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 5) => tokens::<5>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 6) => tokens::<6>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, 7) => tokens::<7>(out, w, rb, rows, rr, x, stride, j0, nb),
                (false, _) => tokens::<8>(out, w, rb, rows, rr, x, stride, j0, nb),
            }
        }
    });
}

/// Packed types with eight lane sums and two-token tiles, the `KIND` of [`mm_packed_lanes`].
const Q4_1: u8 = 1;
const Q5_0: u8 = 2;
const Q5_1: u8 = 3;

/// Bytes of one packed Q5_0 / Q5_1 group-block (16 rows).
const GB50: usize = 16 * 22;
const GB51: usize = 16 * 24;
/// Tokens per Q5 tile: eight lane sums (and `summs`) per token, as Q4_1.
const TT5: usize = 2;

/// `vpshufb` indices that put byte `s` of each row's `qh` (u32 lane) into all four bytes of the
/// lane, for `s = 0..4`: the byte holding bits `4l..4l + 4`, `s = l / 2`, for lane sum `l`.
const fn qh_byte_index(s: u8) -> [u8; 64] {
    let mut v = [0u8; 64];
    let mut i = 0;
    while i < 64 {
        v[i] = (i % 16 / 4 * 4) as u8 + s;
        i += 1;
    }
    v
}
const QH_INDEX: [[u8; 64]; 4] = [
    qh_byte_index(0),
    qh_byte_index(1),
    qh_byte_index(2),
    qh_byte_index(3),
];

/// One 16-row Q5_0 (`Q51 = false`, Q8_0 tokens) or Q5_1 (`Q51`, Q8_1 tokens) group (`g`) x `K`
/// tokens over all `nb` blocks, in ggml's eight-lane order (module docs of [`crate::packed`]).
/// Lane sum `l` takes the nibbles of chunk `l % 4` (low for `l < 4`, high after) and bits
/// `4l..4l + 4` of each row's `qh` as bit 4 (`vpshufb` of the `qh` byte, `vptestmb` against the
/// four bits, a masked add of 16): codes 0..31 against signed activations in one `vpdpbusd`,
/// exact. Q5_0 starts each from `-16 * sum(y)` over the chunk (`cy[(b * TT5 + k) * 8 + l]`).
/// `ds[(b * TT5 + k) * 2]` is token `k`'s f32 `d` of block `b`, the next entry its `s` (Q5_1).
///
/// # Safety
/// `nb` group-blocks at `g`; `nb` activation blocks at each `x[k]`; the table entries for
/// `b < nb`, `k < K`; the CPU has AVX-512 F/BW/VL + VNNI and F16C.
#[inline]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn tile_q5<const Q51: bool, const K: usize>(
    g: *const u8,
    x: [*const u8; K],
    nb: usize,
    ds: *const f32,
    cy: *const i32,
) -> [__m512; K] {
    let (gbb, qh_at, xbb) = if Q51 { (GB51, 64, XB1) } else { (GB50, 32, XB) };
    let m = _mm512_set1_epi8(0x0f);
    let sixteen = _mm512_set1_epi8(0x10);
    // SAFETY: QH_INDEX is 4 x 64 readable bytes; loadu accepts any alignment.
    let index: [__m512i; 4] =
        core::array::from_fn(|s| unsafe { _mm512_loadu_si512(QH_INDEX[s].as_ptr().cast()) });
    // Bits 4(l % 2) + 0..4 of the selected byte, one per byte of a lane.
    let bits = [
        _mm512_set1_epi32(0x0804_0201),
        _mm512_set1_epi32(0x8040_2010_u32 as i32),
    ];
    let mut acc = [[_mm512_setzero_ps(); 8]; K];
    let mut summs = [_mm512_setzero_ps(); K];
    for b in 0..nb {
        // SAFETY: b < nb group-blocks at g, activation blocks at each x[k], table entries
        // (caller).
        unsafe {
            let gb = g.add(b * gbb);
            if K == 1 {
                // A prefetch target only: it may lie past the matrix (prefetches never fault).
                prefetch_tile(gb, PREFETCH_AHEAD, gbb);
            }
            let dw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.cast()));
            let mut p = [_mm512_setzero_ps(); K];
            for k in 0..K {
                let e = (b * TT5 + k) * 2;
                p[k] = _mm512_mul_ps(dw, _mm512_set1_ps(*ds.add(e)));
                if Q51 {
                    let mw = _mm512_cvtph_ps(_mm256_loadu_si256(gb.add(32).cast()));
                    summs[k] = _mm512_fmadd_ps(mw, _mm512_set1_ps(*ds.add(e + 1)), summs[k]);
                }
            }
            let qh = _mm512_loadu_si512(gb.add(qh_at).cast());
            for c in 0..4 {
                let v = _mm512_loadu_si512(gb.add(qh_at + 64 + 64 * c).cast());
                let nibs = [
                    _mm512_and_si512(v, m),
                    _mm512_and_si512(_mm512_srli_epi16::<4>(v), m),
                ];
                for (half, nib) in nibs.into_iter().enumerate() {
                    let l = c + 4 * half;
                    let hb = _mm512_shuffle_epi8(qh, index[l / 2]);
                    let set = _mm512_test_epi8_mask(hb, bits[l % 2]);
                    let code = _mm512_mask_add_epi8(nib, set, nib, sixteen);
                    for k in 0..K {
                        let y4 = core::ptr::read_unaligned(
                            x[k].add(b * xbb + xbb - 32 + 4 * l).cast::<i32>(),
                        );
                        let c0 = if Q51 {
                            _mm512_setzero_si512()
                        } else {
                            _mm512_set1_epi32(*cy.add((b * TT5 + k) * 8 + l))
                        };
                        let sumi = _mm512_dpbusd_epi32(c0, code, _mm512_set1_epi32(y4));
                        acc[k][l] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sumi), p[k], acc[k][l]);
                    }
                }
            }
        }
    }
    core::array::from_fn(|k| {
        let s = hsum8_lanes(&acc[k]);
        if Q51 {
            _mm512_add_ps(s, summs[k])
        } else {
            s
        }
    })
}

/// Packed Q4_1 x Q8_1, Q5_0 x Q8_0 or Q5_1 x Q8_1 (`KIND`, one of [`Q4_1`], [`Q5_0`],
/// [`Q5_1`]): row panels, tokens in tiles of [`TT5`] (= [`TT41`]), the tables of whole rows (at
/// most [`Q8_0_MAX_BLOCKS`] blocks, see `packable`), then [`tile_q4_1`] or [`tile_q5`] per group.
///
/// # Safety
/// As [`mm_packed`] with activations of `n / QK` blocks of the type's activation type;
/// `n / QK <= Q8_0_MAX_BLOCKS`.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
unsafe fn mm_packed_lanes<const KIND: u8>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    x: *const u8,
    stride: usize,
    t: usize,
    n: usize,
) {
    const { assert!(TT5 == TT41) };
    debug_assert_eq!(out.len(), t * rows);
    let nb = n / QK;
    assert!(nb <= Q8_0_MAX_BLOCKS);
    let q8_1 = KIND != Q5_0;
    let xbb = if q8_1 { XB1 } else { XB };
    // Only entries b < nb, k < the tile's tokens are read, each after it is written (cy: Q5_0).
    let mut ds = [core::mem::MaybeUninit::<f32>::uninit(); Q8_0_MAX_BLOCKS * TT5 * 2];
    let mut cy = [core::mem::MaybeUninit::<i32>::uninit(); Q8_0_MAX_BLOCKS * TT5 * 8];
    panels_x_tiles((rows, rb, PANEL_BYTES), t, TT5, |(r0, r1), j0, kk| {
        for b in 0..nb {
            for k in 0..kk {
                // SAFETY: block b < nb of token j0 + k < t is in bounds (caller).
                let blk =
                    unsafe { core::slice::from_raw_parts(x.add((j0 + k) * stride + b * xbb), xbb) };
                let e = (b * TT5 + k) * 2;
                // SAFETY: bytes 0..4 of the block (d, then s for Q8_1); F16C is enabled here.
                ds[e].write(unsafe { super::avx2::f16_at(blk.as_ptr()) });
                if q8_1 {
                    // SAFETY: bytes 2..4 of the Q8_1 block (s); F16C is enabled here.
                    ds[e + 1].write(unsafe { super::avx2::f16_at(blk.as_ptr().add(2)) });
                } else {
                    for (l, q) in blk[2..].chunks_exact(4).enumerate() {
                        let sum: i32 = q.iter().map(|&v| i32::from(v as i8)).sum();
                        cy[(b * TT5 + k) * 8 + l].write(-16 * sum);
                    }
                }
            }
        }
        let (dsp, cyp) = (ds.as_ptr().cast::<f32>(), cy.as_ptr().cast::<i32>());
        let xs = |k: usize| x.wrapping_add((j0 + k) * stride);
        let mut g = r0;
        while g < r1 {
            let grp = w.wrapping_add(g * rb);
            // SAFETY: rows g..g + 16 are a whole group in bounds, tokens j0..j0 + kk <= t, table
            // entries for b < nb, k < kk written above; this function's features.
            let v: [__m512; 2] = unsafe {
                match (KIND, kk) {
                    (Q4_1, 1) => {
                        let [a] = tile_q4_1::<1>(grp, [xs(0)], nb, dsp);
                        [a, a]
                    }
                    (Q4_1, _) => tile_q4_1::<2>(grp, [xs(0), xs(1)], nb, dsp),
                    (Q5_0, 1) => {
                        let [a] = tile_q5::<false, 1>(grp, [xs(0)], nb, dsp, cyp);
                        [a, a]
                    }
                    (Q5_0, _) => tile_q5::<false, 2>(grp, [xs(0), xs(1)], nb, dsp, cyp),
                    (_, 1) => {
                        let [a] = tile_q5::<true, 1>(grp, [xs(0)], nb, dsp, cyp);
                        [a, a]
                    }
                    (_, _) => tile_q5::<true, 2>(grp, [xs(0), xs(1)], nb, dsp, cyp),
                }
            };
            for (k, v) in v.iter().enumerate().take(kk) {
                // SAFETY: (j0 + k) * rows + g + 16 <= t * rows = out.len(); storeu accepts any
                // alignment.
                unsafe { _mm512_storeu_ps(out.as_mut_ptr().add((j0 + k) * rows + g), *v) };
            }
            g += PACK_ROWS;
        }
    });
}
