//! Checkpoints: the whole state of a pretraining run in one directory, written so that a crash at any
//! moment leaves either the previous checkpoint or the new one, never a mixture, and read back with
//! every field checked. The format is documented for other readers (the converter) in
//! `train/README.md`, section "Checkpoint format"; this file is its reference implementation.
//!
//! A checkpoint directory holds `model.safetensors` (parameters under their GGUF names, f32, `(out, in)`
//! row-major), `optimizer.safetensors` (AdamW moments `m.<name>`, `v.<name>`) and `checkpoint.json`
//! (everything else, and the size and SHA-256 of both tensor files). A run directory holds checkpoint
//! directories `step-XXXXXXXX` and a file `latest` naming the newest.
//!
//! It does not own the training loop (`pretrain.rs`) or the schedule of saves (the CLI).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, View};
use serde::{Deserialize, Serialize};

use crate::bpe::{BpeTokenizer, TrainedBpe, PRE};
use crate::config::Config;
use crate::data::{CharTokenizer, TextTokenizer};
use crate::error::{Error, Result};
use crate::files;
use crate::model::Model;
use crate::optim::{AdamW, AdamWConfig, Schedule};
use crate::params::{self, TensorSpec};
use crate::pretrain::{TrainConfig, Trainer};
use crate::rng::Rng;

/// `checkpoint.json`'s `format` value.
pub const FORMAT: &str = "ingot-checkpoint";
/// The format version this code writes (2: adds the `bpe` tokenizer).
pub const VERSION: u32 = 2;
/// The oldest format version this code reads (version 1 checkpoints are character-level).
pub const MIN_VERSION: u32 = 1;
/// `checkpoint.json`'s `architecture` value: GGUF's `general.architecture` for the trained model.
pub const ARCHITECTURE: &str = "llama";
pub const META_FILE: &str = "checkpoint.json";
pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// Loading refuses a `max_seq_len` above this (the RoPE table and activations grow with it).
pub const MAX_SEQ_LEN: usize = 1 << 20;
/// Loading refuses a model with more parameters than this.
pub const MAX_PARAMS: u128 = 1 << 40;
/// Loading refuses a `batch * seq_len` above this.
pub const MAX_BATCH_TOKENS: usize = 1 << 24;
/// In a run directory: the name of the newest checkpoint directory, one line.
pub const LATEST_FILE: &str = "latest";

/// `checkpoint.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Meta {
    /// Always [`FORMAT`].
    pub format: String,
    /// [`VERSION`] when written by this code.
    pub version: u32,
    /// Always [`ARCHITECTURE`].
    pub architecture: String,
    /// Optimizer steps taken.
    pub step: u64,
    pub model: Config,
    pub tokenizer: TokenizerMeta,
    pub optimizer: OptimizerMeta,
    pub schedule: Schedule,
    pub training: TrainingMeta,
    pub rng: RngMeta,
    pub data: DataMeta,
    /// Size and SHA-256 of each tensor file, by file name.
    pub files: BTreeMap<String, FileMeta>,
}

/// The tokenizer, enough to rebuild it exactly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum TokenizerMeta {
    /// One token per character; `tokens[id]` is token `id`'s one-character string.
    Char { tokens: Vec<String> },
    /// Byte-level BPE (format version 2), as GGUF stores it: `tokens[id]` in GPT-2's byte-level
    /// alphabet, `token_types[id]` (1 normal, 3 control), `merges` in rank order, the
    /// pre-tokenizer's llama.cpp name, and the BOS/EOS id.
    Bpe {
        pre: String,
        tokens: Vec<String>,
        token_types: Vec<i32>,
        merges: Vec<String>,
        eos: Option<u32>,
    },
}

impl TokenizerMeta {
    /// What a checkpoint stores of `tok`.
    pub fn of(tok: &TextTokenizer) -> TokenizerMeta {
        match tok {
            TextTokenizer::Char(t) => TokenizerMeta::Char { tokens: t.tokens() },
            TextTokenizer::Bpe(t) => TokenizerMeta::Bpe {
                pre: PRE.into(),
                tokens: t.trained.tokens.clone(),
                token_types: t.trained.token_types.clone(),
                merges: t.trained.merges.clone(),
                eos: t.trained.eos(),
            },
        }
    }

