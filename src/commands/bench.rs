//! `ingot bench`: prefill and decode speed, measured the way `tools/peer bench` measures llama.cpp
//! (same prompt text, same token counts, one warm-up run, median of the rest), so the two can be run
//! side by side (scripts/bench-vs-llama.sh alternates them).

use super::device::Evaluator;
use super::{load_model, open};
use crate::BenchArgs;
use anyhow::{ensure, Result};
use ingot_runtime::model::{threads_apart, SessionParams, THREADS_APART_NS};
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
    ensure!(a.n_prompt >= 1, "--n-prompt must be at least 1");
    let max_ctx = model.config.n_ctx_train.max(512);
    ensure!(
        a.n_prompt + a.n_gen < max_ctx,
        "--n-prompt {} + --n-gen {} do not fit the model's context of {max_ctx} tokens",
        a.n_prompt,
        a.n_gen
    );
    // The bench text's tokens (the first `n_prompt`, as tools/peer takes them), repeated after its
    // last token for longer prompts.
    let text = model.tokenizer.encode(BENCH_TEXT, true, false);
    ensure!(
        !text.is_empty(),
        "the tokenizer produced no tokens for the bench text"
    );
    let prompt: Vec<u32> = text.iter().copied().cycle().take(a.n_prompt).collect();
    let prompt = &prompt[..];
    let need = a.n_prompt + a.n_gen + 1;
    let n_ctx = a.ctx.unwrap_or(need.max(512));
    ensure!(
        n_ctx >= need,
        "--ctx {n_ctx} is too small for --n-prompt {} + --n-gen {} (at least {need})",
        a.n_prompt,
        a.n_gen
    );
    let params = SessionParams {
        n_ctx,
        n_batch: a.n_prompt.max(1),
        n_threads: a.threads,
        kv_type: a.kv_type,
    };
    let mut session = Evaluator::new(&model, params, a.device)?;
    // Whether runs are tagged with the threads' placement (see `Placement`).
    let tagged = a.threads >= 2 && a.device == super::device::Device::Cpu;
    let (mut pp, mut tg, mut tags) = (Vec::new(), Vec::new(), Vec::new());
    let mut first: Vec<u32> = Vec::new();
    for run in 0..=a.runs {
        let (ppt, tgt, gen, tag) = timed_run(&mut session, prompt, a.n_gen)?;
        if run == 0 {
            eprintln!("warmup: prefill {ppt:.1} tok/s, decode {tgt:.1} tok/s");
            first = gen;
        } else {
            eprintln!(
                "run {run}: prefill {ppt:.1} tok/s, decode {tgt:.1} tok/s{}",
                Tag::describe(tag)
            );
            ensure!(gen == first, "greedy output changed between runs");
            pp.push(ppt);
            tg.push(tgt);
            tags.push(tag);
        }
    }
    // The readable report: stdout, or stderr when stdout carries the JSON object.
    let say = |line: String| {
        if a.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(session.describe());
    say(format!(
        "model = {}, threads = {}, kv = {}, ctx = {n_ctx}, runs = {} (+1 warmup)",
        a.model.display(),
        a.threads,
        a.kv_type,
        a.runs
    ));
    say(format!(
        "prefill {} tokens in one batch: median {:.1} tok/s  (runs: {:?})",
        a.n_prompt,
        median(&pp),
        rounded(&pp)
    ));
    say(format!(
        "decode {} tokens one at a time: median {:.1} tok/s  (runs: {:?})",
        a.n_gen,
        median(&tg),
        rounded(&tg)
    ));
    if tagged {
        say(format!(
            "threads during the decode runs: {}",
            Tag::summary(&tags)
        ));
    }
    let rss_mib = super::peak_rss_kib().map(|kib| kib as f64 / 1024.0);
    if let Some(mib) = rss_mib {
        say(format!("peak RSS = {mib:.0} MiB"));
    }
    let mut report = serde_json::json!({
        "model": a.model.display().to_string(),
        "threads": a.threads,
        "kv_type": a.kv_type.to_string(),
        "backend": session.describe(),
        "n_prompt": a.n_prompt,
        "n_gen": a.n_gen,
        "n_ctx": n_ctx,
        "runs": a.runs,
        "prefill_tok_s": median(&pp),
        "decode_tok_s": median(&tg),
        "prefill_runs_tok_s": pp,
        "decode_runs_tok_s": tg,
        "peak_rss_mib": rss_mib,
        "placement_runs": Tag::names(tagged, &tags),
        "round_trip_ns_runs": Tag::round_trips(tagged, &tags),
    });
    if a.roofline {
        // A decode step reads every weight once (the embedding only one row, but the tied output
        // reads all of it) plus the keys and values cached so far: on average over the timed
        // steps, prompt + (gen + 1) / 2 positions of every layer, keys and values alike.
        let cfg = &model.config;
        let weights = model.weight_bytes() as f64;
        let mean_kv = a.n_prompt as f64 + (a.n_gen as f64 + 1.0) / 2.0;
        let kv = (2 * cfg.n_layer * cfg.kv_dim() * a.kv_type.size()) as f64 * mean_kv;
        let bytes = weights + kv;
        // On a machine shared with other virtual machines the bandwidth at hand moves by ±20-50%
        // within seconds, so each decode run is bracketed by two bandwidth measurements, one just
        // before and one just after it, and compared with their mean. A pair whose two
        // measurements differ by more than 10% saw the bandwidth change while it ran; the figure
        // over the steady pairs alone is reported next to the one over all pairs (after the RSS
        // above: the probe's buffer is not the model's memory).
        let probe = BandwidthProbe::new(a.threads);
        let (mut bws, mut fractions, mut steady) = (Vec::new(), Vec::new(), Vec::new());
        let mut pair_tags = Vec::new();
        let mut before = probe.measure();
        for run in 1..=a.runs {
            let (_, tgt, gen, tag) = timed_run(&mut session, prompt, a.n_gen)?;
            ensure!(gen == first, "greedy output changed between runs");
            let after = probe.measure();
            let bw = (before + after) / 2.0;
            let is_steady = (before - after).abs() <= 0.1 * bw;
            let fraction = tgt * bytes / bw;
            eprintln!(
                "roofline pair {run}: bandwidth {:.1} / {:.1} GB/s before / after{}, decode {tgt:.1} \
                 tok/s = {:.0}% of {:.1}{}",
                before / 1e9,
                after / 1e9,
                if is_steady { "" } else { " (not steady)" },
                100.0 * fraction,
                bw / bytes,
                Tag::describe(tag)
            );
            bws.push(bw);
            fractions.push(fraction);
            steady.push(is_steady);
            pair_tags.push(tag);
            before = after;
        }
        let bw = median(&bws);
        let best = bws.iter().copied().fold(0.0, f64::max);
        let steady_fractions: Vec<f64> = fractions
            .iter()
            .zip(&steady)
            .filter(|(_, &s)| s)
            .map(|(&f, _)| f)
            .collect();
        let steady_fraction = (!steady_fractions.is_empty()).then(|| median(&steady_fractions));
        // With two or more threads, the fraction per placement of the threads (see `Placement`).
        let by_placement: Vec<(Placement, Vec<f64>)> = Placement::ALL
            .iter()
            .map(|&p| {
                let f = fractions
                    .iter()
                    .zip(&pair_tags)
                    .filter(|(_, t)| t.is_some_and(|t| t.placement == p))
                    .map(|(&f, _)| f)
                    .collect::<Vec<f64>>();
                (p, f)
            })
            .filter(|(_, f)| !f.is_empty())
            .collect();
        say(format!(
            "memory bandwidth (read, {} threads) = {:.1} GB/s median, {:.1} best; per token: weights \
             {:.1} MB + KV cache {:.1} MB (mean of the timed steps) -> roofline {:.1} tok/s at the \
             median; decode reaches {:.0}% of it (median over {} decode runs, each against the mean \
             of a bandwidth measurement just before and one just after it: {:?}%); {}",
            a.threads,
            bw / 1e9,
            best / 1e9,
            weights / 1e6,
            kv / 1e6,
            bw / bytes,
            100.0 * median(&fractions),
            a.runs,
            fractions
                .iter()
                .map(|f| (f * 100.0).round())
                .collect::<Vec<_>>(),
            match steady_fraction {
                Some(f) => format!(
                    "{:.0}% over the {} steady runs (before and after within 10%)",
                    100.0 * f,
                    steady_fractions.len()
                ),
                None => "no run was steady (before and after within 10%)".to_string(),
            }
        ));
        if !by_placement.is_empty() {
            say(format!(
                "by placement of the threads (their round trip before and after each run's decode \
                 steps; apart above {THREADS_APART_NS:.0} ns): {}",
                by_placement
                    .iter()
                    .map(|(p, f)| format!(
                        "{} {:.0}% ({} run{})",
                        p.name(),
                        100.0 * median(f),
                        f.len(),
                        if f.len() == 1 { "" } else { "s" }
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        report["roofline"] = serde_json::json!({
            "bytes_per_token": bytes,
            "weight_bytes": weights,
            "kv_bytes_mean": kv,
            "bandwidth_gb_s": bw / 1e9,
            "bandwidth_best_gb_s": best / 1e9,
            "bandwidth_runs_gb_s": bws.iter().map(|b| b / 1e9).collect::<Vec<_>>(),
            "roofline_tok_s": bw / bytes,
            "fraction": median(&fractions),
            "fraction_runs": fractions,
            "steady_runs": steady,
            "fraction_steady": steady_fraction,
            "placement_runs": Tag::names(tagged, &pair_tags),
            "round_trip_ns_runs": Tag::round_trips(tagged, &pair_tags),
            "fraction_by_placement": by_placement
                .iter()
                .map(|(p, f)| {
                    (
                        p.name().to_string(),
                        serde_json::json!({ "runs": f.len(), "fraction": median(f) }),
                    )
                })
                .collect::<serde_json::Map<String, serde_json::Value>>(),
        });
    }
    if a.json {
        println!("{report}");
    }
    Ok(())
}

/// Where the host had a session's threads during a run's decode steps, from the round trip between
/// two of them just before and just after them ([`Evaluator::thread_round_trip_ns`], read by
/// [`threads_apart`]). On a shared VM the host moves vCPUs every few seconds, and two threads on
/// cores without a shared last-level cache see other bandwidth and other costs of meeting
/// (BENCHMARKS.md, Roofline), so runs are reported by placement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Placement {
    /// Both round trips at or below the threshold: cores that share a last-level cache.
    Together,
    /// Both above it.
    Apart,
    /// One of each: the host moved the threads during the run.
    Changing,
}

impl Placement {
    const ALL: [Placement; 3] = [Placement::Together, Placement::Apart, Placement::Changing];

    fn of(before: f64, after: f64) -> Placement {
        match (threads_apart(before), threads_apart(after)) {
            (false, false) => Placement::Together,
            (true, true) => Placement::Apart,
            _ => Placement::Changing,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Placement::Together => "together",
            Placement::Apart => "apart",
            Placement::Changing => "changing",
        }
    }
}

/// A timed run's round trips (ns) before and after its decode steps, and the placement they show.
#[derive(Clone, Copy, Debug)]
struct Tag {
    before: f64,
    after: f64,
    placement: Placement,
}

impl Tag {
    /// ` (threads together: round trip 74 / 80 ns)`, or nothing without a tag.
    fn describe(tag: Option<Tag>) -> String {
        tag.map_or(String::new(), |t| {
            format!(
                " (threads {}: round trip {:.0} / {:.0} ns)",
                t.placement.name(),
                t.before,
                t.after
            )
        })
    }

    /// `together 3, apart 1, untagged 1`: how many runs had each placement (in [`Placement::ALL`]'s
    /// order, those with none left out).
    fn summary(tags: &[Option<Tag>]) -> String {
        let untagged = tags.iter().filter(|t| t.is_none()).count();
        Placement::ALL
            .iter()
            .map(|&p| {
                let n = tags.iter().flatten().filter(|t| t.placement == p).count();
                (p.name(), n)
            })
            .chain([("untagged", untagged)])
            .filter(|&(_, n)| n > 0)
            .map(|(name, n)| format!("{name} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The runs' placement names for the JSON report when runs are `tagged` (`null` for a run
    /// whose worker never answered in time), else `null`.
    fn names(tagged: bool, tags: &[Option<Tag>]) -> serde_json::Value {
        if !tagged {
            return serde_json::Value::Null;
        }
        tags.iter().map(|t| t.map(|t| t.placement.name())).collect()
    }

    /// The runs' `[before, after]` round trips for the JSON report, as [`Tag::names`].
    fn round_trips(tagged: bool, tags: &[Option<Tag>]) -> serde_json::Value {
        if !tagged {
            return serde_json::Value::Null;
        }
        tags.iter()
            .map(|t| t.map(|t| [t.before.round(), t.after.round()]))
            .collect()
    }
}

/// One timed run from an empty cache: prefill `prompt` in one batch, then `gen` greedy decode
/// steps. Returns prefill tok/s, decode tok/s, the generated tokens and, with two or more threads
/// on the CPU, where the host had them during the decode steps: the threads' round trip measured
/// right after the prefill and right after the last step, each outside the timed spans (the pool's
/// workers are awake then; one asleep may answer too late, and then the run has no tag).
fn timed_run(
    session: &mut Evaluator<'_, '_>,
    prompt: &[u32],
    gen: usize,
) -> Result<(f64, f64, Vec<u32>, Option<Tag>)> {
    // Tries for up to ~5 ms: each gives up after 200 µs without an answer (a worker preempted by
    // another process, on a busy machine).
    let round_trip = |s: &Evaluator<'_, '_>| (0..25).find_map(|_| s.thread_round_trip_ns());
    session.reset();
    let t0 = Instant::now();
    let mut next = argmax(session.prefill(prompt)?);
    let t_pp = t0.elapsed().as_secs_f64();
    let before = round_trip(session);
    let mut out = Vec::with_capacity(gen + 1);
    out.push(next);
    let t1 = Instant::now();
    for _ in 0..gen {
        next = session.decode_greedy(next)?;
        out.push(next);
    }
    let t_tg = t1.elapsed().as_secs_f64();
    let after = round_trip(session);
    let tag = before.zip(after).map(|(before, after)| Tag {
        before,
        after,
        placement: Placement::of(before, after),
    });
    Ok((prompt.len() as f64 / t_pp, gen as f64 / t_tg, out, tag))
}

/// A read-bandwidth probe: `threads` threads each summing their part of a 512 MiB buffer (far
/// larger than any cache) — a STREAM-like "sum" kernel. The buffer is on transparent huge pages
/// where the OS grants them, as the repacked weights are.
struct BandwidthProbe {
    map: Option<memmap2::MmapMut>,
    heap: Vec<u64>,
    threads: usize,
}

impl BandwidthProbe {
    const BYTES: usize = 512 << 20;

    fn new(threads: usize) -> BandwidthProbe {
        let n = Self::BYTES / 8; // u64 words
        let map = memmap2::MmapMut::map_anon(Self::BYTES).ok();
        #[cfg(target_os = "linux")]
        if let Some(m) = &map {
            let _ = m.advise(memmap2::Advice::HugePage); // a hint: fine if refused
        }
        let heap = if map.is_some() {
            Vec::new()
        } else {
            vec![0u64; n]
        };
        let mut probe = BandwidthProbe { map, heap, threads };
        for (i, w) in probe.words_mut().iter_mut().enumerate() {
            *w = i as u64;
        }
        probe
    }

    fn words_mut(&mut self) -> &mut [u64] {
        match self.map.as_mut() {
            // A page-aligned mapping of whole u64 words.
            Some(m) => bytemuck::cast_slice_mut(&mut m[..]),
            None => &mut self.heap,
        }
    }

    fn words(&self) -> &[u64] {
        match self.map.as_ref() {
            Some(m) => bytemuck::cast_slice(&m[..]),
            None => &self.heap,
        }
    }

    /// Bytes/s over four passes (2 GiB read, about a tenth of a second), the mean rate of the
    /// whole window as a decode run's tok/s is.
    fn measure(&self) -> f64 {
        const PASSES: usize = 4;
        let buf = self.words();
        let chunk = buf.len().div_ceil(self.threads.max(1));
        let t0 = Instant::now();
        for _ in 0..PASSES {
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
        }
        (PASSES * Self::BYTES) as f64 / t0.elapsed().as_secs_f64()
    }
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

#[cfg(test)]
mod tests {
    use super::{Placement, Tag};

    #[test]
    fn runs_are_placed_by_both_round_trips() {
        // The session's threshold: apart above 180 ns.
        assert_eq!(Placement::of(75.0, 180.0), Placement::Together);
        assert_eq!(Placement::of(181.0, 550.0), Placement::Apart);
        assert_eq!(Placement::of(80.0, 340.0), Placement::Changing);
        assert_eq!(Placement::of(340.0, 80.0), Placement::Changing);
        let t = Tag {
            before: 74.4,
            after: 80.6,
            placement: Placement::of(74.4, 80.6),
        };
        assert_eq!(
            Tag::describe(Some(t)),
            " (threads together: round trip 74 / 81 ns)"
        );
        assert_eq!(Tag::describe(None), "");
        let apart = Tag {
            placement: Placement::Apart,
            ..t
        };
        assert_eq!(
            Tag::summary(&[Some(t), None, Some(apart), Some(t)]),
            "together 2, apart 1, untagged 1"
        );
        // One thread (or a GPU): no placement at all; two: one entry per run, null where untagged.
        assert!(Tag::names(false, &[Some(t)]).is_null());
        assert_eq!(
            Tag::names(true, &[Some(t), None]),
            serde_json::json!(["together", null])
        );
        assert_eq!(
            Tag::round_trips(true, &[None, Some(t)]),
            serde_json::json!([null, [74.0, 81.0]])
        );
    }
}
