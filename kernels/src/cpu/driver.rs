//! The loops that every ISA's kernels share, so that an ISA module holds only its tile
//! arithmetic and its registers:
//!
//! - packed kernels ([`crate::packed`] layouts): row panels sized to stay in L2 with token tiles
//!   inside each ([`panels_x_tiles`]), and the Q4_0 driver that builds a chunk's per-block scale
//!   tables, then per 16-row group loads (or zeroes) the partial sums, runs the ISA's tile and
//!   stores them ([`q4_0_tokens`], registers through [`GroupLanes`]);
//! - row-major kernels: each weight row against every token, four at a time ([`rows_x_tokens`],
//!   through [`crate::cpu::matmul_body`]);
//! - the entry of both families ([`product_with`]): the shape check, then one call of the ISA's
//!   kernel for the type, so each ISA's `matmul` / `matmul_packed` is its type -> kernel table.
//!
//! Everything here is `#[inline(always)]` generic code: it is monomorphised inside the caller's
//! `#[target_feature]` function, and the tile closures defined there inherit its features, so the
//! intrinsics of a tile still inline into code compiled for that ISA.

use crate::dispatch::check_matmul;
use crate::packed::{check_matmul_packed, q8_0_scale_and_sum, PACK_ROWS};
use crate::QuantType;

/// Bytes of one Q8_0 activation block.
const XB: usize = 34;

/// A product kernel over raw buffers, `f(out, w, rb, rows, x, stride, t, n)`: `w` holds `rows`
/// rows of `rb` bytes (`n / QK` blocks each), `x` holds `t` activation rows `stride` bytes apart,
/// `out.len() == t * rows`; the CPU has the features the kernel is compiled with.
pub(crate) type ProductFn =
    unsafe fn(&mut [f32], *const u8, usize, usize, *const u8, usize, usize, usize);

/// [`crate::Kernels::matmul_packed`] (`PACKED`) or [`crate::Kernels::matmul`] by `kernel`, the
/// ISA's kernel of that family for `ty`: the shapes checked ([`check_matmul_packed`] /
/// [`check_matmul`], which panic on a mismatch), then one call.
///
/// # Safety
/// `kernel` computes the product of `ty` (packed when `PACKED`) under [`ProductFn`]'s contract
/// (packed, for all but Q4_0, it may rely on rows of at most [`crate::packed::Q8_0_MAX_BLOCKS`]
/// blocks, which `packable` bounds) and the CPU has its features.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
#[track_caller]
pub(crate) unsafe fn product_with<const PACKED: bool>(
    kernel: ProductFn,
    ty: QuantType,
    out: &mut [f32],
    w: &[u8],
    rows: usize,
    x: &[u8],
    stride: usize,
    t: usize,
    n: usize,
) {
    let (o, wl, xl) = (out.len(), w.len(), x.len());
    let rb = if PACKED {
        check_matmul_packed(ty, o, wl, rows, xl, stride, t, n)
    } else {
        check_matmul(ty, o, wl, rows, xl, stride, t, n)
    };
    // SAFETY: the check established rows * rb bytes of W (packed: a packable matrix of `ty`, rows
    // a multiple of 16, all but Q4_0 of at most Q8_0_MAX_BLOCKS blocks per row), t activation rows
    // of n elements of its activation type `stride` bytes apart in x, and out.len() == t * rows;
    // the CPU has the kernel's features (caller).
    unsafe { kernel(out, w.as_ptr(), rb, rows, x.as_ptr(), stride, t, n) }
}

/// Rows per panel: as many whole groups of [`PACK_ROWS`] rows of `rb` bytes as fit in
/// `panel_bytes`, at least one.
#[inline(always)]
fn panel_rows(rb: usize, panel_bytes: usize) -> usize {
    ((panel_bytes / rb.max(1)) / PACK_ROWS * PACK_ROWS).max(PACK_ROWS)
}