    /// The tokenizer stored; an error names what is malformed.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        match self {
            TokenizerMeta::Char { tokens } => Ok(CharTokenizer::from_tokens(tokens)?.into()),
            TokenizerMeta::Bpe {
                pre,
                tokens,
                token_types,
                merges,
                eos,
            } => {
                let data = |what: String| Error::Data { what };
                if pre != PRE {
                    return Err(data(format!(
                        "BPE pre-tokenizer {pre:?} is not supported (only {PRE:?})"
                    )));
                }
                if token_types.len() != tokens.len() || tokens.len() < 256 {
                    return Err(data(format!(
                        "BPE tokenizer with {} tokens and {} token types (at least 256 tokens, one type each)",
                        tokens.len(),
                        token_types.len()
                    )));
                }
                let n_special = token_types[256..].iter().take_while(|&&t| t == 3).count();
                let want_eos = (n_special > 0).then_some(crate::bpe::FIRST_SPECIAL);
                if *eos != want_eos {
                    return Err(data(format!(
                        "BPE eos {eos:?} is not the first special token {want_eos:?}"
                    )));
                }
                let trained = TrainedBpe {
                    tokens: tokens.clone(),
                    merges: merges.clone(),
                    token_types: token_types.clone(),
                    n_special,
                };
                Ok(BpeTokenizer::new(trained)?.into())
            }
        }
    }

    fn len(&self) -> usize {
        match self {
            TokenizerMeta::Char { tokens } | TokenizerMeta::Bpe { tokens, .. } => tokens.len(),
        }
    }
}

/// AdamW's hyperparameters and step count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerMeta {
    /// Always `"adamw"`.
    pub name: String,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// Updates applied (bias corrections use it); equals the checkpoint's `step`.
    pub step: u64,
}

/// The run's shape: what a resumed run must keep to continue identically.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainingMeta {
    pub batch: usize,
    pub seq_len: usize,
    pub grad_accum: usize,
    /// Steps the run was asked for.
    pub steps: u64,
    /// Global gradient-norm limit; `null` when off.
    pub grad_clip: Option<f64>,
    /// The sampler's initial seed (its current state is `rng.sampler`).
    pub seed: u64,
}

/// Generator states.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RngMeta {
    /// The batch sampler's SplitMix64 state: the next window starts come from it.
    pub sampler: u64,
}

/// The corpus the run trains on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataMeta {
    /// The data paths as given (files or directories).
    pub sources: Vec<String>,
    /// Number of files read.
    pub files: usize,
    /// The corpus hash (`corpus::Corpus::sha256`): a resumed run checks it is unchanged.
    pub corpus_sha256: String,
    /// Tokens in the whole corpus.
    pub tokens: u64,
    /// The last `val_fraction` of the token stream is held out for validation.
    pub val_fraction: f64,
}

/// One tensor file's integrity record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileMeta {
    pub bytes: u64,
    pub sha256: String,
}

/// A loaded, validated checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub meta: Meta,
    /// Parameters in [`params::layout`] order, `(num_params,)`.
    pub params: Vec<f32>,
    /// AdamW first moment, same layout.
    pub m: Vec<f32>,
    /// AdamW second moment, same layout.
    pub v: Vec<f32>,
}

