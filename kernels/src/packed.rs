//! Interleaved ("packed") weight layouts, made once when a model is loaded, for kernels that compute
//! one output *per lane*: each 32-bit lane of a 512-bit register holds one weight row, so a block's
//! integer dot product for 16 rows is 8 `vpdpbusd` and its scaling one multiply and one FMA for all
//! 16 rows (the row-major layout needs those per row). llama.cpp repacks Q4_0 the same way at load
//! (its `q4_0_8x8` layout); this is ingot's own layout and arithmetic, defined here.
//!
//! # `Q4_0x16`: Q4_0 weights, 16 rows interleaved
//!
//! Rows are taken in groups of [`PACK_ROWS`] (the row count must be a multiple of it). A group holds
//! its rows' `n / 32` blocks in order, each group-block 288 bytes, exactly the bytes of the 16 Q4_0
//! blocks it replaces, so a packed matrix is as large as the original and rows `16g..16g + 16` sit at
//! the same byte offset `16g * row_bytes`:
//!
//! ```text
//! bytes   0..32    d of rows 0..16 (f16 each, row order)
//! bytes  32..288   four 64-byte chunks c = 0..4; in chunk c, bytes 4r..4r + 4 are
//!                  qs[4c..4c + 4] of row r: low nibbles = codes 4c..4c + 4, high nibbles =
//!                  codes 16 + 4c..16 + 4c + 4 (Q4_0's own nibble order)
//! ```
//!
//! # `Q8_0x16`: Q8_0 weights, 16 rows interleaved
//!
//! The same with Q8_0's 32 one-byte codes: a group-block is 544 bytes (16 x 34), the 16 scales
//! then eight 64-byte chunks, chunk `c` holding `qs[4c..4c + 4]` of row `r` at bytes `4r..4r + 4`.
//!
//! # `Q4_1x16`: Q4_1 weights, 16 rows interleaved
//!
//! As `Q4_0x16` with the 16 minimums after the 16 scales: a group-block is 320 bytes (16 x 20),
//! `d` of rows 0..16 at bytes 0..32, `m` at 32..64, then the four 64-byte chunks of nibbles.
//! Activations are Q8_1 (`d`, `s = d * sum(y)`, 32 codes), as for the row-major Q4_1 kernels.
//!
//! # `Q5_0x16` and `Q5_1x16`: Q5_0 and Q5_1 weights, 16 rows interleaved
//!
//! The per-row fields of the 16 rows side by side in block order, then the four 64-byte chunks
//! of nibbles as in `Q4_0x16`: Q5_0 (352 bytes, 16 x 22) `d` at 0..32, `qh` (u32 each) at
//! 32..96, nibbles at 96..352; Q5_1 (384 bytes, 16 x 24) `d` at 0..32, `m` at 32..64, `qh` at
//! 64..128, nibbles at 128..384. Code `i` of a row is its nibble (low nibbles codes 0..16, high
//! nibbles 16..32) plus bit `i` of its `qh` as bit 4; Q5_1 takes Q8_1 activations.
//!
//! # Arithmetic (every path, bitwise)
//!
//! **Q4_0**: `out[j][r] = acc` after, for each block `b` in order starting from `acc = 0`:
//! `acc = fma(sumi_b as f32, d_w * d_x, acc)`, with `sumi_b = sum((q - 8) * y)` exact in `i32`
//! and `d_w * d_x` one rounded f32 product: llama.cpp's `q4_0_8x8` arithmetic, so its logits and
//! ingot's agree bit for bit.
//!
//! **Q8_0**: ggml's x86 `vec_dot_q8_0_q8_0` (and tinyBLAS's Q8_0 product, the same arithmetic),
//! which llama.cpp does not repack on x86 but whose order the packed kernels keep: eight lane sums
//! `acc[l]` (`l = 0..8`, the 4-byte chunk `c = l` of each block) each updated per block as
//! `acc[l] = fma(sumi_bl as f32, d_w * d_x, acc[l])` with `sumi_bl = sum(w * y)` over the chunk's
//! four codes, then `((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] +
//! acc[7]))` (`hsum_float_8`). So packed Q8_0 equals the row-major AVX2/AVX-512 `vec_dot` bit for
//! bit, and llama.cpp's Q8_0 logits too. Rows longer than [`Q8_0_MAX_BLOCKS`] blocks are not
//! packed (the kernels keep a row's eight lane sums in registers for the whole row).
//!
//! **Q4_1**: ggml's x86 `vec_dot_q4_1_q8_1`, the same eight lane sums over the unsigned codes
//! (`w` in 0..=15, lane `l` the codes `4l..4l + 4`, i.e. the low nibbles of chunk `l` for
//! `l < 4` and the high nibbles of chunk `l - 4` after), plus `summs = fma(m_w, s_x, summs)` per
//! block; the result is `hsum_float_8(acc) + summs`. Bit for bit the row-major AVX-512 Q4_1
//! product (and llama.cpp's). Rows of at most [`Q8_0_MAX_BLOCKS`] blocks, as Q8_0.
//!
//! **Q5_0** and **Q5_1**: ggml's x86 `vec_dot_q5_0_q8_0` / `vec_dot_q5_1_q8_1`, the Q8_0 and
//! Q4_1 arithmetic over the 5-bit codes (Q5_0: `q - 16`, lane `l` the codes `4l..4l + 4`;
//! Q5_1: `q` plus `summs`). The AVX-512 and AVX2 paths pack them (their row-major products have
//! this order), the NEON dotprod path in its own order (below).
//!
//! **aarch64 with dotprod** ([`LaneOrder::Four`]): llama.cpp's NEON order cannot be checked here,
//! so the NEON packed Q8_0, Q4_1, Q5_0 and Q5_1 kernels keep the order of ingot's own aarch64
//! row-major dotprod kernels instead, whose `SDOT` lanes hold four lane sums per row: lane `l`
//! (`l = 0..4`) sums, exactly in `i32`, the codes `4l..4l + 4` and `16 + 4l..16 + 4l + 4` (Q8_0:
//! chunks `l` and `l + 4`; 4- and 5-bit codes: the low and the high nibbles of chunk `l`), then
//! `acc[l] = fma(sumi_bl as f32, d_w * d_x, acc[l])` per block, the result `(acc[0] + acc[1]) +
//! (acc[2] + acc[3])` (`vaddvq_f32`), and Q4_1 / Q5_1 add `summs`, summed as `summs = summs +
//! m_w * s_x` (a rounded product, no FMA). So on aarch64 too the packed product equals the row-major one bit for bit.
//!
//! Which order a path computes for a type is [`crate::Kernels::packed_order`]:
//! [`LaneOrder::Four`] for the types the NEON dotprod path packs (all but Q4_0, whose order is
//! the same in both), [`LaneOrder::Eight`] everywhere else (scalar, NEON without dotprod, AVX2,
//! AVX-512). Within one order every ISA, batch size and thread count agrees bit
//! for bit, and a path packs Q8_0, Q4_1, Q5_0 or Q5_1 ([`crate::Kernels::packs`]) only where
//! its order is its row-major product's.

