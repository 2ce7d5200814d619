//! The bias-free linear layer `y = x W^T` with `W (OC, IC)` stored row-major as `nn.Linear` and GGUF
//! store it (GGUF `ne0 = IC`), and the dot product it is built on. Rows of the output are independent,
//! so both directions split over threads by output row without changing a single bit of the result.

use crate::parallel::par_rows;
use crate::Float;

/// `sum a[i] * b[i]` with eight interleaved partial sums (a fixed order, so deterministic; it lets the
/// compiler keep eight lanes in registers where a single running sum would serialise on one add).
#[inline]
pub fn dot<F: Float>(a: &[F], b: &[F]) -> F {
    debug_assert_eq!(a.len(), b.len());
    let split = a.len() / 8 * 8;
    let mut acc = [F::ZERO; 8];
    for (x, y) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut tail = F::ZERO;
    for (&x, &y) in a[split..].iter().zip(&b[split..]) {
        tail += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// `y += a * x`
#[inline]
fn axpy<F: Float>(y: &mut [F], a: F, x: &[F]) {
    debug_assert_eq!(y.len(), x.len());
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi += a * xi;
    }
}

/// `out (N, OC) = inp (N, IC) @ w (OC, IC)^T`.
pub fn linear_forward<F: Float>(
    out: &mut [F],
    inp: &[F],
    w: &[F],
    n: usize,
    ic: usize,
    oc: usize,
    threads: usize,
) {
    assert!(out.len() == n * oc && inp.len() == n * ic && w.len() == oc * ic);
    if n == 0 {
        return;
    }
    par_rows(out, oc, threads, |r, out_row| {
        let x = &inp[r * ic..(r + 1) * ic]; // (IC,)
        for (o, y) in out_row.iter_mut().enumerate() {
            *y = dot(x, &w[o * ic..(o + 1) * ic]);
        }
    });
}

/// `dinp (N, IC) += dout (N, OC) @ w (OC, IC)` and `dw (OC, IC) += dout^T @ inp (N, IC)`.
///
/// `dw` row `o` sums over the rows `n` in order, so it too is independent of the thread split.
#[allow(clippy::too_many_arguments)] // the llm.c signature: buffers then sizes
pub fn linear_backward<F: Float>(
    dinp: &mut [F],
    dw: &mut [F],
    dout: &[F],
    inp: &[F],
    w: &[F],
    n: usize,
    ic: usize,
    oc: usize,
    threads: usize,
) {
    assert!(dinp.len() == n * ic && inp.len() == n * ic && dout.len() == n * oc);
    assert!(dw.len() == oc * ic && w.len() == oc * ic);
    if n == 0 {
        return;
    }
    par_rows(dinp, ic, threads, |r, dx| {
        let dy = &dout[r * oc..(r + 1) * oc]; // (OC,)
        for (o, &d) in dy.iter().enumerate() {
            axpy(dx, d, &w[o * ic..(o + 1) * ic]);
        }
    });
    par_rows(dw, ic, threads, |o, dw_row| {
        for r in 0..n {
            axpy(dw_row, dout[r * oc + o], &inp[r * ic..(r + 1) * ic]);
        }
    });
}
