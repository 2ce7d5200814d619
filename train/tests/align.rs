//! The alignment stages on tiny models: gradients of the new losses (masked cross-entropy, the reward
//! model's Bradley–Terry loss through its scalar head, DPO) against finite differences in `f64`, the
//! KV-cached sampler against the full forward, the bundled task's determinism and split, and small
//! runs of SFT, RM and DPO on the committed Macbeth excerpt that must learn (losses fall, held-out
//! pairwise accuracy above chance, DPO's margin grows).

use std::path::Path;

use ingot_runtime::sampler::SamplerParams;
use ingot_train::align::dpo::{dpo_loss_and_grad, pair_logps};
use ingot_train::align::pairs::{answers, to_ids, win_rate, TextPair};
use ingot_train::align::reward::{bt_loss, rm_eval, rm_loss_and_grad, BtConfig, Head, Pair};
use ingot_train::align::sample::{generate, incremental_logits, GenerateConfig};
use ingot_train::align::sft::{check_lengths, sft_eval, sft_step, Encoded};
use ingot_train::align::task::{build, Kind, Task, TaskConfig};
use ingot_train::align::vocab::extend_char_vocab;
use ingot_train::align::{chatml, encode_chat, encode_exchange, Message, IM_END};
use ingot_train::data::CharTokenizer;
use ingot_train::pretrain::{TrainConfig, Trainer};
use ingot_train::rng::Rng;
use ingot_train::{clip_grad_norm, params, AdamW, AdamWConfig, Config, Model, Schedule};

/// Central-difference step and tolerance, as `finite_difference.rs` (truncation ~h², rounding ~1e-16/h).
const H: f64 = 1e-5;
const FD_TOL: f64 = 1e-7;

fn tiny_config(tied: bool) -> Config {
    Config {
        vocab_size: 11,
        dim: 12,
        n_layers: 2,
        n_heads: 3,
        n_kv_heads: 1,
        ffn_dim: 10,
        max_seq_len: 8,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: tied,
    }
}

fn random_model(cfg: &Config, seed: u64) -> Model<f64> {
    let mut model = Model::<f64>::new(cfg.clone(), 1).unwrap();
    let mut rng = Rng::new(seed);
    for s in params::layout(cfg) {
        for p in &mut model.params[s.offset..s.offset + s.len] {
            *p = if s.is_matrix() {
                0.4 * rng.normal()
            } else {
                1.0 + 0.2 * rng.normal()
            };
        }
    }
    model
}

/// Compares `analytic` with central differences of `objective` over every entry of `params`.
fn fd_check(
    what: &str,
    analytic: &[f64],
    params: &mut [f64],
    mut objective: impl FnMut(&[f64]) -> f64,
) -> f64 {
    let numeric: Vec<f64> = (0..params.len())
        .map(|i| {
            let p0 = params[i];
            params[i] = p0 + H;
            let up = objective(params);
            params[i] = p0 - H;
            let down = objective(params);
            params[i] = p0;
            (up - down) / (2.0 * H)
        })
        .collect();
    let diff = analytic
        .iter()
        .zip(&numeric)
        .map(|(a, n)| (a - n).abs())
        .fold(0.0, f64::max);
    let scale = numeric.iter().map(|n| n.abs()).fold(0.0, f64::max);
    assert!(
        scale > 1e-4,
        "{what}: gradient vanishes, the check would prove nothing"
    );
    let err = diff / scale;
    eprintln!(
        "{what}: {} values, max relative error {err:.1e}",
        numeric.len()
    );
    assert!(err < FD_TOL, "{what}: gradient off by {err:.2e}");
    err
}