#[cfg(not(feature = "std"))]
use crate::math::FloatExt;
use half::f16;

use crate::blocks::QK;
use crate::QuantType;

/// The float order of a packed Q8_0 or Q4_1 product (module docs); Q4_0 has one order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LaneOrder {
    /// ggml's x86 `vec_dot_q8_0_q8_0` / `vec_dot_q4_1_q8_1`: eight lane sums per row (one per
    /// 4-byte chunk), `hsum_float_8`, `summs` by FMA. Scalar, AVX2, AVX-512, NEON without dotprod.
    Eight,
    /// ingot's aarch64 dotprod row-major order: four `SDOT` lane sums per row, `vaddvq_f32`,
    /// `summs` by a rounded product and an add. The NEON dotprod path.
    Four,
}

/// Rows per interleaved group.
pub const PACK_ROWS: usize = 16;

/// Most blocks per row of a packable Q8_0 or Q4_1 matrix (16384 elements): the kernels'
/// per-block scale and correction tables for a whole row stay on the stack.
pub const Q8_0_MAX_BLOCKS: usize = 512;

/// Bytes of one Q8_0 (activation or weight) block.
const Q8_0_BYTES: usize = 34;

/// Block bytes and 4-byte code chunks per block of a packable type.
fn geometry(ty: QuantType) -> Option<(usize, usize)> {
    match ty {
        QuantType::Q4_0 => Some((18, 4)),
        QuantType::Q8_0 => Some((34, 8)),
        QuantType::Q4_1 => Some((20, 4)),
        QuantType::Q5_0 => Some((22, 4)),
        QuantType::Q5_1 => Some((24, 4)),
        _ => None,
    }
}

/// Byte sizes of the per-row fields before the codes, in block order (`d`; `d`, `m`; `d`, `qh`;
/// `d`, `m`, `qh`): a group-block holds field `f` of its 16 rows side by side, then the code
/// chunks.
fn fields(ty: QuantType) -> &'static [usize] {
    match ty {
        QuantType::Q4_1 => &[2, 2],
        QuantType::Q5_0 => &[2, 4],
        QuantType::Q5_1 => &[2, 2, 4],
        _ => &[2],
    }
}

