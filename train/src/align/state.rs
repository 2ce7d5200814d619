//! What an alignment stage keeps beside an ordinary checkpoint so that `--resume` continues it
//! bit-identically, and the restoring of a [`Trainer`] from a checkpoint.
//!
//! The checkpoint itself (`checkpoint.rs`) already holds the trunk's parameters, AdamW's moments and
//! step, and one generator state (`rng.sampler`): every stage draws its data (SFT conversations, RM and
//! DPO pairs, PPO prompts) from that generator, so the data position is in it. A stage's other state
//! goes into `align_state.safetensors` in the same checkpoint directory, written before `latest`
//! names the checkpoint ([`crate::checkpoint::save_in_run_with`]):
//!
//! ```text
//! tensors   f32, 1-D: the reward model's head moments (m.score.weight, v.score.weight; the head
//!           itself stays in reward_head.safetensors), PPO's value head and its moments
//!           (value_head, m.value_head, v.value_head)
//! metadata  one key, "align_state": a JSON object of strings, keys sorted: "stage"; PPO's "iterations", "kl_coef" (the adaptive controller's current
//!           coefficient, the f64's bits in hex so it round-trips exactly) and "shuffle_rng" (the
//!           minibatch shuffler's SplitMix64 state, decimal)
//! ```
//!
//! It does not own the stages' loops (the CLI, `src/commands/align.rs`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::files;
use crate::pretrain::Trainer;
use crate::rng::Rng;

/// The file, in a checkpoint directory, that holds a stage's extra state.
pub const STATE_FILE: &str = "align_state.safetensors";

/// The metadata key whose value is the JSON object of [`AlignState::meta`].
const META_KEY: &str = "align_state";

/// A stage's extra state: named f32 vectors and named strings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlignState {
    pub tensors: BTreeMap<String, Vec<f32>>,
    pub meta: BTreeMap<String, String>,
}

impl AlignState {
    /// An empty state of `stage` (`"rm"`, `"ppo"`, ...).
    pub fn new(stage: &str) -> Self {
        let mut s = AlignState::default();
        s.meta.insert("stage".into(), stage.into());
        s
    }

    pub fn tensor(&mut self, name: &str, data: &[f32]) -> &mut Self {
        self.tensors.insert(name.into(), data.to_vec());
        self
    }

    pub fn value(&mut self, name: &str, value: impl ToString) -> &mut Self {
        self.meta.insert(name.into(), value.to_string());
        self
    }