#[test]
fn masked_loss_gradient_by_finite_differences() {
    let cfg = tiny_config(false);
    let (b, t) = (2, 7);
    let mut model = random_model(&cfg, 3);
    let mut rng = Rng::new(4);
    let tokens: Vec<u32> = (0..b * t).map(|_| rng.below(11) as u32).collect();
    let mut targets: Vec<u32> = (0..b * t).map(|_| rng.below(11) as u32).collect();
    let mask: Vec<bool> = (0..b * t).map(|i| i % 3 != 0).collect();
    model.zero_grad();
    let loss = model
        .forward_masked(&tokens, &targets, &mask, b, t)
        .unwrap();
    // the masked mean by hand, from the per-token losses of a plain forward
    model.forward(&tokens, Some(&targets), b, t).unwrap();
    let kept: Vec<f64> = model
        .token_losses()
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(l, _)| *l)
        .collect();
    assert!((loss - kept.iter().sum::<f64>() / kept.len() as f64).abs() < 1e-12);
    // a masked position's target changes nothing
    targets[0] = (targets[0] + 1) % 11;
    let same = model
        .forward_masked(&tokens, &targets, &mask, b, t)
        .unwrap();
    assert_eq!(loss, same);
    model.backward();
    let analytic = model.grads.clone();
    let mut p = model.params.clone();
    fd_check("masked cross-entropy", &analytic, &mut p, |p| {
        model.params.copy_from_slice(p);
        model
            .forward_masked(&tokens, &targets, &mask, b, t)
            .unwrap()
    });
    let none = vec![false; b * t];
    let err = model
        .forward_masked(&tokens, &targets, &none, b, t)
        .unwrap_err();
    assert!(err.to_string().contains("no token"), "{err}");
}

fn random_pairs(rng: &mut Rng, n: usize, v: usize) -> Vec<Pair> {
    let mut ids = |k: usize| (0..k).map(|_| rng.below(v) as u32).collect::<Vec<u32>>();
    (0..n)
        .map(|i| Pair {
            prompt: ids(2 + i % 2),
            chosen: ids(2 + (i + 1) % 3),
            rejected: ids(3),
        })
        .collect()
}

#[test]
fn reward_gradient_by_finite_differences() {
    for tied in [true, false] {
        let cfg = tiny_config(tied);
        let mut model = random_model(&cfg, 5);
        let mut rng = Rng::new(6);
        let pairs = random_pairs(&mut rng, 3, cfg.vocab_size);
        let head: Vec<f64> = (0..cfg.dim).map(|_| rng.normal()).collect();
        let bt = BtConfig {
            margin: 0.3,
            center: 0.05,
        };
        let t = cfg.max_seq_len;
        model.zero_grad();
        let mut dhead = vec![0.0; cfg.dim];
        rm_loss_and_grad(&mut model, &head, &mut dhead, &pairs, t, bt).unwrap();
        let analytic = model.grads.clone();
        let mut p = model.params.clone();
        fd_check(
            &format!("reward trunk (tied {tied})"),
            &analytic,
            &mut p,
            |p| {
                model.params.copy_from_slice(p);
                let mut scratch = vec![0.0; cfg.dim];
                rm_loss_and_grad(&mut model, &head, &mut scratch, &pairs, t, bt)
                    .unwrap()
                    .loss
            },
        );
        model.params.copy_from_slice(&p);
        let mut h = head.clone();
        fd_check(&format!("reward head (tied {tied})"), &dhead, &mut h, |h| {
            let mut scratch = vec![0.0; cfg.dim];
            rm_loss_and_grad(&mut model, h, &mut scratch, &pairs, t, bt)
                .unwrap()
                .loss
        });
    }
}

#[test]
fn dpo_gradient_by_finite_differences() {
    let cfg = tiny_config(false);
    let mut model = random_model(&cfg, 7);
    let mut rng = Rng::new(8);
    let pairs = random_pairs(&mut rng, 3, cfg.vocab_size);
    let t = cfg.max_seq_len;
    let mut reference_model = random_model(&cfg, 9);
    let reference = pair_logps(&mut reference_model, &pairs, t, 2).unwrap();
    let beta = 0.7;
    model.zero_grad();
    dpo_loss_and_grad(&mut model, &pairs, &reference, beta, t).unwrap();
    let analytic = model.grads.clone();
    let mut p = model.params.clone();
    fd_check("dpo", &analytic, &mut p, |p| {
        model.params.copy_from_slice(p);
        dpo_loss_and_grad(&mut model, &pairs, &reference, beta, t)
            .unwrap()
            .loss
    });
    // against the policy itself as reference the loss is ln 2 and the margin 0
    let own = pair_logps(&mut model, &pairs, t, 3).unwrap();
    let s = dpo_loss_and_grad(&mut model, &pairs, &own, beta, t).unwrap();
    assert!((s.loss - std::f64::consts::LN_2).abs() < 1e-12 && s.margin.abs() < 1e-12);
}

