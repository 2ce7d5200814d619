//! The model end to end in f32: results independent of the thread count, bad batches refused, and a
//! short character-level run on Macbeth whose loss goes down.

use ingot_train::data::{random_batch, train_val_split, CharTokenizer};
use ingot_train::pretrain::{pretrain, TrainConfig};
use ingot_train::rng::Rng;
use ingot_train::{AdamW, AdamWConfig, Config, Error, Model, Schedule};

fn config(vocab_size: usize) -> Config {
    Config {
        vocab_size,
        dim: 32,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        ffn_dim: 88,
        max_seq_len: 32,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: true,
    }
}

fn macbeth() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/text/macbeth_40k.txt"
    ))
    .unwrap()
}

#[test]
fn bit_identical_for_any_thread_count() {
    let cfg = Config {
        tied_embeddings: false,
        ..config(29)
    };
    let (b, t) = (3, 17);
    let mut rng = Rng::new(5);
    let x: Vec<u32> = (0..b * t).map(|_| rng.below(29) as u32).collect();
    let y: Vec<u32> = (0..b * t).map(|_| rng.below(29) as u32).collect();
    let run = |threads| {
        let mut m = Model::<f32>::new(cfg.clone(), threads).unwrap();
        m.init(42);
        let loss = m.forward(&x, Some(&y), b, t).unwrap().unwrap();
        m.backward();
        (loss.to_bits(), m.logits().to_vec(), m.grads.clone())
    };
    let one = run(1);
    for threads in [2, 3, 8] {
        assert!(run(threads) == one, "{threads} threads differ from 1");
    }
}

#[test]
fn refuses_bad_batches_and_configs() {
    let mut m = Model::<f32>::new(config(10), 1).unwrap();
    assert!(matches!(
        m.forward(&[1, 2, 10], None, 1, 3),
        Err(Error::Batch { .. })
    ));
    assert!(matches!(
        m.forward(&[1, 2], None, 1, 3),
        Err(Error::Batch { .. })
    ));
    assert!(matches!(
        m.forward(&[0; 33], None, 1, 33),
        Err(Error::Batch { .. })
    ));
    assert!(m.forward(&[1, 2, 3], None, 1, 3).unwrap().is_none());
    for bad in [
        Config {
            n_kv_heads: 3,
            ..config(10)
        },
        Config {
            dim: 30,
            ..config(10)
        },
        Config {
            n_layers: 0,
            ..config(10)
        },
    ] {
        assert!(matches!(
            Model::<f32>::new(bad, 1),
            Err(Error::Config { .. })
        ));
    }
}

#[test]
fn loss_goes_down_on_macbeth() {
    let text = macbeth();
    let tok = CharTokenizer::from_text(&text);
    let ids = tok.encode(&text).unwrap();
    let (train, val) = train_val_split(&ids, 0.1);
    let cfg = config(tok.vocab_size());
    let mut model = Model::<f32>::new(cfg.clone(), 2).unwrap();
    model.init(1337);
    let mut opt = AdamW::new(AdamWConfig::default(), &cfg);
    let run = TrainConfig {
        batch: 8,
        seq_len: 32,
        grad_accum: 1,
        steps: 60,
        schedule: Schedule {
            max_lr: 1e-2,
            min_lr: 1e-3,
            warmup_steps: 5,
            decay_steps: 60,
        },
        grad_clip: 1.0,
        seed: 7,
    };
    let val_loss = |m: &mut Model<f32>| {
        let (x, y) = random_batch(val, 16, 32, &mut Rng::new(3)).unwrap();
        m.forward(&x, Some(&y), 16, 32).unwrap().unwrap()
    };
    let before = val_loss(&mut model);
    let stats = pretrain(&mut model, &mut opt, train, &run, |_| {}).unwrap();
    let after = val_loss(&mut model);
    let mean = |s: &[ingot_train::pretrain::StepStats]| {
        s.iter().map(|s| s.loss).sum::<f32>() / s.len() as f32
    };
    let (first, last) = (mean(&stats[..5]), mean(&stats[stats.len() - 5..]));
    eprintln!(
        "train loss {first:.3} -> {last:.3}, validation {before:.3} -> {after:.3} ({} chars)",
        tok.vocab_size()
    );
    assert!(
        (before - (tok.vocab_size() as f32).ln()).abs() < 0.1,
        "initial loss should be ln V"
    );
    assert!(
        last < first - 0.5 && after < before - 0.5,
        "loss did not go down"
    );
    assert!(stats
        .iter()
        .all(|s| s.loss.is_finite() && s.grad_norm.is_finite()));
}
