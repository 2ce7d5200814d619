//! The pipeline's report: `OUT/report.md` (figures of every stage from its `summary.json` and
//! `metrics.jsonl`, wall and CPU times) and its curves as SVG, polylines and bars written directly.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{read_json, Ctx, Stage, GGUF_NAME};

/// `(x, y)` of `key` against `x_key` in a metrics file, finite values only.
fn series(metrics: &Path, x_key: &str, key: &str) -> Vec<(f64, f64)> {
    let Ok(text) = fs::read_to_string(metrics) else {
        return Vec::new();
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter_map(|v| {
            Some((
                v[x_key].as_f64()?,
                v[key].as_f64().filter(|y| y.is_finite())?,
            ))
        })
        .collect()
}

const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// A line chart as SVG: one polyline per series, axes with their ranges, a legend. `hline` draws a
/// dashed horizontal reference (a target).
fn svg_lines(
    title: &str,
    x_label: &str,
    lines: &[(&str, Vec<(f64, f64)>)],
    hline: Option<(&str, f64)>,
) -> String {
    let (w, h, l, r, t, b) = (640.0, 360.0, 60.0, 20.0, 36.0, 44.0);
    let pts = lines.iter().flat_map(|(_, s)| s.iter().copied());
    let (mut x0, mut x1, mut y0, mut y1) = (
        f64::INFINITY,
        f64::NEG_INFINITY,
        f64::INFINITY,
        f64::NEG_INFINITY,
    );
    for (x, y) in pts.chain(hline.map(|(_, y)| (f64::NAN, y))) {
        if x.is_finite() {
            (x0, x1) = (x0.min(x), x1.max(x));
        }
        (y0, y1) = (y0.min(y), y1.max(y));
    }
    if !x0.is_finite() {
        (x0, x1, y0, y1) = (0.0, 1.0, 0.0, 1.0);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    let pad = 0.05 * (y1 - y0);
    let (y0, y1) = (y0 - pad, y1 + pad);
    let px = |x: f64| l + (x - x0) / (x1 - x0) * (w - l - r);
    let py = |y: f64| t + (y1 - y) / (y1 - y0) * (h - t - b);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n\
         <rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"black\"/>\n",
        w / 2.0,
        w - l - r,
        h - t - b
    );
    let _ = writeln!(
        s,
        "<text x=\"{l}\" y=\"{}\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{x_label}</text>\n\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text><text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        h - b + 16.0,
        fmt_num(x0),
        w - r,
        h - b + 16.0,
        fmt_num(x1),
        (l + w - r) / 2.0,
        h - 8.0,
        l - 4.0,
        py(y1) + 10.0,
        fmt_num(y1),
        l - 4.0,
        py(y0),
        fmt_num(y0)
    );
    if let Some((name, y)) = hline {
        let _ = writeln!(
            s,
            "<line x1=\"{l}\" x2=\"{0}\" y1=\"{1:.1}\" y2=\"{1:.1}\" stroke=\"gray\" stroke-dasharray=\"5,4\"/>\
             <text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\" fill=\"gray\">{name}</text>",
            w - r,
            py(y),
            w - r - 4.0,
            py(y) - 4.0
        );
    }
    for (i, (name, pts)) in lines.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let coords: Vec<String> = pts
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"1.5\" points=\"{}\"/>\
             <text x=\"{}\" y=\"{}\" fill=\"{color}\">{name}</text>",
            coords.join(" "),
            l + 8.0,
            t + 16.0 + 15.0 * i as f64
        );
        if pts.len() == 1 {
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{color}\"/>",
                px(pts[0].0),
                py(pts[0].1)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

/// Stacked bars of wins, ties and losses per comparison (fractions of the prompts).
fn svg_bars(title: &str, rows: &[(String, f64, f64, f64)]) -> String {
    let (w, row_h, l) = (640.0, 34.0, 150.0);
    let h = 70.0 + row_h * rows.len() as f64;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"20\" text-anchor=\"middle\" font-size=\"15\">{title}</text>\n",
        w / 2.0
    );
    let span = w - l - 20.0;
    for (i, (name, win, tie, loss)) in rows.iter().enumerate() {
        let y = 36.0 + row_h * i as f64;
        let _ = write!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{name}</text>",
            l - 6.0,
            y + 17.0
        );
        let mut x = l;
        for (frac, color) in [(win, "#2ca02c"), (tie, "#bbbbbb"), (loss, "#d62728")] {
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"{y}\" width=\"{:.1}\" height=\"24\" fill=\"{color}\"/>",
                frac * span
            );
            x += frac * span;
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"white\">{:.1}%</text>",
            l + 4.0,
            y + 17.0,
            win * 100.0
        );
    }
    let y = h - 16.0;
    let _ = writeln!(
        s,
        "<text x=\"{l}\" y=\"{y}\" fill=\"#2ca02c\">wins</text><text x=\"{}\" y=\"{y}\" fill=\"#888\">ties</text>\
         <text x=\"{}\" y=\"{y}\" fill=\"#d62728\">losses (vs SFT, labeler score per prompt)</text>",
        l + 50.0,
        l + 100.0
    );
    let _ = writeln!(
        s,
        "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"30\" y2=\"{1}\" stroke=\"black\" stroke-dasharray=\"4,3\"/>\
         <text x=\"{0:.1}\" y=\"{2}\" text-anchor=\"middle\">80%</text>",
        l + 0.8 * span,
        h - 30.0,
        h - 30.0 + 12.0
    );
    s.push_str("</svg>\n");
    s
}