/// The Bradley–Terry loss and its gradient against PyTorch (`tools/oracles/align_golden.py`, values in
/// `testdata/train/bt_loss.json`).
#[test]
fn bt_loss_matches_pytorch() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/train/bt_loss.json");
    let golden: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("testdata/train/bt_loss.json"))
            .unwrap();
    let f = |k: &str| -> Vec<f64> {
        golden[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let cases = golden["cases"].as_array().unwrap();
    assert!(!cases.is_empty());
    let (rc, rr) = (f("rc"), f("rr"));
    for case in cases {
        let bt = BtConfig {
            margin: case["margin"].as_f64().unwrap(),
            center: case["center"].as_f64().unwrap(),
        };
        let (loss, dc, dr) = bt_loss(&rc, &rr, bt);
        let want = |k: &str| -> Vec<f64> {
            case[k]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        assert!(
            (loss - case["loss"].as_f64().unwrap()).abs() < 1e-12,
            "{bt:?}"
        );
        for (a, b) in dc
            .iter()
            .zip(want("d_rc"))
            .chain(dr.iter().zip(want("d_rr")))
        {
            assert!((a - b).abs() < 1e-12, "{bt:?}: {a} vs {b}");
        }
    }
}

fn f32_model(cfg: &Config, seed: u64) -> Model<f32> {
    let mut m = Model::<f32>::new(cfg.clone(), 1).unwrap();
    m.init(seed);
    m
}

#[test]
fn kv_cache_decoder_matches_full_forward() {
    for (tied, kv) in [(true, 1), (false, 3)] {
        let mut cfg = tiny_config(tied);
        cfg.n_kv_heads = kv;
        cfg.max_seq_len = 16;
        let mut model = f32_model(&cfg, 11);
        // larger weights than init's, so the attention pattern is far from uniform
        model.params.iter_mut().for_each(|p| *p *= 20.0);
        let tokens: Vec<u32> = (0..13).map(|i| (i * 7 % 11) as u32).collect();
        let inc = incremental_logits(&model, &tokens).unwrap();
        model.forward(&tokens, None, 1, tokens.len()).unwrap();
        let full = model.logits();
        let scale = full.iter().map(|x| x.abs()).fold(0.0f32, f32::max);
        let diff = inc
            .iter()
            .zip(full)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff <= 1e-5 * scale.max(1.0), "kv {kv}: {diff} of {scale}");
    }
    // prompts that do not fit are errors, not panics
    let model = f32_model(&tiny_config(true), 1);
    let cfg = GenerateConfig {
        max_new_tokens: 4,
        stop: vec![],
        sampler: SamplerParams::default(),
        batch: 2,
        n_threads: 1,
    };
    assert!(generate(&model, &[vec![1; 8]], &cfg).is_err());
    assert!(generate(&model, &[vec![]], &cfg).is_err());
    assert!(generate(&model, &[vec![99]], &cfg).is_err());
}

#[test]
fn generation_is_deterministic_across_batch_sizes() {
    let mut cfg = tiny_config(true);
    cfg.max_seq_len = 24;
    let model = f32_model(&cfg, 12);
    let prompts: Vec<Vec<u32>> = (0..5).map(|i| vec![1 + i as u32; 1 + i % 3]).collect();
    let run = |batch: usize, threads: usize| {
        let g = GenerateConfig {
            max_new_tokens: 10,
            stop: vec![3, 4],
            sampler: SamplerParams {
                temperature: 1.5,
                ..SamplerParams::default()
            },
            batch,
            n_threads: threads,
        };
        generate(&model, &prompts, &g).unwrap()
    };
    let a = run(5, 1);
    assert_eq!(a, run(2, 2));
    assert_eq!(a, run(1, 1));
    for g in &a {
        assert!(g.tokens.len() <= 10 && !g.tokens.ends_with(&[3, 4]));
    }
}

fn macbeth() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/text/macbeth_40k.txt");
    std::fs::read_to_string(path).expect("testdata/text/macbeth_40k.txt")
}

fn small_task() -> Task {
    build(
        &macbeth(),
        &TaskConfig {
            seed: 5,
            train_examples: 600,
            heldout_prompts: 60,
        },
    )
    .unwrap()
}

