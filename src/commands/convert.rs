//! `ingot convert`: requantize a GGUF file, or convert a Hugging Face llama directory or an ingot
//! training checkpoint, with the converter crate, printing one progress line per tensor and a
//! summary to stderr.

use anyhow::{Context, Result};
use ingot_convert::policy::{self, Reason};
use ingot_convert::{Options, Override, Policy, Progress};
use std::time::Instant;

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

pub fn run(a: &crate::ConvertArgs) -> Result<()> {
    let target = policy::Target::parse(&a.r#type)?;
    let overrides = a
        .tensor_type
        .iter()
        .map(|s| Override::parse(s))
        .collect::<Result<Vec<_>, _>>()?;
    let threads = match a.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let opts = Options {
        policy: Policy {
            target,
            overrides,
            allow_requantize: a.allow_requantize,
            model: Default::default(),
        },
        threads,
    };
    let start = Instant::now();
    let quiet = a.quiet;
    let mut report = |p: Progress<'_>| {
        if quiet {
            return;
        }
        let t = p.tensor;
        let why = match t.reason {
            Reason::NotAWeightMatrix => String::new(),
            Reason::Override(i) => format!(" (--tensor-type {})", a.tensor_type[i]),
            Reason::KeptAtQ8_0 => " (output/embeddings kept at Q8_0)".into(),
            Reason::OutputQ6K => " (output head at Q6_K)".into(),
            Reason::Preset => format!(" ({} rule)", a.r#type.to_ascii_uppercase()),
            Reason::Target => String::new(),
            Reason::RowFallback => " (row not whole blocks: F16)".into(),
        };
        let action = if t.is_copy() { "copy" } else { "->" };
        eprintln!(
            "[{:>4}/{}] {:<36} {:<5} {action:<4} {:<5} {:>10} -> {:>10} bytes{why}",
            p.index + 1,
            p.count,
            t.name,
            t.from.name(),
            t.to.name(),
            t.bytes_in,
            t.bytes_out
        );
    };
    let s = ingot_convert::convert(&a.input, &a.output, &opts, &mut report).with_context(|| {
        format!(
            "cannot convert `{}` (nothing was written: `{}` is as it was)",
            a.input.display(),
            a.output.display()
        )
    })?;
    let bpw = s.tensor_bytes_out() as f64 * 8.0 / s.n_elements().max(1) as f64;
    let peak = super::peak_rss_kib()
        .map(|k| format!(", peak RSS {:.1} MiB", k as f64 / 1024.0))
        .unwrap_or_default();
    eprintln!(
        "converted {} tensors to {} (general.file_type {}): {:.2} MiB -> {:.2} MiB ({bpw:.2} bits/weight) in {:.1} s, {} thread(s){peak}: {}",
        s.tensors.len(),
        target,
        s.file_type,
        mib(s.file_bytes_in),
        mib(s.file_bytes_out),
        start.elapsed().as_secs_f64(),
        threads,
        a.output.display()
    );
    Ok(())
}
