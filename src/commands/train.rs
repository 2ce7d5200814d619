//! `ingot train pretrain`: a llama-style model (character-level or byte-level BPE) trained from
//! scratch on text files, with a progress line on stderr, `metrics.jsonl`, periodic validation, and
//! checkpoints that `--resume` continues bit-identically. The loop, data, tokenizers and checkpoint
//! format are `ingot-train`'s; this file owns the options, their defaults (nanoGPT's "baby
//! Shakespeare"), the schedule of evaluations and
//! saves, and the output directory:
//!
//! ```text
//! OUT/metrics.jsonl           one JSON object per step (and one per evaluation at step 0)
//! OUT/loss.svg                the loss curve (training and validation), redrawn at the end of a run
//! OUT/step-XXXXXXXX/          checkpoints (train/README.md, "Checkpoint format"); the newest --keep stay
//! OUT/latest                  the newest checkpoint's directory name
//! OUT/cache/tokens-*.bin      the tokenized corpus, keyed by its content and the tokenizer
//! ```

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use ingot_train::bench;
use ingot_train::bpe::{self, BpeOptions, BpeTokenizer};
use ingot_train::checkpoint::{self, DataMeta};
use ingot_train::corpus::{self, CacheOutcome};
use ingot_train::data::{train_val_split, CharTokenizer, TextTokenizer};
use ingot_train::pretrain::{TrainConfig, Trainer};
use ingot_train::{AdamW, AdamWConfig, Config, Model, Schedule};

/// Corpus directories tried, in order, when `--data` is not given (relative to the working directory).
pub(crate) const DEFAULT_DATA: [&str; 2] = ["../shared/data/shakespeare", "data/shakespeare"];
const DEFAULT_OUT: &str = "runs/pretrain";
/// The last tenth of the token stream is the validation set (nanoGPT's `shakespeare_char` split).
const VAL_FRACTION: f64 = 0.1;

/// `--tokenizer`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenizerKind {
    /// One token per character of the corpus (nanoGPT's shakespeare_char).
    Char,
    /// Byte-level BPE trained on the training part of the corpus (GPT-2 pre-tokenization), with
    /// <|endoftext|> = 256, <|im_start|> = 257, <|im_end|> = 258.
    Bpe,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    #[command(subcommand)]
    pub command: TrainCommand,
}

#[derive(Subcommand, Debug)]
pub enum TrainCommand {
    /// Pretrain a llama-style model (character-level or byte-level BPE) from scratch on text files.
    Pretrain(Box<PretrainArgs>),
    /// Measure training throughput (tokens/s) on random character-level data.
    Bench(BenchArgs),
    /// Supervised fine-tuning on chat data (loss on assistant tokens only).
    #[command(after_help = super::align::SFT_HELP)]
    Sft(Box<super::align::SftArgs>),
    /// Train a reward model (trunk + scalar head) on ranked answer pairs, Bradley-Terry loss.
    #[command(after_help = super::align::RM_HELP)]
    Rm(Box<super::align::RmArgs>),
    /// Direct preference optimisation on ranked answer pairs against the frozen initial model.
    #[command(after_help = super::align::DPO_HELP)]
    Dpo(Box<super::align::DpoArgs>),
    /// PPO against a reward model with a KL penalty to the initial (SFT) model.
    #[command(after_help = super::align::PPO_HELP)]
    Ppo(Box<super::align::PpoArgs>),
    /// Compare two models' answers to the bundled task's held-out prompts with the labeler.
    #[command(after_help = super::align::VERSUS_HELP)]
    Versus(Box<super::align::VersusArgs>),
}

/// The configurations of the side-by-side comparison with PyTorch (`tools/oracles/bench_torch_train.py`).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum BenchConfig {
    /// nanoGPT's "baby Shakespeare": 4 layers, 4 heads, width 128, context 64, batch 12.
    Baby,
    /// 6 layers, 6 heads, width 384, context 256, batch 8.
    Large,
}

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Threads (0 = all cores).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub threads: usize,
    #[arg(long, value_enum, default_value_t = BenchConfig::Baby)]
    pub config: BenchConfig,
    /// Optimizer steps before timing.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub warmup: u64,
    /// Timed optimizer steps.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub steps: u64,
}