#[test]
fn task_is_deterministic_and_held_out() {
    let task = small_task();
    let again = small_task();
    assert_eq!(task.train, again.train);
    assert_eq!(task.heldout, again.heldout);
    assert_eq!(task.heldout.len(), 60);
    let train_prompts: std::collections::HashSet<&str> =
        task.train.iter().map(|e| e.prompt.text.as_str()).collect();
    for e in &task.heldout {
        assert!(
            !train_prompts.contains(e.prompt.text.as_str()),
            "{:?}",
            e.prompt
        );
    }
    let writes = task
        .train
        .iter()
        .filter(|e| matches!(e.prompt.kind, Kind::Write { .. }))
        .count();
    assert!(
        writes > 200 && writes < 400,
        "{writes} of 600 are Write prompts"
    );
    // demonstrations score well: on task and in form
    for e in task.train.iter().take(100) {
        let s = task.labeler.score(&e.prompt, &e.answer);
        assert_eq!(s.on_task, 1.0, "{e:?}");
        assert_eq!(s.form, 1.0, "{e:?}");
    }
    let other = build(
        &macbeth(),
        &TaskConfig {
            seed: 6,
            ..TaskConfig {
                seed: 5,
                train_examples: 600,
                heldout_prompts: 60,
            }
        },
    )
    .unwrap();
    assert_ne!(task.train, other.train);
    // the full corpus gives at least 200 held-out prompts where it is present (the default config)
    let too_many = TaskConfig {
        seed: 5,
        train_examples: 10,
        heldout_prompts: 5000,
    };
    let err = build(&macbeth(), &too_many).unwrap_err();
    assert!(err.to_string().contains("held-out"), "{err}");
}

