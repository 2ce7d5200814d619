//! The element-wise layers spread over the thread pool (`*_par`) give the very bits of their serial
//! versions, at 1, 2 and 3 threads, on sizes large enough to be split into many work items (uneven
//! last items included); and whole optimizer steps give the same parameters and moments at any
//! thread count.

use ingot_train::layers::*;
use ingot_train::optim::{clip_grad_norm, clip_grad_norm_par};
use ingot_train::parallel::pool;
use ingot_train::pretrain::{TrainConfig, Trainer};
use ingot_train::rng::Rng;
use ingot_train::{AdamW, AdamWConfig, Config, Model, Schedule};

fn randn(rng: &mut Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.normal() as f32).collect()
}

fn bits(x: &[f32]) -> Vec<u32> {
    x.iter().map(|x| x.to_bits()).collect()
}

const THREADS: [usize; 3] = [1, 2, 3];

#[test]
fn rmsnorm_par_equals_serial() {
    let (n, c) = (1001, 96);
    let mut rng = Rng::new(1);
    let (x, w, dy) = (
        randn(&mut rng, n * c),
        randn(&mut rng, c),
        randn(&mut rng, n * c),
    );
    let eps = 1e-5;
    let (mut out, mut rstd) = (vec![0.0; n * c], vec![0.0; n]);
    rmsnorm_forward(&mut out, &mut rstd, &x, &w, c, eps);
    let (mut dx, mut dw) = (randn(&mut rng, n * c), randn(&mut rng, c)); // accumulates onto these
    let (dx0, dw0) = (dx.clone(), dw.clone());
    rmsnorm_backward(&mut dx, &mut dw, &dy, &x, &w, &rstd, c);
    for threads in THREADS {
        let pool = pool(threads);
        let (mut o, mut r) = (vec![0.0; n * c], vec![0.0; n]);
        rmsnorm_forward_par(&mut o, &mut r, &x, &w, c, eps, &pool);
        assert_eq!((bits(&o), bits(&r)), (bits(&out), bits(&rstd)), "{threads}");
        let (mut gx, mut gw) = (dx0.clone(), dw0.clone());
        rmsnorm_backward_par(&mut gx, &mut gw, &dy, &x, &w, &rstd, c, &pool);
        assert_eq!((bits(&gx), bits(&gw)), (bits(&dx), bits(&dw)), "{threads}");
    }
}

#[test]
fn rope_par_equals_serial() {
    let (b, t, nh, d) = (5, 37, 3, 16);
    let table = rope_table::<f32>(t, d, 10000.0);
    let x = randn(&mut Rng::new(2), b * t * nh * d);
    let (mut fwd, mut bwd) = (x.clone(), x.clone());
    rope_forward(&mut fwd, &table, b, t, nh, d);
    rope_backward(&mut bwd, &table, b, t, nh, d);
    for threads in THREADS {
        let pool = pool(threads);
        let (mut f, mut g) = (x.clone(), x.clone());
        rope_par(&mut f, &table, b, t, nh, d, false, &pool);
        rope_par(&mut g, &table, b, t, nh, d, true, &pool);
        assert_eq!((bits(&f), bits(&g)), (bits(&fwd), bits(&bwd)), "{threads}");
    }
}