/// Options left out take the defaults shown; with `--resume` they take the checkpoint's values, and
/// giving a different value for one that shapes the run (model, batch, optimizer, schedule, seed) is
/// an error.
#[derive(Args, Debug)]
#[command(after_help = "\
Defaults are nanoGPT's \"baby Shakespeare\": 4 layers, 4 heads, width 128, context 64, batch 12,
character-level, AdamW lr 1e-3 (betas 0.9/0.99, weight decay 0.1), 100 warmup steps then cosine to 1e-4
at the last step, gradient clipping at 1.0. The SwiGLU width defaults to 8/3 of the model width rounded
up to a multiple of 32 (the parameter count of a 4x GELU MLP).

Data: files, or directories whose *.txt files are read in name order, concatenated. Without --data:
../shared/data/shakespeare, else data/shakespeare (scripts/fetch-data.sh puts it there). The last 10%
of the token stream is the validation set; windows are drawn at random from the rest.

Tokenizer: --tokenizer char (default) makes one token per character of the corpus; --tokenizer bpe
trains a byte-level BPE of --vocab-size tokens (default 2048) on the training part (first 90%) of the
text: ids 0-255 are the bytes, 256 <|endoftext|>, 257 <|im_start|>, 258 <|im_end|>, then the merges.
Both are stored in the checkpoint, and `ingot convert` writes them as a GGUF `gpt2` tokenizer.