/// Bytes of a block's fields before its codes: a group-block's code chunks start at 16 times
/// this.
fn header_bytes(ty: QuantType) -> usize {
    fields(ty).iter().sum()
}

/// Whether `ty`'s products take Q8_1 activations (`d`, `s`, codes) rather than Q8_0.
fn q8_1_activations(ty: QuantType) -> bool {
    matches!(ty, QuantType::Q4_1 | QuantType::Q5_1)
}

/// Bytes of one activation block of `ty`'s packed product: Q8_1 for Q4_1 and Q5_1, else Q8_0.
pub(crate) fn act_block_bytes(ty: QuantType) -> usize {
    if q8_1_activations(ty) {
        36
    } else {
        Q8_0_BYTES
    }
}

/// Whether a `rows x n` matrix of `ty` has a packed layout: Q4_0, Q8_0, Q4_1, Q5_0 or Q5_1 with a
/// row count that is a non-zero multiple of [`PACK_ROWS`] and whole blocks per row (for all but
/// Q4_0 at most [`Q8_0_MAX_BLOCKS`]).
pub fn packable(ty: QuantType, rows: usize, n: usize) -> bool {
    geometry(ty).is_some()
        && rows > 0
        && rows.is_multiple_of(PACK_ROWS)
        && n > 0
        && n.is_multiple_of(QK)
        && (ty == QuantType::Q4_0 || n / QK <= Q8_0_MAX_BLOCKS)
}

fn check(ty: QuantType, rows: usize, n: usize, a: usize, b: usize) {
    assert!(
        packable(ty, rows, n),
        "pack: {} x {n} {} has no packed layout",
        rows,
        ty.name()
    );
    let len = rows * (n / QK) * geometry(ty).map_or(0, |g| g.0);
    assert!(
        a == len && b == len,
        "pack: buffers must hold {len} bytes ({rows} x {n} {}), got {a} and {b}",
        ty.name()
    );
}

/// Rewrites `src` (`rows` rows of `n` elements of `ty`, row-major) into the packed layout in
/// `dst`, which has the same length.
///
/// # Panics
/// If the matrix is not [`packable`] or either buffer's length is not the matrix's size.
pub fn pack(ty: QuantType, src: &[u8], rows: usize, n: usize, dst: &mut [u8]) {
    check(ty, rows, n, src.len(), dst.len());
    let (bb, chunks) = geometry(ty).expect("checked");
    let hb = header_bytes(ty);
    let nb = n / QK;
    let rb = nb * bb;
    for (gsrc, gdst) in src
        .chunks_exact(PACK_ROWS * rb)
        .zip(dst.chunks_exact_mut(PACK_ROWS * rb))
    {
        for b in 0..nb {
            let out = &mut gdst[b * PACK_ROWS * bb..][..PACK_ROWS * bb];
            for r in 0..PACK_ROWS {
                let blk = &gsrc[r * rb + b * bb..][..bb];
                let mut fo = 0;
                for &sz in fields(ty) {
                    out[16 * fo + sz * r..][..sz].copy_from_slice(&blk[fo..fo + sz]);
                    fo += sz;
                }
                for c in 0..chunks {
                    let at = 16 * hb + 64 * c + 4 * r;
                    out[at..at + 4].copy_from_slice(&blk[hb + 4 * c..][..4]);
                }
            }
        }
    }
}

/// The inverse of [`pack`]: `src` packed, `dst` row-major.
///
/// # Panics
/// As [`pack`].
pub fn unpack(ty: QuantType, src: &[u8], rows: usize, n: usize, dst: &mut [u8]) {
    check(ty, rows, n, src.len(), dst.len());
    let (bb, chunks) = geometry(ty).expect("checked");
    let hb = header_bytes(ty);
    let nb = n / QK;
    let rb = nb * bb;
    for (gsrc, gdst) in src
        .chunks_exact(PACK_ROWS * rb)
        .zip(dst.chunks_exact_mut(PACK_ROWS * rb))
    {
        for b in 0..nb {
            let inp = &gsrc[b * PACK_ROWS * bb..][..PACK_ROWS * bb];
            for r in 0..PACK_ROWS {
                let blk = &mut gdst[r * rb + b * bb..][..bb];
                let mut fo = 0;
                for &sz in fields(ty) {
                    blk[fo..fo + sz].copy_from_slice(&inp[16 * fo + sz * r..][..sz]);
                    fo += sz;
                }
                for c in 0..chunks {
                    let at = 16 * hb + 64 * c + 4 * r;
                    blk[hb + 4 * c..][..4].copy_from_slice(&inp[at..at + 4]);
                }
            }
        }
    }
}