    /// Writes `dir/align_state.safetensors` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STATE_FILE);
        let bytes: Vec<(String, Vec<u8>, usize)> = self
            .tensors
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.iter().flat_map(|x| x.to_le_bytes()).collect(),
                    v.len(),
                )
            })
            .collect();
        let err = |e: safetensors::SafeTensorError| Error::Checkpoint {
            path: path.display().to_string(),
            what: format!("cannot serialize the stage state: {e}"),
        };
        let views = bytes
            .iter()
            .map(|(k, b, n)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![*n], b)
                    .map(|v| (k.as_str(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(err)?;
        // one metadata key holding the sorted map: safetensors writes its metadata map in hash
        // order, and a resumed run must write the same bytes
        let json = serde_json::to_string(&self.meta).expect("strings serialize");
        let meta: HashMap<String, String> = [(META_KEY.to_string(), json)].into();
        let file = safetensors::serialize(views, Some(meta)).map_err(err)?;
        files::atomic_write(&path, &file)
    }

    /// Reads the state of `stage` that [`AlignState::save`] wrote into `dir`.
    pub fn load(dir: &Path, stage: &str) -> Result<Self> {
        let path = dir.join(STATE_FILE);
        let err = |what: String| Error::Checkpoint {
            path: path.display().to_string(),
            what,
        };
        if !path.is_file() {
            return Err(err(format!(
                "is missing: the checkpoint was not written by `ingot train {stage}`, or by a \
                 version without --resume"
            )));
        }
        let bytes = files::read(&path)?;
        let (_, header) = safetensors::SafeTensors::read_metadata(&bytes)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let st = safetensors::SafeTensors::deserialize(&bytes)
            .map_err(|e| err(format!("not a safetensors file: {e}")))?;
        let meta: BTreeMap<String, String> = header
            .metadata()
            .as_ref()
            .and_then(|m| m.get(META_KEY))
            .and_then(|j| serde_json::from_str(j).ok())
            .ok_or_else(|| err(format!("has no valid {META_KEY:?} metadata")))?;
        if meta.get("stage").map(String::as_str) != Some(stage) {
            return Err(err(format!(
                "holds the state of stage {:?}, not {stage:?}",
                meta.get("stage")
            )));
        }
        let mut tensors = BTreeMap::new();
        for (name, t) in st.tensors() {
            if t.dtype() != safetensors::Dtype::F32 || t.shape().len() != 1 {
                return Err(err(format!(
                    "tensor {name} is {:?} {:?}, expected 1-D F32",
                    t.dtype(),
                    t.shape()
                )));
            }
            let v = t
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                .collect();
            tensors.insert(name, v);
        }
        Ok(AlignState { tensors, meta })
    }

    /// The tensor `name`, which must hold `len` numbers.
    pub fn get(&self, name: &str, len: usize, dir: &Path) -> Result<Vec<f32>> {
        match self.tensors.get(name) {
            Some(v) if v.len() == len => Ok(v.clone()),
            Some(v) => Err(self.bad(
                dir,
                format!("{name} has {} numbers, expected {len}", v.len()),
            )),
            None => Err(self.bad(dir, format!("has no tensor {name}"))),
        }
    }

    /// The string value `name` parsed as a `T`.
    pub fn parse<T: std::str::FromStr>(&self, name: &str, dir: &Path) -> Result<T> {
        self.meta
            .get(name)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| self.bad(dir, format!("has no valid value {name:?}")))
    }

    /// An f64 stored exactly ([`f64_bits`]).
    pub fn parse_f64(&self, name: &str, dir: &Path) -> Result<f64> {
        self.meta
            .get(name)
            .and_then(|s| u64::from_str_radix(s, 16).ok())
            .map(f64::from_bits)
            .ok_or_else(|| self.bad(dir, format!("has no valid value {name:?}")))
    }

    fn bad(&self, dir: &Path, what: String) -> Error {
        Error::Checkpoint {
            path: dir.join(STATE_FILE).display().to_string(),
            what,
        }
    }
}

/// `x`'s bits in hex: a string that gives back exactly `x`.
pub fn f64_bits(x: f64) -> String {
    format!("{:016x}", x.to_bits())
}

/// Puts the run saved in `ck` into `trainer` (built for the same run by the stage's ordinary setup):
/// parameters, AdamW's moments and step, the step and the data generator. The model's shape and the
/// run's batch, sequence length, gradient accumulation and seed must agree; an error names the first
/// that does not.
pub fn restore_trainer(trainer: &mut Trainer, ck: &Checkpoint, dir: &Path) -> Result<()> {
    let err = |what: String| Error::Checkpoint {
        path: dir.display().to_string(),
        what,
    };
    if ck.meta.model != trainer.model.config {
        return Err(err(format!(
            "holds a model of another shape ({:?}) than this run's ({:?}): resume with the options \
             and --init of the run that wrote it",
            ck.meta.model, trainer.model.config
        )));
    }
    let (t, c) = (&ck.meta.training, &trainer.config);
    for (what, saved, now) in [
        ("batch (--batch)", t.batch as u64, c.batch as u64),
        ("sequence length", t.seq_len as u64, c.seq_len as u64),
        (
            "gradient accumulation",
            t.grad_accum as u64,
            c.grad_accum as u64,
        ),
        ("seed (--seed)", t.seed, c.seed),
    ] {
        if saved != now {
            return Err(err(format!(
                "was written with {what} {saved}, this run has {now}: resume with the options of \
                 the run that wrote it"
            )));
        }
    }
    if ck.meta.step > c.steps {
        return Err(err(format!(
            "is at step {}, beyond --steps {}",
            ck.meta.step, c.steps
        )));
    }
    trainer.model.params.copy_from_slice(&ck.params);
    trainer.opt.m.copy_from_slice(&ck.m);
    trainer.opt.v.copy_from_slice(&ck.v);
    trainer.opt.step = ck.meta.optimizer.step;
    trainer.step = ck.meta.step;
    trainer.sampler = Rng {
        state: ck.meta.rng.sampler,
    };
    Ok(())
}
