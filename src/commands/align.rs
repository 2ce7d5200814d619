//! `ingot train sft | rm | dpo | ppo`: the alignment stages after pretraining (library in
//! `ingot_train::align`). Each reads a checkpoint (`--init`: a run directory or one checkpoint), writes
//! ordinary checkpoints into `--out` (`step-XXXXXXXX/`, `latest`, every `--save-every` steps and at the
//! end; the reward model adds `reward_head.safetensors` beside its trunk, RM and PPO their other state
//! in `align_state.safetensors`), `metrics.jsonl`, and a `summary.json` of its figures. `--resume
//! CKPT_DIR` continues a run bit-identically: each stage is set up as a fresh run of the same options
//! would be, then the saved state replaces the fresh one (`ingot_train::align::state`).
//!
//! `--task` (the default when no data is given) uses the bundled alignment task built from the
//! Shakespeare corpus (`train/README.md`, "Alignment"): SFT trains on its demonstrations; RM samples
//! two answers per prompt from the SFT model and ranks them with the labeler (written to
//! `OUT/pairs.jsonl` and `OUT/pairs-heldout.jsonl`); DPO trains on such pairs and reports its win rate
//! against the SFT model on the held-out prompts.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use ingot_runtime::sampler::SamplerParams;
use ingot_train::align::dpo::{dpo_loss_and_grad, pair_logps};
use ingot_train::align::pairs::{answers, make_pairs, to_ids, win_rate, TextPair};
use ingot_train::align::reward::{rm_eval, rm_loss_and_grad, save_head, BtConfig, Head, Pair};
use ingot_train::align::sample::GenerateConfig;
use ingot_train::align::sft::{check_lengths, sft_eval, sft_step, Encoded};
use ingot_train::align::state::{f64_bits, restore_trainer, AlignState};
use ingot_train::align::task::{self, Prompt, Task, TaskConfig};
use ingot_train::align::vocab::extend_char_vocab;
use ingot_train::align::{chatml, encode_chat, Codec, Message, IM_END};
use ingot_train::checkpoint::{self, DataMeta};
use ingot_train::corpus;
use ingot_train::data::TextTokenizer;
use ingot_train::pretrain::{TrainConfig, Trainer};
use ingot_train::rng::Rng;
use ingot_train::{clip_grad_norm, files, lr_schedule, AdamW, AdamWConfig, Model, Schedule};

use super::train::DEFAULT_DATA;

/// Options every alignment stage shares.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// The checkpoint to start from: a run directory (its `latest`) or a checkpoint directory.
    #[arg(long, value_name = "DIR")]
    pub init: PathBuf,
    /// Output directory.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Use the bundled alignment task (the default when no data file is given).
    #[arg(long)]
    pub task: bool,
    /// Corpus the task is built from [default: ../shared/data/shakespeare, else data/shakespeare].
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,
    /// Optimizer steps.
    #[arg(long, value_name = "N")]
    pub steps: u64,
    /// Sequences (SFT) or pairs (RM, DPO) per step.
    #[arg(long, value_name = "B", default_value_t = 8)]
    pub batch: usize,
    /// Peak learning rate (10 warmup steps, cosine to a tenth).
    #[arg(long, value_name = "X")]
    pub lr: f64,
    /// Global gradient-norm clipping, 0 = off.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub clip: f64,
    /// Evaluate every N steps and at the end, 0 = only at the end.
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub eval_every: u64,
    /// Threads (0 = all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Random seed (task, sampler, head).
    #[arg(long, value_name = "S", default_value_t = 1337)]
    pub seed: u64,
    /// Held-out prompts of the task (RM accuracy pairs, win rates).
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub heldout_prompts: usize,
    /// Continue the run saved in this checkpoint (a run directory: its `latest`) bit-identically:
    /// give the options and --init of the run that wrote it.
    #[arg(long, value_name = "CKPT_DIR")]
    pub resume: Option<PathBuf>,
    /// Save a checkpoint every N steps (PPO: iterations) as well as at the end, 0 = only at the end.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub save_every: u64,
    /// Checkpoints kept in --out (the newest).
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub keep: usize,
}

#[derive(Args, Debug)]
pub struct SftArgs {
    #[command(flatten)]
    pub common: Common,
    /// Chat JSONL (`{"messages":[{"role":..,"content":..},..]}` per line) instead of the task.
    #[arg(long, value_name = "FILE")]
    pub data: Option<PathBuf>,
    /// Validation chat JSONL [default with --data: none; with the task: its held-out prompts].
    #[arg(long, value_name = "FILE")]
    pub val: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[command(flatten)]
    pub common: Common,
    /// Training pairs JSONL (`{"prompt","chosen","rejected"}` per line) instead of sampling them.
    #[arg(long, value_name = "FILE")]
    pub pairs: Option<PathBuf>,
    /// Held-out pairs JSONL for the accuracy.
    #[arg(long, value_name = "FILE")]
    pub heldout_pairs: Option<PathBuf>,
    /// Task prompts to sample answers for (--answers each).
    #[arg(long, value_name = "N", default_value_t = 2000)]
    pub prompts: usize,
    /// Answers sampled per prompt; every pair of them the labeler separates is used (K (K - 1) / 2).
    #[arg(long, value_name = "K", default_value_t = 2)]
    pub answers: usize,
    /// Smallest labeler score difference that makes a pair (ties never do).
    #[arg(long, value_name = "X", default_value_t = 0.5)]
    pub gap: f64,
    /// The policy whose answers are sampled and ranked [default: --init]; e.g. a PPO run, for the
    /// next round of the loop (the trunk still starts from --init).
    #[arg(long, value_name = "DIR")]
    pub sample_from: Option<PathBuf>,
    /// Earlier training pairs JSONL added to the sampled ones (e.g. the first round's pairs.jsonl).
    #[arg(long, value_name = "FILE")]
    pub add_pairs: Option<PathBuf>,
    /// Bradley–Terry margin: loss = -log σ(r_c - r_r - margin).
    #[arg(long, value_name = "X", default_value_t = 0.0)]
    pub margin: f64,
    /// TRL's center_rewards_coefficient: adds coef * mean((r_c + r_r)²).
    #[arg(long, value_name = "X", default_value_t = 0.01)]
    pub center: f64,
    /// Sampling temperature for the pairs.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub temperature: f32,
}

#[derive(Args, Debug)]
pub struct DpoArgs {
    #[command(flatten)]
    pub common: Common,
    /// Training pairs JSONL (e.g. an RM run's `pairs.jsonl`).
    #[arg(long, value_name = "FILE")]
    pub pairs: PathBuf,
    /// Held-out pairs JSONL for the implicit-reward accuracy.
    #[arg(long, value_name = "FILE")]
    pub heldout_pairs: Option<PathBuf>,
    /// DPO's β (the strength of the implicit KL to the reference).
    #[arg(long, value_name = "X", default_value_t = 0.1)]
    pub beta: f64,
    /// Sampling temperature for the win-rate evaluation.
    #[arg(long, value_name = "X", default_value_t = 0.7)]
    pub temperature: f32,
}