#[test]
fn chat_rendering_masks_assistant_turns() {
    let msgs = [Message::new("user", "Hi"), Message::new("assistant", "Yo")];
    assert_eq!(
        chatml(&msgs, false),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n"
    );
    let tok = CharTokenizer::from_text(&chatml(&msgs, false));
    let (ids, mask) = encode_chat(&tok, &msgs).unwrap();
    let trained: String = ids
        .iter()
        .zip(&mask)
        .filter(|(_, &m)| m)
        .map(|(&i, _)| tok.decode(&[i]))
        .collect();
    assert_eq!(trained, "Yo<|im_end|>\n");
    let (p, a) = encode_exchange(&tok, "Hi", "Yo").unwrap();
    assert_eq!(
        tok.decode(&p),
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_eq!(tok.decode(&a), "Yo<|im_end|>\n");
    assert!(encode_chat(&tok, &msgs[..1]).is_err());
}

/// SFT -> pairs -> RM -> DPO on a tiny model, seconds each; each stage must learn.
#[test]
fn tiny_sft_rm_dpo() {
    let task = small_task();
    let text = macbeth();
    let tok0 = CharTokenizer::from_text(&text);
    let cfg = Config {
        vocab_size: tok0.vocab_size(),
        dim: 48,
        n_layers: 2,
        n_heads: 4,
        n_kv_heads: 2,
        ffn_dim: 128,
        max_seq_len: 160,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: true,
    };
    let model = f32_model(&cfg, 21);
    let markers = chatml(&[Message::new("user", "x")], true);
    let (model, tok) = extend_char_vocab(&model, &tok0, &markers, 22)
        .unwrap()
        .expect("new chars");
    assert!(tok.encode(&markers).is_ok() && tok0.encode(&markers).is_err());
    assert!(extend_char_vocab(&model, &tok, &markers, 22)
        .unwrap()
        .is_none());

    // SFT
    let enc = |e: &ingot_train::align::task::Example| {
        let (ids, mask) = encode_chat(
            &tok,
            &[
                Message::new("user", &e.prompt.text),
                Message::new("assistant", &e.answer),
            ],
        )
        .unwrap();
        Encoded { ids, mask }
    };
    let train: Vec<Encoded> = task.train.iter().map(enc).collect();
    let held: Vec<Encoded> = task.heldout.iter().map(enc).collect();
    let t = 159;
    check_lengths(&train, t).unwrap();
    let steps = 200;
    let tc = TrainConfig {
        batch: 8,
        seq_len: t,
        grad_accum: 1,
        steps,
        schedule: Schedule {
            max_lr: 3e-3,
            min_lr: 3e-4,
            warmup_steps: 10,
            decay_steps: steps,
        },
        grad_clip: 1.0,
        seed: 23,
    };
    let opt = AdamW::new(AdamWConfig::default(), &model.config);
    let mut trainer = Trainer::new(model, opt, tc);
    let before = sft_eval(&mut trainer.model, &held, 8, t).unwrap();
    while !trainer.done() {
        sft_step(&mut trainer, &train).unwrap();
    }
    let after = sft_eval(&mut trainer.model, &held, 8, t).unwrap();
    eprintln!("SFT held-out loss {before:.3} -> {after:.3}");
    assert!(
        after < before - 1.0,
        "SFT held-out loss {before:.3} -> {after:.3}"
    );
    let sft = trainer.model;

    // the SFT model answers in chat form: most answers end with the end marker
    let prompts: Vec<_> = task.heldout.iter().map(|e| e.prompt.clone()).collect();
    let gen = GenerateConfig {
        max_new_tokens: 80,
        stop: tok.encode(IM_END).unwrap(),
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerParams::default()
        },
        batch: 16,
        n_threads: 1,
    };
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| ingot_train::align::encode_prompt(&tok, &p.text).unwrap())
        .collect();
    let finished = generate(&sft, &ids, &gen)
        .unwrap()
        .iter()
        .filter(|g| g.finished)
        .count();
    assert!(
        finished * 3 > prompts.len(),
        "{finished} of {} answers ended",
        prompts.len()
    );

    // RM on labeler-ranked pairs of corpus answers: two demonstrations of different prompts per
    // prompt, the labeler decides (the CLI ranks sampled answers instead; the mechanics are the same)
    let rank = |examples: &[ingot_train::align::task::Example],
                seed: u64,
                draws: usize|
     -> Vec<TextPair> {
        let mut rng = Rng::new(seed);
        let mut out = Vec::new();
        for e in (0..draws).flat_map(|_| examples) {
            let other = &examples[rng.below(examples.len())].answer;
            let (s0, s1) = (
                task.labeler.score(&e.prompt, &e.answer).total(),
                task.labeler.score(&e.prompt, other).total(),
            );
            if (s0 - s1).abs() >= 1.5 {
                let (c, r) = if s0 > s1 {
                    (&e.answer, other)
                } else {
                    (other, &e.answer)
                };
                out.push(TextPair {
                    prompt: e.prompt.text.clone(),
                    chosen: c.clone(),
                    rejected: r.clone(),
                });
            }
        }
        out
    };
    let to = |v: Vec<TextPair>| {
        v.iter()
            .map(|p| to_ids(&tok, p).unwrap())
            .collect::<Vec<Pair>>()
    };
    let train_pairs = to(rank(&task.train, 31, 2));
    let held_pairs = to(rank(&task.heldout, 32, 6));
    assert!(train_pairs.len() > 100 && held_pairs.len() > 20);
    eprintln!(
        "RM pairs: {} training, {} held-out",
        train_pairs.len(),
        held_pairs.len()
    );
    let mut rm = Model::<f32>::new(sft.config.clone(), 1).unwrap();
    rm.params.copy_from_slice(&sft.params);
    let mut head = Head::new(cfg.dim, 33);
    let mut opt = AdamW::new(AdamWConfig::default(), &rm.config);
    let bt = BtConfig {
        margin: 0.0,
        center: 0.01,
    };
    let acc0 = rm_eval(&mut rm, &head.w, &held_pairs, 160, 16)
        .unwrap()
        .accuracy;
    let mut rng = Rng::new(34);
    for _ in 0..300 {
        let batch: Vec<Pair> = (0..8)
            .map(|_| train_pairs[rng.below(train_pairs.len())].clone())
            .collect();
        rm.zero_grad();
        let mut dhead = vec![0.0; cfg.dim];
        rm_loss_and_grad(&mut rm, &head.w, &mut dhead, &batch, 160, bt).unwrap();
        clip_grad_norm(&mut rm.grads, 1.0);
        opt.update(&mut rm.params, &rm.grads, 3e-3);
        head.update(&dhead, 3e-3);
    }
    let acc = rm_eval(&mut rm, &head.w, &held_pairs, 160, 16)
        .unwrap()
        .accuracy;
    eprintln!(
        "RM held-out accuracy {acc0:.3} -> {acc:.3} on {} pairs",
        held_pairs.len()
    );
    assert!(acc >= 0.7, "RM held-out accuracy {acc0:.3} -> {acc:.3}");

    // DPO: the implicit reward margin on held-out pairs grows from 0
    let mut policy = Model::<f32>::new(sft.config.clone(), 1).unwrap();
    policy.params.copy_from_slice(&sft.params);
    let mut reference = Model::<f32>::new(sft.config.clone(), 1).unwrap();
    reference.params.copy_from_slice(&sft.params);
    let train_ref = pair_logps(&mut reference, &train_pairs, 160, 16).unwrap();
    let held_ref = pair_logps(&mut reference, &held_pairs, 160, 16).unwrap();
    let mut opt = AdamW::new(AdamWConfig::default(), &policy.config);
    for _ in 0..60 {
        let idx: Vec<usize> = (0..8).map(|_| rng.below(train_pairs.len())).collect();
        let batch: Vec<Pair> = idx.iter().map(|&i| train_pairs[i].clone()).collect();
        let refs: Vec<(f64, f64)> = idx.iter().map(|&i| train_ref[i]).collect();
        policy.zero_grad();
        dpo_loss_and_grad(&mut policy, &batch, &refs, 0.1, 160).unwrap();
        clip_grad_norm(&mut policy.grads, 1.0);
        opt.update(&mut policy.params, &policy.grads, 1e-3);
    }
    let lp = pair_logps(&mut policy, &held_pairs, 160, 16).unwrap();
    let margin = lp
        .iter()
        .zip(&held_ref)
        .map(|(p, r)| (p.0 - r.0) - (p.1 - r.1))
        .sum::<f64>()
        / lp.len() as f64;
    eprintln!("DPO held-out implicit margin {margin:.3}");
    assert!(margin > 0.5, "DPO held-out margin {margin:.3}");

    // the evaluation helpers run end to end
    let a = answers(&policy, &tok, &prompts[..8], &gen).unwrap();
    let b = answers(&sft, &tok, &prompts[..8], &gen).unwrap();
    let (w, ties, l) = win_rate(&task.labeler, &prompts[..8], &a, &b);
    assert_eq!(w + ties + l, 8);
}