/// Calls `f((r0, r1), j0, k)` for each row panel `r0..r1` (multiples of [`PACK_ROWS`] within
/// `rows`, about `panel_bytes` of rows of `rb` bytes) and, inside it, each tile of tokens
/// `j0..j0 + k` (`k = min(tt, t - j0)`, so `1 <= k <= tt`) of `0..t`: each panel is revisited
/// once per tile while it stays in cache.
#[inline(always)]
pub(crate) fn panels_x_tiles(
    (rows, rb, panel_bytes): (usize, usize, usize),
    t: usize,
    tt: usize,
    mut f: impl FnMut((usize, usize), usize, usize),
) {
    debug_assert_eq!(rows % PACK_ROWS, 0);
    debug_assert!(tt > 0);
    let panel = panel_rows(rb, panel_bytes);
    let mut r0 = 0;
    while r0 < rows {
        let rr = (r0, (r0 + panel).min(rows));
        let mut j0 = 0;
        while j0 < t {
            let k = (t - j0).min(tt);
            f(rr, j0, k);
            j0 += k;
        }
        r0 = rr.1;
    }
}

/// One token's f32 sums for one 16-row group, in the ISA's registers (one `__m512`, two `__m256`,
/// four `float32x4_t`).
pub(crate) trait GroupLanes: Copy {
    /// All zero.
    ///
    /// # Safety
    /// The CPU has the implementor's features (callers inline it into a function that has them).
    unsafe fn zero() -> Self;
    /// The 16 floats at `p`.
    ///
    /// # Safety
    /// 16 readable floats at `p` (any alignment); the implementor's features.
    unsafe fn load(p: *const f32) -> Self;
    /// Writes the 16 sums to `p`.
    ///
    /// # Safety
    /// 16 writable floats at `p` (any alignment); the implementor's features.
    unsafe fn store(self, p: *mut f32);
    /// The scale and the code sum of the Q8_0 block at `xb` ([`q8_0_scale_and_sum`], which is
    /// the default; an ISA overrides it with its own instructions).
    ///
    /// # Safety
    /// 34 readable bytes at `xb`; the implementor's features.
    #[inline(always)]
    unsafe fn scale_and_sum(xb: *const u8) -> (f32, i32) {
        // SAFETY: the caller's guarantee.
        unsafe { q8_0_scale_and_sum(xb) }
    }
}

/// Packed Q4_0 x Q8_0 tokens `j0..j0 + K` against the row groups `r0..r1`: blocks in chunks of
/// `TAB / TT` with the scale tables rebuilt per chunk, and per group the partial sums carried in
/// `out` from one chunk to the next: `acc = tile(group, xs, (b0, b1), (dx, cy), acc)` with `group`
/// the group's first group-block, `xs[k]` token `j0 + k`'s activation row, and for the chunk's
/// blocks `b0..b1`: `dx[(b - b0) * TT + k]` token `k`'s f32 scale of block `b` and `cy[..]` (same
/// index, written only when `CY`) its `-8 * sum(y)`.
///
/// # Safety
/// `w` holds `rows` (a multiple of 16) packed Q4_0 rows of `rb` bytes (`nb` blocks each), `x`
/// holds rows `j0..j0 + K` of `nb` Q8_0 blocks `stride` bytes apart, `out.len() >= (j0 + K) *
/// rows`; `r0 <= r1 <= rows` multiples of 16; `K <= TT`; the CPU has `L`'s features; `tile` is
/// sound for these arguments (it may read the tables' entries of the chunk for `k < K`).
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(crate) unsafe fn q4_0_tokens<
    L: GroupLanes,
    const K: usize,
    const TT: usize,
    const TAB: usize,
    const CY: bool,
