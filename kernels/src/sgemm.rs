//! f32 matrix products for the trainer: `C (M, N) = A (M, K) · B (K, N)`, or `C += A · B`, with each
//! operand given by a row and a column stride ([`MatRef`]), so a transposed operand is just other
//! strides (`x · Wᵀ`, `dY · W` and `dYᵀ · X` all come from row-major buffers without a copy of ours).
//! [`Kernels::sgemm`] is the entry point; this module owns the blocking, the packing and the scalar
//! micro-kernel, `cpu/x86_64/{avx512,avx2}_sgemm.rs` the SIMD micro-kernels.
//!
//! Design (BLIS, Van Zee & van de Geijn 2015; the `gemm` and `matrixmultiply` crates): `K` is cut into
//! blocks of [`KC`]; for each block, `A` is cut into `MR`-row micro-panels and `B` into `NR`-column
//! micro-panels, and a register-tiled micro-kernel computes each `MR x NR` tile of `C` from one A and
//! one B micro-panel, keeping the whole tile in registers. Panels the micro-kernel can read in place
//! (whole panels of a row- or column-major `A`, of a `B` with contiguous rows) are not copied; the
//! others (edges, zero-padded; a transposed `B`) are packed into reusable scratch
//! ([`SgemmScratch`]) with step `p`'s `MR`/`NR` values contiguous. (For the trainer's small matrices
//! packing `A` cost more than it saved.) Work
//! items (packing panels, then blocks of tiles) are taken from an atomic counter by the pool's threads.
//! As many `K` blocks as fit [`PACK_BUDGET`] are packed in one phase and each compute item runs its
//! tiles through all of them, so a long reduction (a weight gradient's `K = B*T`) costs two barriers
//! of the pool per group rather than per block; the tiles are grouped into at least four items per
//! thread, so a small product still splits evenly over two threads.
//!
//! Numerics, the same on every path: each element of `C` is **one fused multiply-add chain over `k` in
//! increasing order**, `c = fma(a[i][k], b[k][j], c)`, starting from 0 (or from `C`'s value when
//! accumulating). Cutting `K` into blocks only stores and reloads the running value, which is exact,
//! so the result depends on neither the tiling, nor the thread count, nor the ISA: every path is
//! bitwise equal to [`sgemm_reference`] (`tests/sgemm.rs`).
//!
//! Shapes: `M` rows of `A` and `C`, `N` columns of `B` and `C`, `K` the reduction.

#[cfg(not(feature = "std"))]
use crate::math::FloatExt;
use crate::prelude::*;
use core::sync::atomic::{AtomicUsize, Ordering};

use crate::ThreadPool;

/// Depth of one block: a `KC x NR` B micro-panel (16 KiB at `NR = 32`) stays in the 32 KiB L1 while
/// the A micro-panels of a work item stream past it (256 measured slower on Zen 4: 32 KiB panels).
pub const KC: usize = 128;
/// Columns of `B` packed at once (bounds the scratch: `KC * NC` floats).
const NC: usize = 2048;
/// Rows of `A` packed at once (bounds the scratch: `MB * KC` floats).
const MB: usize = 1536;
/// A work item of the compute phase covers this many A micro-panels by this many B micro-panels.
const ITEM_M_PANELS: usize = 4;
const ITEM_N_PANELS: usize = 4;
/// The largest `MR`, `NR` and `MR * NR` of any micro-kernel (packing and the edge-tile buffer).
const MAX_MR: usize = 12;
const MAX_NR: usize = 32;
const MAX_TILE: usize = MAX_MR * MAX_NR;

/// A read-only matrix view: element `(r, c)` is `data[r * rs + c * cs]`. A row-major `(rows, ld)`
/// buffer is `MatRef::new(data, ld, 1)`; its transpose is `MatRef::new(data, 1, ld)`.
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    data: &'a [f32],
    rs: usize,
    cs: usize,
}

impl<'a> MatRef<'a> {
    /// The view with row stride `rs` and column stride `cs` (in elements).
    pub fn new(data: &'a [f32], rs: usize, cs: usize) -> Self {
        MatRef { data, rs, cs }
    }

    /// A row-major matrix with `ld` elements from one row to the next.
    pub fn rows(data: &'a [f32], ld: usize) -> Self {
        MatRef::new(data, ld, 1)
    }

