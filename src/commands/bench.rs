//! `ingot bench`: prefill and decode speed, measured the way `tools/peer bench` measures llama.cpp
//! (same prompt text, same token counts, one warm-up run, median of the rest), so the two can be run
//! side by side (scripts/bench-vs-llama.sh alternates them).

use super::device::Evaluator;
use super::{load_model, open};
use crate::BenchArgs;
use anyhow::{ensure, Result};
use ingot_runtime::model::SessionParams;
use ingot_runtime::sampler::argmax;
use std::time::Instant;

/// The prompt `tools/peer bench` uses (A Tale of Two Cities, public domain).
const BENCH_TEXT: &str = "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age \
of foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, it was the \
season of Darkness, it was the spring of hope, it was the winter of despair, we had everything before us, we had \
nothing before us, we were all going direct to Heaven, we were all going direct the other way - in short, the period \
was so far like the present period, that some of its noisiest authorities insisted on its being received, for good or \
for evil, in the superlative degree of comparison only. There were a king with a large jaw and a queen with a plain \
face, on the throne of England; there were a king with a large jaw and a queen with a fair face, on the throne of \
France. In both countries it was clearer than crystal to the lords of the State preserves of loaves and fishes, that \
things in general were settled for ever.";

pub fn run(a: &BenchArgs) -> Result<()> {
    ensure!(a.runs >= 1, "--runs must be at least 1");
    let file = open(&a.model)?;
    let model = load_model(&file)?;
    let all = model.tokenizer.encode(BENCH_TEXT, true, false);
    ensure!(
        all.len() >= a.prompt,
        "the bench text has only {} tokens; use --prompt {} or less",
        all.len(),
        all.len()
    );
    let prompt = &all[..a.prompt];
    let params = SessionParams {
        n_ctx: 512.max(a.prompt + a.gen + 1),
        n_batch: a.prompt.max(1),
        n_threads: a.threads,
        kv_type: a.kv_type,
    };
    let mut session = Evaluator::new(&model, params, a.device)?;
    let (mut pp, mut tg) = (Vec::new(), Vec::new());
    let mut first: Vec<u32> = Vec::new();
    for run in 0..=a.runs {
        session.reset();
        let t0 = Instant::now();
        let mut next = argmax(session.prefill(prompt)?);
        let t_pp = t0.elapsed().as_secs_f64();
        let mut gen = vec![next];
        let t1 = Instant::now();
        for _ in 0..a.gen {
            next = session.decode_greedy(next)?;
            gen.push(next);
        }
        let t_tg = t1.elapsed().as_secs_f64();
        let (ppt, tgt) = (a.prompt as f64 / t_pp, a.gen as f64 / t_tg);
        if run == 0 {
            eprintln!("warmup: prefill {ppt:.1} tok/s, decode {tgt:.1} tok/s");
            first = gen;
        } else {
            eprintln!("run {run}: prefill {ppt:.1} tok/s, decode {tgt:.1} tok/s");
            ensure!(gen == first, "greedy output changed between runs");
            pp.push(ppt);
            tg.push(tgt);
        }
    }
    println!("{}", session.describe());
    println!(
        "model = {}, threads = {}, kv = {}, runs = {} (+1 warmup)",
        a.model.display(),
        a.threads,
        a.kv_type,
        a.runs
    );
    println!(
        "prefill {} tokens in one batch: median {:.1} tok/s  (runs: {:?})",
        a.prompt,
        median(&pp),
        rounded(&pp)
    );
    println!(
        "decode {} tokens one at a time: median {:.1} tok/s  (runs: {:?})",
        a.gen,
        median(&tg),
        rounded(&tg)
    );
    if let Some(kib) = super::peak_rss_kib() {
        println!("peak RSS = {:.0} MiB", kib as f64 / 1024.0);
    }
    if a.roofline {
        // A decode step reads every weight once (the embedding only one row, but the tied output
        // reads all of it) plus the keys and values cached so far: on average over the timed
        // steps, prompt + (gen + 1) / 2 positions of every layer, keys and values alike.
        let cfg = &model.config;
        let weights = model.weight_bytes() as f64;
        let mean_kv = a.prompt as f64 + (a.gen as f64 + 1.0) / 2.0;
        let kv = (2 * cfg.n_layer * cfg.kv_dim() * a.kv_type.size()) as f64 * mean_kv;
        let bytes = weights + kv;
        let bw = read_bandwidth(a.threads);
        let roof = bw / bytes;
        println!(
            "memory bandwidth (read, {} threads) = {:.1} GB/s; per token: weights {:.1} MB + KV cache \
             {:.1} MB (mean of the timed steps) -> roofline {:.1} tok/s; decode reaches {:.0}% of it",
            a.threads,
            bw / 1e9,
            weights / 1e6,
            kv / 1e6,
            roof,
            100.0 * median(&tg) / roof
        );
    }
    Ok(())
}

/// Read bandwidth in bytes/s: `threads` threads each summing their part of a 512 MiB buffer (far
/// larger than any cache), best of 5 passes — a STREAM-like "sum" kernel. The buffer is on
/// transparent huge pages where the OS grants them, as the repacked weights are, so the bound is
/// the best this machine's reads reach.
fn read_bandwidth(threads: usize) -> f64 {
    let n: usize = (512 << 20) / 8; // u64 words
    let mut map = memmap2::MmapMut::map_anon(n * 8).ok();
    #[cfg(target_os = "linux")]
    if let Some(m) = &map {
        let _ = m.advise(memmap2::Advice::HugePage); // a hint: fine if refused
    }
    let mut heap = Vec::new();
    let buf: &mut [u64] = match map.as_mut() {
        // A page-aligned mapping of whole u64 words.
        Some(m) => bytemuck::cast_slice_mut(&mut m[..]),
        None => {
            heap.resize(n, 0u64);
            &mut heap
        }
    };
    for (i, w) in buf.iter_mut().enumerate() {
        *w = i as u64;
    }
    let buf = &*buf;
    let chunk = n.div_ceil(threads.max(1));
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let t0 = Instant::now();
        let total: u64 = std::thread::scope(|s| {
            let handles: Vec<_> = buf
                .chunks(chunk)
                .map(|c| s.spawn(move || c.iter().fold(0u64, |acc, &x| acc.wrapping_add(x))))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(0))
                .fold(0, u64::wrapping_add)
        });
        std::hint::black_box(total);
        best = best.min(t0.elapsed().as_secs_f64());
    }
    (n * 8) as f64 / best
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let m = s.len() / 2;
    if s.len() % 2 == 1 {
        s[m]
    } else {
        (s[m - 1] + s[m]) / 2.0
    }
}

fn rounded(v: &[f64]) -> Vec<f64> {
    v.iter().map(|x| (x * 10.0).round() / 10.0).collect()
}
