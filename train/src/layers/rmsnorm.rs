//! RMSNorm (Zhang & Sennrich 2019), llama's normalisation: `y = x * rstd * w` with
//! `rstd = 1 / sqrt(mean(x^2) + eps)`, no mean subtraction and no bias. The runtime computes the same
//! (ggml `rms_norm` then a multiply by the gain).

use super::linear::dot;
use crate::Float;

/// `out (N, C) = inp (N, C) * rstd (N,) * w (C,)`; saves `rstd` for the backward.
pub fn rmsnorm_forward<F: Float>(
    out: &mut [F],
    rstd: &mut [F],
    inp: &[F],
    w: &[F],
    c: usize,
    eps: F,
) {
    let n = rstd.len();
    assert!(out.len() == n * c && inp.len() == n * c && w.len() == c);
    for ((y, x), r) in out
        .chunks_exact_mut(c)
        .zip(inp.chunks_exact(c))
        .zip(rstd.iter_mut())
    {
        let ss = dot(x, x); // eight partial sums: vectorizes, where one running sum cannot
        let s = F::ONE / (ss / F::from_f64(c as f64) + eps).sqrt();
        for ((yi, &xi), &wi) in y.iter_mut().zip(x).zip(w) {
            *yi = xi * s * wi;
        }
        *r = s;
    }
}

/// With `g = dout * w` and `r = rstd`: `dinp += r * (g - x * r^2 * mean(g * x))` and
/// `dw += dout * x * r`, summed over rows.
pub fn rmsnorm_backward<F: Float>(
    dinp: &mut [F],
    dw: &mut [F],
    dout: &[F],
    inp: &[F],
    w: &[F],
    rstd: &[F],
    c: usize,
) {
    let n = rstd.len();
    assert!(dinp.len() == n * c && dout.len() == n * c && inp.len() == n * c);
    assert!(dw.len() == c && w.len() == c);
    let inv_c = F::ONE / F::from_f64(c as f64);
    for row in 0..n {
        let (x, dy) = (&inp[row * c..(row + 1) * c], &dout[row * c..(row + 1) * c]);
        let r = rstd[row];
        let gx = dot3(dy, w, x);
        let k = r * r * gx * inv_c;
        let dx = &mut dinp[row * c..(row + 1) * c];
        for i in 0..c {
            dx[i] += r * (dy[i] * w[i] - x[i] * k);
            dw[i] += dy[i] * x[i] * r;
        }
    }
}

/// `sum a[i] * b[i] * c[i]` with eight interleaved partial sums (as [`dot`]).
#[inline]
fn dot3<F: Float>(a: &[F], b: &[F], c: &[F]) -> F {
    debug_assert!(a.len() == b.len() && a.len() == c.len());
    let split = a.len() / 8 * 8;
    let mut acc = [F::ZERO; 8];
    for ((x, y), z) in a[..split]
        .chunks_exact(8)
        .zip(b[..split].chunks_exact(8))
        .zip(c[..split].chunks_exact(8))
    {
        for i in 0..8 {
            acc[i] += x[i] * y[i] * z[i];
        }
    }
    let mut tail = F::ZERO;
    for i in split..a.len() {
        tail += a[i] * b[i] * c[i];
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}
