//! Deterministic data parallelism over one persistent [`ThreadPool`] (ingot-kernels' spin-then-park
//! pool, created once per model): work items (whole output rows, one batch element's slices, one
//! matrix product's row blocks) are taken from an atomic counter by whichever thread is free. Every
//! item is computed by the same code in the same order whatever thread runs it, so results are
//! bit-identical for any thread count.
//!
//! [`Engine`] adds the matrix products: `f32` goes to ingot-kernels' blocked, packed GEMM
//! ([`Kernels::sgemm`]: AVX-512 or AVX2 register tiles, or the portable micro-kernel), which reads
//! transposed operands in place and accumulates gradients directly; other types (the `f64` of the
//! finite-difference tests) go to a plain dot-product loop. Its buffers grow to the largest product
//! seen and are then reused, so a training step allocates nothing for them.

pub use ingot_kernels::ThreadPool;
use ingot_kernels::{Kernels, MatRef, SgemmScratch};

use crate::Float;

/// A pool of `n_threads`, the caller included. Panics if the OS refuses to start a thread.
pub fn pool(n_threads: usize) -> ThreadPool {
    ThreadPool::new(n_threads.max(1)).expect("could not start the trainer's worker threads")
}

/// Calls `f` on every item, spread over `pool`.
pub fn par_for_each<I: Send>(
    items: impl IntoIterator<Item = I>,
    pool: &ThreadPool,
    f: impl Fn(I) + Sync,
) {
    let mut items: Vec<Option<I>> = items.into_iter().map(Some).collect();
    if items.is_empty() {
        return;
    }
    pool.for_each_chunk(&mut items, 1, |_, item| {
        if let Some(it) = item[0].take() {
            f(it)
        }
    });
}

/// Calls `f(row, out_row)` on each `row_len`-long row of `out`, spread over `pool`.
pub fn par_rows<T: Send>(
    out: &mut [T],
    row_len: usize,
    pool: &ThreadPool,
    f: impl Fn(usize, &mut [T]) + Sync,
) {
    assert!(row_len > 0 && out.len().is_multiple_of(row_len));
    if out.is_empty() {
        return;
    }
    // Several rows per item when rows are short, so taking an item costs nothing next to it.
    let per = (4096 / row_len).clamp(1, 64);
    let n_rows = out.len() / row_len;
    let chunk = per.min(n_rows) * row_len;
    if out.len().is_multiple_of(chunk) {
        pool.for_each_chunk(out, chunk, |i, c| {
            for (j, row) in c.chunks_exact_mut(row_len).enumerate() {
                f(i * (chunk / row_len) + j, row)
            }
        });
    } else {
        pool.for_each_chunk(out, row_len, f);
    }
}

/// Most work items one element-wise pass is split into: the items live in a stack array, so a pass
/// allocates nothing.
pub const MAX_ITEMS: usize = 64;
/// Fewest elements an item touches: below this, taking an item costs more than its work.
const MIN_ITEM_WORK: usize = 4096;

/// Rows per work item for `n_rows` rows of `cost` elements each: at most [`MAX_ITEMS`] items, each at
/// least [`MIN_ITEM_WORK`] elements. Depends only on the sizes, never on the thread count.
fn rows_per_item(n_rows: usize, cost: usize) -> usize {
    n_rows
        .div_ceil(MAX_ITEMS)
        .max(MIN_ITEM_WORK.div_ceil(cost.max(1)))
        .max(1)
}

/// Calls `f(first_row, rows)` on consecutive blocks of `a_row`-long rows of `a` (`n_rows` rows, each
/// costing about `cost` element operations), the blocks spread over `pool`. `f` must compute each row
/// from that row alone (or, given `first_row`, from its index): then the result is the same bits for
/// any thread count and any block split. On one thread, one call with every row.
pub fn par_rows1<A: Send>(
    pool: &ThreadPool,
    n_rows: usize,
    cost: usize,
    (a, a_row): (&mut [A], usize),
    f: impl Fn(usize, &mut [A]) + Sync,
) {
    assert!(a_row > 0 && a.len() == n_rows * a_row);
    let per = rows_per_item(n_rows, cost);
    if pool.n_threads() == 1 || n_rows <= per {
        return f(0, a);
    }
    let mut items: [Option<(usize, &mut [A])>; MAX_ITEMS] = std::array::from_fn(|_| None);
    let mut k = 0;
    for (i, x) in a.chunks_mut(per * a_row).enumerate() {
        items[i] = Some((i * per, x));
        k = i + 1;
    }
    pool.for_each_chunk(&mut items[..k], 1, |_, it| {
        let (r, x) = it[0].take().expect("each item runs once");
        f(r, x)
    });
}