fn threads(n: usize) -> usize {
    match n {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

struct Init {
    model: Model<f32>,
    tokenizer: TextTokenizer,
    dir: PathBuf,
}

fn load_init(c: &Common) -> Result<Init> {
    let dir = checkpoint::resolve(&c.init).with_context(|| {
        format!(
            "--init `{}` must be a run directory or a checkpoint (e.g. runs/pretrain)",
            c.init.display()
        )
    })?;
    let ck = checkpoint::load(&dir)?;
    let tokenizer = ck.tokenizer()?;
    let model = ck.model(threads(c.threads))?;
    Ok(Init {
        model,
        tokenizer,
        dir,
    })
}

fn load_task(c: &Common) -> Result<(Task, DataMeta)> {
    load_task_from(c.corpus.as_ref(), c.seed, c.heldout_prompts)
}

fn load_task_from(
    corpus: Option<&PathBuf>,
    seed: u64,
    heldout_prompts: usize,
) -> Result<(Task, DataMeta)> {
    let sources: Vec<PathBuf> = match corpus {
        Some(p) => vec![p.clone()],
        None => match DEFAULT_DATA.iter().map(PathBuf::from).find(|p| p.is_dir()) {
            Some(p) => vec![p],
            None => bail!(
                "no corpus for the alignment task: pass --corpus, or run scripts/fetch-data.sh (puts the \
                 Shakespeare corpus into data/shakespeare)"
            ),
        },
    };
    let corpus = corpus::read_corpus(&sources)?;
    let cfg = TaskConfig {
        seed,
        heldout_prompts,
        ..TaskConfig::default()
    };
    let task = task::build(&corpus.text, &cfg)?;
    let meta = DataMeta {
        sources: sources
            .iter()
            .map(|p| format!("task:{} (seed {seed})", p.display()))
            .collect(),
        files: corpus.files.len(),
        corpus_sha256: corpus.sha256.clone(),
        tokens: task.train.len() as u64,
        val_fraction: 0.0,
    };
    Ok((task, meta))
}

fn read_jsonl<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<Vec<T>> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(line)
                .with_context(|| format!("{}:{}: not a {what} line", path.display(), i + 1))?,
        );
    }
    if out.is_empty() {
        bail!("`{}` holds no {what} lines", path.display());
    }
    Ok(out)
}

fn write_jsonl<T: serde::Serialize>(path: &Path, rows: &[T]) -> Result<()> {
    let mut buf = Vec::new();
    for r in rows {
        serde_json::to_writer(&mut buf, r)?;
        buf.push(b'\n');
    }
    files::atomic_write(path, &buf)?;
    Ok(())
}

#[derive(serde::Deserialize)]
struct ChatLine {
    messages: Vec<Message>,
}

/// Grows a character vocabulary by the characters `texts` need (ChatML's markers on the bundled
/// corpus); other tokenizers pass through.
fn fit_vocab(init: &mut Init, texts: &str, seed: u64) -> Result<()> {
    let TextTokenizer::Char(tok) = &init.tokenizer else {
        return Ok(());
    };
    if let Some((m, t)) = extend_char_vocab(&init.model, tok, texts, seed)? {
        eprintln!(
            "vocabulary: {} -> {} characters (added {:?}; new embedding rows drawn from N(0, 0.02))",
            tok.vocab_size(),
            t.vocab_size(),
            t.chars
                .iter()
                .filter(|c| !tok.chars.contains(c))
                .collect::<String>()
        );
        init.model = m;
        init.tokenizer = TextTokenizer::Char(t);
    }
    Ok(())
}

fn schedule(c: &Common) -> Schedule {
    Schedule {
        max_lr: c.lr,
        min_lr: c.lr / 10.0,
        warmup_steps: 10.min(c.steps),
        decay_steps: c.steps,
    }
}

fn train_config(c: &Common, t: usize) -> TrainConfig {
    TrainConfig {
        batch: c.batch,
        seq_len: t,
        grad_accum: 1,
        steps: c.steps,
        schedule: schedule(c),
        grad_clip: if c.clip > 0.0 { c.clip } else { f64::INFINITY },
        seed: c.seed,
    }
}

fn validate(c: &Common) -> Result<()> {
    if c.steps == 0 || c.batch == 0 {
        bail!("--steps and --batch must be positive");
    }
    if !(c.lr.is_finite() && c.lr > 0.0) {
        bail!("--lr must be a positive number, got {}", c.lr);
    }
    fs::create_dir_all(&c.out).with_context(|| format!("cannot create `{}`", c.out.display()))?;
    Ok(())
}

/// `OUT/metrics.jsonl`, one JSON object per line, each with a counter `key` (`step`, or `iteration`
/// for PPO). A resumed run keeps the lines up to the checkpoint's counter and writes only later ones.
struct Metrics {
    file: fs::File,
    key: &'static str,
    resumed_at: Option<u64>,
}

impl Metrics {
    fn open(out: &Path, key: &'static str, resumed_at: Option<u64>) -> Result<Self> {
        let p = out.join("metrics.jsonl");
        let kept: String = match resumed_at {
            Some(at) => fs::read_to_string(&p)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    serde_json::from_str::<serde_json::Value>(l)
                        .ok()
                        .and_then(|v| v[key].as_u64())
                        .is_some_and(|s| s <= at)
                })
                .map(|l| format!("{l}\n"))
                .collect(),
            None => String::new(),
        };
        let mut file =
            fs::File::create(&p).with_context(|| format!("cannot create `{}`", p.display()))?;
        file.write_all(kept.as_bytes())?;
        Ok(Metrics {
            file,
            key,
            resumed_at,
        })
    }
    fn write(&mut self, v: serde_json::Value) -> Result<()> {
        if let (Some(at), Some(s)) = (self.resumed_at, v[self.key].as_u64()) {
            if s <= at {
                return Ok(());
            }
        }
        writeln!(self.file, "{v}")?;
        Ok(())
    }
}

/// The checkpoint `--resume` names, loaded, with its directory.
fn load_resume(c: &Common) -> Result<Option<(PathBuf, checkpoint::Checkpoint)>> {
    let Some(p) = &c.resume else {
        return Ok(None);
    };
    let dir = checkpoint::resolve(p).with_context(|| {
        format!(
            "--resume `{}` must be a run directory or a checkpoint of this stage",
            p.display()
        )
    })?;
    let ck = checkpoint::load(&dir)?;
    Ok(Some((dir, ck)))
}

/// Checks the resumed checkpoint's tokenizer is the run's.
fn same_tokenizer(ck: &checkpoint::Checkpoint, tok: &TextTokenizer, dir: &Path) -> Result<()> {
    if &ck.tokenizer()? != tok {
        bail!(
            "--resume `{}` has another tokenizer than --init: resume with the --init of the run that \
             wrote it",
            dir.display()
        );
    }
    Ok(())
}

/// Whether a checkpoint is due after `step` (the last one is always saved).
fn save_due(c: &Common, step: u64, done: bool) -> bool {
    !done && c.save_every > 0 && step.is_multiple_of(c.save_every)
}

fn to_messages(prompt: &str, answer: &str) -> [Message; 2] {
    [
        Message::new("user", prompt),
        Message::new("assistant", answer),
    ]
}

