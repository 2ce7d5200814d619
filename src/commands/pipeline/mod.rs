//! `ingot pipeline`: the InstructGPT loop in one command, resumable stage by stage — pretrain → SFT →
//! RM → PPO → Q8_0 GGUF, and with `--extras` also DPO and the loop's second round (answers sampled from
//! the PPO policy ranked by the labeler, the RM retrained, PPO continued) — then a report.
//!
//! Each stage is the `ingot train …` / `ingot convert` command of the same name, called with the
//! preset's options, writing into `OUT/<stage>/`. When a stage finishes, `OUT/<stage>/stage.json`
//! records its options (a fingerprint of the arguments, thread count left out: results do not depend
//! on it) and its wall time. A later run skips a stage whose `stage.json` matches and whose upstream
//! stages were skipped too; `--force-from STAGE` runs that stage and every later one again. An
//! interrupted stage continues from its last checkpoint (`ingot train pretrain|sft|rm|dpo|ppo
//! --resume`, bit-identically; the alignment stages save every `eval_every` steps, PPO every 10
//! iterations); one interrupted before its first checkpoint starts over.
//!
//! ```text
//! OUT/pretrain/ sft/ rm/ ppo/ [dpo/ rm2/ ppo2/]  the stages' run directories (metrics.jsonl, summary.json, …)
//! OUT/ingot-chat.Q8_0.gguf                       the last PPO policy, with its ChatML template
//! OUT/report.md                                  figures of every stage, wall times
//! OUT/*.svg                                      curves: pretraining loss, SFT loss, RM accuracy, PPO reward,
//!                                                KL, win rates (polylines written directly, no plotting crate)
//! ```

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Args, ValueEnum};
use serde_json::Value;

use super::align::{Common, DpoArgs, PpoArgs, RmArgs, SftArgs};
use super::train::{PretrainArgs, TokenizerKind};

mod report;

/// The stages, in order.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    Pretrain,
    Sft,
    Rm,
    Ppo,
    Dpo,
    Rm2,
    Ppo2,
    Convert,
}

impl Stage {
    const ALL: [Stage; 8] = [
        Stage::Pretrain,
        Stage::Sft,
        Stage::Rm,
        Stage::Ppo,
        Stage::Dpo,
        Stage::Rm2,
        Stage::Ppo2,
        Stage::Convert,
    ];
    fn name(self) -> &'static str {
        match self {
            Stage::Pretrain => "pretrain",
            Stage::Sft => "sft",
            Stage::Rm => "rm",
            Stage::Ppo => "ppo",
            Stage::Dpo => "dpo",
            Stage::Rm2 => "rm2",
            Stage::Ppo2 => "ppo2",
            Stage::Convert => "convert",
        }
    }
}

/// Sizes of every stage.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    /// The bundled chat model's sizes: 0.54M parameters, BPE 1024, context 64 (pretrain to GGUF:
    /// 3.4 minutes of wall time on a quiet 2-core Zen 4, 19 under load average 8-12).
    Full,
    /// For tests: two blocks of width 48, seconds per stage (the RM and PPO learn a little).
    Tiny,
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  ingot pipeline                                  # pretrain -> SFT -> RM -> PPO -> GGUF into runs/pipeline
  ingot pipeline --extras                         # also DPO and the second round (RM and PPO again)
  ingot pipeline --force-from rm                  # keep pretrain and SFT, redo RM and everything after
  ingot pipeline --preset tiny --data testdata/text/macbeth_40k.txt --out /tmp/p   # seconds
  ingot chat -m runs/pipeline/ingot-chat.Q8_0.gguf

Stages: pretrain (byte-level BPE with ChatML's control tokens), sft (the bundled task's demonstrations),
rm (K answers per prompt sampled from SFT, every pair the labeler separates by >= 1 ranked, ties dropped;
Bradley-Terry), ppo (against the RM only, adaptive KL controller), convert (the last PPO policy to Q8_0
GGUF). With --extras: dpo (the RM's pairs), rm2 and ppo2 (answers sampled from the PPO policy ranked and
added to the first pairs, the RM retrained, PPO continued from the first policy with the KL still to SFT).
Finished stages whose options match are skipped. Figures: OUT/report.md.")]
pub struct PipelineArgs {
    /// Output directory: one subdirectory per stage, report.md, the SVG curves and the GGUF.
    #[arg(long, value_name = "DIR", default_value = "runs/pipeline")]
    pub out: PathBuf,
    /// Sizes of the stages.
    #[arg(long, value_enum, default_value_t = Preset::Full)]
    pub preset: Preset,
    /// Run this stage and all later ones again even where their outputs match.
    #[arg(long, value_enum, value_name = "STAGE")]
    pub force_from: Option<Stage>,
    /// Stop after this stage (the report covers what ran).
    #[arg(long, value_enum, value_name = "STAGE")]
    pub until: Option<Stage>,
    /// Corpus for pretraining and the alignment task [default: ../shared/data/shakespeare, else
    /// data/shakespeare].
    #[arg(long, value_name = "PATH")]
    pub data: Option<PathBuf>,
    /// Threads (0 = all cores); results do not depend on it.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Also run DPO (for comparison) and the loop's second round (rm2, ppo2); the GGUF is then
    /// the second round's policy.
    #[arg(long)]
    pub extras: bool,
    /// Random seed of every stage.
    #[arg(long, value_name = "S", default_value_t = 1337)]
    pub seed: u64,
}