/// [`par_rows1`] with two outputs split at the same rows (`a_row` and `b_row` elements per row).
pub fn par_rows2<A: Send, B: Send>(
    pool: &ThreadPool,
    n_rows: usize,
    cost: usize,
    (a, a_row): (&mut [A], usize),
    (b, b_row): (&mut [B], usize),
    f: impl Fn(usize, &mut [A], &mut [B]) + Sync,
) {
    assert!(a_row > 0 && a.len() == n_rows * a_row);
    assert!(b_row > 0 && b.len() == n_rows * b_row);
    let per = rows_per_item(n_rows, cost);
    if pool.n_threads() == 1 || n_rows <= per {
        return f(0, a, b);
    }
    type Item<'a, A, B> = Option<(usize, &'a mut [A], &'a mut [B])>;
    let mut items: [Item<'_, A, B>; MAX_ITEMS] = std::array::from_fn(|_| None);
    let mut k = 0;
    let chunks = a.chunks_mut(per * a_row).zip(b.chunks_mut(per * b_row));
    for (i, (x, y)) in chunks.enumerate() {
        items[i] = Some((i * per, x, y));
        k = i + 1;
    }
    pool.for_each_chunk(&mut items[..k], 1, |_, it| {
        let (r, x, y) = it[0].take().expect("each item runs once");
        f(r, x, y)
    });
}

/// [`par_rows1`] with three outputs split at the same rows.
pub fn par_rows3<A: Send, B: Send, C: Send>(
    pool: &ThreadPool,
    n_rows: usize,
    cost: usize,
    (a, a_row): (&mut [A], usize),
    (b, b_row): (&mut [B], usize),
    (c, c_row): (&mut [C], usize),
    f: impl Fn(usize, &mut [A], &mut [B], &mut [C]) + Sync,
) {
    assert!(a_row > 0 && a.len() == n_rows * a_row);
    assert!(b_row > 0 && b.len() == n_rows * b_row);
    assert!(c_row > 0 && c.len() == n_rows * c_row);
    let per = rows_per_item(n_rows, cost);
    if pool.n_threads() == 1 || n_rows <= per {
        return f(0, a, b, c);
    }
    type Item<'a, A, B, C> = Option<(usize, &'a mut [A], &'a mut [B], &'a mut [C])>;
    let mut items: [Item<'_, A, B, C>; MAX_ITEMS] = std::array::from_fn(|_| None);
    let mut k = 0;
    let chunks = a
        .chunks_mut(per * a_row)
        .zip(b.chunks_mut(per * b_row))
        .zip(c.chunks_mut(per * c_row));
    for (i, ((x, y), z)) in chunks.enumerate() {
        items[i] = Some((i * per, x, y, z));
        k = i + 1;
    }
    pool.for_each_chunk(&mut items[..k], 1, |_, it| {
        let (r, x, y, z) = it[0].take().expect("each item runs once");
        f(r, x, y, z)
    });
}

/// Calls `f(i, chunk, scratch)` for every `chunk_len`-element chunk of `out`, spread over `pool`,
/// `scratch` being item `i`'s own entry of `items` (grown to the item count, once). The same bits for
/// any thread count when `f`'s output depends only on its item.
pub fn for_each_item<F: Float>(
    pool: &ThreadPool,
    items: &mut Vec<Worker<F>>,
    out: &mut [F],
    chunk_len: usize,
    f: impl Fn(usize, &mut [F], &mut Worker<F>) + Sync,
) {
    assert!(chunk_len > 0 && out.len().is_multiple_of(chunk_len));
    let n = out.len() / chunk_len;
    if items.len() < n {
        items.resize_with(n, Worker::default);
    }
    par_rows2(
        pool,
        n,
        chunk_len,
        (out, chunk_len),
        (&mut items[..n], 1),
        |i0, out, ws| {
            for (j, (c, w)) in out.chunks_exact_mut(chunk_len).zip(ws).enumerate() {
                f(i0 + j, c, w)
            }
        },
    );
}

/// How a matrix operand is stored: `(rows, K)` row-major, or transposed, `(K, rows)` row-major.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Rows,
    Transposed,
}

