//! Finite-difference checks in `f64` of every layer's backward (the same generic code the `f32` trainer
//! runs), and of the whole model, on tiny random shapes with odd sizes.
//!
//! Each check takes a random projection `r` of the layer's output as the objective, `L = sum r * out`,
//! runs the backward with `dout = r`, and compares every input and parameter gradient with the central
//! difference `(L(x + h) - L(x - h)) / 2h`. Error per tensor: `max |analytic - numeric| / max |numeric|`.

use ingot_train::layers::*;
use ingot_train::parallel::Engine;
use ingot_train::rng::Rng;
use ingot_train::{params, Config, Model};

/// Step of the central difference: truncation error ~h^2 (1e-10), rounding ~1e-16 / h (1e-11).
const H: f64 = 1e-5;
/// Allowed error per tensor; both error sources above sit two orders of magnitude below it.
const FD_TOL: f64 = 1e-7;

fn randn(rng: &mut Rng, n: usize, std: f64) -> Vec<f64> {
    (0..n).map(|_| std * rng.normal()).collect()
}

/// Checks `bwd`'s gradients of `sum r * fwd(inputs)` against central differences; returns the worst
/// error over the inputs and prints one line per input.
fn check(
    layer: &str,
    names: &[&str],
    inputs: Vec<Vec<f64>>,
    fwd: impl Fn(&[Vec<f64>]) -> Vec<f64>,
    bwd: impl Fn(&[Vec<f64>], &[f64]) -> Vec<Vec<f64>>,
) -> f64 {
    let mut rng = Rng::new(99);
    let r = randn(&mut rng, fwd(&inputs).len(), 1.0);
    let objective = |inp: &[Vec<f64>]| fwd(inp).iter().zip(&r).map(|(o, w)| o * w).sum::<f64>();
    let analytic = bwd(&inputs, &r);
    assert_eq!(analytic.len(), inputs.len());
    let mut worst = 0.0f64;
    for (j, name) in names.iter().enumerate() {
        let mut x = inputs.clone();
        let numeric: Vec<f64> = (0..x[j].len())
            .map(|i| {
                let x0 = x[j][i];
                x[j][i] = x0 + H;
                let up = objective(&x);
                x[j][i] = x0 - H;
                let down = objective(&x);
                x[j][i] = x0;
                (up - down) / (2.0 * H)
            })
            .collect();
        let diff = analytic[j]
            .iter()
            .zip(&numeric)
            .map(|(a, n)| (a - n).abs())
            .fold(0.0, f64::max);
        let scale = numeric.iter().map(|n| n.abs()).fold(0.0, f64::max);
        assert!(
            scale > 1e-3,
            "{layer}/{name}: gradient vanishes, the check would prove nothing"
        );
        let err = diff / scale;
        eprintln!(
            "{layer:>14} d{name:<8} {} values, max relative error {err:.1e}",
            numeric.len()
        );
        assert!(err < FD_TOL, "{layer}: gradient of {name} off by {err:.2e}");
        worst = worst.max(err);
    }
    worst
}

#[test]
fn embedding() {
    let (n, c, v) = (5, 7, 4);
    let tokens = [3u32, 0, 3, 1, 2];
    let mut rng = Rng::new(1);
    check(
        "embedding",
        &["wte"],
        vec![randn(&mut rng, v * c, 1.0)],
        |x| {
            let mut out = vec![0.0; n * c];
            embedding_forward(&mut out, &tokens, &x[0], c);
            out
        },
        |_, dout| {
            let mut dw = vec![0.0; v * c];
            embedding_backward(&mut dw, dout, &tokens, c);
            vec![dw]
        },
    );
}

#[test]
fn rmsnorm() {
    let (n, c, eps) = (3, 7, 1e-5);
    let mut rng = Rng::new(2);
    let w: Vec<f64> = (0..c).map(|_| 1.0 + 0.3 * rng.normal()).collect();
    let fwd = |x: &[Vec<f64>]| {
        let (mut out, mut rstd) = (vec![0.0; n * c], vec![0.0; n]);
        rmsnorm_forward(&mut out, &mut rstd, &x[0], &x[1], c, eps);
        out
    };
    check(
        "rmsnorm",
        &["inp", "w"],
        vec![randn(&mut rng, n * c, 1.0), w],
        fwd,
        |x, dout| {
            let (mut out, mut rstd) = (vec![0.0; n * c], vec![0.0; n]);
            rmsnorm_forward(&mut out, &mut rstd, &x[0], &x[1], c, eps);
            let (mut dx, mut dw) = (vec![0.0; n * c], vec![0.0; c]);
            rmsnorm_backward(&mut dx, &mut dw, dout, &x[0], &x[1], &rstd, c);
            vec![dx, dw]
        },
    );
}

