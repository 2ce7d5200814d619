//! One module per subcommand, plus what they share: opening a model and turning options into
//! runtime parameters.

pub mod align;
pub mod bench;
pub mod chat;
pub mod convert;
pub mod device;
pub mod generate;
pub mod info;
pub mod perplexity;
pub mod pipeline;
pub mod plan;
pub mod plot;
pub mod tokenize;
pub mod train;

use anyhow::{Context, Result};
use ingot_runtime::gguf::GgufFile;
use ingot_runtime::model::Model;
use ingot_runtime::sampler::SamplerParams;
use std::path::Path;

/// Maps `path`; the model is then parsed from the mapping with [`load_model`].
pub fn open(path: &Path) -> Result<GgufFile> {
    GgufFile::open(path).with_context(|| {
        format!(
            "cannot open model `{}` (hint: scripts/fetch-model.sh downloads the default one)",
            path.display()
        )
    })
}

/// This process's peak resident set size in KiB (`VmHWM` of `/proc/self/status`; Linux only).
pub fn peak_rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// A warning for `--threads` above the CPUs this process may run on (`None` when it fits or the
/// count is unknown): the forward pass meets at every operation, so each meeting waits for threads
/// that are taking turns on a CPU (at 4 threads on this project's 2 vCPUs, decode ran at a third of
/// its 2-thread speed).
pub fn oversubscribed(threads: usize) -> Option<String> {
    let cpus = std::thread::available_parallelism().ok()?.get();
    (threads > cpus).then(|| {
        format!(
            "warning: --threads {threads} is more than the {cpus} CPU{} this process can use: the \
             threads will take turns, and every step waits for the ones not running (much slower); \
             use --threads {cpus} or fewer",
            if cpus == 1 { "" } else { "s" }
        )
    })
}

/// Parses and validates the model in `file`.
pub fn load_model(file: &GgufFile) -> Result<Model<'_>> {
    Model::from_file(file).with_context(|| format!("cannot load `{}`", file.path()))
}

/// Sampler parameters from the command line.
pub fn sampler_params(a: &crate::SamplingArgs) -> SamplerParams {
    SamplerParams {
        temperature: a.temp,
        top_k: a.top_k,
        top_p: a.top_p,
        min_p: a.min_p,
        repeat_penalty: a.repeat_penalty,
        frequency_penalty: a.frequency_penalty,
        presence_penalty: a.presence_penalty,
        penalty_last_n: a.repeat_last_n,
        seed: a.seed,
    }
}