/// An f32 tensor borrowed for serialization.
struct F32View<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl View for F32View<'_> {
    fn dtype(&self) -> Dtype {
        Dtype::F32
    }
    fn shape(&self) -> &[usize] {
        self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Owned(self.data.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
    fn data_len(&self) -> usize {
        self.data.len() * 4
    }
}

/// The safetensors bytes of `buf` (laid out by `specs`), each tensor under `prefix` + its name.
fn tensor_file(specs: &[TensorSpec], groups: &[(&str, &[f32])]) -> Result<Vec<u8>> {
    let views = groups.iter().flat_map(|&(prefix, buf)| {
        specs.iter().map(move |s| {
            let view = F32View {
                shape: &s.shape,
                data: &buf[s.offset..s.offset + s.len],
            };
            (format!("{prefix}{}", s.name), view)
        })
    });
    let metadata = [("format".to_string(), "ingot".to_string())].into();
    safetensors::serialize(views, Some(metadata)).map_err(|e| Error::Checkpoint {
        path: String::new(),
        what: format!("cannot serialize tensors: {e}"),
    })
}

/// Writes `trainer`'s state as the checkpoint directory `dir`, atomically: the three files go to a
/// temporary directory beside it, are `fsync`ed, and the directory is renamed into place (an existing
/// `dir` is replaced).
pub fn save(
    dir: &Path,
    trainer: &Trainer,
    tokenizer: &TextTokenizer,
    data: &DataMeta,
) -> Result<()> {
    let cfg = &trainer.model.config;
    let specs = params::layout(cfg);
    let model_bytes = tensor_file(&specs, &[("", &trainer.model.params)])?;
    let opt_bytes = tensor_file(&specs, &[("m.", &trainer.opt.m), ("v.", &trainer.opt.v)])?;
    let record = |b: &[u8]| FileMeta {
        bytes: b.len() as u64,
        sha256: files::sha256_hex(b),
    };
    let (tc, oc) = (&trainer.config, &trainer.opt.config);
    let meta = Meta {
        format: FORMAT.into(),
        version: VERSION,
        architecture: ARCHITECTURE.into(),
        step: trainer.step,
        model: cfg.clone(),
        tokenizer: TokenizerMeta::of(tokenizer),
        optimizer: OptimizerMeta {
            name: "adamw".into(),
            beta1: oc.beta1,
            beta2: oc.beta2,
            eps: oc.eps,
            weight_decay: oc.weight_decay,
            step: trainer.opt.step,
        },
        schedule: tc.schedule.clone(),
        training: TrainingMeta {
            batch: tc.batch,
            seq_len: tc.seq_len,
            grad_accum: tc.grad_accum,
            steps: tc.steps,
            grad_clip: tc.grad_clip.is_finite().then_some(tc.grad_clip),
            seed: tc.seed,
        },
        rng: RngMeta {
            sampler: trainer.sampler.state,
        },
        data: data.clone(),
        files: [
            (MODEL_FILE.to_string(), record(&model_bytes)),
            (OPTIMIZER_FILE.to_string(), record(&opt_bytes)),
        ]
        .into(),
    };
    let mut json = serde_json::to_vec_pretty(&meta).expect("plain data serializes");
    json.push(b'\n');

    let parent = files::parent_dir(dir);
    let tmp = files::temporary_path(dir);
    fn io(p: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
        move |e| Error::io(p, e)
    }
    if tmp.exists() {
        fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
    }
    fs::create_dir_all(&tmp).map_err(io(&tmp))?;
    let write_all = || -> Result<()> {
        files::write_synced(&tmp.join(MODEL_FILE), &model_bytes)?;
        files::write_synced(&tmp.join(OPTIMIZER_FILE), &opt_bytes)?;
        files::write_synced(&tmp.join(META_FILE), &json)?;
        files::sync_dir(&tmp)?;
        if dir.exists() {
            // Replacing: move the old directory aside first (a directory cannot be renamed over a
            // non-empty one), then drop it once the new one is in place.
            let old = files::temporary_path(&dir.with_file_name(format!(
                "old-{}",
                dir.file_name().map_or("".into(), |n| n.to_string_lossy())
            )));
            fs::rename(dir, &old).map_err(io(dir))?;
            fs::rename(&tmp, dir).map_err(io(dir))?;
            fs::remove_dir_all(&old).map_err(io(&old))?;
        } else {
            fs::rename(&tmp, dir).map_err(io(dir))?;
        }
        files::sync_dir(parent)
    };
    let result = write_all();
    if result.is_err() {
        let _ = fs::remove_dir_all(&tmp);
    }
    result
}

/// The name of step `step`'s checkpoint directory in a run directory.
pub fn step_dir_name(step: u64) -> String {
    format!("step-{step:08}")
}

/// Saves `trainer` as `out/step-XXXXXXXX`, points `out/latest` at it (atomically), then deletes all but
/// the newest `keep` (at least 1) step directories. Returns the checkpoint's directory.
pub fn save_in_run(
    out: &Path,
    trainer: &Trainer,
    tokenizer: &TextTokenizer,
    data: &DataMeta,
    keep: usize,
) -> Result<PathBuf> {
    save_in_run_with(out, trainer, tokenizer, data, keep, |_| Ok(()))
}

/// [`save_in_run`], with `extra` writing more files into the new checkpoint directory (state that a
/// stage keeps beside the trainer's, e.g. a reward head) before `latest` names it, so `latest` never
/// names a checkpoint without them.
pub fn save_in_run_with(
    out: &Path,
    trainer: &Trainer,
    tokenizer: &TextTokenizer,
    data: &DataMeta,
    keep: usize,
    extra: impl FnOnce(&Path) -> Result<()>,
) -> Result<PathBuf> {
    fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let name = step_dir_name(trainer.step);
    let dir = out.join(&name);
    save(&dir, trainer, tokenizer, data)?;
    extra(&dir)?;
    files::atomic_write(&out.join(LATEST_FILE), format!("{name}\n").as_bytes())?;
    let mut steps: Vec<(u64, PathBuf)> = fs::read_dir(out)
        .map_err(|e| Error::io(out, e))?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            let step = n.strip_prefix("step-")?.parse::<u64>().ok()?;
            e.path().is_dir().then(|| (step, e.path()))
        })
        .collect();
    steps.sort();
    let drop = steps.len().saturating_sub(keep.max(1));
    for (_, old) in &steps[..drop] {
        if *old != dir {
            fs::remove_dir_all(old).map_err(|e| Error::io(old, e))?;
        }
    }
    Ok(dir)
}

