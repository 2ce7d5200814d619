//! RMSNorm (Zhang & Sennrich 2019), llama's normalisation: `y = x * rstd * w` with
//! `rstd = 1 / sqrt(mean(x^2) + eps)`, no mean subtraction and no bias. The runtime computes the same
//! (ggml `rms_norm` then a multiply by the gain).

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
        let ss: F = x.iter().map(|&v| v * v).sum();
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
        let gx: F = x
            .iter()
            .zip(dy)
            .zip(w)
            .map(|((&xi, &di), &wi)| di * wi * xi)
            .sum();
        let k = r * r * gx * inv_c;
        let dx = &mut dinp[row * c..(row + 1) * c];
        for i in 0..c {
            dx[i] += r * (dy[i] * w[i] - x[i] * k);
            dw[i] += dy[i] * x[i] * r;
        }
    }
}
