//! The bias-free linear layer `y = x W^T` with `W (OC, IC)` stored row-major as `nn.Linear` and GGUF
//! store it (GGUF `ne0 = IC`), and the dot product it is built on. Rows of the output are independent,
//! so the products split over threads by output row without changing a single bit of the result
//! (`parallel.rs`'s [`Engine`]: SIMD kernels for `f32`).

use crate::parallel::{Engine, Layout};
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

/// `out (N, OC) = inp (N, IC) @ w (OC, IC)^T`.
pub fn linear_forward<F: Float>(
    out: &mut [F],
    inp: &[F],
    w: &[F],
    n: usize,
    ic: usize,
    oc: usize,
    e: &mut Engine<F>,
) {
    assert!(out.len() == n * oc && inp.len() == n * ic && w.len() == oc * ic);
    e.matmul_nt(out, inp, Layout::Rows, w, Layout::Rows, n, oc, ic);
}

/// `dinp (N, IC) += dout (N, OC) @ w (OC, IC)` and `dw (OC, IC) += dout^T @ inp (N, IC)`.
///
/// Every output element is one dot product in a fixed order, whatever the thread split.
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
    e: &mut Engine<F>,
) {
    assert!(dinp.len() == n * ic && inp.len() == n * ic && dout.len() == n * oc);
    assert!(dw.len() == oc * ic && w.len() == oc * ic);
    // dinp row r, column i: dout[r, :] . w[:, i]  (w read transposed)
    e.matmul_nt_acc(dinp, dout, Layout::Rows, w, Layout::Transposed, n, ic, oc);
    // dw row o, column i: dout[:, o] . inp[:, i]  (both read transposed)
    e.matmul_nt_acc(
        dw,
        dout,
        Layout::Transposed,
        inp,
        Layout::Transposed,
        oc,
        ic,
        n,
    );
}

/// As [`linear_backward`], but `dinp (N, IC) = dout @ w` is **overwritten** (its old contents are
/// never read, so the caller need not zero it); `dw` accumulates as there. Bitwise what
/// [`linear_backward`] gives on a zeroed `dinp`.
#[allow(clippy::too_many_arguments)] // the llm.c signature: buffers then sizes
pub fn linear_backward_into<F: Float>(
    dinp: &mut [F],
    dw: &mut [F],
    dout: &[F],
    inp: &[F],
    w: &[F],
    n: usize,
    ic: usize,
    oc: usize,
    e: &mut Engine<F>,
) {
    assert!(dinp.len() == n * ic && inp.len() == n * ic && dout.len() == n * oc);
    assert!(dw.len() == oc * ic && w.len() == oc * ic);
    e.matmul_nt(dinp, dout, Layout::Rows, w, Layout::Transposed, n, ic, oc);
    e.matmul_nt_acc(
        dw,
        dout,
        Layout::Transposed,
        inp,
        Layout::Transposed,
        oc,
        ic,
        n,
    );
}