pub fn sft(a: &SftArgs) -> Result<()> {
    let c = &a.common;
    validate(c)?;
    let start = Instant::now();
    let mut init = load_init(c)?;
    let (train_msgs, val_msgs, data): (Vec<Vec<Message>>, Vec<Vec<Message>>, DataMeta) =
        match &a.data {
            Some(path) if !c.task => {
                let train: Vec<ChatLine> = read_jsonl(path, "chat")?;
                let val: Vec<ChatLine> = match &a.val {
                    Some(v) => read_jsonl(v, "chat")?,
                    None => Vec::new(),
                };
                let bytes = fs::read(path)?;
                let meta = DataMeta {
                    sources: vec![path.display().to_string()],
                    files: 1,
                    corpus_sha256: files::sha256_hex(&bytes),
                    tokens: train.len() as u64,
                    val_fraction: 0.0,
                };
                (
                    train.into_iter().map(|l| l.messages).collect(),
                    val.into_iter().map(|l| l.messages).collect(),
                    meta,
                )
            }
            Some(_) => bail!("give either --data or --task"),
            None => {
                let (task, meta) = load_task(c)?;
                let f = |e: &task::Example| to_messages(&e.prompt.text, &e.answer).to_vec();
                (
                    task.train.iter().map(f).collect(),
                    task.heldout.iter().map(f).collect(),
                    meta,
                )
            }
        };
    let all_text: String = train_msgs
        .iter()
        .chain(&val_msgs)
        .map(|m| chatml(m, false))
        .collect();
    fit_vocab(&mut init, &all_text, c.seed)?;
    let enc = |m: &Vec<Message>| -> Result<Encoded> {
        let (ids, mask) = encode_chat(&init.tokenizer, m)?;
        Ok(Encoded { ids, mask })
    };
    let train = train_msgs.iter().map(enc).collect::<Result<Vec<_>>>()?;
    let val = val_msgs.iter().map(enc).collect::<Result<Vec<_>>>()?;
    let t = init.model.config.max_seq_len;
    check_lengths(&train, t).context("training conversations")?;
    if !val.is_empty() {
        check_lengths(&val, t).context("validation conversations")?;
    }
    eprintln!(
        "sft: {} training and {} validation conversations, init {}, {} steps of {} rows x {t}",
        train.len(),
        val.len(),
        init.dir.display(),
        c.steps,
        c.batch
    );
    let opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        &init.model.config,
    );
    let mut trainer = Trainer::new(init.model, opt, train_config(c, t));
    let resumed = load_resume(c)?;
    let mut metrics = Metrics::open(&c.out, "step", resumed.as_ref().map(|r| r.1.meta.step))?;
    let mut val_loss = None;
    if !val.is_empty() {
        let v = sft_eval(&mut trainer.model, &val, c.batch, t)?;
        eprintln!("step 0: val loss {v:.4}");
        metrics.write(serde_json::json!({"step": 0, "val_loss": v}))?;
        val_loss = Some(v);
    }
    let first_val = val_loss;
    if let Some((dir, ck)) = &resumed {
        same_tokenizer(ck, &init.tokenizer, dir)?;
        restore_trainer(&mut trainer, ck, dir)?;
        eprintln!(
            "sft: resumed from {} at step {}",
            dir.display(),
            trainer.step
        );
    }
    let save = |trainer: &Trainer| -> Result<PathBuf> {
        Ok(checkpoint::save_in_run(
            &c.out,
            trainer,
            &init.tokenizer,
            &data,
            c.keep,
        )?)
    };
    let mut last_loss = f32::NAN;
    while !trainer.done() {
        let st = sft_step(&mut trainer, &train)?;
        last_loss = st.loss;
        if !st.loss.is_finite() {
            bail!(
                "the loss is {} at step {}; lower --lr",
                st.loss,
                trainer.step
            );
        }
        let step = trainer.step;
        let eval = !val.is_empty()
            && ((c.eval_every > 0 && step.is_multiple_of(c.eval_every)) || trainer.done());
        let v = if eval {
            Some(sft_eval(&mut trainer.model, &val, c.batch, t)?)
        } else {
            None
        };
        if v.is_some() {
            val_loss = v;
        }
        metrics.write(serde_json::json!({
            "step": step, "loss": st.loss, "val_loss": v, "lr": st.lr, "grad_norm": st.grad_norm,
            "elapsed_s": start.elapsed().as_secs_f64(),
        }))?;
        if step.is_multiple_of(10) || v.is_some() {
            eprintln!(
                "step {step:>5}/{}  loss {:.4}{}  {:.0}s",
                c.steps,
                st.loss,
                v.map_or(String::new(), |v| format!("  val loss {v:.4}")),
                start.elapsed().as_secs_f64()
            );
        }
        if save_due(c, step, trainer.done()) {
            save(&trainer)?;
        }
    }
    let dir = save(&trainer)?;
    let summary = serde_json::json!({
        "stage": "sft", "steps": c.steps, "final_train_loss": last_loss,
        "val_loss_before": first_val, "val_loss_after": val_loss,
        "wall_s": start.elapsed().as_secs_f64(), "checkpoint": dir.display().to_string(),
    });
    files::atomic_write(
        &c.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("saved {}  ({summary})", dir.display());
    Ok(())
}

fn generate_config(
    tok: &TextTokenizer,
    temperature: f32,
    seed: u64,
    n_threads: usize,
) -> Result<GenerateConfig> {
    Ok(GenerateConfig {
        max_new_tokens: 80,
        stop: Codec::encode(tok, IM_END)
            .context("the tokenizer cannot encode <|im_end|>: run `ingot train sft` first")?,
        sampler: SamplerParams {
            temperature,
            top_k: 0,
            top_p: 1.0,
            min_p: 0.0,
            seed,
            ..SamplerParams::default()
        },
        batch: 32,
        n_threads,
    })
}

/// Unique prompts of the task's training examples, in order of first appearance, at most `n`.
fn unique_prompts(task: &Task, n: usize) -> Vec<Prompt> {
    let mut seen = std::collections::HashSet::new();
    task.train
        .iter()
        .filter(|e| seen.insert(e.prompt.text.clone()))
        .map(|e| e.prompt.clone())
        .take(n)
        .collect()
}

fn pairs_ids(tok: &TextTokenizer, pairs: &[TextPair]) -> Result<Vec<Pair>> {
    pairs.iter().map(|p| Ok(to_ids(tok, p)?)).collect()
}

/// Leaves out the pairs longer than `t` tokens (sampled answers that ran to the token budget) and
/// says how many.
fn drop_long_pairs(train: &mut Vec<Pair>, held: &mut Vec<Pair>, t: usize, stage: &str) {
    let fits = |p: &Pair| p.prompt.len() + p.chosen.len().max(p.rejected.len()) <= t;
    let (n0, h0) = (train.len(), held.len());
    train.retain(fits);
    held.retain(fits);
    if train.len() + held.len() < n0 + h0 {
        eprintln!(
            "{stage}: left out {} training and {} held-out pairs longer than the context",
            n0 - train.len(),
            h0 - held.len()
        );
    }
}

fn longest(pairs: &[Pair]) -> usize {
    pairs
        .iter()
        .map(|p| p.prompt.len() + p.chosen.len().max(p.rejected.len()))
        .max()
        .unwrap_or(1)
}

