//! Golden test against PyTorch (llm.c's `test_gpt2.c`): `tools/oracles/train_golden.py` built the same
//! tiny model (V 64, C 32, L 2, H 4, Hkv 2, F 72, T 16, B 2, tied head) and dumped its weights, ten
//! batches, step 0's logits and every gradient, the loss and gradient norm of each step, and the
//! parameters after ten clipped, scheduled AdamW steps (`testdata/train/golden.{json,bin}`).
//!
//! Error measure, per tensor: `max |ours - torch| / max |torch|` (relative to the tensor's largest
//! magnitude, so tiny elements do not dominate).

use std::collections::HashMap;

use ingot_train::{
    clip_grad_norm, lr_schedule, params, AdamW, AdamWConfig, Config, Model, Schedule,
};
use serde_json::Value;

/// Logits and loss: f32 forward, summation orders differ from PyTorch's.
const TOL_FORWARD: f64 = 1e-5;
/// Every gradient tensor at step 0.
const TOL_GRAD: f64 = 1e-5;
/// Parameters after ten AdamW steps (Adam divides by sqrt(v), which amplifies rounding in small grads).
const TOL_TRAJECTORY: f64 = 1e-4;

struct Fixture {
    meta: Value,
    f32s: HashMap<String, (Vec<usize>, Vec<f32>)>,
    u32s: HashMap<String, Vec<u32>>,
}

fn load() -> Fixture {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/train/");
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(format!("{dir}golden.json")).unwrap())
            .unwrap();
    let blob = std::fs::read(format!("{dir}golden.bin")).unwrap();
    let (mut f32s, mut u32s) = (HashMap::new(), HashMap::new());
    for (name, t) in meta["tensors"].as_object().unwrap() {
        let shape: Vec<usize> = t["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d.as_u64().unwrap() as usize)
            .collect();
        let n: usize = shape.iter().product();
        let off = t["offset"].as_u64().unwrap() as usize;
        let words = blob[off..off + 4 * n]
            .chunks_exact(4)
            .map(|b| [b[0], b[1], b[2], b[3]]);
        match t["dtype"].as_str().unwrap() {
            "f32" => drop(f32s.insert(
                name.clone(),
                (shape, words.map(f32::from_le_bytes).collect()),
            )),
            "u32" => drop(u32s.insert(name.clone(), words.map(u32::from_le_bytes).collect())),
            other => panic!("dtype {other}"),
        }
    }
    Fixture { meta, f32s, u32s }
}

impl Fixture {
    fn f32(&self, name: &str) -> &[f32] {
        &self
            .f32s
            .get(name)
            .unwrap_or_else(|| panic!("fixture lacks {name}"))
            .1
    }
    fn num(&self, path: &[&str]) -> f64 {
        path.iter()
            .fold(&self.meta, |v, k| &v[*k])
            .as_f64()
            .unwrap()
    }
}

/// `max |a - b| / max |b|`.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y as f64).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|&y| (y as f64).abs()).fold(0.0, f64::max);
    if scale == 0.0 {
        diff
    } else {
        diff / scale
    }
}

fn config(fx: &Fixture) -> Config {
    let c = &fx.meta["config"];
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    Config {
        vocab_size: u("vocab_size"),
        dim: u("dim"),
        n_layers: u("n_layers"),
        n_heads: u("n_heads"),
        n_kv_heads: u("n_kv_heads"),
        ffn_dim: u("ffn_dim"),
        max_seq_len: u("max_seq_len"),
        rope_base: c["rope_base"].as_f64().unwrap() as f32,
        norm_eps: c["norm_eps"].as_f64().unwrap() as f32,
        tied_embeddings: c["tied_embeddings"].as_bool().unwrap(),
    }
}