    /// The transpose of a row-major matrix with `ld` elements per row: element `(r, c)` is
    /// `data[c * ld + r]`.
    pub fn transposed(data: &'a [f32], ld: usize) -> Self {
        MatRef::new(data, 1, ld)
    }

    #[inline(always)]
    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.rs + c * self.cs]
    }

    /// Panics unless every element of a `(rows, cols)` matrix is inside `data`.
    #[track_caller]
    fn check(&self, rows: usize, cols: usize, what: &str) {
        if rows == 0 || cols == 0 {
            return;
        }
        let last = (rows - 1)
            .checked_mul(self.rs)
            .and_then(|x| (cols - 1).checked_mul(self.cs)?.checked_add(x));
        assert!(
            last.is_some_and(|l| l < self.data.len()),
            "sgemm: {what} ({rows}, {cols}) with strides ({}, {}) needs more than {} elements",
            self.rs,
            self.cs,
            self.data.len()
        );
    }
}

/// Packing buffers of [`Kernels::sgemm`]; they grow to the largest blocks seen and are then reused,
/// so repeated products allocate nothing.
#[derive(Debug, Default)]
pub struct SgemmScratch {
    a: Vec<f32>, // (MB/MR, KC, MR) packed A micro-panels
    b: Vec<f32>, // (NC/NR, KC, NR) packed B micro-panels
}

/// Checks the shapes of a product; returns nothing, panics naming the operand that disagrees.
#[track_caller]
#[allow(clippy::too_many_arguments)]
fn check(m: usize, n: usize, k: usize, a: &MatRef<'_>, b: &MatRef<'_>, c: &[f32], ldc: usize) {
    a.check(m, k, "A");
    b.check(k, n, "B");
    if m > 0 && n > 0 {
        assert!(ldc >= n, "sgemm: ldc {ldc} < N {n}");
        let need = (m - 1).checked_mul(ldc).and_then(|x| x.checked_add(n));
        assert!(
            need.is_some_and(|need| c.len() >= need),
            "sgemm: C has {} elements, ({m}, {n}) at row stride {ldc} needs {need:?}",
            c.len()
        );
    }
}

/// The definition of correct: `C (M, N) [+]= A (M, K) · B (K, N)`, each `C[i][j]` one fused
/// multiply-add chain over `k = 0..K` in order (`C` row-major with row stride `ldc`).
///
/// # Panics
/// If an operand is too short for its shape and strides, or `ldc < N`.
#[allow(clippy::too_many_arguments)]
pub fn sgemm_reference(
    accumulate: bool,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
) {
    check(m, n, k, &a, &b, c, ldc);
    for i in 0..m {
        for j in 0..n {
            let mut acc = if accumulate { c[i * ldc + j] } else { 0.0 };
            for p in 0..k {
                acc = a.at(i, p).mul_add(b.at(p, j), acc);
            }
            c[i * ldc + j] = acc;
        }
    }
}

/// Where a micro-kernel reads its operands: `A[i][p]` at `a + i * a_rs + p * a_cs` (`i < MR`), and
/// `B[p][0..NR]` contiguous at `b + p * b_rs`. A packed A panel has `a_rs = 1, a_cs = MR`, a packed B
/// panel `b_rs = NR`; whole panels of a row- or column-major operand are read in place.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Panels {
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    pub b: *const f32,
    pub b_rs: usize,
}

/// A register-tiled micro-kernel: one `MR x NR` tile of `C`.
pub(crate) trait MicroKernel: Copy + Send + Sync {
    const MR: usize;
    const NR: usize;

    /// `C[i][j] = fma chain over p < kc of A[i][p] * B[p][j]` (operands as [`Panels`] says),
    /// starting from `C[i][j]` when `load_c`, else from 0, for `i < MR`, `j < NR`; `C[i][j]` is at
    /// `c + i * ldc + j`.
    ///
    /// # Safety
    /// Every `A[i][p]`, `B[p][j]` address above (`i < MR`, `j < NR`, `p < kc`) is valid for reads,
    /// `c` for reads and writes of `MR` rows of `NR` elements `ldc` apart, and the CPU has the
    /// implementor's target features.
    unsafe fn tile(self, kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool);
}