pub fn rm(a: &RmArgs) -> Result<()> {
    let c = &a.common;
    validate(c)?;
    let start = Instant::now();
    let init = load_init(c)?;
    let n_threads = threads(c.threads);
    let (train_text, held_text, data) = match &a.pairs {
        Some(p) if !c.task => {
            let bytes = fs::read(p)?;
            let train: Vec<TextPair> = read_jsonl(p, "pair")?;
            let held = match &a.heldout_pairs {
                Some(h) => read_jsonl(h, "pair")?,
                None => Vec::new(),
            };
            let meta = DataMeta {
                sources: vec![p.display().to_string()],
                files: 1,
                corpus_sha256: files::sha256_hex(&bytes),
                tokens: train.len() as u64,
                val_fraction: 0.0,
            };
            (train, held, meta)
        }
        Some(_) => bail!("give either --pairs or --task"),
        None if c.resume.is_some()
            && c.out.join("pairs.jsonl").is_file()
            && c.out.join("pairs-heldout.jsonl").is_file() =>
        {
            // a resumed run trains on the pairs its first part sampled (sampling again would
            // give the same pairs, slowly)
            let (_, meta) = load_task(c)?;
            let mut train: Vec<TextPair> = read_jsonl(&c.out.join("pairs.jsonl"), "pair")?;
            let held: Vec<TextPair> = read_jsonl(&c.out.join("pairs-heldout.jsonl"), "pair")?;
            eprintln!(
                "rm: resuming with the {} training and {} held-out pairs in `{}`",
                train.len(),
                held.len(),
                c.out.display()
            );
            if let Some(extra) = &a.add_pairs {
                train.extend(read_jsonl::<TextPair>(extra, "pair")?);
            }
            (train, held, meta)
        }
        None => {
            let (task, meta) = load_task(c)?;
            let gen = generate_config(&init.tokenizer, a.temperature, c.seed, n_threads)?;
            let sampler_model = match &a.sample_from {
                Some(p) => {
                    let dir = checkpoint::resolve(p)
                        .with_context(|| format!("--sample-from `{}`", p.display()))?;
                    let ck = checkpoint::load(&dir)?;
                    if ck.tokenizer()? != init.tokenizer {
                        bail!(
                            "--sample-from `{}` has another tokenizer than --init",
                            p.display()
                        );
                    }
                    Some(ck.model(n_threads)?)
                }
                None => None,
            };
            let policy = sampler_model.as_ref().unwrap_or(&init.model);
            let prompts = unique_prompts(&task, a.prompts);
            let held_prompts: Vec<Prompt> = task.heldout.iter().map(|e| e.prompt.clone()).collect();
            let t0 = Instant::now();
            let mut train = make_pairs(
                policy,
                &init.tokenizer,
                &prompts,
                &task.labeler,
                &gen,
                a.answers,
                a.gap,
            )?;
            let gen_held = GenerateConfig {
                sampler: SamplerParams {
                    seed: c.seed.wrapping_add(1 << 32),
                    ..gen.sampler.clone()
                },
                ..gen.clone()
            };
            let held = make_pairs(
                policy,
                &init.tokenizer,
                &held_prompts,
                &task.labeler,
                &gen_held,
                a.answers,
                a.gap,
            )?;
            eprintln!(
                "rm: sampled {} answers from {} in {:.0}s: {} training pairs of {} prompts, {} held-out \
                 pairs of {} prompts (labeler gap >= {})",
                a.answers.max(2) * (prompts.len() + held_prompts.len()),
                a.sample_from.as_ref().unwrap_or(&init.dir).display(),
                t0.elapsed().as_secs_f64(),
                train.len(),
                prompts.len(),
                held.len(),
                held_prompts.len(),
                a.gap
            );
            write_jsonl(&c.out.join("pairs.jsonl"), &train)?;
            write_jsonl(&c.out.join("pairs-heldout.jsonl"), &held)?;
            if let Some(extra) = &a.add_pairs {
                let more: Vec<TextPair> = read_jsonl(extra, "pair")?;
                eprintln!(
                    "rm: {} more training pairs from `{}`",
                    more.len(),
                    extra.display()
                );
                train.extend(more);
            }
            (train, held, meta)
        }
    };
    let mut train = pairs_ids(&init.tokenizer, &train_text)?;
    let mut held = pairs_ids(&init.tokenizer, &held_text)?;
    // sampled answers that ran to the token budget do not fit the context (as `ingot train dpo`)
    let fits = |p: &Pair| {
        p.prompt.len() + p.chosen.len().max(p.rejected.len()) <= init.model.config.max_seq_len
    };
    let held_text: Vec<TextPair> = held_text
        .into_iter()
        .zip(&held)
        .filter(|(_, p)| fits(p))
        .map(|(t, _)| t)
        .collect();
    drop_long_pairs(&mut train, &mut held, init.model.config.max_seq_len, "rm");
    if train.is_empty() {
        bail!("no training pairs: lower --gap or sample more --prompts");
    }
    let t = longest(&train).max(if held.is_empty() { 0 } else { longest(&held) });
    if t > init.model.config.max_seq_len {
        bail!(
            "a pair needs {t} tokens, more than the model's context of {}",
            init.model.config.max_seq_len
        );
    }
    let bt = BtConfig {
        margin: a.margin,
        center: a.center,
    };
    let c_dim = init.model.config.dim;
    let mut head = Head::new(c_dim, c.seed.wrapping_add(3));
    let opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        &init.model.config,
    );
    let mut trainer = Trainer::new(init.model, opt, train_config(c, t));
    // the pairs of each step are drawn from the trainer's generator, which checkpoints keep
    trainer.sampler = Rng::new(c.seed.wrapping_add(4));
    let resumed = load_resume(c)?;
    let mut metrics = Metrics::open(&c.out, "step", resumed.as_ref().map(|r| r.1.meta.step))?;
    let mut dhead = vec![0.0f32; c_dim];
    let mut held_acc = None;
    let eval = |m: &mut Model<f32>, h: &[f32]| -> Result<Option<f64>> {
        if held.is_empty() {
            return Ok(None);
        }
        Ok(Some(rm_eval(m, h, &held, t, c.batch)?.accuracy))
    };
    let acc0 = eval(&mut trainer.model, &head.w)?;
    eprintln!(
        "rm: {} training pairs, {} held-out, T {t}; held-out accuracy at step 0: {acc0:?}",
        train.len(),
        held.len()
    );
    if let Some((dir, ck)) = &resumed {
        same_tokenizer(ck, &init.tokenizer, dir)?;
        restore_trainer(&mut trainer, ck, dir)?;
        let state = AlignState::load(dir, "rm")?;
        head.w = ingot_train::align::reward::load_head(dir, c_dim)?;
        head.m = state.get("m.score.weight", c_dim, dir)?;
        head.v = state.get("v.score.weight", c_dim, dir)?;
        head.step = trainer.step;
        eprintln!(
            "rm: resumed from {} at step {}",
            dir.display(),
            trainer.step
        );
    }
    let save = |trainer: &Trainer, head: &Head| -> Result<PathBuf> {
        Ok(checkpoint::save_in_run_with(
            &c.out,
            trainer,
            &init.tokenizer,
            &data,
            c.keep,
            |dir| {
                save_head(dir, &head.w)?;
                AlignState::new("rm")
                    .tensor("m.score.weight", &head.m)
                    .tensor("v.score.weight", &head.v)
                    .save(dir)
            },
        )?)
    };
    while !trainer.done() {
        let batch: Vec<Pair> = (0..c.batch)
            .map(|_| train[trainer.sampler.below(train.len())].clone())
            .collect();
        trainer.model.zero_grad();
        dhead.iter_mut().for_each(|g| *g = 0.0);
        let st = rm_loss_and_grad(&mut trainer.model, &head.w, &mut dhead, &batch, t, bt)?;
        let gn = clip_grad_norm(&mut trainer.model.grads, trainer.config.grad_clip);
        let lr = lr_schedule(&trainer.config.schedule, trainer.step);
        trainer
            .opt
            .update(&mut trainer.model.params, &trainer.model.grads, lr);
        head.update(&dhead, lr);
        trainer.step += 1;
        let step = trainer.step;
        let v = if (c.eval_every > 0 && step.is_multiple_of(c.eval_every)) || trainer.done() {
            eval(&mut trainer.model, &head.w)?
        } else {
            None
        };
        if v.is_some() {
            held_acc = v;
        }
        metrics.write(serde_json::json!({
            "step": step, "loss": st.loss, "accuracy": st.accuracy, "margin": st.margin,
            "heldout_accuracy": v, "lr": lr, "grad_norm": gn, "elapsed_s": start.elapsed().as_secs_f64(),
        }))?;
        if step.is_multiple_of(10) || v.is_some() {
            eprintln!(
                "step {step:>5}/{}  loss {:.4}  batch acc {:.2}{}  {:.0}s",
                c.steps,
                st.loss,
                st.accuracy,
                v.map_or(String::new(), |v| format!("  held-out acc {v:.4}")),
                start.elapsed().as_secs_f64()
            );
        }
        if save_due(c, step, trainer.done()) {
            save(&trainer, &head)?;
        }
    }
    let dir = save(&trainer, &head)?;
    // every held-out pair with the reward model's margin r_c - r_r (negative: ranked wrongly)
    let margins =
        ingot_train::align::reward::rm_margins(&mut trainer.model, &head.w, &held, t, c.batch)?;
    let scored: Vec<serde_json::Value> = held_text
        .iter()
        .zip(&margins)
        .map(|(p, m)| serde_json::json!({"prompt": p.prompt, "chosen": p.chosen, "rejected": p.rejected, "margin": m}))
        .collect();
    write_jsonl(&c.out.join("pairs-heldout-scored.jsonl"), &scored)?;
    let summary = serde_json::json!({
        "stage": "rm", "steps": c.steps, "train_pairs": train.len(), "heldout_pairs": held.len(),
        "heldout_accuracy_before": acc0, "heldout_accuracy": held_acc,
        "wall_s": start.elapsed().as_secs_f64(), "checkpoint": dir.display().to_string(),
    });
    files::atomic_write(
        &c.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("saved {}  ({summary})", dir.display());
    Ok(())
}

