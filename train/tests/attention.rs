//! The blocked attention ([`attention_forward`] / [`attention_backward`]: per-head matrix products,
//! `f32` through ingot-kernels' GEMM) against the per-element loops it replaced
//! (`attention_*_reference`, themselves checked by finite differences and by the PyTorch golden
//! test), at a length crossing the row blocks ([`ATTENTION_ROW_BLOCK`]) twice, with GQA; and the same bits for any
//! thread count.

use ingot_train::layers::*;
use ingot_train::parallel::{pool, Engine};
use ingot_train::rng::Rng;
use ingot_train::Float;

struct Case<F> {
    s: AttentionShape,
    q: Vec<F>,
    k: Vec<F>,
    v: Vec<F>,
    dout: Vec<F>,
}

fn case<F: Float>(nh: usize, nkv: usize) -> Case<F> {
    let s = AttentionShape {
        b: 3,
        t: 2 * ATTENTION_ROW_BLOCK + 2,
        nh,
        nkv,
        d: 8,
    };
    let mut rng = Rng::new(11);
    let mut randn = |n: usize| -> Vec<F> { (0..n).map(|_| F::from_f64(rng.normal())).collect() };
    let (qn, kvn) = (s.b * s.t * nh * s.d, s.b * s.t * nkv * s.d);
    Case {
        s,
        q: randn(qn),
        k: randn(kvn),
        v: randn(kvn),
        dout: randn(qn),
    }
}

/// (out, att, dq, dk, dv): the blocked version with `threads`, or the reference.
fn run<F: Float>(c: &Case<F>, threads: Option<usize>) -> [Vec<F>; 5] {
    let s = c.s;
    let (qn, kvn, an) = (c.q.len(), c.k.len(), s.b * s.nh * s.t * s.t);
    let (mut out, mut att) = (vec![F::ZERO; qn], vec![F::from_f64(7.0); an]);
    // gradients start non-zero: the backward accumulates
    let mut dq: Vec<F> = (0..qn).map(|i| F::from_f64((i % 5) as f64 * 0.1)).collect();
    let mut dk: Vec<F> = (0..kvn)
        .map(|i| F::from_f64((i % 3) as f64 * 0.1))
        .collect();
    let mut dv = dk.clone();
    match threads {
        Some(n) => {
            let mut e = Engine::<F>::new(n);
            attention_forward(&mut out, &mut att, &c.q, &c.k, &c.v, s, &mut e);
            let (q, k, v, d) = (&c.q, &c.k, &c.v, &c.dout);
            attention_backward(&mut dq, &mut dk, &mut dv, d, q, k, v, &att, s, &mut e);
        }
        None => {
            let p = pool(1);
            attention_forward_reference(&mut out, &mut att, &c.q, &c.k, &c.v, s, &p);
            let (q, k, v, d) = (&c.q, &c.k, &c.v, &c.dout);
            attention_backward_reference(&mut dq, &mut dk, &mut dv, d, q, k, v, &att, s, &p);
        }
    }
    [out, att, dq, dk, dv]
}

/// Largest |x - y| relative to the largest |y| of the tensor.
fn rel<F: Float>(x: &[F], y: &[F]) -> f64 {
    let scale = y.iter().fold(0.0f64, |m, v| m.max(v.to_f64().abs()));
    let diff = x
        .iter()
        .zip(y)
        .fold(0.0f64, |m, (a, b)| m.max((a.to_f64() - b.to_f64()).abs()));
    diff / scale.max(f64::MIN_POSITIVE)
}

#[test]
fn blocked_equals_reference() {
    const NAMES: [&str; 5] = ["out", "att", "dq", "dk", "dv"];
    for (nh, nkv) in [(6, 2), (2, 2)] {
        // f64: the same math in another order, so equal to rounding
        let c = case::<f64>(nh, nkv);
        let (got, want) = (run(&c, Some(2)), run(&c, None));
        for i in 0..5 {
            let r = rel(&got[i], &want[i]);
            assert!(
                r < 1e-12,
                "f64 {nh}/{nkv} {}: relative error {r:e}",
                NAMES[i]
            );
        }
        // f32: within f32 rounding of the reference, and bitwise the same for 1, 2, 3 threads
        let c = case::<f32>(nh, nkv);
        let (one, want) = (run(&c, Some(1)), run(&c, None));
        for i in 0..5 {
            let r = rel(&one[i], &want[i]);
            assert!(
                r < 2e-6,
                "f32 {nh}/{nkv} {}: relative error {r:e}",
                NAMES[i]
            );
        }
        for threads in [2, 3] {
            let other = run(&c, Some(threads));
            for i in 0..5 {
                let same = one[i]
                    .iter()
                    .zip(&other[i])
                    .all(|(a, b)| a.to_bits() == b.to_bits());
                assert!(
                    same,
                    "f32 {nh}/{nkv} {}: {threads} threads differ",
                    NAMES[i]
                );
            }
        }
    }
}