/// One preset's numbers.
struct Sizes {
    vocab: usize,
    layers: usize,
    width: usize,
    heads: usize,
    ctx: usize,
    pretrain_steps: u64,
    pretrain_batch: usize,
    pretrain_lr: f64,
    sft_steps: u64,
    rm_prompts: usize,
    rm_answers: usize,
    rm_steps: u64,
    rm_batch: usize,
    ppo_steps: u64,
    ppo_batch: usize,
    ppo_lr: f64,
    ppo2_steps: u64,
    dpo_steps: u64,
    kl_target: f64,
    heldout: usize,
    eval_every: u64,
}

fn sizes(p: Preset) -> Sizes {
    match p {
        Preset::Full => Sizes {
            vocab: 1024,
            layers: 4,
            width: 96,
            heads: 4,
            ctx: 64,
            pretrain_steps: 1200,
            pretrain_batch: 16,
            pretrain_lr: 2e-3,
            sft_steps: 300,
            rm_prompts: 2000,
            rm_answers: 8,
            rm_steps: 500,
            rm_batch: 32,
            ppo_steps: 60,
            ppo_batch: 32,
            ppo_lr: 1e-4,
            ppo2_steps: 20,
            dpo_steps: 100,
            kl_target: 10.0,
            heldout: 300,
            eval_every: 100,
        },
        Preset::Tiny => Sizes {
            vocab: 320,
            layers: 2,
            width: 48,
            heads: 4,
            ctx: 128,
            pretrain_steps: 150,
            pretrain_batch: 8,
            pretrain_lr: 3e-3,
            sft_steps: 80,
            rm_prompts: 120,
            rm_answers: 4,
            rm_steps: 60,
            rm_batch: 16,
            ppo_steps: 16,
            ppo_batch: 32,
            ppo_lr: 3e-4,
            ppo2_steps: 3,
            dpo_steps: 10,
            kl_target: 10.0,
            heldout: 40,
            eval_every: 20,
        },
    }
}

/// The thread count the arguments are built with for a stage's fingerprint (results do not depend on
/// the thread count, so it is left out).
const FINGERPRINT: usize = usize::MAX;

/// The GGUF file the pipeline writes (the committed default chat model is a copy of it).
pub const GGUF_NAME: &str = "ingot-chat.Q8_0.gguf";

struct Ctx<'a> {
    a: &'a PipelineArgs,
    z: Sizes,
    /// Set once a stage ran: every later stage runs too (its input changed).
    upstream_ran: bool,
    /// `(stage, wall seconds, CPU seconds, skipped)` in order.
    walls: Vec<(Stage, f64, Option<f64>, bool)>,
}

