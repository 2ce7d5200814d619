//! The SwiGLU gate (Shazeer 2020) of llama's MLP: `h = silu(gate) * up` with `silu(g) = g * sigmoid(g)`,
//! where `gate = x W_gate^T` (GGUF `ffn_gate`, Meta's `w1`) and `up = x W_up^T` (`ffn_up`, `w3`); the MLP
//! output is `h W_down^T` (`ffn_down`, `w2`).

use crate::parallel::{par_rows1, par_rows2, ThreadPool};
use crate::Float;

#[inline]
fn sigmoid<F: Float>(x: F) -> F {
    F::ONE / (F::ONE + (-x).exp())
}

/// `out (N, F) = silu(gate) * up`, elementwise.
pub fn swiglu_forward<F: Float>(out: &mut [F], gate: &[F], up: &[F]) {
    assert!(out.len() == gate.len() && out.len() == up.len());
    for ((h, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *h = g * sigmoid(g) * u;
    }
}

/// `dgate += dout * up * silu'(gate)` with `silu'(g) = s (1 + g (1 - s))`, `s = sigmoid(g)`;
/// `dup += dout * silu(gate)`.
pub fn swiglu_backward<F: Float>(dgate: &mut [F], dup: &mut [F], dout: &[F], gate: &[F], up: &[F]) {
    let n = dout.len();
    assert!(dgate.len() == n && dup.len() == n && gate.len() == n && up.len() == n);
    for i in 0..n {
        let (g, u, d) = (gate[i], up[i], dout[i]);
        let s = sigmoid(g);
        dgate[i] += d * u * s * (F::ONE + g * (F::ONE - s));
        dup[i] += d * g * s;
    }
}

/// [`swiglu_forward`] spread over `pool`; the same bits for any thread count.
pub fn swiglu_forward_par<F: Float>(out: &mut [F], gate: &[F], up: &[F], pool: &ThreadPool) {
    assert!(out.len() == gate.len() && out.len() == up.len());
    par_rows1(pool, out.len(), 8, (out, 1), |i0, out| {
        let n = out.len();
        swiglu_forward(out, &gate[i0..][..n], &up[i0..][..n])
    });
}

/// [`swiglu_backward`] spread over `pool`; the same bits for any thread count.
pub fn swiglu_backward_par<F: Float>(
    dgate: &mut [F],
    dup: &mut [F],
    dout: &[F],
    gate: &[F],
    up: &[F],
    pool: &ThreadPool,
) {
    let n = dout.len();
    assert!(dgate.len() == n && dup.len() == n && gate.len() == n && up.len() == n);
    par_rows2(pool, n, 8, (dgate, 1), (dup, 1), |i0, dgate, dup| {
        let n = dgate.len();
        let (dout, gate, up) = (&dout[i0..][..n], &gate[i0..][..n], &up[i0..][..n]);
        swiglu_backward(dgate, dup, dout, gate, up)
    });
}

/// [`swiglu_forward`] that also keeps `sig (N, F) = sigmoid(gate)` for
/// [`swiglu_backward_saved_par`], spread over `pool`; `out` has the same bits as [`swiglu_forward`].
pub fn swiglu_forward_saving_par<F: Float>(
    out: &mut [F],
    sig: &mut [F],
    gate: &[F],
    up: &[F],
    pool: &ThreadPool,
) {
    assert!(out.len() == gate.len() && out.len() == up.len() && sig.len() == out.len());
    par_rows2(pool, out.len(), 8, (out, 1), (sig, 1), |i0, out, sig| {
        let n = out.len();
        let (gate, up) = (&gate[i0..][..n], &up[i0..][..n]);
        for (((h, s), &g), &u) in out.iter_mut().zip(sig.iter_mut()).zip(gate).zip(up) {
            *s = sigmoid(g);
            *h = g * *s * u;
        }
    });
}

/// [`swiglu_backward`] from the kept `sig = sigmoid(gate)`, **overwriting** `dgate` and `dup` (no
/// need to zero them): bitwise what [`swiglu_backward`] gives on zeroed gradients, without a second
/// `exp` per element. Spread over `pool`.
pub fn swiglu_backward_saved_par<F: Float>(
    dgate: &mut [F],
    dup: &mut [F],
    dout: &[F],
    sig: &[F],
    gate: &[F],
    up: &[F],
    pool: &ThreadPool,
) {
    let n = dout.len();
    assert!(dgate.len() == n && dup.len() == n && gate.len() == n && up.len() == n);
    assert_eq!(sig.len(), n);
    par_rows2(pool, n, 4, (dgate, 1), (dup, 1), |i0, dgate, dup| {
        let n = dgate.len();
        let (dout, sig) = (&dout[i0..][..n], &sig[i0..][..n]);
        let (gate, up) = (&gate[i0..][..n], &up[i0..][..n]);
        for i in 0..n {
            let (g, u, d, s) = (gate[i], up[i], dout[i], sig[i]);
            dgate[i] = d * u * s * (F::ONE + g * (F::ONE - s));
            dup[i] = d * g * s;
        }
    });
}