/// The thread pool and the scratch of the matrix products.
#[derive(Debug)]
pub struct Engine<F> {
    pub pool: ThreadPool,
    kernels: Kernels,
    sgemm: SgemmScratch, // packed panels of the f32 products
    pa: Vec<F>,          // packed A (M, K), the generic path
    pb: Vec<F>,          // packed B (R, K), the generic path
    tmp: Vec<F>,         // a product before it is added to a gradient, the generic path
    /// Per pool thread: scratch of the products run inside a work item.
    pub workers: Vec<Worker<F>>,
    /// Per work item of [`for_each_item`] (attention's batch elements): scratch that always sees the
    /// same products, so it is fully grown after one call whichever thread runs the item (per-thread
    /// scratch would grow the first time a thread happens to take an item, at any later step).
    pub items: Vec<Worker<F>>,
    /// `(B, H, T, T)` attention's score gradients between the passes of its backward.
    pub att_grad: Vec<F>,
}

/// One pool thread's scratch for products inside a work item ([`Engine::workers`]).
#[derive(Debug)]
pub struct Worker<F> {
    pub kernels: Kernels,
    pub gemm: SgemmScratch,
    _f: std::marker::PhantomData<F>,
}

impl<F: Float> Default for Worker<F> {
    fn default() -> Self {
        Worker {
            kernels: Kernels::best(),
            gemm: SgemmScratch::default(),
            _f: std::marker::PhantomData,
        }
    }
}

impl<F: Float> Worker<F> {
    /// `c (M, N) = a (M, K) · b (K, N)` (`+=` when `accumulate`), `c` row-major with row stride
    /// `ldc`, on the calling thread: [`Kernels::sgemm_serial`] for `f32`.
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &mut self,
        accumulate: bool,
        m: usize,
        n: usize,
        k: usize,
        a: View<'_, F>,
        b: View<'_, F>,
        c: &mut [F],
        ldc: usize,
    ) {
        F::gemm_serial(self, accumulate, m, n, k, a, b, c, ldc)
    }
}

/// A strided matrix view: element `(r, c)` is `data[r * rs + c * cs]` (as ingot-kernels' `MatRef`,
/// for any [`Float`]).
#[derive(Debug, Clone, Copy)]
pub struct View<'a, F> {
    pub data: &'a [F],
    pub rs: usize,
    pub cs: usize,
}

impl<'a, F> View<'a, F> {
    pub fn new(data: &'a [F], rs: usize, cs: usize) -> Self {
        View { data, rs, cs }
    }
}

impl<F: Float> Engine<F> {
    pub fn new(n_threads: usize) -> Self {
        Engine {
            pool: pool(n_threads),
            kernels: Kernels::best(),
            sgemm: SgemmScratch::default(),
            pa: Vec::new(),
            pb: Vec::new(),
            tmp: Vec::new(),
            workers: (0..n_threads.max(1)).map(|_| Worker::default()).collect(),
            items: Vec::new(),
            att_grad: Vec::new(),
        }
    }

    pub fn n_threads(&self) -> usize {
        self.pool.n_threads()
    }

    /// `out (M, R) = A (M, K) @ B (R, K)^T`, each operand stored as its [`Layout`] says.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_nt(
        &mut self,
        out: &mut [F],
        a: &[F],
        la: Layout,
        b: &[F],
        lb: Layout,
        m: usize,
        r: usize,
        k: usize,
    ) {
        assert!(out.len() == m * r && a.len() == m * k && b.len() == r * k);
        F::matmul_nt(self, false, out, a, la, b, lb, m, r, k);
    }

    /// `acc += A @ B^T` (see [`Engine::matmul_nt`]).
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_nt_acc(
        &mut self,
        acc: &mut [F],
        a: &[F],
        la: Layout,
        b: &[F],
        lb: Layout,
        m: usize,
        r: usize,
        k: usize,
    ) {
        assert!(acc.len() == m * r && a.len() == m * k && b.len() == r * k);
        F::matmul_nt(self, true, acc, a, la, b, lb, m, r, k);
    }
}

/// `dst (rows, k)` row-major from `src` stored as `layout` says.
fn pack<T: Copy>(dst: &mut [T], src: &[T], layout: Layout, rows: usize, k: usize) {
    match layout {
        Layout::Rows => dst.copy_from_slice(src),
        Layout::Transposed => {
            // src (k, rows): tiles of 16 x 16 keep both sides in cache lines
            const TB: usize = 16;
            for r0 in (0..rows).step_by(TB) {
                for k0 in (0..k).step_by(TB) {
                    for r in r0..(r0 + TB).min(rows) {
                        for kk in k0..(k0 + TB).min(k) {
                            dst[r * k + kk] = src[kk * rows + r];
                        }
                    }
                }
            }
        }
    }
}