#[test]
fn linear() {
    // 11 input columns exercise dot's 8-wide body and its tail; 3 threads split 5 rows unevenly.
    let (n, ic, oc, threads) = (5, 11, 7, 3);
    let mut rng = Rng::new(3);
    let inputs = vec![randn(&mut rng, n * ic, 1.0), randn(&mut rng, oc * ic, 0.5)];
    let fwd = |x: &[Vec<f64>]| {
        let mut out = vec![0.0; n * oc];
        linear_forward(&mut out, &x[0], &x[1], n, ic, oc, &mut Engine::new(threads));
        out
    };
    check("linear", &["inp", "w"], inputs, fwd, |x, dout| {
        let (mut dx, mut dw) = (vec![0.0; n * ic], vec![0.0; oc * ic]);
        linear_backward(
            &mut dx,
            &mut dw,
            dout,
            &x[0],
            &x[1],
            n,
            ic,
            oc,
            &mut Engine::new(threads),
        );
        vec![dx, dw]
    });
}

#[test]
fn rope() {
    let (b, t, nh, d) = (2, 5, 3, 6);
    let table = rope_table::<f64>(7, d, 10000.0);
    let mut rng = Rng::new(4);
    let fwd = |x: &[Vec<f64>]| {
        let mut out = x[0].clone();
        rope_forward(&mut out, &table, b, t, nh, d);
        out
    };
    check(
        "rope",
        &["inp"],
        vec![randn(&mut rng, b * t * nh * d, 1.0)],
        fwd,
        |_, dout| {
            let mut dx = dout.to_vec();
            rope_backward(&mut dx, &table, b, t, nh, d);
            vec![dx]
        },
    );
}

#[test]
fn attention() {
    // GQA (3 query heads per KV head), plain multi-head, and one shared KV head (multi-query).
    for (nh, nkv) in [(6, 2), (3, 3), (3, 1)] {
        let s = AttentionShape {
            b: 2,
            t: 5,
            nh,
            nkv,
            d: 4,
        };
        let (qn, kvn, an) = (
            s.b * s.t * nh * s.d,
            s.b * s.t * nkv * s.d,
            s.b * nh * s.t * s.t,
        );
        let mut rng = Rng::new(5);
        let inputs = vec![
            randn(&mut rng, qn, 1.0),
            randn(&mut rng, kvn, 1.0),
            randn(&mut rng, kvn, 1.0),
        ];
        let fwd = |x: &[Vec<f64>]| {
            let (mut out, mut att) = (vec![0.0; qn], vec![0.0; an]);
            attention_forward(
                &mut out,
                &mut att,
                &x[0],
                &x[1],
                &x[2],
                s,
                &mut Engine::new(2),
            );
            out
        };
        let layer = format!("attention {nh}/{nkv}");
        check(&layer, &["q", "k", "v"], inputs, fwd, |x, dout| {
            let (mut out, mut att) = (vec![0.0; qn], vec![0.0; an]);
            attention_forward(
                &mut out,
                &mut att,
                &x[0],
                &x[1],
                &x[2],
                s,
                &mut Engine::new(2),
            );
            let (mut dq, mut dk, mut dv) = (vec![0.0; qn], vec![0.0; kvn], vec![0.0; kvn]);
            attention_backward(
                &mut dq,
                &mut dk,
                &mut dv,
                dout,
                &x[0],
                &x[1],
                &x[2],
                &att,
                s,
                &mut Engine::new(2),
            );
            vec![dq, dk, dv]
        });
    }
}