#[test]
fn swiglu_par_equals_serial() {
    let n = 50_021;
    let mut rng = Rng::new(3);
    let (g, u, dy) = (randn(&mut rng, n), randn(&mut rng, n), randn(&mut rng, n));
    let mut h = vec![0.0; n];
    swiglu_forward(&mut h, &g, &u);
    let (mut dg, mut du) = (randn(&mut rng, n), randn(&mut rng, n));
    let (dg0, du0) = (dg.clone(), du.clone());
    swiglu_backward(&mut dg, &mut du, &dy, &g, &u);
    for threads in THREADS {
        let pool = pool(threads);
        let mut h2 = vec![0.0; n];
        swiglu_forward_par(&mut h2, &g, &u, &pool);
        let (mut dg2, mut du2) = (dg0.clone(), du0.clone());
        swiglu_backward_par(&mut dg2, &mut du2, &dy, &g, &u, &pool);
        assert_eq!(bits(&h2), bits(&h), "{threads}");
        assert_eq!(
            (bits(&dg2), bits(&du2)),
            (bits(&dg), bits(&du)),
            "{threads}"
        );
        // the saving forward and the overwriting backward: the same bits as the serial pair on
        // zeroed gradients, whatever the buffers held before
        let (mut h3, mut sig) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        swiglu_forward_saving_par(&mut h3, &mut sig, &g, &u, &pool);
        let (mut dg3, mut du3) = (vec![f32::NAN; n], vec![f32::NAN; n]);
        swiglu_backward_saved_par(&mut dg3, &mut du3, &dy, &sig, &g, &u, &pool);
        let (mut dgz, mut duz) = (vec![0.0; n], vec![0.0; n]);
        swiglu_backward(&mut dgz, &mut duz, &dy, &g, &u);
        assert_eq!(bits(&h3), bits(&h), "{threads}");
        assert_eq!(
            (bits(&dg3), bits(&du3)),
            (bits(&dgz), bits(&duz)),
            "{threads}"
        );
    }
}

#[test]
fn linear_backward_into_overwrites() {
    let (n, ic, oc) = (70, 48, 33);
    let mut rng = Rng::new(8);
    let (x, w, dy) = (
        randn(&mut rng, n * ic),
        randn(&mut rng, oc * ic),
        randn(&mut rng, n * oc),
    );
    let dw0 = randn(&mut rng, oc * ic);
    for threads in THREADS {
        let mut e = ingot_train::parallel::Engine::<f32>::new(threads);
        let (mut dx, mut dw) = (vec![0.0; n * ic], dw0.clone());
        linear_backward(&mut dx, &mut dw, &dy, &x, &w, n, ic, oc, &mut e);
        let (mut dx2, mut dw2) = (vec![f32::NAN; n * ic], dw0.clone());
        linear_backward_into(&mut dx2, &mut dw2, &dy, &x, &w, n, ic, oc, &mut e);
        assert_eq!(
            (bits(&dx2), bits(&dw2)),
            (bits(&dx), bits(&dw)),
            "{threads}"
        );
    }
}

#[test]
fn cross_entropy_par_equals_serial() {
    let (n, v) = (777, 65);
    let mut rng = Rng::new(4);
    let logits: Vec<f32> = randn(&mut rng, n * v).iter().map(|x| 3.0 * x).collect();
    let targets: Vec<u32> = (0..n).map(|_| rng.below(v) as u32).collect();
    let weights: Vec<f32> = (0..n)
        .map(|i| if i % 3 == 0 { 0.0 } else { 0.01 })
        .collect();
    let (mut probs, mut losses) = (vec![0.0; n * v], vec![0.0; n]);
    cross_entropy_forward(&mut probs, &mut losses, &logits, &targets, v);
    let d0 = randn(&mut rng, n * v);
    let (mut d, mut dw) = (d0.clone(), d0.clone());
    cross_entropy_backward(&mut d, &probs, &targets, v, 0.25);
    cross_entropy_backward_weighted(&mut dw, &probs, &targets, v, &weights, 0.5);
    for threads in THREADS {
        let pool = pool(threads);
        let (mut p2, mut l2) = (vec![0.0; n * v], vec![0.0; n]);
        cross_entropy_forward_par(&mut p2, &mut l2, &logits, &targets, v, &pool);
        assert_eq!(
            (bits(&p2), bits(&l2)),
            (bits(&probs), bits(&losses)),
            "{threads}"
        );
        let (mut e, mut ew) = (d0.clone(), d0.clone());
        cross_entropy_backward_par(&mut e, &probs, &targets, v, None, 0.25, &pool);
        cross_entropy_backward_par(&mut ew, &probs, &targets, v, Some(&weights), 0.5, &pool);
        assert_eq!((bits(&e), bits(&ew)), (bits(&d), bits(&dw)), "{threads}");
    }
}