/// Row `r` of a packed matrix (`src`, `rows` rows of `n` elements of `ty`) in the file's
/// row-major bytes, into `dst` (one row): what [`unpack`] writes for that row.
///
/// # Panics
/// As [`pack`] for the matrix, or if `r >= rows` or `dst` is not one row.
pub fn unpack_row(ty: QuantType, src: &[u8], rows: usize, n: usize, r: usize, dst: &mut [u8]) {
    check(ty, rows, n, src.len(), src.len());
    assert!(r < rows, "unpack_row: row {r} of {rows}");
    let (bb, chunks) = geometry(ty).expect("checked");
    let hb = header_bytes(ty);
    let nb = n / QK;
    let rb = nb * bb;
    assert_eq!(
        dst.len(),
        rb,
        "unpack_row: dst must be one row of {rb} bytes"
    );
    let (g, rr) = (r / PACK_ROWS, r % PACK_ROWS);
    let gsrc = &src[g * PACK_ROWS * rb..][..PACK_ROWS * rb];
    for (b, blk) in dst.chunks_exact_mut(bb).enumerate() {
        let inp = &gsrc[b * PACK_ROWS * bb..][..PACK_ROWS * bb];
        let mut fo = 0;
        for &sz in fields(ty) {
            blk[fo..fo + sz].copy_from_slice(&inp[16 * fo + sz * rr..][..sz]);
            fo += sz;
        }
        for c in 0..chunks {
            let at = 16 * hb + 64 * c + 4 * rr;
            blk[hb + 4 * c..][..4].copy_from_slice(&inp[at..at + 4]);
        }
    }
}

/// The f32 scale and the sum of the 32 signed codes of the Q8_0 activation block at `xb`: the
/// per-(token, block) tables every packed kernel builds once per token group.
///
/// # Safety
/// 34 readable bytes at `xb`.
#[inline]
#[cfg_attr(
    not(any(target_arch = "x86_64", target_arch = "aarch64")),
    allow(dead_code)
)]
pub(crate) unsafe fn q8_0_scale_and_sum(xb: *const u8) -> (f32, i32) {
    // SAFETY: 34 readable bytes at xb (caller); u8 needs no alignment.
    let b = unsafe { core::slice::from_raw_parts(xb, Q8_0_BYTES) };
    let d = f16::from_le_bytes([b[0], b[1]]).to_f32();
    (d, b[2..].iter().map(|&v| i32::from(v as i8)).sum())
}

/// Checks a packed product's arguments; returns the packed matrix's bytes per row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_matmul_packed(
    ty: QuantType,
    out: usize,
    w: usize,
    rows: usize,
    x: usize,
    stride: usize,
    t: usize,
    n: usize,
) -> usize {
    assert!(
        packable(ty, rows, n),
        "matmul_packed: {rows} x {n} {} has no packed layout",
        ty.name()
    );
    let rb = (n / QK) * geometry(ty).expect("packable").0;
    assert_eq!(w, rows * rb, "matmul_packed: w must be rows x row_bytes(n)");
    assert_eq!(out, t * rows, "matmul_packed: out must be (t, rows)");
    let arb = (n / QK) * act_block_bytes(ty);
    if t > 0 {
        assert!(
            stride >= arb,
            "matmul_packed: activation stride below a row"
        );
        assert!(
            (t - 1)
                .checked_mul(stride)
                .and_then(|v| v.checked_add(arb))
                .is_some_and(|need| x >= need),
            "matmul_packed: activations too short"
        );
    }
    rb
}

/// The scalar reference of the packed product: `out[j * rows + r]` for packed `w` (`rows x n`,
/// [`packable`]) and `t` activation rows (Q8_0, or Q8_1 for Q4_1) `stride` bytes apart in `x`,
/// in [`LaneOrder::Eight`] (see the module docs for the arithmetic every path reproduces).
///
/// # Panics
/// If the matrix is not packable or a buffer is too short for the shapes.
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed_reference(
    ty: QuantType,
    out: &mut [f32],
    w: &[u8],
    rows: usize,
    x: &[u8],
    stride: usize,
    t: usize,
    n: usize,
) {
    matmul_packed_reference_in(LaneOrder::Eight, ty, out, w, rows, x, stride, t, n);
}

