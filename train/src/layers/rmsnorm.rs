//! RMSNorm (Zhang & Sennrich 2019), llama's normalisation: `y = x * rstd * w` with
//! `rstd = 1 / sqrt(mean(x^2) + eps)`, no mean subtraction and no bias. The runtime computes the same
//! (ggml `rms_norm` then a multiply by the gain).

use super::linear::dot;
use crate::parallel::{par_rows1, par_rows2, ThreadPool};
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
    backward_input(dinp, dout, inp, w, rstd, c);
    backward_weight(dw, 0, dout, inp, rstd, c);
}

/// [`rmsnorm_forward`] with the rows spread over `pool`; the same bits for any thread count.
pub fn rmsnorm_forward_par<F: Float>(
    out: &mut [F],
    rstd: &mut [F],
    inp: &[F],
    w: &[F],
    c: usize,
    eps: F,
    pool: &ThreadPool,
) {
    let n = rstd.len();
    assert!(out.len() == n * c && inp.len() == n * c && w.len() == c);
    par_rows2(pool, n, 2 * c, (out, c), (rstd, 1), |r0, out, rstd| {
        let inp = &inp[r0 * c..][..out.len()];
        rmsnorm_forward(out, rstd, inp, w, c, eps)
    });
}

/// [`rmsnorm_backward`] spread over `pool`: `dinp` by rows, `dw` by columns (each column sums over the
/// rows in order, as the serial loop does), so the same bits for any thread count.
#[allow(clippy::too_many_arguments)] // buffers then sizes, as the serial version
pub fn rmsnorm_backward_par<F: Float>(
    dinp: &mut [F],
    dw: &mut [F],
    dout: &[F],
    inp: &[F],
    w: &[F],
    rstd: &[F],
    c: usize,
    pool: &ThreadPool,
) {
    let n = rstd.len();
    assert!(dinp.len() == n * c && dout.len() == n * c && inp.len() == n * c);
    assert!(dw.len() == c && w.len() == c);
    par_rows1(pool, n, 3 * c, (dinp, c), |r0, dx| {
        let rows = dx.len() / c;
        let (dy, x) = (&dout[r0 * c..][..rows * c], &inp[r0 * c..][..rows * c]);
        backward_input(dx, dy, x, w, &rstd[r0..][..rows], c)
    });
    // blocks of at least 16 columns (a cache line of each row), whatever the row count
    par_rows1(pool, c, 256, (dw, 1), |i0, dw| {
        backward_weight(dw, i0, dout, inp, rstd, c)
    });
}

/// `dinp += r * (dout * w - x * r^2 * mean(dout * w * x))`, row by row.
fn backward_input<F: Float>(dinp: &mut [F], dout: &[F], inp: &[F], w: &[F], rstd: &[F], c: usize) {
    let inv_c = F::ONE / F::from_f64(c as f64);
    for (row, &r) in rstd.iter().enumerate() {
        let (x, dy) = (&inp[row * c..(row + 1) * c], &dout[row * c..(row + 1) * c]);
        let gx = dot3(dy, w, x);
        let k = r * r * gx * inv_c;
        let dx = &mut dinp[row * c..(row + 1) * c];
        for i in 0..c {
            dx[i] += r * (dy[i] * w[i] - x[i] * k);
        }
    }
}

/// `dw[j] += sum over rows of dout * x * r` for the columns `i0..i0 + dw.len()`, rows in order.
fn backward_weight<F: Float>(dw: &mut [F], i0: usize, dout: &[F], inp: &[F], rstd: &[F], c: usize) {
    for (row, &r) in rstd.iter().enumerate() {
        let (x, dy) = (
            &inp[row * c + i0..][..dw.len()],
            &dout[row * c + i0..][..dw.len()],
        );
        for ((g, &dy), &x) in dw.iter_mut().zip(dy).zip(x) {
            *g += dy * x * r;
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