fn fmt_num(x: f64) -> String {
    if x.abs() >= 100.0 || x == x.round() {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

fn f(v: &Value) -> String {
    match v.as_f64() {
        Some(x) => format!("{x:.3}"),
        None => "–".into(),
    }
}

/// Writes `OUT/report.md` and the SVG curves from the stages' `metrics.jsonl` and `summary.json`.
pub(super) fn write(cx: &Ctx<'_>, total: f64) -> Result<PathBuf> {
    let out = &cx.a.out;
    // only the stages of this pipeline: a directory left by an earlier `--extras` run is not reported
    let ours = |s: Stage| cx.a.extras || !matches!(s, Stage::Dpo | Stage::Rm2 | Stage::Ppo2);
    let m = |s: Stage| {
        if ours(s) {
            cx.dir(s).join("metrics.jsonl")
        } else {
            PathBuf::new()
        }
    };
    let sum = |s: Stage| {
        ours(s)
            .then(|| read_json(&cx.dir(s).join("summary.json")))
            .flatten()
            .unwrap_or(Value::Null)
    };
    let write = |name: &str, svg: String| -> Result<()> {
        fs::write(out.join(name), svg).with_context(|| format!("cannot write `{name}`"))
    };
    write(
        "pretrain_loss.svg",
        svg_lines(
            "pretraining loss (nats/token)",
            "step",
            &[
                ("train", series(&m(Stage::Pretrain), "step", "loss")),
                (
                    "validation",
                    series(&m(Stage::Pretrain), "step", "val_loss"),
                ),
            ],
            None,
        ),
    )?;
    write(
        "sft_loss.svg",
        svg_lines(
            "SFT loss on assistant tokens (nats/token)",
            "step",
            &[
                ("train", series(&m(Stage::Sft), "step", "loss")),
                ("held-out", series(&m(Stage::Sft), "step", "val_loss")),
            ],
            None,
        ),
    )?;
    write(
        "rm_accuracy.svg",
        svg_lines(
            "reward model: held-out pairwise accuracy",
            "step",
            &[
                ("round 1", series(&m(Stage::Rm), "step", "heldout_accuracy")),
                (
                    "round 2",
                    series(&m(Stage::Rm2), "step", "heldout_accuracy"),
                ),
            ],
            Some(("target 0.95", 0.95)),
        ),
    )?;
    write(
        "ppo_reward.svg",
        svg_lines(
            "PPO: mean reward-model score of the rollouts",
            "iteration",
            &[
                ("round 1", series(&m(Stage::Ppo), "iteration", "score")),
                ("round 2", series(&m(Stage::Ppo2), "iteration", "score")),
            ],
            None,
        ),
    )?;
    write(
        "ppo_kl.svg",
        svg_lines(
            "PPO: KL(policy || SFT) per answer (nats)",
            "iteration",
            &[
                ("round 1", series(&m(Stage::Ppo), "iteration", "kl")),
                ("round 2", series(&m(Stage::Ppo2), "iteration", "kl")),
            ],
            Some(("target", cx.z.kl_target)),
        ),
    )?;
    let mut bars = Vec::new();
    for (name, s) in [
        ("PPO", Stage::Ppo),
        ("PPO round 2", Stage::Ppo2),
        ("DPO", Stage::Dpo),
    ] {
        let v = &sum(s)["vs_sft"];
        if let (Some(w), Some(t), Some(l)) =
            (v["wins"].as_f64(), v["ties"].as_f64(), v["losses"].as_f64())
        {
            let n = (w + t + l).max(1.0);
            bars.push((name.to_string(), w / n, t / n, l / n));
        }
    }
    write(
        "win_rate.svg",
        svg_bars("win rate against SFT on held-out prompts", &bars),
    )?;

    let mut r = String::new();
    let _ = writeln!(r, "# ingot pipeline report\n");
    let _ = writeln!(
        r,
        "Preset `{:?}`, seed {}, {} threads, output `{}`. Total wall time of this invocation: **{:.0} s** \
         ({:.1} min); stages skipped as up to date count with the time they took when they ran.\n",
        cx.a.preset,
        cx.a.seed,
        if cx.a.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            cx.a.threads
        },
        out.display(),
        total,
        total / 60.0
    );
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let _ =
        writeln!(
        r,
        "Wall times depend on the machine's load (load average at the end: {}); CPU time (user + \
         system, all threads) does not.\n",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let _ = writeln!(
        r,
        "| stage | wall (s) | CPU (s) | |\n| --- | ---: | ---: | --- |"
    );
    let (mut all, mut all_cpu) = (0.0, 0.0);
    for (s, wall, cpu, skipped) in &cx.walls {
        all += wall;
        all_cpu += cpu.unwrap_or(0.0);
        let _ = writeln!(
            r,
            "| {} | {wall:.0} | {} | {} |",
            s.name(),
            cpu.map_or("–".into(), |c| format!("{c:.0}")),
            if *skipped {
                "skipped now (figures from its run)"
            } else {
                "ran"
            }
        );
    }
    let _ = writeln!(
        r,
        "| **all stages** | **{all:.0}** | **{all_cpu:.0}** | |\n"
    );

    let pre = m(Stage::Pretrain).exists();
    let pre_val = series(&m(Stage::Pretrain), "step", "val_loss");
    let _ = writeln!(r, "## Figures\n");
    if let (Some(a), Some(b)) = (pre_val.first(), pre_val.last()) {
        let _ = writeln!(
            r,
            "- **Pretraining**: validation loss {:.3} → {:.3} (step {}).",
            a.1, b.1, b.0
        );
    } else if pre {
        let _ = writeln!(r, "- Pretraining: no validation loss recorded.");
    }
    let s = sum(Stage::Sft);
    if !s.is_null() {
        let _ = writeln!(
            r,
            "- **SFT**: held-out assistant-token loss {} → {}.",
            f(&s["val_loss_before"]),
            f(&s["val_loss_after"])
        );
    }
    for (name, st) in [("RM", Stage::Rm), ("RM round 2", Stage::Rm2)] {
        let s = sum(st);
        if !s.is_null() {
            let _ = writeln!(
                r,
                "- **{name}**: {} training pairs, {} held-out pairs; held-out pairwise accuracy {} → **{}** (target 0.95).",
                s["train_pairs"],
                s["heldout_pairs"],
                f(&s["heldout_accuracy_before"]),
                f(&s["heldout_accuracy"])
            );
        }
    }
    for (name, st) in [
        ("PPO", Stage::Ppo),
        ("PPO round 2", Stage::Ppo2),
        ("DPO", Stage::Dpo),
    ] {
        let s = sum(st);
        let v = &s["vs_sft"];
        if v.is_object() {
            let kl = if st == Stage::Dpo {
                String::new()
            } else {
                let kls = series(&m(st), "iteration", "kl");
                let tail = &kls[kls.len().saturating_sub(10)..];
                let mean = tail.iter().map(|p| p.1).sum::<f64>() / tail.len().max(1) as f64;
                format!(
                    "; KL to SFT {mean:.2} nats per answer (mean of the last {} iterations; target {})",
                    tail.len(),
                    cx.z.kl_target
                )
            };
            let _ = writeln!(
                r,
                "- **{name}** vs SFT on {} held-out prompts: {} wins, {} ties, {} losses: win rate **{:.1}%** \
                 ({:.1}% with ties as half); mean labeler score {} vs {}{kl}.",
                v["prompts"],
                v["wins"],
                v["ties"],
                v["losses"],
                v["win_rate"].as_f64().unwrap_or(0.0) * 100.0,
                v["win_rate_ties_half"].as_f64().unwrap_or(0.0) * 100.0,
                f(&v["mean_score"]),
                f(&v["mean_score_sft"])
            );
        }
    }
    let gguf = out.join(GGUF_NAME);
    if let Ok(md) = fs::metadata(&gguf) {
        let _ = writeln!(
            r,
            "- **GGUF**: `{}`, {:.2} MB (Q8_0, ChatML template; `ingot chat -m {}`).",
            gguf.display(),
            md.len() as f64 / 1e6,
            gguf.display()
        );
    }
    let _ = writeln!(
        r,
        "\nHeld-out pairs: K answers per held-out prompt sampled from the policy being ranked, every pair \
         whose labeler scores differ by at least the gap (1.0; ties never) — the same rule as the training \
         pairs, on prompts none of which occurs in training. Win rates: one answer per held-out prompt from \
         each policy (temperature 0.7, same seeds), the labeler's scores compared per prompt.\n"
    );
    let _ = writeln!(r, "## Curves\n");
    for (name, file) in [
        ("Pretraining loss", "pretrain_loss.svg"),
        ("SFT loss", "sft_loss.svg"),
        ("RM accuracy", "rm_accuracy.svg"),
        ("PPO reward", "ppo_reward.svg"),
        ("KL", "ppo_kl.svg"),
        ("Win rate", "win_rate.svg"),
    ] {
        let _ = writeln!(r, "![{name}]({file})\n");
    }
    let last_ppo = if ours(Stage::Ppo2) {
        Stage::Ppo2
    } else {
        Stage::Ppo
    };
    let samples = cx.dir(last_ppo).join("samples.jsonl");
    if let Ok(text) = fs::read_to_string(&samples)
        .or_else(|_| fs::read_to_string(cx.dir(Stage::Ppo).join("samples.jsonl")))
    {
        let _ = writeln!(r, "## Samples (held-out prompts, PPO vs SFT)\n\n```");
        for line in text.lines().take(8) {
            let _ = writeln!(r, "{line}");
        }
        let _ = writeln!(r, "```");
    }
    let path = out.join("report.md");
    if cx.walls.is_empty() {
        bail!("no stage ran");
    }
    fs::write(&path, r).with_context(|| format!("cannot write `{}`", path.display()))?;
    Ok(path)
}