/// The checkpoint directory `path` designates: `path` itself when it holds `checkpoint.json`, or the
/// directory its `latest` file names when it is a run directory.
pub fn resolve(path: &Path) -> Result<PathBuf> {
    if path.join(META_FILE).is_file() {
        return Ok(path.to_path_buf());
    }
    let latest = path.join(LATEST_FILE);
    let err = |what: String| Error::Checkpoint {
        path: path.display().to_string(),
        what,
    };
    if !latest.is_file() {
        return Err(err(format!(
            "holds neither {META_FILE} (a checkpoint) nor {LATEST_FILE} (a run directory)"
        )));
    }
    let name = fs::read_to_string(&latest).map_err(|e| Error::io(&latest, e))?;
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(err(format!(
            "{LATEST_FILE} holds {name:?}, not a checkpoint name"
        )));
    }
    let dir = path.join(name);
    if !dir.join(META_FILE).is_file() {
        return Err(err(format!(
            "{LATEST_FILE} names {name}, which holds no {META_FILE}"
        )));
    }
    Ok(dir)
}

/// Reads and validates the checkpoint directory `dir`: format and version, the configuration, the
/// tokenizer, the tensor files' sizes and hashes, and every tensor's presence, dtype and shape.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let err = |what: String| Error::Checkpoint {
        path: dir.display().to_string(),
        what,
    };
    let meta_path = dir.join(META_FILE);
    let json = files::read(&meta_path)?;
    // Format and version first, so a newer file fails on its version, not on a field it added.
    let value: serde_json::Value = serde_json::from_slice(&json).map_err(|e| {
        err(format!(
            "{META_FILE} is not valid JSON ({e}): truncated or corrupted?"
        ))
    })?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(err(format!(
            "{META_FILE} is not an ingot checkpoint (\"format\" is not \"{FORMAT}\")"
        )));
    }
    let version = value.get("version").and_then(|v| v.as_u64());
    match version {
        Some(v) if (MIN_VERSION as u64..=VERSION as u64).contains(&v) => {}
        v => {
            return Err(err(format!(
                "format version {} is not supported (this ingot reads versions {MIN_VERSION} to {VERSION})",
                v.map_or("missing".into(), |v| v.to_string())
            )))
        }
    }
    let meta: Meta = serde_json::from_value(value)
        .map_err(|e| err(format!("{META_FILE} has a bad field: {e}")))?;
    validate_meta(&meta).map_err(err)?;

    let specs = params::layout(&meta.model);
    let np = params::num_params(&meta.model);
    let tensors = |file: &str, prefixes: &[&str]| -> Result<Vec<Vec<f32>>> {
        read_tensor_file(dir, &meta, file, &specs, np, prefixes).map_err(err)
    };
    let mut params = tensors(MODEL_FILE, &[""])?;
    let mut moments = tensors(OPTIMIZER_FILE, &["m.", "v."])?;
    let v = moments.pop().expect("two groups");
    let m = moments.pop().expect("two groups");
    Ok(Checkpoint {
        params: params.pop().expect("one group"),
        m,
        v,
        meta,
    })
}