pub fn dpo(a: &DpoArgs) -> Result<()> {
    let c = &a.common;
    validate(c)?;
    if !(a.beta.is_finite() && a.beta > 0.0) {
        bail!("--beta must be a positive number, got {}", a.beta);
    }
    let start = Instant::now();
    let init = load_init(c)?;
    let n_threads = threads(c.threads);
    let bytes =
        fs::read(&a.pairs).with_context(|| format!("cannot read `{}`", a.pairs.display()))?;
    let train_text: Vec<TextPair> = read_jsonl(&a.pairs, "pair")?;
    let held_text: Vec<TextPair> = match &a.heldout_pairs {
        Some(h) => read_jsonl(h, "pair")?,
        None => Vec::new(),
    };
    let data = DataMeta {
        sources: vec![a.pairs.display().to_string()],
        files: 1,
        corpus_sha256: files::sha256_hex(&bytes),
        tokens: train_text.len() as u64,
        val_fraction: 0.0,
    };
    let mut train = pairs_ids(&init.tokenizer, &train_text)?;
    let mut held = pairs_ids(&init.tokenizer, &held_text)?;
    // as `ingot train rm` does: sampled pairs too long for the context are left out, and said so
    drop_long_pairs(
        &mut train,
        &mut held,
        init.model.config.max_seq_len + 1,
        "dpo",
    );
    if train.is_empty() {
        bail!("no training pair fits the model's context");
    }
    let t = longest(&train).max(if held.is_empty() { 0 } else { longest(&held) });
    if t > init.model.config.max_seq_len + 1 {
        bail!(
            "a pair needs {t} tokens, more than the model's context of {}",
            init.model.config.max_seq_len
        );
    }
    let t = t.min(init.model.config.max_seq_len);
    let mut reference = Model::<f32>::new(init.model.config.clone(), n_threads)?;
    reference.params.copy_from_slice(&init.model.params);
    let t0 = Instant::now();
    let train_ref = pair_logps(&mut reference, &train, t, c.batch)?;
    let held_ref = pair_logps(&mut reference, &held, t, c.batch)?;
    eprintln!(
        "dpo: {} training pairs, {} held-out, β {}, reference log-probabilities in {:.0}s",
        train.len(),
        held.len(),
        a.beta,
        t0.elapsed().as_secs_f64()
    );
    let opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        &init.model.config,
    );
    let mut trainer = Trainer::new(init.model, opt, train_config(c, t));
    // the pairs of each step are drawn from the trainer's generator, which checkpoints keep
    trainer.sampler = Rng::new(c.seed.wrapping_add(5));
    let resumed = load_resume(c)?;
    let mut metrics = Metrics::open(&c.out, "step", resumed.as_ref().map(|r| r.1.meta.step))?;
    if let Some((dir, ck)) = &resumed {
        same_tokenizer(ck, &init.tokenizer, dir)?;
        restore_trainer(&mut trainer, ck, dir)?;
        eprintln!(
            "dpo: resumed from {} at step {}",
            dir.display(),
            trainer.step
        );
    }
    let held_eval = |m: &mut Model<f32>| -> Result<Option<(f64, f64)>> {
        if held.is_empty() {
            return Ok(None);
        }
        let lp = pair_logps(m, &held, t, c.batch)?;
        let h: Vec<f64> = lp
            .iter()
            .zip(&held_ref)
            .map(|(p, r)| (p.0 - r.0) - (p.1 - r.1))
            .collect();
        let acc = h.iter().filter(|&&x| x > 0.0).count() as f64 / h.len() as f64;
        Ok(Some((acc, h.iter().sum::<f64>() / h.len() as f64)))
    };
    let mut last = None;
    while !trainer.done() {
        let idx: Vec<usize> = (0..c.batch)
            .map(|_| trainer.sampler.below(train.len()))
            .collect();
        let batch: Vec<Pair> = idx.iter().map(|&i| train[i].clone()).collect();
        let refs: Vec<(f64, f64)> = idx.iter().map(|&i| train_ref[i]).collect();
        trainer.model.zero_grad();
        let st = dpo_loss_and_grad(&mut trainer.model, &batch, &refs, a.beta, t)?;
        let gn = clip_grad_norm(&mut trainer.model.grads, trainer.config.grad_clip);
        let lr = lr_schedule(&trainer.config.schedule, trainer.step);
        trainer
            .opt
            .update(&mut trainer.model.params, &trainer.model.grads, lr);
        trainer.step += 1;
        let step = trainer.step;
        let v = if (c.eval_every > 0 && step.is_multiple_of(c.eval_every)) || trainer.done() {
            held_eval(&mut trainer.model)?
        } else {
            None
        };
        if v.is_some() {
            last = v;
        }
        metrics.write(serde_json::json!({
            "step": step, "loss": st.loss, "margin": st.margin, "accuracy": st.accuracy,
            "heldout_accuracy": v.map(|v| v.0), "heldout_margin": v.map(|v| v.1),
            "lr": lr, "grad_norm": gn, "elapsed_s": start.elapsed().as_secs_f64(),
        }))?;
        if step.is_multiple_of(10) || v.is_some() {
            eprintln!(
                "step {step:>5}/{}  loss {:.4}  margin {:.3}{}  {:.0}s",
                c.steps,
                st.loss,
                st.margin,
                v.map_or(String::new(), |(a, m)| format!(
                    "  held-out acc {a:.3} margin {m:.3}"
                )),
                start.elapsed().as_secs_f64()
            );
        }
        if save_due(c, step, trainer.done()) {
            checkpoint::save_in_run(&c.out, &trainer, &init.tokenizer, &data, c.keep)?;
        }
    }
    let dir = checkpoint::save_in_run(&c.out, &trainer, &init.tokenizer, &data, c.keep)?;
    let train_wall = start.elapsed().as_secs_f64();

    // the labeler's paired comparison with the reference (SFT) on the task's held-out prompts
    let win = if c.task || c.corpus.is_some() {
        versus(
            c,
            "dpo",
            &trainer.model,
            &reference,
            &init.tokenizer,
            a.temperature,
            n_threads,
        )?
    } else {
        serde_json::Value::Null
    };
    let summary = serde_json::json!({
        "stage": "dpo", "steps": c.steps, "beta": a.beta, "train_pairs": train.len(),
        "heldout_pairs": held.len(), "heldout_implicit_accuracy": last.map(|v| v.0),
        "heldout_implicit_margin": last.map(|v| v.1), "vs_sft": win,
        "train_wall_s": train_wall, "wall_s": start.elapsed().as_secs_f64(),
        "checkpoint": dir.display().to_string(),
    });
    files::atomic_write(
        &c.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("saved {}  ({summary})", dir.display());
    Ok(())
}