#[test]
fn swiglu() {
    let n = 13;
    let mut rng = Rng::new(6);
    let fwd = |x: &[Vec<f64>]| {
        let mut out = vec![0.0; n];
        swiglu_forward(&mut out, &x[0], &x[1]);
        out
    };
    let inputs = vec![randn(&mut rng, n, 2.0), randn(&mut rng, n, 1.0)];
    check("swiglu", &["gate", "up"], inputs, fwd, |x, dout| {
        let (mut dg, mut du) = (vec![0.0; n], vec![0.0; n]);
        swiglu_backward(&mut dg, &mut du, dout, &x[0], &x[1]);
        vec![dg, du]
    });
}

#[test]
fn cross_entropy() {
    let (n, v) = (3, 7);
    let targets = [6u32, 0, 2];
    let mut rng = Rng::new(7);
    let fwd = |x: &[Vec<f64>]| {
        let (mut probs, mut losses) = (vec![0.0; n * v], vec![0.0; n]);
        cross_entropy_forward(&mut probs, &mut losses, &x[0], &targets, v);
        vec![losses.iter().sum::<f64>() / n as f64] // the model's mean loss
    };
    check(
        "cross_entropy",
        &["logits"],
        vec![randn(&mut rng, n * v, 2.0)],
        fwd,
        |x, dout| {
            let (mut probs, mut losses) = (vec![0.0; n * v], vec![0.0; n]);
            cross_entropy_forward(&mut probs, &mut losses, &x[0], &targets, v);
            let mut dl = vec![0.0; n * v];
            cross_entropy_backward(&mut dl, &probs, &targets, v, dout[0] / n as f64);
            vec![dl]
        },
    );
}

fn tiny_config(tied: bool) -> Config {
    Config {
        vocab_size: 11,
        dim: 12,
        n_layers: 2,
        n_heads: 3,
        n_kv_heads: 1,
        ffn_dim: 10,
        max_seq_len: 6,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: tied,
    }
}

/// The whole model in f64: every parameter tensor's gradient of the mean loss.
#[test]
fn whole_model() {
    for tied in [true, false] {
        let cfg = tiny_config(tied);
        let (b, t) = (2, 5);
        let mut model = Model::<f64>::new(cfg.clone(), 1).unwrap(); // threads: see the layer tests
        let mut rng = Rng::new(8);
        let layout = params::layout(&cfg);
        for s in &layout {
            for p in &mut model.params[s.offset..s.offset + s.len] {
                *p = if s.is_matrix() {
                    0.4 * rng.normal()
                } else {
                    1.0 + 0.2 * rng.normal()
                };
            }
        }
        let tokens: Vec<u32> = (0..b * t)
            .map(|_| rng.below(cfg.vocab_size) as u32)
            .collect();
        let targets: Vec<u32> = (0..b * t)
            .map(|_| rng.below(cfg.vocab_size) as u32)
            .collect();
        model.zero_grad();
        model.forward(&tokens, Some(&targets), b, t).unwrap();
        model.backward();
        let analytic = model.grads.clone();
        let mut worst = 0.0f64;
        for s in &layout {
            let numeric: Vec<f64> = (s.offset..s.offset + s.len)
                .map(|i| {
                    let p0 = model.params[i];
                    model.params[i] = p0 + H;
                    let up = model
                        .forward(&tokens, Some(&targets), b, t)
                        .unwrap()
                        .unwrap();
                    model.params[i] = p0 - H;
                    let down = model
                        .forward(&tokens, Some(&targets), b, t)
                        .unwrap()
                        .unwrap();
                    model.params[i] = p0;
                    (up - down) / (2.0 * H)
                })
                .collect();
            let a = &analytic[s.offset..s.offset + s.len];
            let diff = a
                .iter()
                .zip(&numeric)
                .map(|(a, n)| (a - n).abs())
                .fold(0.0, f64::max);
            let scale = numeric.iter().map(|n| n.abs()).fold(0.0, f64::max);
            assert!(scale > 1e-4, "{}: gradient vanishes", s.name);
            let err = diff / scale;
            assert!(
                err < FD_TOL,
                "tied {tied}: gradient of {} off by {err:.2e}",
                s.name
            );
            worst = worst.max(err);
        }
        eprintln!(
            "whole model (tied {tied}): {} tensors, max relative error {worst:.1e}",
            layout.len()
        );
    }
}