/// Consistency of `checkpoint.json` on its own.
fn validate_meta(meta: &Meta) -> std::result::Result<(), String> {
    if meta.architecture != ARCHITECTURE {
        return Err(format!(
            "architecture {:?} is not supported (only {ARCHITECTURE:?})",
            meta.architecture
        ));
    }
    meta.model.validate().map_err(|e| e.to_string())?;
    if meta.version < 2 && !matches!(meta.tokenizer, TokenizerMeta::Char { .. }) {
        return Err("a version 1 checkpoint can only hold a \"char\" tokenizer".into());
    }
    meta.tokenizer
        .tokenizer()
        .map_err(|e| format!("tokenizer: {e}"))?;
    if meta.tokenizer.len() != meta.model.vocab_size {
        return Err(format!(
            "tokenizer has {} tokens but model.vocab_size is {}",
            meta.tokenizer.len(),
            meta.model.vocab_size
        ));
    }
    let o = &meta.optimizer;
    if o.name != "adamw" {
        return Err(format!(
            "optimizer {:?} is not supported (only \"adamw\")",
            o.name
        ));
    }
    if o.step != meta.step {
        return Err(format!(
            "optimizer.step {} differs from step {}",
            o.step, meta.step
        ));
    }
    // Bounds that keep a corrupted number from turning into an overflow or a huge allocation later.
    let np = approx_num_params(&meta.model);
    if np > MAX_PARAMS {
        return Err(format!(
            "the model configuration has {np} parameters, more than {MAX_PARAMS}"
        ));
    }
    if meta.model.max_seq_len > MAX_SEQ_LEN {
        return Err(format!(
            "model.max_seq_len {} exceeds {MAX_SEQ_LEN}",
            meta.model.max_seq_len
        ));
    }
    let t = &meta.training;
    if t.batch.saturating_mul(t.seq_len) > MAX_BATCH_TOKENS {
        return Err(format!(
            "training.batch * seq_len = {} * {} exceeds {MAX_BATCH_TOKENS}",
            t.batch, t.seq_len
        ));
    }
    if t.batch == 0 || t.seq_len == 0 || t.grad_accum == 0 {
        return Err("training.batch, seq_len and grad_accum must be positive".into());
    }
    if t.seq_len > meta.model.max_seq_len {
        return Err(format!(
            "training.seq_len {} exceeds model.max_seq_len {}",
            t.seq_len, meta.model.max_seq_len
        ));
    }
    if meta.schedule.warmup_steps > meta.schedule.decay_steps {
        return Err("schedule.warmup_steps exceeds schedule.decay_steps".into());
    }
    Ok(())
}

/// The parameter count of `cfg` in saturating 128-bit arithmetic (no overflow for any input).
fn approx_num_params(cfg: &Config) -> u128 {
    let [v, c, l, f, kv] = [
        cfg.vocab_size,
        cfg.dim,
        cfg.n_layers,
        cfg.ffn_dim,
        cfg.kv_dim(),
    ]
    .map(|x| x as u128);
    let heads = if cfg.tied_embeddings { 1 } else { 2 };
    let mul = |a: u128, b: u128, k: u128| a.saturating_mul(b).saturating_mul(k);
    let block = [mul(2, c, 1), mul(c, c, 2), mul(kv, c, 2), mul(f, c, 3)]
        .into_iter()
        .fold(0u128, u128::saturating_add);
    v.saturating_mul(c)
        .saturating_mul(heads)
        .saturating_add(c)
        .saturating_add(l.saturating_mul(block))
}