/// The labeler's paired comparison of `ours` with `sft` on the task's held-out prompts (one sampled
/// answer each); writes `OUT/samples.jsonl` (20 of them) and returns the figures.
fn versus(
    c: &Common,
    name: &str,
    ours_model: &Model<f32>,
    sft: &Model<f32>,
    tok: &TextTokenizer,
    temperature: f32,
    n_threads: usize,
) -> Result<serde_json::Value> {
    let (task, _) = load_task(c)?;
    let prompts: Vec<Prompt> = task.heldout.iter().map(|e| e.prompt.clone()).collect();
    let gen = generate_config(tok, temperature, c.seed.wrapping_add(7), n_threads)?;
    let ours = answers(ours_model, tok, &prompts, &gen)?;
    let theirs = answers(sft, tok, &prompts, &gen)?;
    let (w, ties, l) = win_rate(&task.labeler, &prompts, &ours, &theirs);
    let mean = |xs: &[String]| {
        prompts
            .iter()
            .zip(xs)
            .map(|(p, x)| task.labeler.score(p, x).total())
            .sum::<f64>()
            / prompts.len() as f64
    };
    let n = prompts.len() as f64;
    eprintln!(
        "{name} vs sft on {} held-out prompts: {w} wins, {ties} ties, {l} losses (win rate {:.3}, ties \
         half: {:.3}); mean labeler score {:.3} vs {:.3}",
        prompts.len(),
        w as f64 / n,
        (w as f64 + ties as f64 / 2.0) / n,
        mean(&ours),
        mean(&theirs)
    );
    let examples: Vec<_> = prompts
        .iter()
        .zip(ours.iter().zip(&theirs))
        .take(20)
        .map(|(p, (o, t))| serde_json::json!({"prompt": p.text, name: o, "sft": t}))
        .collect();
    write_jsonl(&c.out.join("samples.jsonl"), &examples)?;
    Ok(serde_json::json!({
        "prompts": prompts.len(), "wins": w, "ties": ties, "losses": l,
        "win_rate": w as f64 / n, "win_rate_ties_half": (w as f64 + ties as f64 / 2.0) / n,
        "mean_score": mean(&ours), "mean_score_sft": mean(&theirs),
    }))
}

#[derive(Args, Debug)]
pub struct PpoArgs {
    /// `--steps` is the number of PPO iterations and `--batch` the rollouts per iteration.
    #[command(flatten)]
    pub common: Common,
    /// The reward model (an `ingot train rm` run or checkpoint).
    #[arg(long, value_name = "DIR")]
    pub reward_model: PathBuf,
    /// KL penalty coefficient (initial, with --kl-target).
    #[arg(long, value_name = "X", default_value_t = 0.05)]
    pub kl_coef: f64,
    /// Adaptive KL controller's target (summed KL per answer); off when absent.
    #[arg(long, value_name = "X")]
    pub kl_target: Option<f64>,
    /// Adaptive KL controller's horizon (rollouts).
    #[arg(long, value_name = "N", default_value_t = 10000.0)]
    pub kl_horizon: f64,
    /// The per-token KL estimator: k1 (log ratio) or k3.
    #[arg(long, value_name = "K", default_value = "k1")]
    pub kl_estimator: String,
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub gamma: f64,
    #[arg(long, value_name = "X", default_value_t = 0.95)]
    pub lam: f64,
    #[arg(long, value_name = "X", default_value_t = 0.2)]
    pub cliprange: f64,
    #[arg(long, value_name = "X", default_value_t = 0.2)]
    pub cliprange_value: f64,
    #[arg(long, value_name = "X", default_value_t = 0.1)]
    pub vf_coef: f64,
    /// Passes over each batch of rollouts.
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub ppo_epochs: usize,
    /// Rollouts per minibatch.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub minibatch: usize,
    /// Sampling temperature of the rollouts.
    #[arg(long, value_name = "X", default_value_t = 1.0)]
    pub temperature: f32,
    /// Sampling temperature of the win-rate evaluation.
    #[arg(long, value_name = "X", default_value_t = 0.7)]
    pub eval_temperature: f32,
    /// The frozen reference of the KL penalty and of the win rate [default: --init]; e.g. the SFT
    /// run when --init is an earlier PPO policy (the next round of the loop).
    #[arg(long, value_name = "DIR")]
    pub reference: Option<PathBuf>,
}

pub fn ppo(a: &PpoArgs) -> Result<()> {
    use ingot_train::align::ppo::{KlEstimator, Ppo, PpoConfig};
    use ingot_train::align::reward::rewards;
    let c = &a.common;
    validate(c)?;
    let start = Instant::now();
    let init = load_init(c)?;
    let n_threads = threads(c.threads);
    let rm_dir = checkpoint::resolve(&a.reward_model)
        .with_context(|| format!("--reward-model `{}`", a.reward_model.display()))?;
    let rm_ck = checkpoint::load(&rm_dir)?;
    if rm_ck.tokenizer()? != init.tokenizer {
        bail!("the reward model's tokenizer differs from the policy's: train both from the same SFT run");
    }
    let mut rm = rm_ck.model(n_threads)?;
    let head = ingot_train::align::reward::load_head(&rm_dir, rm.config.dim)?;
    let kl_estimator = match a.kl_estimator.as_str() {
        "k1" => KlEstimator::K1,
        "k3" => KlEstimator::K3,
        other => bail!("--kl-estimator must be k1 or k3, got {other:?}"),
    };
    let pc = PpoConfig {
        kl_coef: a.kl_coef,
        adaptive_kl: a.kl_target.map(|t| (t, a.kl_horizon)),
        kl_estimator,
        gamma: a.gamma,
        lam: a.lam,
        cliprange: a.cliprange,
        cliprange_value: a.cliprange_value,
        vf_coef: a.vf_coef,
        epochs: a.ppo_epochs,
        minibatch: a.minibatch,
        whiten: true,
        lr: c.lr,
        grad_clip: if c.clip > 0.0 { c.clip } else { f64::INFINITY },
        seed: c.seed,
    };
    let (task, data) = load_task(c)?;
    let prompts = unique_prompts(&task, usize::MAX);
    let prompt_ids = prompts
        .iter()
        .map(|p| Ok(ingot_train::align::encode_prompt(&init.tokenizer, &p.text)?))
        .collect::<Result<Vec<_>>>()?;
    let reference = match &a.reference {
        Some(p) => {
            let dir =
                checkpoint::resolve(p).with_context(|| format!("--reference `{}`", p.display()))?;
            let ck = checkpoint::load(&dir)?;
            if ck.tokenizer()? != init.tokenizer {
                bail!(
                    "--reference `{}` has another tokenizer than --init",
                    p.display()
                );
            }
            let m = ck.model(n_threads)?;
            if m.config != init.model.config {
                bail!(
                    "--reference `{}` has another model shape than --init",
                    p.display()
                );
            }
            m
        }
        None => {
            let mut m = Model::<f32>::new(init.model.config.clone(), n_threads)?;
            m.params.copy_from_slice(&init.model.params);
            m
        }
    };
    let opt = AdamW::new(
        AdamWConfig {
            weight_decay: 0.0,
            ..AdamWConfig::default()
        },
        &init.model.config,
    );
    let mut ppo = Ppo::new(init.model, reference, opt, pc);
    let gen = generate_config(
        &init.tokenizer,
        a.temperature,
        c.seed.wrapping_add(9),
        n_threads,
    )?;
    let end = Codec::encode(&init.tokenizer, &format!("{IM_END}\n"))?;
    let t_rm = rm.config.max_seq_len;
    // the prompts of each iteration are drawn from `rng`, kept as the checkpoint's sampler
    let mut rng = Rng::new(c.seed.wrapping_add(8));
    let resumed = load_resume(c)?;
    if let Some((dir, ck)) = &resumed {
        same_tokenizer(ck, &init.tokenizer, dir)?;
        ppo_restore(&mut ppo, &mut rng, ck, dir, c)?;
        eprintln!(
            "ppo: resumed from {} at iteration {} (KL coefficient {})",
            dir.display(),
            ppo.iterations,
            ppo.config.kl_coef
        );
    }
    let mut metrics = Metrics::open(&c.out, "iteration", resumed.map(|_| ppo.iterations))?;
    eprintln!(
        "ppo: {} training prompts, {} iterations of {} rollouts, reward model {}",
        prompts.len(),
        c.steps,
        c.batch,
        rm_dir.display()
    );
    if ppo.iterations > c.steps {
        bail!(
            "--resume: the checkpoint is at iteration {}, beyond --steps {}",
            ppo.iterations,
            c.steps
        );
    }
    let mut last = None;
    for it in ppo.iterations + 1..=c.steps {
        let batch: Vec<Vec<u32>> = (0..c.batch)
            .map(|_| prompt_ids[rng.below(prompt_ids.len())].clone())
            .collect();
        let score = |p: &[u32], r: &[u32]| -> ingot_train::Result<f64> {
            let mut seq = [p, r].concat();
            if !seq.ends_with(&end) {
                seq.extend_from_slice(&end);
            }
            seq.truncate(t_rm);
            Ok(rewards(&mut rm, &head, &[&seq], seq.len())?[0])
        };
        let st = ppo.iteration(&batch, &gen, &end, score)?;
        metrics.write(serde_json::json!({
            "iteration": it, "score": st.score, "kl": st.kl, "kl_coef": st.kl_coef, "entropy": st.entropy,
            "clipfrac": st.clipfrac, "approx_kl": st.approx_kl, "pg_loss": st.pg_loss, "vf_loss": st.vf_loss,
            "explained_variance": st.explained_variance, "response_len": st.response_len,
            "elapsed_s": start.elapsed().as_secs_f64(),
        }))?;
        eprintln!(
            "iter {it:>4}/{}  reward {:.3}  kl {:.3} (coef {:.3})  entropy {:.3}  clipfrac {:.3}  approx_kl \
             {:.4}  vf {:.4}  ev {:.2}  len {:.1}  {:.0}s",
            c.steps,
            st.score,
            st.kl,
            st.kl_coef,
            st.entropy,
            st.clipfrac,
            st.approx_kl,
            st.vf_loss,
            st.explained_variance,
            st.response_len,
            start.elapsed().as_secs_f64()
        );
        last = Some(st);
        if save_due(c, it, it == c.steps) {
            (ppo, _) = ppo_save(ppo, &rng, c, &init.tokenizer, &data)?;
        }
    }
    let (ppo, dir) = ppo_save(ppo, &rng, c, &init.tokenizer, &data)?;
    let train_wall = start.elapsed().as_secs_f64();
    let win = versus(
        c,
        "ppo",
        &ppo.policy,
        &ppo.reference,
        &init.tokenizer,
        a.eval_temperature,
        n_threads,
    )?;
    let summary = serde_json::json!({
        "stage": "ppo", "iterations": c.steps, "rollouts_per_iteration": c.batch,
        "last_reward": last.map(|s| s.score), "last_kl": last.map(|s| s.kl), "vs_sft": win,
        "train_wall_s": train_wall, "wall_s": start.elapsed().as_secs_f64(),
        "checkpoint": dir.display().to_string(),
    });
    files::atomic_write(
        &c.out.join("summary.json"),
        serde_json::to_string_pretty(&summary)?.as_bytes(),
    )?;
    eprintln!("saved {}  ({summary})", dir.display());
    Ok(())
}