/// The per-type matrix product behind [`Engine::matmul_nt`] (`accumulate`: `out +=`). Lengths are
/// checked by the caller.
pub trait MatmulNt: Sized {
    #[allow(clippy::too_many_arguments)]
    fn matmul_nt(
        e: &mut Engine<Self>,
        accumulate: bool,
        out: &mut [Self],
        a: &[Self],
        la: Layout,
        b: &[Self],
        lb: Layout,
        m: usize,
        r: usize,
        k: usize,
    );

    /// See [`Worker::gemm`]; lengths are the caller's contract (checked by indexing).
    #[allow(clippy::too_many_arguments)]
    fn gemm_serial(
        w: &mut Worker<Self>,
        accumulate: bool,
        m: usize,
        n: usize,
        k: usize,
        a: View<'_, Self>,
        b: View<'_, Self>,
        c: &mut [Self],
        ldc: usize,
    );
}

/// `f32`: ingot-kernels' [`Kernels::sgemm`] reads both operands in place through strides (`B^T` is
/// `B` with its strides swapped) and accumulates straight into `out`; every element is one FMA chain
/// over `k`, the same bits for any thread count.
impl MatmulNt for f32 {
    fn matmul_nt(
        e: &mut Engine<f32>,
        accumulate: bool,
        out: &mut [f32],
        a: &[f32],
        la: Layout,
        b: &[f32],
        lb: Layout,
        m: usize,
        r: usize,
        k: usize,
    ) {
        // A (M, K); B^T (K, R)
        let a = match la {
            Layout::Rows => MatRef::rows(a, k),
            Layout::Transposed => MatRef::transposed(a, m),
        };
        let bt = match lb {
            Layout::Rows => MatRef::transposed(b, k),
            Layout::Transposed => MatRef::rows(b, r),
        };
        e.kernels
            .sgemm(&e.pool, &mut e.sgemm, accumulate, m, r, k, a, bt, out, r);
    }

    fn gemm_serial(
        w: &mut Worker<f32>,
        accumulate: bool,
        m: usize,
        n: usize,
        k: usize,
        a: View<'_, f32>,
        b: View<'_, f32>,
        c: &mut [f32],
        ldc: usize,
    ) {
        let a = MatRef::new(a.data, a.rs, a.cs);
        let b = MatRef::new(b.data, b.rs, b.cs);
        w.kernels
            .sgemm_serial(&mut w.gemm, accumulate, m, n, k, a, b, c, ldc);
    }
}

impl MatmulNt for f64 {
    fn matmul_nt(
        e: &mut Engine<f64>,
        accumulate: bool,
        out: &mut [f64],
        a: &[f64],
        la: Layout,
        b: &[f64],
        lb: Layout,
        m: usize,
        r: usize,
        k: usize,
    ) {
        if !accumulate {
            return generic_matmul_nt(e, out, a, la, b, lb, m, r, k);
        }
        let mut tmp = std::mem::take(&mut e.tmp);
        tmp.resize(m * r, 0.0);
        generic_matmul_nt(e, &mut tmp, a, la, b, lb, m, r, k);
        for (x, &y) in out.iter_mut().zip(&tmp) {
            *x += y;
        }
        e.tmp = tmp;
    }

    /// The plain triple loop, one running sum per element over `k` in order.
    fn gemm_serial(
        _: &mut Worker<f64>,
        accumulate: bool,
        m: usize,
        n: usize,
        k: usize,
        a: View<'_, f64>,
        b: View<'_, f64>,
        c: &mut [f64],
        ldc: usize,
    ) {
        for i in 0..m {
            for j in 0..n {
                let mut acc = if accumulate { c[i * ldc + j] } else { 0.0 };
                for p in 0..k {
                    acc += a.data[i * a.rs + p * a.cs] * b.data[p * b.rs + j * b.cs];
                }
                c[i * ldc + j] = acc;
            }
        }
    }
}