/// The portable micro-kernel (`f32::mul_add`: an FMA instruction on aarch64 and on x86 built with
/// `fma`, a correctly rounded library call otherwise).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scalar;

impl MicroKernel for Scalar {
    const MR: usize = 4;
    const NR: usize = 4;

    unsafe fn tile(self, kc: usize, p: Panels, c: *mut f32, ldc: usize, load_c: bool) {
        let mut acc = [[0f32; 4]; 4];
        if load_c {
            for (i, row) in acc.iter_mut().enumerate() {
                for (j, x) in row.iter_mut().enumerate() {
                    // SAFETY: i < MR, j < NR: inside the tile the caller guarantees.
                    *x = unsafe { *c.add(i * ldc + j) };
                }
            }
        }
        for k in 0..kc {
            // SAFETY: k < kc, i < MR, j < NR: addresses the caller guarantees (see `Panels`).
            let (a, b) = unsafe {
                (
                    [0, 1, 2, 3].map(|i| *p.a.add(i * p.a_rs + k * p.a_cs)),
                    [0, 1, 2, 3].map(|j| *p.b.add(k * p.b_rs + j)),
                )
            };
            for (row, &ai) in acc.iter_mut().zip(&a) {
                for (x, &bj) in row.iter_mut().zip(&b) {
                    *x = ai.mul_add(bj, *x);
                }
            }
        }
        for (i, row) in acc.iter().enumerate() {
            for (j, &x) in row.iter().enumerate() {
                // SAFETY: as for the loads of C.
                unsafe { *c.add(i * ldc + j) = x };
            }
        }
    }
}

/// `*mut f32` shared with the pool's threads; see the SAFETY comments where it is dereferenced.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: only dereferenced through disjoint ranges (one packed panel, one tile of C), each written by
// one thread, while the exclusive borrow it was made from is held across `ThreadPool::run`.
unsafe impl Send for SendPtr {}
// SAFETY: as above.
unsafe impl Sync for SendPtr {}