/// Saves the PPO run as a checkpoint in `--out`: the policy and AdamW's state as an ordinary
/// checkpoint whose step is the optimizer's (its update count: epochs x minibatches per iteration,
/// which the checkpoint format requires to agree) and whose sampler is the prompt generator `rng`;
/// beside it (`align_state.safetensors`) the value head and its moments, the iteration count, the KL
/// controller's coefficient and the minibatch shuffler.
fn ppo_save(
    ppo: ingot_train::align::ppo::Ppo,
    rng: &Rng,
    c: &Common,
    tok: &TextTokenizer,
    data: &DataMeta,
) -> Result<(ingot_train::align::ppo::Ppo, PathBuf)> {
    let mut ppo = ppo;
    let step = ppo.opt.step;
    let trainer = Trainer {
        model: ppo.policy,
        opt: ppo.opt,
        config: TrainConfig {
            steps: step,
            ..train_config(c, 1)
        },
        step,
        sampler: rng.clone(),
    };
    let saved = checkpoint::save_in_run_with(&c.out, &trainer, tok, data, c.keep, |dir| {
        AlignState::new("ppo")
            .tensor("value_head", &ppo.value_head)
            .tensor("m.value_head", &ppo.head_m)
            .tensor("v.value_head", &ppo.head_v)
            .value("iterations", ppo.iterations)
            .value("kl_coef", f64_bits(ppo.config.kl_coef))
            .value("shuffle_rng", ppo.rng.state)
            .save(dir)
    });
    ppo.policy = trainer.model;
    ppo.opt = trainer.opt;
    Ok((ppo, saved?))
}

/// Puts the PPO run saved in `ck` (by [`ppo_save`]) into `ppo` and the prompt generator `rng`.
fn ppo_restore(
    ppo: &mut ingot_train::align::ppo::Ppo,
    rng: &mut Rng,
    ck: &checkpoint::Checkpoint,
    dir: &Path,
    c: &Common,
) -> Result<()> {
    if ck.meta.model != ppo.policy.config {
        bail!(
            "--resume `{}` holds a model of another shape than --init: resume with the --init of the \
             run that wrote it",
            dir.display()
        );
    }
    let t = &ck.meta.training;
    if t.batch != c.batch || t.seed != c.seed {
        bail!(
            "--resume `{}` was written with --batch {} --seed {}, this run has --batch {} --seed {}",
            dir.display(),
            t.batch,
            t.seed,
            c.batch,
            c.seed
        );
    }
    let state = AlignState::load(dir, "ppo")?;
    let dim = ppo.policy.config.dim;
    ppo.value_head = state.get("value_head", dim, dir)?;
    ppo.head_m = state.get("m.value_head", dim, dir)?;
    ppo.head_v = state.get("v.value_head", dim, dir)?;
    ppo.iterations = state.parse("iterations", dir)?;
    ppo.config.kl_coef = state.parse_f64("kl_coef", dir)?;
    ppo.rng = Rng {
        state: state.parse("shuffle_rng", dir)?,
    };
    ppo.policy.params.copy_from_slice(&ck.params);
    ppo.opt.m.copy_from_slice(&ck.m);
    ppo.opt.v.copy_from_slice(&ck.v);
    ppo.opt.step = ck.meta.optimizer.step;
    *rng = Rng {
        state: ck.meta.rng.sampler,
    };
    Ok(())
}

/// How `ingot train versus` prompts a model.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromptFormat {
    /// The user message in ChatML with the assistant header; the answer ends at `<|im_end|>`.
    Chat,
    /// The user message and a newline as plain text; the answer is the first verse line of the
    /// continuation, trimmed, skipping speaker names (no lowercase letter) and stage directions (in
    /// brackets): for a model that never saw ChatML, e.g. one only pretrained.
    Line,
}