>(
    out: &mut [f32],
    (w, rb, rows): (*const u8, usize, usize),
    (r0, r1): (usize, usize),
    (x, stride, j0): (*const u8, usize, usize),
    nb: usize,
    mut tile: impl FnMut(
        *const u8,
        [*const u8; K],
        (usize, usize),
        (*const f32, *const i32),
        [L; K],
    ) -> [L; K],
) {
    debug_assert!(K <= TT && TT <= TAB);
    let chunk = TAB / TT;
    let xs: [*const u8; K] = core::array::from_fn(|k| x.wrapping_add((j0 + k) * stride));
    // Only the entries of the current chunk are read, each after it is written.
    let mut dx = [core::mem::MaybeUninit::<f32>::uninit(); TAB];
    let mut cy = [core::mem::MaybeUninit::<i32>::uninit(); TAB];
    let mut b0 = 0;
    while b0 < nb {
        let b1 = (b0 + chunk).min(nb);
        for b in b0..b1 {
            for (k, xk) in xs.iter().enumerate() {
                // SAFETY: block b < nb of token j0 + k is in bounds (caller).
                let (d, s) = unsafe { L::scale_and_sum(xk.add(b * XB)) };
                dx[(b - b0) * TT + k].write(d);
                if CY {
                    cy[(b - b0) * TT + k].write(-8 * s);
                }
            }
        }
        let tables = (dx.as_ptr().cast::<f32>(), cy.as_ptr().cast::<i32>());
        let mut g = r0;
        while g < r1 {
            let at = |k: usize| (j0 + k) * rows + g;
            let mut acc: [L; K] = if b0 > 0 {
                // SAFETY: at(k) + 16 <= (j0 + K) * rows <= out.len() (caller: g + 16 <= rows);
                // the sums of the previous chunk were stored there; `L`'s features (caller).
                core::array::from_fn(|k| unsafe { L::load(out.as_ptr().add(at(k))) })
            } else {
                // SAFETY: `L`'s features (caller).
                core::array::from_fn(|_| unsafe { L::zero() })
            };
            acc = tile(w.wrapping_add(g * rb), xs, (b0, b1), tables, acc);
            for (k, a) in acc.into_iter().enumerate() {
                // SAFETY: as for the load above.
                unsafe { a.store(out.as_mut_ptr().add(at(k))) };
            }
            g += PACK_ROWS;
        }
        b0 = b1;
    }
}

/// Row-major weights x tokens: `out[j * rows + r] = dot(W[r], X[j])` with each weight row dotted
/// with every token while it is hot in L1, four tokens per `four(w_r, [x_j, .., x_j+3])` call and
/// the last `t % 4` by `one(w_r, [x_j])` (the ISA kernel's `::<4>` and `::<1>` instances, which
/// run the same operations per token, so the split does not change any bit). Used through
/// [`crate::cpu::matmul_body`].
///
/// # Safety
/// `w` holds `rows` rows of `rb` bytes, `x` holds `t` activation rows `stride` bytes apart,
/// `out.len() == t * rows`, and `four` / `one` are sound for any row `w_r` and tokens `x_j` of
/// these (the CPU has the kernel's features).
#[inline(always)]
pub(crate) unsafe fn rows_x_tokens(
    out: &mut [f32],
    (w, rb, rows): (*const u8, usize, usize),
    (x, stride, t): (*const u8, usize, usize),
    mut four: impl FnMut(*const u8, [*const u8; 4]) -> [f32; 4],
    mut one: impl FnMut(*const u8, [*const u8; 1]) -> [f32; 1],
) {
    debug_assert_eq!(out.len(), t * rows);
    for r in 0..rows {
        // In bounds by the caller's guarantees (r < rows, j < t); wrapping_add keeps the
        // pointer arithmetic itself safe.
        let wr = w.wrapping_add(r * rb);
        let xrow = |j: usize| x.wrapping_add(j * stride);
        let mut j = 0;
        while j + 4 <= t {
            let v = four(wr, [xrow(j), xrow(j + 1), xrow(j + 2), xrow(j + 3)]);
            for (k, v) in v.into_iter().enumerate() {
                out[(j + k) * rows + r] = v;
            }
            j += 4;
        }
        while j < t {
            let [v] = one(wr, [xrow(j)]);
            out[j * rows + r] = v;
            j += 1;
        }
    }
}