/// PPO on a tiny random policy with a programmatic score (the fraction of response tokens equal to 3):
/// the mean score rises over the iterations while the KL to the reference stays bounded.
#[test]
fn tiny_ppo_raises_the_score_with_bounded_kl() {
    use ingot_train::align::ppo::{Ppo, PpoConfig};
    let mut cfg = tiny_config(true);
    cfg.max_seq_len = 24;
    cfg.vocab_size = 12;
    let policy = f32_model(&cfg, 41);
    let reference = f32_model(&cfg, 41);
    let opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        &cfg,
    );
    let pc = PpoConfig {
        lr: 3e-3,
        minibatch: 8,
        ..PpoConfig::default()
    };
    let mut ppo = Ppo::new(policy, reference, opt.clone(), pc.clone());
    let mut rng = Rng::new(42);
    let prompts: Vec<Vec<u32>> = (0..32)
        .map(|_| (0..3).map(|_| rng.below(10) as u32).collect())
        .collect();
    let gen = GenerateConfig {
        max_new_tokens: 12,
        stop: vec![11],
        sampler: SamplerParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            ..SamplerParams::default()
        },
        batch: 32,
        n_threads: 1,
    };
    let score = |_: &[u32], r: &[u32]| -> ingot_train::Result<f64> {
        Ok(r.iter().filter(|&&t| t == 3).count() as f64 / r.len() as f64)
    };
    let mut stats = Vec::new();
    for _ in 0..12 {
        stats.push(ppo.iteration(&prompts, &gen, &[11], score).unwrap());
    }
    for s in &stats {
        eprintln!("{s:?}");
    }
    let first = stats[..2].iter().map(|s| s.score).sum::<f64>() / 2.0;
    let last = stats[10..].iter().map(|s| s.score).sum::<f64>() / 2.0;
    assert!(last > first + 0.1, "score {first:.3} -> {last:.3}");
    for s in &stats {
        assert!(s.kl.is_finite() && s.kl < 10.0, "KL {}", s.kl);
        assert!(s.clipfrac <= 1.0 && s.entropy > 0.0);
    }
    assert_eq!(stats[0].kl, 0.0, "the policy starts at the reference");

    // a strong KL penalty keeps the policy closer to the reference; the adaptive controller lowers a
    // coefficient whose KL stays below its target
    let strong = PpoConfig {
        kl_coef: 2.0,
        adaptive_kl: Some((100.0, 64.0)),
        ..pc
    };
    let mut held = Ppo::new(f32_model(&cfg, 41), f32_model(&cfg, 41), opt, strong);
    let mut kls = Vec::new();
    for _ in 0..12 {
        kls.push(held.iteration(&prompts, &gen, &[11], score).unwrap().kl);
    }
    let (free, tied) = (
        stats[8..].iter().map(|s| s.kl).sum::<f64>() / 4.0,
        kls[8..].iter().sum::<f64>() / 4.0,
    );
    eprintln!("KL with kl_coef 0.05: {free:.3}, with 2.0: {tied:.3}");
    assert!(
        tied < free,
        "KL {tied:.3} with a strong penalty vs {free:.3}"
    );
    assert!(held.config.kl_coef < 2.0, "kl_coef {}", held.config.kl_coef);
}