impl SendPtr {
    /// The pointer (a method, so closures capture the whole `Sync` wrapper, not the raw field).
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Runs `f(item)` for every `item < n_items`, each exactly once, over the pool (`None`: on the
/// calling thread).
fn par_items(pool: Option<&ThreadPool>, n_items: usize, f: impl Fn(usize) + Sync) {
    let Some(pool) = pool.filter(|p| p.n_threads() > 1 && n_items > 1) else {
        (0..n_items).for_each(f);
        return;
    };
    let next = AtomicUsize::new(0);
    pool.run(&|_, _| loop {
        let i = next.fetch_add(1, Ordering::Relaxed);
        if i >= n_items {
            break;
        }
        f(i);
    });
}

/// Packs rows `i0..i0 + mr` by columns `p0..p0 + kc` of `a` into `dst (kc, MR)`, zero rows past `mr`.
fn pack_a(
    dst: &mut [f32],
    a: &MatRef<'_>,
    i0: usize,
    mr: usize,
    p0: usize,
    kc: usize,
    big_mr: usize,
) {
    debug_assert_eq!(dst.len(), kc * big_mr);
    if mr < big_mr {
        dst.iter_mut().for_each(|x| *x = 0.0);
    }
    if a.cs == 1 {
        // Rows of A are contiguous: read the mr rows side by side, write the panel in order.
        let mut rows = [&a.data[..0]; MAX_MR];
        for (i, row) in rows.iter_mut().enumerate().take(mr) {
            *row = &a.data[(i0 + i) * a.rs + p0..][..kc];
        }
        for (p, d) in dst.chunks_exact_mut(big_mr).enumerate() {
            for (x, row) in d.iter_mut().zip(&rows[..mr]) {
                *x = row[p];
            }
        }
    } else if a.rs == 1 {
        for (p, d) in dst.chunks_exact_mut(big_mr).enumerate() {
            d[..mr].copy_from_slice(&a.data[(p0 + p) * a.cs + i0..][..mr]);
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(big_mr).enumerate() {
            for (i, x) in d[..mr].iter_mut().enumerate() {
                *x = a.at(i0 + i, p0 + p);
            }
        }
    }
}

/// Packs rows `p0..p0 + kc` by columns `j0..j0 + nr` of `b` into `dst (kc, NR)`, zero columns past
/// `nr`.
fn pack_b(
    dst: &mut [f32],
    b: &MatRef<'_>,
    p0: usize,
    kc: usize,
    j0: usize,
    nr: usize,
    big_nr: usize,
) {
    debug_assert_eq!(dst.len(), kc * big_nr);
    if nr < big_nr {
        dst.iter_mut().for_each(|x| *x = 0.0);
    }
    if b.cs == 1 {
        for (p, d) in dst.chunks_exact_mut(big_nr).enumerate() {
            d[..nr].copy_from_slice(&b.data[(p0 + p) * b.rs + j0..][..nr]);
        }
    } else if b.rs == 1 {
        // Columns of B are contiguous: read the nr columns side by side, write the panel in order.
        let mut cols = [&b.data[..0]; MAX_NR];
        for (j, col) in cols.iter_mut().enumerate().take(nr) {
            *col = &b.data[(j0 + j) * b.cs + p0..][..kc];
        }
        for (p, d) in dst.chunks_exact_mut(big_nr).enumerate() {
            for (x, col) in d.iter_mut().zip(&cols[..nr]) {
                *x = col[p];
            }
        }
    } else {
        for (p, d) in dst.chunks_exact_mut(big_nr).enumerate() {
            for (j, x) in d[..nr].iter_mut().enumerate() {
                *x = b.at(p0 + p, j0 + j);
            }
        }
    }
}

/// Whether rows `stride` floats apart fall into few L1 sets (a multiple of 2 KiB: the 12 rows of an A
/// panel, or the `KC` rows of a B panel, would share one or two sets of a 32 KiB 8-way cache and evict
/// each other every step); such operands are packed instead of read in place.
fn aliases(stride: usize) -> bool {
    stride.is_multiple_of(512)
}
/// Floats of packed panels one phase may fill, per operand (4 MiB): `K` blocks are packed together,
/// as many as fit, so a product with a long reduction runs few pack/compute phases (each phase
/// ends at a barrier of the pool) instead of two per [`KC`] block.
const PACK_BUDGET: usize = 1 << 20;

/// Panels per work item of the compute phase: [`ITEM_M_PANELS`] x [`ITEM_N_PANELS`], halved (the
/// larger side first) until there are at least four items per thread, so a small product still
/// splits evenly over the pool. Which items the tiles are grouped into changes no result: each
/// tile is computed by the same code whatever item holds it.
fn item_panels(n_apanels: usize, n_bpanels: usize, threads: usize) -> (usize, usize) {
    let (mut im, mut jn) = (ITEM_M_PANELS, ITEM_N_PANELS);
    if threads > 1 {
        while n_apanels.div_ceil(im) * n_bpanels.div_ceil(jn) < 4 * threads && (im > 1 || jn > 1) {
            if im >= jn {
                im /= 2;
            } else {
                jn /= 2;
            }
        }
    }
    (im, jn)
}

/// The blocked, packed, threaded product with micro-kernel `kern` (see the module docs). The caller
/// ([`Kernels::sgemm`]) has checked the shapes.
#[allow(clippy::too_many_arguments)]
pub(crate) fn drive<K: MicroKernel>(
    kern: K,
    pool: Option<&ThreadPool>,
    scratch: &mut SgemmScratch,
    accumulate: bool,
    m: usize,
    n: usize,
    k: usize,
    a: MatRef<'_>,
    b: MatRef<'_>,
    c: &mut [f32],
    ldc: usize,
) {
    check(m, n, k, &a, &b, c, ldc);
    let (mr, nr) = (K::MR, K::NR);
    assert!(mr <= MAX_MR && nr <= MAX_NR && MB.is_multiple_of(mr) && NC.is_multiple_of(nr));
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.chunks_mut(ldc)
                .take(m)
                .for_each(|row| row[..n].iter_mut().for_each(|x| *x = 0.0));
        }
        return;
    }
    let threads = pool.map_or(1, |p| p.n_threads());
    // Whole micro-panels of a row- or column-major A, and of a B with contiguous rows, are read in
    // place; edge panels (zero-padded) and other strides are packed.
    let a_in_place = (a.cs == 1 && !aliases(a.rs)) || (a.rs == 1 && !aliases(a.cs));
    let b_in_place = b.cs == 1 && !aliases(b.rs);
    // Packed panels: slot `(g, panel)` of K block `g` of the group holds `kcs * MR` (`kcs * NR`)
    // floats, `kcs` the longest K block; blocks of a group are `kcs * MB` (`kcs * NC`) apart at most.
    let kcs = KC.min(k);
    let (ma, nb_max) = (
        MB.min(m.next_multiple_of(mr)),
        NC.min(n.next_multiple_of(nr)),
    );
    // K blocks per group: as many as fit the budget for the operands that are packed at all
    // (when only edge panels are packed, the group's scratch is small whatever its length).
    let n_kblocks = k.div_ceil(KC);
    // Between the blocks of a group; an operand read in place packs only its edge panel (the last),
    // into slot 0.
    let a_stride = if a_in_place { mr * kcs } else { ma * kcs };
    let b_stride = if b_in_place { nr * kcs } else { nb_max * kcs };
    let a_slot = |ip: usize| if a_in_place { 0 } else { ip * kcs * mr };
    let b_slot = |jp: usize| if b_in_place { 0 } else { jp * kcs * nr };
    let kg = (PACK_BUDGET / a_stride.max(b_stride)).clamp(1, n_kblocks);
    let a_len = a_stride * kg;
    let b_len = b_stride * kg;
    if scratch.a.len() < a_len {
        scratch.a.resize(a_len, 0.0);
    }
    if scratch.b.len() < b_len {
        scratch.b.resize(b_len, 0.0);
    }
    let pa = SendPtr(scratch.a.as_mut_ptr());
    let pb = SendPtr(scratch.b.as_mut_ptr());
    let pc = SendPtr(c.as_mut_ptr());
    for j0 in (0..n).step_by(NC) {
        let nb = NC.min(n - j0);
        let n_bpanels = nb.div_ceil(nr);
        let packs_b = |jp: usize| !b_in_place || nb - jp * nr < nr;
        for i0 in (0..m).step_by(MB) {
            let mb = MB.min(m - i0);
            let n_apanels = mb.div_ceil(mr);
            let packs_a = |ip: usize| !a_in_place || mb - ip * mr < mr;
            let to_pack = (0..n_apanels).any(packs_a) || (0..n_bpanels).any(packs_b);
            let (im, jn) = item_panels(n_apanels, n_bpanels, threads);
            let (mi_n, nj_n) = (n_apanels.div_ceil(im), n_bpanels.div_ceil(jn));
            for g0 in (0..n_kblocks).step_by(kg) {
                let blocks = g0..(g0 + kg).min(n_kblocks);
                // Pack: for each K block g of the group, items 0..n_apanels are A micro-panels,
                // the rest B micro-panels.
                if to_pack {
                    let per_block = n_apanels + n_bpanels;
                    par_items(pool, blocks.len() * per_block, |item| {
                        let (g, item) = (item / per_block, item % per_block);
                        let p0 = (g0 + g) * KC;
                        let kc = KC.min(k - p0);
                        if item < n_apanels {
                            if !packs_a(item) {
                                return;
                            }
                            let i = item * mr;
                            // SAFETY: panel `item` of block g is
                            // scratch.a[g * a_stride + a_slot(item)..][..kc * mr], inside
                            // a_len = a_stride * kg (g < kg; n_apanels * mr <= ma, kc <= kcs; in
                            // place, only the last panel is packed, into slot 0), and disjoint
                            // from every other item's; scratch is exclusively borrowed here.
                            let dst = unsafe {
                                core::slice::from_raw_parts_mut(
                                    pa.get().add(g * a_stride + a_slot(item)),
                                    kc * mr,
                                )
                            };
                            pack_a(dst, &a, i0 + i, mr.min(mb - i), p0, kc, mr);
                        } else {
                            let jp = item - n_apanels;
                            if !packs_b(jp) {
                                return;
                            }
                            let j = jp * nr;
                            // SAFETY: as above, for B panel `jp` of block g inside b_len.
                            let dst = unsafe {
                                core::slice::from_raw_parts_mut(
                                    pb.get().add(g * b_stride + b_slot(jp)),
                                    kc * nr,
                                )
                            };
                            pack_b(dst, &b, p0, kc, j0 + j, nr.min(nb - j), nr);
                        }
                    });
                }
                // Compute: item = (block of A panels, block of B panels), through every K block
                // of the group in order (each tile's chain continues from the stored value).
                par_items(pool, mi_n * nj_n, |item| {
                    let (mi, nj) = (item / nj_n, item % nj_n);
                    for (g, kb) in blocks.clone().enumerate() {
                        let p0 = kb * KC;
                        let kc = KC.min(k - p0);
                        let load_c = accumulate || p0 > 0;
                        for jp in nj * jn..((nj + 1) * jn).min(n_bpanels) {
                            let j = jp * nr;
                            let nr_here = nr.min(nb - j);
                            // Packed panels were written by the pack phase, which has finished.
                            let (bp, b_rs) = if packs_b(jp) {
                                let at = g * b_stride + b_slot(jp);
                                (pb.get().wrapping_add(at).cast_const(), nr)
                            } else {
                                let at = p0 * b.rs + j0 + j;
                                (b.data.as_ptr().wrapping_add(at), b.rs)
                            };
                            for ip in mi * im..((mi + 1) * im).min(n_apanels) {
                                let i = ip * mr;
                                let mr_here = mr.min(mb - i);
                                let (ap, a_rs, a_cs) = if packs_a(ip) {
                                    let at = g * a_stride + a_slot(ip);
                                    (pa.get().wrapping_add(at).cast_const(), 1, mr)
                                } else {
                                    let at = (i0 + i) * a.rs + p0 * a.cs;
                                    (a.data.as_ptr().wrapping_add(at), a.rs, a.cs)
                                };
                                let panels = Panels {
                                    a: ap,
                                    a_rs,
                                    a_cs,
                                    b: bp,
                                    b_rs,
                                };
                                let ct = pc.get().wrapping_add((i0 + i) * ldc + j0 + j);
                                // SAFETY: see `tile`.
                                unsafe {
                                    tile(kern, kc, panels, ct, ldc, load_c, mr_here, nr_here)
                                };
                            }
                        }
                    }
                });
            }
        }
    }
}

/// One `mr_here x nr_here` tile of `C` at `ct` (row stride `ldc`): straight into `C` when whole,
/// else through a full-size buffer with the valid part copied in and out.
///
/// # Safety
/// A packed panel holds `kc * MR` (`kc * NR`) floats; a panel read in place is whole (`MR` rows,
/// `NR` columns, `kc` steps, all inside the operand: checked at entry of [`drive`]); edge panels are
/// always packed, so every operand address is inside a panel. The tile's `mr_here` rows of
/// `nr_here` floats at `ct`, `ldc` apart, are inside `C` (checked at entry: `(m-1) * ldc + n <=
/// c.len()`, `ldc >= n`) and belong to the calling work item alone; `kern` exists only if the CPU
/// has its features.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
unsafe fn tile<K: MicroKernel>(
    kern: K,
    kc: usize,
    panels: Panels,
    ct: *mut f32,
    ldc: usize,
    load_c: bool,
    mr_here: usize,
    nr_here: usize,
) {
    let (mr, nr) = (K::MR, K::NR);
    if mr_here == mr && nr_here == nr {
        // SAFETY: the caller's contract above.
        unsafe { kern.tile(kc, panels, ct, ldc, load_c) };
        return;
    }
    let mut buf = [0f32; MAX_TILE];
    if load_c {
        for r in 0..mr_here {
            // SAFETY: row r < mr_here, columns 0..nr_here of the tile: inside C (contract).
            let src = unsafe { core::slice::from_raw_parts(ct.add(r * ldc), nr_here) };
            buf[r * nr..][..nr_here].copy_from_slice(src);
        }
    }
    // SAFETY: as for the whole tile, with `buf` (mr x nr <= MAX_TILE floats, row stride nr) as C.
    unsafe { kern.tile(kc, panels, buf.as_mut_ptr(), nr, load_c) };
    for r in 0..mr_here {
        // SAFETY: as for the copy in.
        let dst = unsafe { core::slice::from_raw_parts_mut(ct.add(r * ldc), nr_here) };
        dst.copy_from_slice(&buf[r * nr..][..nr_here]);
    }
}