impl Ctx<'_> {
    fn dir(&self, s: Stage) -> PathBuf {
        self.a.out.join(s.name())
    }

    fn common(
        &self,
        init: Stage,
        out: Stage,
        steps: u64,
        batch: usize,
        lr: f64,
        threads: usize,
    ) -> Common {
        Common {
            init: self.dir(init),
            out: self.dir(out),
            task: true,
            corpus: self.a.data.clone(),
            steps,
            batch,
            lr,
            clip: 1.0,
            eval_every: self.z.eval_every,
            threads,
            seed: self.a.seed,
            heldout_prompts: self.z.heldout,
            // An interrupted stage continues from its last checkpoint (`Ctx::stage` keeps the
            // directory only then); left out of the fingerprint.
            resume: (threads != FINGERPRINT && self.dir(out).join("latest").is_file())
                .then(|| self.dir(out)),
            save_every: if matches!(out, Stage::Ppo | Stage::Ppo2) {
                10
            } else {
                self.z.eval_every
            },
            keep: 1,
        }
    }

    /// Runs `stage` unless its recorded fingerprint matches and nothing upstream ran. `make` builds
    /// the stage's arguments for a thread count ([`FINGERPRINT`] for the fingerprint).
    fn stage<T: std::fmt::Debug>(
        &mut self,
        stage: Stage,
        make: impl Fn(&Self, usize) -> T,
        run: impl FnOnce(&T) -> Result<()>,
        resumable: bool,
    ) -> Result<()> {
        let dir = self.dir(stage);
        let marker = dir.join("stage.json");
        let fingerprint = format!("{:?}", make(self, FINGERPRINT));
        let forced = self.a.force_from.is_some_and(|f| stage >= f);
        if !forced && !self.upstream_ran {
            if let Some(done) =
                read_json(&marker).filter(|v| v["fingerprint"] == fingerprint.as_str())
            {
                let wall = done["wall_s"].as_f64().unwrap_or(0.0);
                eprintln!(
                    "== {}: up to date (ran in {wall:.0} s), skipped",
                    stage.name()
                );
                self.walls.push((stage, wall, done["cpu_s"].as_f64(), true));
                return Ok(());
            }
        }
        // A stale or forced stage starts from an empty directory, except an interrupted run of the
        // same options, which resumes from its last checkpoint.
        let started = dir.join("pipeline-fingerprint.txt");
        let resume = resumable
            && !forced
            && !self.upstream_ran
            && fs::read_to_string(&started).is_ok_and(|f| f == fingerprint)
            && dir.join("latest").is_file()
            && !marker.exists();
        if dir.exists() && !resume {
            fs::remove_dir_all(&dir)
                .with_context(|| format!("cannot clear `{}`", dir.display()))?;
        }
        fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
        fs::write(&started, &fingerprint)?;
        eprintln!(
            "== {}{} ({})",
            stage.name(),
            if resume {
                ": resuming from its last checkpoint"
            } else {
                ""
            },
            dir.display()
        );
        let (t0, cpu0) = (Instant::now(), cpu_seconds());
        let args = make(self, self.a.threads);
        run(&args).with_context(|| format!("stage {} failed", stage.name()))?;
        let wall = t0.elapsed().as_secs_f64();
        let cpu = cpu_seconds().zip(cpu0).map(|(b, a)| b - a);
        let v = serde_json::json!({
            "stage": stage.name(), "fingerprint": fingerprint, "wall_s": wall, "cpu_s": cpu,
        });
        ingot_train::files::atomic_write(&marker, serde_json::to_string_pretty(&v)?.as_bytes())?;
        eprintln!("== {}: done in {wall:.0} s", stage.name());
        self.walls.push((stage, wall, cpu, false));
        self.upstream_ran = true;
        Ok(())
    }
}

/// CPU seconds (user + system, all threads) this process has used: `/proc/self/stat` fields 14 and 15,
/// in clock ticks of 1/100 s (Linux's USER_HZ). `None` elsewhere. On a busy machine the wall time
/// overstates what a stage needs; its CPU time over the thread count does not.
fn cpu_seconds() -> Option<f64> {
    let stat = fs::read_to_string("/proc/self/stat").ok()?;
    // the command name (field 2) may hold spaces: count fields after its closing parenthesis
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_str(&fs::read_to_string(p).ok()?).ok()
}

pub fn run(a: &PipelineArgs) -> Result<()> {
    let start = Instant::now();
    fs::create_dir_all(&a.out).with_context(|| format!("cannot create `{}`", a.out.display()))?;
    let mut cx = Ctx {
        a,
        z: sizes(a.preset),
        upstream_ran: false,
        walls: Vec::new(),
    };
    for stage in Stage::ALL {
        if a.until.is_some_and(|u| stage > u) {
            break;
        }
        if !a.extras && matches!(stage, Stage::Dpo | Stage::Rm2 | Stage::Ppo2) {
            continue;
        }
        match stage {
            Stage::Pretrain => cx.stage(stage, pretrain_args, super::train::pretrain, true)?,
            Stage::Sft => cx.stage(
                stage,
                |cx, t| SftArgs {
                    common: cx.common(Stage::Pretrain, Stage::Sft, cx.z.sft_steps, 16, 1e-3, t),
                    data: None,
                    val: None,
                },
                super::align::sft,
                true,
            )?,
            Stage::Rm => cx.stage(stage, |cx, t| rm_args(cx, t, false), super::align::rm, true)?,
            Stage::Ppo => cx.stage(
                stage,
                |cx, t| ppo_args(cx, t, false),
                super::align::ppo,
                true,
            )?,
            Stage::Dpo => cx.stage(
                stage,
                |cx, t| DpoArgs {
                    common: cx.common(Stage::Sft, Stage::Dpo, cx.z.dpo_steps, 8, 3e-5, t),
                    pairs: cx.dir(Stage::Rm).join("pairs.jsonl"),
                    heldout_pairs: Some(cx.dir(Stage::Rm).join("pairs-heldout.jsonl")),
                    beta: 0.1,
                    temperature: 0.7,
                },
                super::align::dpo,
                true,
            )?,
            Stage::Rm2 => cx.stage(stage, |cx, t| rm_args(cx, t, true), super::align::rm, true)?,
            Stage::Ppo2 => cx.stage(
                stage,
                |cx, t| ppo_args(cx, t, true),
                super::align::ppo,
                true,
            )?,
            Stage::Convert => cx.stage(
                stage,
                |cx, t| ConvertStage {
                    input: cx.dir(if cx.a.extras { Stage::Ppo2 } else { Stage::Ppo }),
                    output: cx.a.out.join(GGUF_NAME),
                    threads: t,
                },
                convert,
                false,
            )?,
        }
    }
    let total = start.elapsed().as_secs_f64();
    let report = report::write(&cx, total)?;
    eprintln!(
        "pipeline: done in {total:.0} s; report in {}",
        report.display()
    );
    Ok(())
}