/// `out = A @ B^T` by packing both operands row-major and one [`crate::layers::dot`] per element.
#[allow(clippy::too_many_arguments)]
fn generic_matmul_nt<F: Float>(
    e: &mut Engine<F>,
    out: &mut [F],
    a: &[F],
    la: Layout,
    b: &[F],
    lb: Layout,
    m: usize,
    r: usize,
    k: usize,
) {
    if m == 0 || r == 0 {
        return;
    }
    e.pa.resize(m * k, F::ZERO);
    e.pb.resize(r * k, F::ZERO);
    pack(&mut e.pa, a, la, m, k);
    pack(&mut e.pb, b, lb, r, k);
    let (pa, pb) = (&e.pa, &e.pb);
    par_rows(out, r, &e.pool, |i, row| {
        let x = &pa[i * k..(i + 1) * k];
        for (o, y) in row.iter_mut().enumerate() {
            *y = crate::layers::dot(x, &pb[o * k..(o + 1) * k]);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_once_for_any_thread_count() {
        for threads in [1, 2, 3, 7] {
            let pool = pool(threads);
            let mut out = vec![0usize; 5 * 3];
            par_rows(&mut out, 3, &pool, |r, row| {
                row.iter_mut().for_each(|x| *x += r + 1)
            });
            let want: Vec<usize> = (0..15).map(|i| i / 3 + 1).collect();
            assert_eq!(out, want, "threads {threads}");
            par_rows(&mut [0u8; 0], 1, &pool, |_, _| unreachable!());
        }
    }

    #[test]
    fn row_blocks_cover_every_row_once() {
        for threads in [1, 2, 3] {
            let pool = pool(threads);
            for n_rows in [0, 1, 5, 63, 64, 65, 1000, 10_000] {
                let (mut a, mut b, mut c) = (
                    vec![0usize; n_rows * 3],
                    vec![0u8; n_rows],
                    vec![0u32; n_rows * 2],
                );
                par_rows3(
                    &pool,
                    n_rows,
                    1,
                    (&mut a, 3),
                    (&mut b, 1),
                    (&mut c, 2),
                    |r0, a, b, c| {
                        assert!(a.len() == b.len() * 3 && c.len() == b.len() * 2);
                        for (i, x) in a.iter_mut().enumerate() {
                            *x += r0 * 3 + i + 1;
                        }
                        b.iter_mut().for_each(|x| *x += 1);
                        c.iter_mut().for_each(|x| *x += 1);
                    },
                );
                assert!(
                    a.iter().enumerate().all(|(i, &x)| x == i + 1),
                    "{threads} {n_rows}"
                );
                assert!(b.iter().all(|&x| x == 1) && c.iter().all(|&x| x == 1));
            }
        }
    }

    #[test]
    fn matmul_layouts_agree_with_f64() {
        let (m, r, k) = (37, 70, 19);
        let a: Vec<f64> = (0..m * k)
            .map(|i| ((i * 7 % 13) as f64 - 6.0) / 8.0)
            .collect();
        let b: Vec<f64> = (0..r * k)
            .map(|i| ((i * 5 % 11) as f64 - 5.0) / 4.0)
            .collect();
        let t = |x: &[f64], rows: usize| -> Vec<f64> {
            (0..x.len()).map(|i| x[(i % rows) * k + i / rows]).collect()
        };
        let mut want = vec![0.0; m * r];
        for i in 0..m {
            for o in 0..r {
                want[i * r + o] = (0..k).map(|kk| a[i * k + kk] * b[o * k + kk]).sum();
            }
        }
        for threads in [1, 2] {
            let mut e64 = Engine::<f64>::new(threads);
            let mut e32 = Engine::<f32>::new(threads);
            for (la, lb) in [
                (Layout::Rows, Layout::Rows),
                (Layout::Rows, Layout::Transposed),
                (Layout::Transposed, Layout::Rows),
                (Layout::Transposed, Layout::Transposed),
            ] {
                let aa = if la == Layout::Rows {
                    a.clone()
                } else {
                    t(&a, m)
                };
                let bb = if lb == Layout::Rows {
                    b.clone()
                } else {
                    t(&b, r)
                };
                let mut out = vec![0.0; m * r];
                e64.matmul_nt(&mut out, &aa, la, &bb, lb, m, r, k);
                assert!(out.iter().zip(&want).all(|(x, y)| (x - y).abs() < 1e-12));
                let (a32, b32): (Vec<f32>, Vec<f32>) = (
                    aa.iter().map(|&x| x as f32).collect(),
                    bb.iter().map(|&x| x as f32).collect(),
                );
                let mut out32 = vec![0.0f32; m * r];
                e32.matmul_nt(&mut out32, &a32, la, &b32, lb, m, r, k);
                assert!(out32
                    .iter()
                    .zip(&want)
                    .all(|(&x, y)| (x as f64 - y).abs() < 1e-4));
                // accumulating adds the same product again
                e64.matmul_nt_acc(&mut out, &aa, la, &bb, lb, m, r, k);
                assert!(out
                    .iter()
                    .zip(&want)
                    .all(|(x, y)| (x - 2.0 * y).abs() < 1e-12));
                e32.matmul_nt_acc(&mut out32, &a32, la, &b32, lb, m, r, k);
                assert!(out32
                    .iter()
                    .zip(&want)
                    .all(|(&x, y)| (x as f64 - 2.0 * y).abs() < 2e-4));
            }
        }
    }
}