#[test]
fn matches_pytorch() {
    let fx = load();
    let cfg = config(&fx);
    let (b, t, steps) = (
        fx.num(&["batch"]) as usize,
        fx.num(&["seq_len"]) as usize,
        fx.num(&["steps"]) as usize,
    );
    let layout = params::layout(&cfg);
    let mut model = Model::<f32>::new(cfg.clone(), 2).unwrap();
    for s in &layout {
        let (shape, data) = &fx.f32s[&format!("params.{}", s.name)];
        assert_eq!(shape, &s.shape, "{}", s.name);
        model.params[s.offset..s.offset + s.len].copy_from_slice(data);
    }
    let adamw = AdamWConfig {
        beta1: fx.num(&["adamw", "beta1"]),
        beta2: fx.num(&["adamw", "beta2"]),
        eps: fx.num(&["adamw", "eps"]),
        weight_decay: fx.num(&["adamw", "weight_decay"]),
    };
    let schedule = Schedule {
        max_lr: fx.num(&["schedule", "max_lr"]),
        min_lr: fx.num(&["schedule", "min_lr"]),
        warmup_steps: fx.num(&["schedule", "warmup_steps"]) as u64,
        decay_steps: fx.num(&["schedule", "decay_steps"]) as u64,
    };
    let clip = fx.num(&["grad_clip"]);
    let mut opt = AdamW::<f32>::new(adamw, &cfg);
    let (tokens, targets) = (&fx.u32s["tokens"], &fx.u32s["targets"]);
    let (want_losses, want_norms) = (fx.f32("losses"), fx.f32("grad_norms"));

    let mut worst = HashMap::<&str, (f64, String)>::new();
    let mut note = |kind: &'static str, name: String, err: f64| {
        let e = worst.entry(kind).or_insert((0.0, String::new()));
        if err >= e.0 {
            *e = (err, name);
        }
    };
    let mut failures = Vec::new();
    for step in 0..steps {
        let (x, y) = (
            &tokens[step * b * t..][..b * t],
            &targets[step * b * t..][..b * t],
        );
        model.zero_grad();
        let loss = model.forward(x, Some(y), b, t).unwrap().unwrap();
        model.backward();
        let loss_err =
            (loss as f64 - want_losses[step] as f64).abs() / want_losses[step].abs() as f64;
        note("loss", format!("step {step}"), loss_err);
        if loss_err > TOL_FORWARD {
            failures.push(format!(
                "step {step} loss {loss} vs {} ({loss_err:.2e})",
                want_losses[step]
            ));
        }
        if step == 0 {
            let err = rel_err(model.logits(), fx.f32("logits"));
            note("logits", "logits".into(), err);
            if err > TOL_FORWARD {
                failures.push(format!("logits {err:.2e}"));
            }
            for s in &layout {
                let err = rel_err(
                    &model.grads[s.offset..][..s.len],
                    fx.f32(&format!("grads.{}", s.name)),
                );
                note("grad", s.name.clone(), err);
                if err > TOL_GRAD {
                    failures.push(format!("grad {} {err:.2e}", s.name));
                }
            }
        }
        let norm = clip_grad_norm(&mut model.grads, clip);
        let norm_err = (norm - want_norms[step] as f64).abs() / want_norms[step] as f64;
        note("grad_norm", format!("step {step}"), norm_err);
        if norm_err > TOL_GRAD {
            failures.push(format!(
                "step {step} grad norm {norm} vs {} ({norm_err:.2e})",
                want_norms[step]
            ));
        }
        let lr = lr_schedule(&schedule, step as u64);
        let want_lr = fx.meta["lrs"][step].as_f64().unwrap();
        assert!(
            (lr - want_lr).abs() <= 1e-15 * want_lr,
            "lr at step {step}: {lr} vs {want_lr}"
        );
        opt.update(&mut model.params, &model.grads, lr);
    }
    for s in &layout {
        let err = rel_err(
            &model.params[s.offset..][..s.len],
            fx.f32(&format!("params_after.{}", s.name)),
        );
        note("params_after", s.name.clone(), err);
        if err > TOL_TRAJECTORY {
            failures.push(format!("params after {steps} steps: {} {err:.2e}", s.name));
        }
    }
    let mut kinds: Vec<_> = worst.into_iter().collect();
    kinds.sort_by_key(|k| k.0);
    for (kind, (err, at)) in kinds {
        eprintln!("max relative error {kind:>12}: {err:.2e} ({at})");
    }
    assert!(
        failures.is_empty(),
        "mismatches against PyTorch:\n{}",
        failures.join("\n")
    );
}