/// Reads `file`, checks it against its record in `meta.files`, and returns one `(num_params,)`
/// buffer per prefix, each tensor `prefix + name` checked against `specs`.
fn read_tensor_file(
    dir: &Path,
    meta: &Meta,
    file: &str,
    specs: &[TensorSpec],
    np: usize,
    prefixes: &[&str],
) -> std::result::Result<Vec<Vec<f32>>, String> {
    let record = meta
        .files
        .get(file)
        .ok_or_else(|| format!("{META_FILE} has no record of {file}"))?;
    let bytes = fs::read(dir.join(file)).map_err(|e| format!("cannot read {file}: {e}"))?;
    if bytes.len() as u64 != record.bytes {
        return Err(format!(
            "{file} is {} bytes but {META_FILE} says {}: truncated or replaced",
            bytes.len(),
            record.bytes
        ));
    }
    let sha = files::sha256_hex(&bytes);
    if sha != record.sha256 {
        return Err(format!(
            "{file} is corrupted: its SHA-256 is {sha}, {META_FILE} says {}",
            record.sha256
        ));
    }
    let st = SafeTensors::deserialize(&bytes)
        .map_err(|e| format!("{file} is not a valid safetensors file: {e}"))?;
    // Check every tensor before allocating, so a configuration that disagrees with the file (however
    // large it claims to be) is an error, not an allocation failure.
    let mut expected = std::collections::HashSet::new();
    let mut found = Vec::with_capacity(prefixes.len() * specs.len());
    for prefix in prefixes {
        for s in specs {
            let name = format!("{prefix}{}", s.name);
            let t = st.tensor(&name).map_err(|_| {
                format!(
                    "{file} lacks tensor {name} (shape {:?} by the configuration)",
                    s.shape
                )
            })?;
            if t.dtype() != Dtype::F32 {
                return Err(format!("{file}: {name} is {:?}, expected F32", t.dtype()));
            }
            if t.shape() != s.shape.as_slice() {
                return Err(format!(
                    "{file}: {name} has shape {:?}, the configuration gives {:?}",
                    t.shape(),
                    s.shape
                ));
            }
            found.push(t);
            expected.insert(name);
        }
    }
    if let Some(extra) = st.names().into_iter().find(|n| !expected.contains(*n)) {
        return Err(format!(
            "{file} has tensor {extra}, which the configuration does not (tied_embeddings = {})",
            meta.model.tied_embeddings
        ));
    }
    let out = found
        .chunks(specs.len())
        .map(|group| {
            let mut buf = vec![0f32; np]; // (num_params,)
            for (s, t) in specs.iter().zip(group) {
                let dst = &mut buf[s.offset..s.offset + s.len];
                for (d, b) in dst.iter_mut().zip(t.data().chunks_exact(4)) {
                    *d = f32::from_le_bytes(b.try_into().expect("4 bytes"));
                }
            }
            buf
        })
        .collect();
    Ok(out)
}

impl Checkpoint {
    /// The tokenizer stored in the checkpoint (validated by [`load`]).
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        self.meta.tokenizer.tokenizer()
    }

    /// The stored run's configuration.
    pub fn train_config(&self) -> TrainConfig {
        let t = &self.meta.training;
        TrainConfig {
            batch: t.batch,
            seq_len: t.seq_len,
            grad_accum: t.grad_accum,
            steps: t.steps,
            schedule: self.meta.schedule.clone(),
            grad_clip: t.grad_clip.unwrap_or(f64::INFINITY),
            seed: t.seed,
        }
    }

    /// The model with the stored parameters.
    pub fn model(&self, n_threads: usize) -> Result<Model<f32>> {
        let mut model = Model::new(self.meta.model.clone(), n_threads)?;
        model.params.copy_from_slice(&self.params);
        Ok(model)
    }

    /// The run, exactly as it was saved: parameters, moments, step and sampler state.
    pub fn into_trainer(self, n_threads: usize) -> Result<Trainer> {
        let model = self.model(n_threads)?;
        let config = self.train_config();
        let o = &self.meta.optimizer;
        let adamw = AdamWConfig {
            beta1: o.beta1,
            beta2: o.beta2,
            eps: o.eps,
            weight_decay: o.weight_decay,
        };
        let mut opt = AdamW::new(adamw, &self.meta.model);
        opt.m = self.m;
        opt.v = self.v;
        opt.step = o.step;
        let mut trainer = Trainer::new(model, opt, config);
        trainer.step = self.meta.step;
        trainer.sampler = Rng {
            state: self.meta.rng.sampler,
        };
        Ok(trainer)
    }
}