fn pretrain_args(cx: &Ctx<'_>, threads: usize) -> PretrainArgs {
    let z = &cx.z;
    PretrainArgs {
        data: cx.a.data.iter().cloned().collect(),
        out: Some(cx.dir(Stage::Pretrain)),
        steps: Some(z.pretrain_steps),
        batch: Some(z.pretrain_batch),
        ctx: Some(z.ctx),
        layers: Some(z.layers),
        width: Some(z.width),
        heads: Some(z.heads),
        kv_heads: None,
        ffn: None,
        lr: Some(z.pretrain_lr),
        warmup: Some((z.pretrain_steps / 20).max(1)),
        min_lr: Some(z.pretrain_lr / 10.0),
        weight_decay: None,
        clip: None,
        grad_accum: None,
        eval_every: (z.pretrain_steps / 6).max(1),
        eval_batches: 10,
        save_every: (z.pretrain_steps / 4).max(1),
        keep: 1,
        log_every: 50,
        threads,
        seed: Some(cx.a.seed),
        tokenizer: Some(TokenizerKind::Bpe),
        vocab_size: Some(z.vocab),
        // The pipeline resumes an interrupted pretraining itself (`Ctx::stage`).
        resume: (threads != FINGERPRINT && cx.dir(Stage::Pretrain).join("latest").is_file())
            .then(|| cx.dir(Stage::Pretrain)),
    }
}

fn rm_args(cx: &Ctx<'_>, threads: usize, second: bool) -> RmArgs {
    let z = &cx.z;
    let out = if second { Stage::Rm2 } else { Stage::Rm };
    RmArgs {
        common: cx.common(Stage::Sft, out, z.rm_steps, z.rm_batch, 5e-4, threads),
        pairs: None,
        heldout_pairs: None,
        prompts: z.rm_prompts,
        answers: z.rm_answers,
        gap: 1.0,
        margin: 0.0,
        center: 0.01,
        temperature: 1.0,
        sample_from: second.then(|| cx.dir(Stage::Ppo)),
        add_pairs: second.then(|| cx.dir(Stage::Rm).join("pairs.jsonl")),
    }
}

fn ppo_args(cx: &Ctx<'_>, threads: usize, second: bool) -> PpoArgs {
    let z = &cx.z;
    let (init, out, steps, rm) = if second {
        (Stage::Ppo, Stage::Ppo2, z.ppo2_steps, Stage::Rm2)
    } else {
        (Stage::Sft, Stage::Ppo, z.ppo_steps, Stage::Rm)
    };
    PpoArgs {
        common: cx.common(init, out, steps, z.ppo_batch, z.ppo_lr, threads),
        reward_model: cx.dir(rm),
        kl_coef: 0.1,
        kl_target: Some(z.kl_target),
        kl_horizon: 320.0,
        kl_estimator: "k1".into(),
        gamma: 1.0,
        lam: 0.95,
        cliprange: 0.2,
        cliprange_value: 0.2,
        vf_coef: 0.1,
        ppo_epochs: 4,
        minibatch: 8,
        temperature: 1.0,
        eval_temperature: 0.7,
        reference: second.then(|| cx.dir(Stage::Sft)),
    }
}

#[derive(Debug)]
struct ConvertStage {
    input: PathBuf,
    output: PathBuf,
    threads: usize,
}

fn convert(c: &ConvertStage) -> Result<()> {
    super::convert::run(&crate::ConvertArgs {
        input: c.input.clone(),
        output: c.output.clone(),
        r#type: "Q8_0".into(),
        allow_requantize: false,
        tensor_type: Vec::new(),
        threads: c.threads,
        quiet: true,
    })
}