/// [`matmul_packed_reference`] in the float order `order` (which only Q8_0 and Q4_1 have).
///
/// # Panics
/// As [`matmul_packed_reference`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_packed_reference_in(
    order: LaneOrder,
    ty: QuantType,
    out: &mut [f32],
    w: &[u8],
    rows: usize,
    x: &[u8],
    stride: usize,
    t: usize,
    n: usize,
) {
    let rb = check_matmul_packed(ty, out.len(), w.len(), rows, x.len(), stride, t, n);
    let (bb, _) = geometry(ty).expect("packable");
    let xbb = act_block_bytes(ty);
    let nb = n / QK;
    for (g, grp) in w.chunks_exact(PACK_ROWS * rb).enumerate() {
        for r in 0..PACK_ROWS {
            for j in 0..t {
                let xr = &x[j * stride..][..nb * xbb];
                let mut acc = 0f32;
                let mut lanes = [0f32; 8];
                let mut summs = 0f32;
                for b in 0..nb {
                    let gb = &grp[b * PACK_ROWS * bb..][..PACK_ROWS * bb];
                    let xb = &xr[b * xbb..][..xbb];
                    let f16_at = |i: usize| f16::from_le_bytes([gb[i], gb[i + 1]]).to_f32();
                    let dw = f16_at(2 * r);
                    let dx = f16::from_le_bytes([xb[0], xb[1]]).to_f32();
                    let y = |i: usize| i32::from(xb[xbb - 32 + i] as i8);
                    let code = |i: usize| code_at(ty, gb, r, i);
                    if q8_1_activations(ty) {
                        let mw = f16_at(32 + 2 * r);
                        let sx = f16::from_le_bytes([xb[2], xb[3]]).to_f32();
                        summs = match order {
                            LaneOrder::Eight => mw.mul_add(sx, summs),
                            LaneOrder::Four => summs + mw * sx,
                        };
                    }
                    let p = dw * dx;
                    if ty == QuantType::Q4_0 {
                        let sumi: i32 = (0..QK).map(|i| code(i) * y(i)).sum();
                        acc = (sumi as f32).mul_add(p, acc);
                        continue;
                    }
                    match order {
                        // Lane l: codes 4l..4l + 4.
                        LaneOrder::Eight => {
                            for (l, lane) in lanes.iter_mut().enumerate() {
                                let sumi: i32 = (4 * l..4 * l + 4).map(|i| code(i) * y(i)).sum();
                                *lane = (sumi as f32).mul_add(p, *lane);
                            }
                        }
                        // Lane l: codes 4l..4l + 4 and 16 + 4l..16 + 4l + 4.
                        LaneOrder::Four => {
                            for (l, lane) in lanes[..4].iter_mut().enumerate() {
                                let sumi: i32 = (4 * l..4 * l + 4)
                                    .chain(16 + 4 * l..16 + 4 * l + 4)
                                    .map(|i| code(i) * y(i))
                                    .sum();
                                *lane = (sumi as f32).mul_add(p, *lane);
                            }
                        }
                    }
                }
                if ty != QuantType::Q4_0 {
                    acc = match order {
                        LaneOrder::Eight => hsum8(&lanes),
                        LaneOrder::Four => (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]),
                    };
                    if q8_1_activations(ty) {
                        acc += summs;
                    }
                }
                out[j * rows + g * PACK_ROWS + r] = acc;
            }
        }
    }
}

/// The value of code `i` (element `i` of the block, `0..32`) of row `r` in the group-block `gb`
/// of `ty`: `q - 8` (Q4_0), `q` (Q4_1, Q5_1), `q - 16` (Q5_0), the signed byte (Q8_0), where a
/// 4-bit code is the low nibble of byte `i % 16` of the row's codes for `i < 16`, else the high
/// nibble, and a 5-bit code adds bit `i` of the row's `qh` as bit 4.
fn code_at(ty: QuantType, gb: &[u8], r: usize, i: usize) -> i32 {
    let hb = header_bytes(ty);
    let byte = |k: usize| gb[16 * hb + 64 * (k / 4) + 4 * r + k % 4];
    if ty == QuantType::Q8_0 {
        return i32::from(byte(i) as i8);
    }
    let nib = i32::from(if i < 16 {
        byte(i) & 0x0f
    } else {
        byte(i - 16) >> 4
    });
    let high = |qh_at: usize| {
        let qh = u32::from_le_bytes(gb[qh_at + 4 * r..][..4].try_into().expect("4 bytes"));
        (((qh >> i) & 1) << 4) as i32
    };
    match ty {
        QuantType::Q4_0 => nib - 8,
        QuantType::Q5_0 => (nib | high(32)) - 16,
        QuantType::Q5_1 => nib | high(64),
        _ => nib,
    }
}

/// ggml's `hsum_float_8`: `((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7))`.
fn hsum8(l: &[f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}