#[derive(Args, Debug)]
pub struct VersusArgs {
    /// The model whose win rate is reported (a run directory or checkpoint, e.g. a PPO run).
    #[arg(long, value_name = "DIR")]
    pub model: PathBuf,
    /// The model it is compared with (e.g. a larger model that was only pretrained).
    #[arg(long, value_name = "DIR")]
    pub baseline: PathBuf,
    /// How --model is prompted.
    #[arg(long, value_enum, default_value_t = PromptFormat::Chat)]
    pub model_format: PromptFormat,
    /// How --baseline is prompted.
    #[arg(long, value_enum, default_value_t = PromptFormat::Chat)]
    pub baseline_format: PromptFormat,
    /// Corpus the task is built from [default: ../shared/data/shakespeare, else data/shakespeare].
    #[arg(long, value_name = "PATH")]
    pub corpus: Option<PathBuf>,
    /// The task's seed (as the runs being compared were given) and the sampler's (+ 7).
    #[arg(long, value_name = "S", default_value_t = 1337)]
    pub seed: u64,
    /// Held-out prompts of the task.
    #[arg(long, value_name = "N", default_value_t = 300)]
    pub heldout_prompts: usize,
    /// Sampling temperature.
    #[arg(long, value_name = "X", default_value_t = 0.7)]
    pub temperature: f32,
    /// Threads (0 = all cores).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Writes summary.json and samples.jsonl (20 answers of each) into this directory.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// One sampled answer per prompt from the checkpoint `dir`, prompted in `format`.
fn answers_of(
    dir: &Path,
    format: PromptFormat,
    prompts: &[Prompt],
    a: &VersusArgs,
) -> Result<Vec<String>> {
    let d = checkpoint::resolve(dir).with_context(|| format!("`{}`", dir.display()))?;
    let ck = checkpoint::load(&d)?;
    let tok = ck.tokenizer()?;
    let model = ck.model(threads(a.threads))?;
    let seed = a.seed.wrapping_add(7);
    match format {
        PromptFormat::Chat => {
            let gen = generate_config(&tok, a.temperature, seed, threads(a.threads))?;
            Ok(answers(&model, &tok, prompts, &gen)?)
        }
        PromptFormat::Line => {
            // no stop sequence: the corpus puts blank lines and speaker names before a verse line
            let gen = GenerateConfig {
                stop: Vec::new(),
                ..generate_config(&tok, a.temperature, seed, threads(a.threads))?
            };
            let ids = prompts
                .iter()
                .map(|p| Codec::encode(&tok, &format!("{}\n", p.text)))
                .collect::<ingot_train::Result<Vec<_>>>()?;
            Ok(ingot_train::align::sample::generate(&model, &ids, &gen)?
                .into_iter()
                .map(|g| {
                    let text = Codec::decode(&tok, &g.tokens);
                    // the first verse line: speaker names (no lowercase letter) and stage
                    // directions (in brackets) are skipped
                    let first = text
                        .lines()
                        .map(str::trim)
                        .find(|l| l.contains(|c: char| c.is_lowercase()) && !l.starts_with('['));
                    first.unwrap_or("").to_string()
                })
                .collect())
        }
    }
}

/// `ingot train versus`: the labeler's paired comparison of two models on the held-out prompts.
pub fn versus_cmd(a: &VersusArgs) -> Result<()> {
    let (task, _) = load_task_from(a.corpus.as_ref(), a.seed, a.heldout_prompts)?;
    let prompts: Vec<Prompt> = task.heldout.iter().map(|e| e.prompt.clone()).collect();
    let ours = answers_of(&a.model, a.model_format, &prompts, a)?;
    let theirs = answers_of(&a.baseline, a.baseline_format, &prompts, a)?;
    let (w, ties, l) = win_rate(&task.labeler, &prompts, &ours, &theirs);
    let mean = |xs: &[String]| {
        prompts
            .iter()
            .zip(xs)
            .map(|(p, x)| task.labeler.score(p, x).total())
            .sum::<f64>()
            / prompts.len() as f64
    };
    let n = prompts.len() as f64;
    let summary = serde_json::json!({
        "model": a.model.display().to_string(), "model_format": format!("{:?}", a.model_format),
        "baseline": a.baseline.display().to_string(),
        "baseline_format": format!("{:?}", a.baseline_format),
        "prompts": prompts.len(), "wins": w, "ties": ties, "losses": l,
        "win_rate": w as f64 / n, "win_rate_ties_half": (w as f64 + ties as f64 / 2.0) / n,
        "mean_score": mean(&ours), "mean_score_baseline": mean(&theirs),
        "temperature": a.temperature,
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(out) = &a.out {
        fs::create_dir_all(out).with_context(|| format!("cannot create `{}`", out.display()))?;
        files::atomic_write(
            &out.join("summary.json"),
            serde_json::to_string_pretty(&summary)?.as_bytes(),
        )?;
        let examples: Vec<_> = prompts
            .iter()
            .zip(ours.iter().zip(&theirs))
            .take(20)
            .map(|(p, (o, t))| serde_json::json!({"prompt": p.text, "model": o, "baseline": t}))
            .collect();
        write_jsonl(&out.join("samples.jsonl"), &examples)?;
    }
    Ok(())
}

pub const VERSUS_HELP: &str = "\
Examples:
  ingot train versus --model runs/pipeline/ppo --baseline runs/pipeline/sft
  ingot train versus --model runs/pipeline/ppo --baseline runs/large --baseline-format line --out runs/bonus

One answer per held-out prompt of the bundled task (the task of --seed, as the runs were given) from
each model, sampled at --temperature with the same seeds, scored by the labeler; prints wins, ties and
losses of --model, its win rate and both mean scores (summary.json with --out). --baseline-format line
prompts a model that never saw ChatML with the plain message and a newline and takes the first verse
line of its continuation (80 tokens; lines without a lowercase letter, i.e. speaker names, and stage
directions in brackets are skipped), which gives a pretrained-only model its best chance.";

pub const PPO_HELP: &str = "\
Example:
  ingot train ppo --init runs/sft --reward-model runs/rm --out runs/ppo --steps 100 --batch 32 --lr 2e-5

Policy and reference start from --init (SFT); the critic is a value head on the policy's trunk,
initialised to zero. Each iteration samples --batch answers (KV cache), scores them with the reward
model only, and updates with PPO (TRL defaults: kl_coef 0.05, cliprange 0.2, cliprange_value 0.2,
vf_coef 0.1, gamma 1, lambda 0.95, 4 epochs, whitened advantages). At the end the labeler compares the
policy with the SFT model on the held-out prompts (summary.json, samples.jsonl).";

pub const SFT_HELP: &str = "\
Examples:
  ingot train sft --init runs/pretrain --out runs/sft --steps 600 --lr 1e-3        # the bundled task
  ingot train sft --init runs/pretrain --data chat.jsonl --val val.jsonl --out runs/sft --steps 1000 --lr 3e-4

Each conversation is rendered in ChatML (<|im_start|>role\\ncontent<|im_end|>\\n) and padded to the
model's context; the loss covers the assistant turns (content and <|im_end|>\\n) only. A character
vocabulary without <, | or > (the bundled corpus) is extended with them. Output: step-*/ (an ordinary
checkpoint), latest, metrics.jsonl, summary.json.";

pub const RM_HELP: &str = "\
Examples:
  ingot train rm --init runs/sft --out runs/rm --steps 300 --lr 3e-4               # sample + rank pairs
  ingot train rm --init runs/sft --task --pairs p.jsonl --heldout-pairs h.jsonl --out runs/rm --steps 300 --lr 3e-4

With the task, two answers per prompt are sampled from the --init model (KV cache, temperature
--temperature) and ranked by the labeler; pairs closer than --gap are dropped; written to
OUT/pairs.jsonl and OUT/pairs-heldout.jsonl. The head (score.weight, 1 x C) is in
step-*/reward_head.safetensors. Output also: metrics.jsonl, summary.json (held-out accuracy).";

pub const DPO_HELP: &str = "\
Examples:
  ingot train dpo --init runs/sft --pairs runs/rm/pairs.jsonl --heldout-pairs runs/rm/pairs-heldout.jsonl \\
      --task --out runs/dpo --steps 300 --lr 3e-4 --beta 0.1

The reference is the --init model, frozen. With --task the end of the run samples one answer per
held-out prompt from the DPO policy and from the reference and reports the labeler's win rate
(summary.json, samples.jsonl).";