Seeds: the model is initialised from --seed, the batch sampler from --seed + 1, validation windows from
--seed + 3 (the sampler's seed + 2; the same windows at every evaluation).

Output (--out): metrics.jsonl, loss.svg, step-XXXXXXXX/ checkpoints and `latest`, cache/ (tokenized corpus).
--resume takes that directory (or one checkpoint directory) and continues bit-identically; --steps may
be raised then (the learning rate stays at --min-lr past the original last step).")]
pub struct PretrainArgs {
    /// Training text: a file or a directory of .txt files (repeatable).
    #[arg(long, value_name = "PATH")]
    pub data: Vec<PathBuf>,
    /// Output directory [default: runs/pretrain, or the run being resumed].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// Optimizer steps in all [default: 5000].
    #[arg(long, value_name = "N")]
    pub steps: Option<u64>,
    /// Sequences per micro-batch [default: 12].
    #[arg(long, value_name = "B")]
    pub batch: Option<usize>,
    /// Tokens per sequence (context length) [default: 64].
    #[arg(long, value_name = "T")]
    pub ctx: Option<usize>,
    /// Transformer blocks [default: 4].
    #[arg(long, value_name = "L")]
    pub layers: Option<usize>,
    /// Model width [default: 128].
    #[arg(long, value_name = "C")]
    pub width: Option<usize>,
    /// Attention heads [default: 4].
    #[arg(long, value_name = "H")]
    pub heads: Option<usize>,
    /// Key/value heads, dividing --heads [default: --heads].
    #[arg(long, value_name = "HKV")]
    pub kv_heads: Option<usize>,
    /// SwiGLU hidden width [default: 8/3 of --width, rounded up to a multiple of 32].
    #[arg(long, value_name = "F")]
    pub ffn: Option<usize>,
    /// Peak learning rate [default: 1e-3].
    #[arg(long, value_name = "X")]
    pub lr: Option<f64>,
    /// Linear warmup steps [default: 100].
    #[arg(long, value_name = "N")]
    pub warmup: Option<u64>,
    /// Learning rate at the end of the cosine decay [default: 1e-4].
    #[arg(long, value_name = "X")]
    pub min_lr: Option<f64>,
    /// AdamW decoupled weight decay on matrices [default: 0.1].
    #[arg(long, value_name = "X")]
    pub weight_decay: Option<f64>,
    /// Global gradient-norm clipping, 0 = off [default: 1.0].
    #[arg(long, value_name = "X")]
    pub clip: Option<f64>,
    /// Micro-batches per optimizer step [default: 1].
    #[arg(long, value_name = "N")]
    pub grad_accum: Option<usize>,
    /// Evaluate the validation loss every N steps and at the end, 0 = never.
    #[arg(long, value_name = "N", default_value_t = 250)]
    pub eval_every: u64,
    /// Batches per validation estimate.
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub eval_batches: usize,
    /// Save a checkpoint every N steps (and always at the end), 0 = only at the end.
    #[arg(long, value_name = "N", default_value_t = 500)]
    pub save_every: u64,
    /// Checkpoints kept in --out (the newest).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub keep: usize,
    /// Progress line every N steps.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub log_every: u64,
    /// Threads (0 = all cores); results are bit-identical for any count.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Random seed [default: 1337].
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
    /// Tokenizer of a new run [default: char].
    #[arg(long, value_enum)]
    pub tokenizer: Option<TokenizerKind>,
    /// BPE vocabulary size: 256 bytes + 3 special tokens + merges [default: 2048].
    #[arg(long, value_name = "V")]
    pub vocab_size: Option<usize>,
    /// Continue a run: its output directory (newest checkpoint) or a checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

pub fn run(a: &TrainArgs) -> Result<()> {
    match &a.command {
        TrainCommand::Pretrain(p) => pretrain(p),
        TrainCommand::Bench(b) => bench(b),
        TrainCommand::Sft(x) => super::align::sft(x),
        TrainCommand::Rm(x) => super::align::rm(x),
        TrainCommand::Dpo(x) => super::align::dpo(x),
        TrainCommand::Ppo(x) => super::align::ppo(x),
        TrainCommand::Versus(x) => super::align::versus_cmd(x),
    }
}

/// Everything the loop needs, from a fresh start or a checkpoint.
struct Setup {
    trainer: Trainer,
    tokenizer: TextTokenizer,
    data: DataMeta,
    corpus: corpus::Corpus,
    out: PathBuf,
}

pub(crate) fn pretrain(a: &PretrainArgs) -> Result<()> {
    let threads = match a.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let mut s = match &a.resume {
        Some(path) => resume(a, path, threads)?,
        None => fresh(a, threads)?,
    };
    if let Some(steps) = a.steps {
        s.trainer.config.steps = steps;
    }
    let out = s.out.clone();
    fs::create_dir_all(&out).with_context(|| format!("cannot create `{}`", out.display()))?;

    let (ids, cached) = corpus::tokenize_cached(&s.corpus, &s.tokenizer, Some(&out.join("cache")))?;
    s.data.tokens = ids.len() as u64;
    let (train, val) = train_val_split(&ids, VAL_FRACTION);
    let t = s.trainer.config.seq_len;
    if train.len() <= t || val.len() <= t {
        bail!(
            "the corpus has {} tokens: {} for training and {} for validation, but each needs more \
             than --ctx {t}; give more text or a smaller --ctx",
            ids.len(),
            train.len(),
            val.len()
        );
    }
    let cfg = &s.trainer.model.config;
    let tc = s.trainer.config.clone();
    eprintln!(
        "pretrain: {} files, {} tokens ({} train, {} validation), {} vocabulary {} ({})",
        s.corpus.files.len(),
        ids.len(),
        train.len(),
        val.len(),
        s.tokenizer.kind(),
        cfg.vocab_size,
        match cached {
            CacheOutcome::Hit => "token cache hit",
            _ => "tokenized and cached",
        },
    );
    eprintln!(
        "pretrain: model L{} C{} H{}/{} F{} T{} ({:.2}M parameters, tied head), batch {}x{}x{}, \
         {} steps from {}, {} threads, out {}",
        cfg.n_layers,
        cfg.dim,
        cfg.n_heads,
        cfg.n_kv_heads,
        cfg.ffn_dim,
        cfg.max_seq_len,
        s.trainer.model.params.len() as f64 / 1e6,
        tc.batch,
        tc.grad_accum,
        tc.seq_len,
        tc.steps,
        s.trainer.step,
        threads,
        out.display()
    );

    let metrics_path = out.join("metrics.jsonl");
    let mut metrics = open_metrics(&metrics_path, s.trainer.step)?;
    let eval_seed = s.trainer.config.seed.wrapping_add(2);
    let fresh_run = s.trainer.step == 0;
    if fresh_run && a.eval_every > 0 {
        let v = s.trainer.evaluate(val, a.eval_batches, eval_seed)?;
        eprintln!("step 0: val loss {v:.4}");
        write_metrics(
            &mut metrics,
            &Record {
                step: 0,
                val_loss: Some(v),
                ..Record::default()
            },
        )?;
    }

    let tokens_per_step = (tc.batch * tc.seq_len * tc.grad_accum) as f64;
    let tty = std::io::stderr().is_terminal();
    let start = Instant::now();
    let first_step = s.trainer.step;
    let mut window = (Instant::now(), s.trainer.step);
    let mut last_loss = f32::NAN;
    while !s.trainer.done() {
        let t0 = Instant::now();
        let st = s.trainer.train_step(train)?;
        let dt = t0.elapsed().as_secs_f64();
        let step = s.trainer.step; // steps done
        last_loss = st.loss;
        if !st.loss.is_finite() {
            bail!(
                "the loss is {} at step {step}; lower --lr or raise --warmup \
                 (the last checkpoint is still in `{}`)",
                st.loss,
                out.display()
            );
        }
        let last = s.trainer.done();
        let val_loss = if a.eval_every > 0 && (step % a.eval_every == 0 || last) {
            Some(s.trainer.evaluate(val, a.eval_batches, eval_seed)?)
        } else {
            None
        };
        let record = Record {
            step,
            loss: Some(st.loss),
            val_loss,
            lr: Some(st.lr),
            grad_norm: Some(st.grad_norm),
            tokens_per_s: Some(tokens_per_step / dt),
            elapsed_s: Some(start.elapsed().as_secs_f64()),
        };
        write_metrics(&mut metrics, &record)?;

        if step % a.log_every.max(1) == 0 || last || val_loss.is_some() {
            let (w0, s0) = window;
            let secs = w0.elapsed().as_secs_f64();
            let rate = (step - s0) as f64 * tokens_per_step / secs.max(1e-9);
            let eta = (s.trainer.config.steps - step) as f64 * secs / (step - s0).max(1) as f64;
            let line = format!(
                "step {step:>6}/{}  loss {:.4}  lr {:.2e}  {:.1}k tok/s  ETA {}",
                s.trainer.config.steps,
                st.loss,
                st.lr,
                rate / 1e3,
                duration(eta)
            );
            match val_loss {
                Some(v) if tty => eprintln!("\r{line}  val loss {v:.4}\x1b[K"),
                Some(v) => eprintln!("{line}  val loss {v:.4}"),
                None if tty => eprint!("\r{line}\x1b[K"),
                None => eprintln!("{line}"),
            }
            window = (Instant::now(), step);
        }
        if (a.save_every > 0 && step % a.save_every == 0) || last {
            let dir = checkpoint::save_in_run(&out, &s.trainer, &s.tokenizer, &s.data, a.keep)?;
            if tty && val_loss.is_none() {
                eprintln!();
            }
            eprintln!("saved {}", dir.display());
        }
    }
    if s.trainer.step == first_step {
        eprintln!(
            "pretrain: already at step {} of {}; raise --steps to continue",
            s.trainer.step, s.trainer.config.steps
        );
        return Ok(());
    }
    drop(metrics);
    let plot_path = out.join("loss.svg");
    super::plot::loss_svg(&metrics_path, &plot_path)?;
    eprintln!(
        "pretrain: {} steps in {}, final training loss {last_loss:.4}; metrics in {}, loss curve in {}",
        s.trainer.step - first_step,
        duration(start.elapsed().as_secs_f64()),
        metrics_path.display(),
        plot_path.display()
    );
    Ok(())
}

/// The data sources: `--data`, else the first default directory that exists.
fn data_sources(a: &PretrainArgs) -> Result<Vec<PathBuf>> {
    if !a.data.is_empty() {
        return Ok(a.data.clone());
    }
    match DEFAULT_DATA.iter().map(PathBuf::from).find(|p| p.is_dir()) {
        Some(p) => Ok(vec![p]),
        None => bail!(
            "no --data given and neither {} exists (hint: scripts/fetch-data.sh downloads the \
             Shakespeare corpus into data/shakespeare)",
            DEFAULT_DATA.join(" nor ")
        ),
    }
}

fn read_corpus(sources: &[PathBuf]) -> Result<corpus::Corpus> {
    corpus::read_corpus(sources).with_context(|| {
        format!(
            "cannot read the training data ({})",
            sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })
}

/// Full training steps (forward, backward, clipping, AdamW) of a fresh model on random ids from a
/// 65-symbol vocabulary (the character set of tiny Shakespeare), timed after a warm-up.
fn bench(a: &BenchArgs) -> Result<()> {
    let (layers, width, heads, ctx, batch) = match a.config {
        BenchConfig::Baby => (4, 128, 4, 64, 12),
        BenchConfig::Large => (6, 384, 6, 256, 8),
    };
    let threads = if a.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        a.threads
    };
    let cfg = Config {
        vocab_size: 65,
        dim: width,
        n_layers: layers,
        n_heads: heads,
        n_kv_heads: heads,
        ffn_dim: default_ffn(width),
        max_seq_len: ctx,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: true,
    };
    let mut model = Model::<f32>::new(cfg.clone(), threads).context("bad model shape")?;
    model.init(1337);
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.1,
    };
    let steps = a.warmup + a.steps.max(1);
    let run = TrainConfig {
        batch,
        seq_len: ctx,
        grad_accum: 1,
        steps,
        schedule: Schedule {
            max_lr: 1e-3,
            min_lr: 1e-4,
            warmup_steps: 100.min(steps),
            decay_steps: steps,
        },
        grad_clip: 1.0,
        seed: 1338,
    };
    let mut trainer = Trainer::new(model, AdamW::new(adamw, &cfg), run);
    let mut rng = ingot_train::rng::Rng::new(7);
    let ids: Vec<u32> = (0..200_000).map(|_| (rng.next_u64() % 65) as u32).collect();
    for _ in 0..a.warmup {
        trainer.train_step(&ids)?;
    }
    let (start, cpu0) = (Instant::now(), bench::process_cpu_seconds());
    let mut loss = 0.0;
    for _ in 0..a.steps.max(1) {
        loss = trainer.train_step(&ids)?.loss;
    }
    let secs = start.elapsed().as_secs_f64();
    let cpu = cpu0
        .zip(bench::process_cpu_seconds())
        .map(|(c0, c1)| c1 - c0);
    let steps = a.steps.max(1) as f64;
    let tokens = steps * (batch * ctx) as f64;
    let flops = bench::step_flops(&cfg, batch, ctx);
    println!(
        "ingot train bench: config {:?}, {threads} thread(s), {} params, {} steps in {secs:.2}s, \
         {:.0} tokens/s (loss {loss:.3})",
        a.config,
        ingot_train::params::num_params(&cfg),
        a.steps.max(1),
        tokens / secs
    );
    let gf = flops.essential() * steps / 1e9;
    print!(
        "  {:.3} GFLOP per step (products {:.3} + causal attention {:.3}): {:.1} GFLOP/s wall",
        flops.essential() / 1e9,
        flops.matmul / 1e9,
        flops.attention_causal / 1e9,
        gf / secs
    );
    match cpu {
        Some(cpu) => println!(
            "; CPU {:.1} ms/step (all threads), {:.0} tokens/s and {:.1} GFLOP/s on-CPU",
            cpu / steps * 1e3,
            tokens / cpu,
            gf / cpu
        ),
        None => println!(),
    }
    Ok(())
}

/// 8/3 of the width (the parameter count of a 4x MLP in three matrices), rounded up to 32.
fn default_ffn(width: usize) -> usize {
    (8 * width).div_ceil(3).div_ceil(32) * 32
}

fn fresh(a: &PretrainArgs, threads: usize) -> Result<Setup> {
    let out = a.out.clone().unwrap_or_else(|| DEFAULT_OUT.into());
    if out.join(checkpoint::LATEST_FILE).exists() {
        bail!(
            "`{}` already holds a run; continue it with --resume {0}, or choose another --out",
            out.display()
        );
    }
    let sources = data_sources(a)?;
    let corpus = read_corpus(&sources)?;
    let tokenizer = match a.tokenizer.unwrap_or(TokenizerKind::Char) {
        TokenizerKind::Char => {
            if a.vocab_size.is_some() {
                bail!(
                    "--vocab-size is for --tokenizer bpe (a character vocabulary is the corpus's characters)"
                );
            }
            TextTokenizer::Char(CharTokenizer::from_text(&corpus.text))
        }
        TokenizerKind::Bpe => {
            let t0 = Instant::now();
            let opts = BpeOptions {
                vocab_size: a.vocab_size.unwrap_or(2048),
                ..BpeOptions::default()
            };
            let text = corpus::tokenizer_text(&corpus.text, VAL_FRACTION);
            let trained = bpe::train([text], &opts).context("cannot train the BPE tokenizer")?;
            eprintln!(
                "pretrain: BPE tokenizer of {} tokens ({} merges) trained on {} bytes in {:.1} s",
                trained.tokens.len(),
                trained.merges.len(),
                text.len(),
                t0.elapsed().as_secs_f64()
            );
            BpeTokenizer::new(trained)?.into()
        }
    };
    let width = a.width.unwrap_or(128);
    let heads = a.heads.unwrap_or(4);
    let ctx = a.ctx.unwrap_or(64);
    let cfg = Config {
        vocab_size: tokenizer.vocab_size(),
        dim: width,
        n_layers: a.layers.unwrap_or(4),
        n_heads: heads,
        n_kv_heads: a.kv_heads.unwrap_or(heads),
        ffn_dim: a.ffn.unwrap_or_else(|| default_ffn(width)),
        max_seq_len: ctx,
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: true,
    };
    let steps = a.steps.unwrap_or(5000);
    let warmup = a.warmup.unwrap_or(100);
    let lr = a.lr.unwrap_or(1e-3);
    let min_lr = a.min_lr.unwrap_or(1e-4);
    let weight_decay = a.weight_decay.unwrap_or(0.1);
    let clip = a.clip.unwrap_or(1.0);
    let seed = a.seed.unwrap_or(1337);
    for (name, x) in [
        ("--lr", lr),
        ("--min-lr", min_lr),
        ("--weight-decay", weight_decay),
    ] {
        if !(x.is_finite() && x >= 0.0) {
            bail!("{name} {x} must be a finite number >= 0");
        }
    }
    if !(clip.is_finite() && clip >= 0.0) {
        bail!("--clip {clip} must be >= 0 (0 turns clipping off)");
    }
    let batch = a.batch.unwrap_or(12);
    let grad_accum = a.grad_accum.unwrap_or(1);
    if batch == 0 || ctx == 0 || grad_accum == 0 || steps == 0 {
        bail!("--batch, --ctx, --grad-accum and --steps must be positive");
    }
    let mut model = Model::<f32>::new(cfg.clone(), threads).context("bad model shape")?;
    model.init(seed);
    let adamw = AdamWConfig {
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay,
    };
    let opt = AdamW::new(adamw, &cfg);
    let run = TrainConfig {
        batch,
        seq_len: ctx,
        grad_accum,
        steps,
        schedule: Schedule {
            max_lr: lr,
            min_lr,
            warmup_steps: warmup.min(steps),
            decay_steps: steps,
        },
        grad_clip: if clip > 0.0 { clip } else { f64::INFINITY },
        seed: seed.wrapping_add(1),
    };
    let data = DataMeta {
        sources: sources.iter().map(|p| p.display().to_string()).collect(),
        files: corpus.files.len(),
        corpus_sha256: corpus.sha256.clone(),
        tokens: 0, // set once the corpus is tokenized
        val_fraction: VAL_FRACTION,
    };
    Ok(Setup {
        trainer: Trainer::new(model, opt, run),
        tokenizer,
        data,
        corpus,
        out,
    })
}

fn resume(a: &PretrainArgs, path: &Path, threads: usize) -> Result<Setup> {
    let dir = checkpoint::resolve(path)?;
    let ckpt = checkpoint::load(&dir)?;
    let out = a.out.clone().unwrap_or_else(|| {
        if dir == path {
            path.parent().map_or_else(|| ".".into(), Path::to_path_buf)
        } else {
            path.to_path_buf()
        }
    });
    let m = &ckpt.meta;
    // Options that shape the run must agree with the checkpoint.
    let mut conflicts = Vec::new();
    let mut check = |flag: &str, given: Option<String>, stored: String| {
        if let Some(g) = given.filter(|g| *g != stored) {
            conflicts.push(format!("{flag} {g} (the checkpoint has {stored})"));
        }
    };
    fn s(x: Option<impl ToString>) -> Option<String> {
        x.map(|x| x.to_string())
    }
    check("--layers", s(a.layers), m.model.n_layers.to_string());
    check("--width", s(a.width), m.model.dim.to_string());
    check("--heads", s(a.heads), m.model.n_heads.to_string());
    check("--kv-heads", s(a.kv_heads), m.model.n_kv_heads.to_string());
    check("--ffn", s(a.ffn), m.model.ffn_dim.to_string());
    check("--ctx", s(a.ctx), m.training.seq_len.to_string());
    check("--batch", s(a.batch), m.training.batch.to_string());
    check(
        "--grad-accum",
        s(a.grad_accum),
        m.training.grad_accum.to_string(),
    );
    check("--lr", s(a.lr), m.schedule.max_lr.to_string());
    check("--min-lr", s(a.min_lr), m.schedule.min_lr.to_string());
    check("--warmup", s(a.warmup), m.schedule.warmup_steps.to_string());
    check(
        "--weight-decay",
        s(a.weight_decay),
        m.optimizer.weight_decay.to_string(),
    );
    check(
        "--clip",
        s(a.clip),
        m.training.grad_clip.unwrap_or(0.0).to_string(),
    );
    check(
        "--seed",
        s(a.seed),
        m.training.seed.wrapping_sub(1).to_string(),
    );
    let stored_kind = match &m.tokenizer {
        checkpoint::TokenizerMeta::Char { .. } => "char",
        checkpoint::TokenizerMeta::Bpe { .. } => "bpe",
    };
    check(
        "--tokenizer",
        a.tokenizer.map(|k| format!("{k:?}").to_lowercase()),
        stored_kind.to_string(),
    );
    check(
        "--vocab-size",
        s(a.vocab_size),
        m.model.vocab_size.to_string(),
    );
    if !conflicts.is_empty() {
        bail!(
            "a resumed run keeps the checkpoint's configuration, but {}; drop these options, or \
             start a new run with another --out",
            conflicts.join(", ")
        );
    }
    let sources = if a.data.is_empty() {
        m.data.sources.iter().map(PathBuf::from).collect()
    } else {
        a.data.clone()
    };
    let corpus = read_corpus(&sources)?;
    if corpus.sha256 != m.data.corpus_sha256 {
        bail!(
            "the training data ({}) differs from the checkpoint's (corpus SHA-256 {}, now {}); a \
             resumed run must see the same text",
            sources
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            m.data.corpus_sha256,
            corpus.sha256
        );
    }
    let tokenizer = ckpt.tokenizer()?;
    let data = m.data.clone();
    eprintln!("resuming from {} (step {})", dir.display(), m.step);
    let trainer = ckpt.into_trainer(threads)?;
    Ok(Setup {
        trainer,
        tokenizer,
        data,
        corpus,
        out,
    })
}

/// Opens `metrics.jsonl` for appending, first dropping records past `step` (left by a run that went on
/// after its last checkpoint and was then killed), so the file describes the resumed run.
fn open_metrics(path: &Path, step: u64) -> Result<fs::File> {
    if step > 0 && path.exists() {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        let kept: String = text
            .lines()
            .filter(|l| {
                serde_json::from_str::<serde_json::Value>(l)
                    .ok()
                    .and_then(|v| v["step"].as_u64())
                    .is_some_and(|s| s <= step)
            })
            .map(|l| format!("{l}\n"))
            .collect();
        if kept.len() != text.len() {
            ingot_train::files::atomic_write(path, kept.as_bytes())?;
        }
    }
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("cannot open `{}`", path.display()))
}

/// One line of `metrics.jsonl`; absent fields are left out. `step` counts the steps done, so the
/// figures of step `k` are those of the `k`-th update and `val_loss` is measured after it.
#[derive(Debug, Default, serde::Serialize)]
struct Record {
    step: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    val_loss: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lr: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    grad_norm: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tokens_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    elapsed_s: Option<f64>,
}

fn write_metrics(f: &mut fs::File, r: &Record) -> Result<()> {
    let line = serde_json::to_string(r).expect("plain data serializes");
    writeln!(f, "{line}").context("cannot write metrics.jsonl")
}

/// `1h02m`, `3m05s`, `12s`.
fn duration(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults() {
        assert_eq!(default_ffn(128), 352);
        assert_eq!(default_ffn(384), 1024);
        assert_eq!(duration(59.4), "59s");
        assert_eq!(duration(185.0), "3m05s");
        assert_eq!(duration(3720.0), "1h02m");
    }
}