#[test]
fn embedding_and_residual_par_equal_serial() {
    let (n, c, v) = (900, 48, 70);
    let mut rng = Rng::new(5);
    let wte = randn(&mut rng, v * c);
    // skewed ids: many repeats of a few rows, so the order of the additions matters
    let tokens: Vec<u32> = (0..n)
        .map(|_| (rng.below(v) * rng.below(v) / v) as u32)
        .collect();
    let dout = randn(&mut rng, n * c);
    let mut out = vec![0.0; n * c];
    embedding_forward(&mut out, &tokens, &wte, c);
    let dwte0 = randn(&mut rng, v * c);
    let mut dwte = dwte0.clone();
    embedding_backward(&mut dwte, &dout, &tokens, c);
    let mut sum = vec![0.0; n * c];
    residual_forward(&mut sum, &out, &dout);
    for threads in THREADS {
        let pool = pool(threads);
        let mut o = vec![0.0; n * c];
        embedding_forward_par(&mut o, &tokens, &wte, c, &pool);
        let mut g = dwte0.clone();
        embedding_backward_par(&mut g, &dout, &tokens, c, &pool);
        let mut s = vec![0.0; n * c];
        residual_forward_par(&mut s, &out, &dout, &pool);
        assert_eq!(bits(&o), bits(&out), "{threads}");
        assert_eq!(bits(&g), bits(&dwte), "{threads}");
        assert_eq!(bits(&s), bits(&sum), "{threads}");
    }
}

fn small_config(vocab_size: usize) -> Config {
    Config {
        vocab_size,
        dim: 64,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        ffn_dim: 160,
        max_seq_len: 64,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: false,
    }
}

#[test]
fn adamw_and_clipping_par_equal_serial() {
    let cfg = small_config(50);
    let np = ingot_train::params::num_params(&cfg);
    let mut rng = Rng::new(6);
    let p0 = randn(&mut rng, np);
    let g0: Vec<f32> = randn(&mut rng, np).iter().map(|x| x * 0.01).collect();
    let run = |threads: Option<usize>| {
        let mut opt = AdamW::<f32>::new(AdamWConfig::default(), &cfg);
        let (mut p, mut g) = (p0.clone(), g0.clone());
        let mut norms = Vec::new();
        for step in 0..3 {
            g.iter_mut().for_each(|x| *x *= 3.0); // over the clip after the first step
            match threads {
                None => {
                    norms.push(clip_grad_norm(&mut g, 1.0));
                    opt.update(&mut p, &g, 1e-3 * (step + 1) as f64);
                }
                Some(threads) => {
                    let pool = pool(threads);
                    norms.push(clip_grad_norm_par(&mut g, 1.0, &pool));
                    opt.update_par(&mut p, &g, 1e-3 * (step + 1) as f64, &pool);
                }
            }
        }
        (norms, bits(&p), bits(&opt.m), bits(&opt.v))
    };
    let serial = run(None);
    assert!(serial.0[1] > 1.0, "clipping should be exercised");
    for threads in THREADS {
        assert!(run(Some(threads)) == serial, "{threads} threads");
    }
}

/// Whole optimizer steps (two micro-batches each, clipping, AdamW) give the same parameters and
/// moments at 1, 2 and 3 threads, on a batch whose element-wise passes split into many items.
#[test]
fn training_steps_are_bit_identical_for_any_thread_count() {
    let cfg = small_config(61);
    let mut rng = Rng::new(9);
    let ids: Vec<u32> = (0..5000).map(|_| rng.below(61) as u32).collect();
    let run = |threads: usize| {
        let mut model = Model::<f32>::new(cfg.clone(), threads).unwrap();
        model.init(3);
        let opt = AdamW::new(AdamWConfig::default(), &cfg);
        let config = TrainConfig {
            batch: 6,
            seq_len: 64,
            grad_accum: 2,
            steps: 4,
            schedule: Schedule {
                max_lr: 1e-2,
                min_lr: 1e-3,
                warmup_steps: 2,
                decay_steps: 4,
            },
            grad_clip: 0.5,
            seed: 11,
        };
        let mut t = Trainer::new(model, opt, config);
        let mut stats = Vec::new();
        while !t.done() {
            let s = t.train_step(&ids).unwrap();
            stats.push((s.loss.to_bits(), s.grad_norm.to_bits()));
        }
        (stats, bits(&t.model.params), bits(&t.opt.m), bits(&t.opt.v))
    };
    let one = run(1);
    for threads in [2, 3] {
        assert!(run(threads) == one, "{threads} threads differ from 1");
    }
}
