//! `ingot pipeline --preset tiny` end to end on the committed Macbeth excerpt (seconds of training per
//! stage): every stage's output exists, the figures are sane (pretraining and SFT losses fall, the
//! reward model beats chance on held-out pairs, PPO raises the reward model's score with the KL to SFT
//! bounded), the GGUF loads with its ChatML template, the report and its curves are written, a second
//! invocation skips every stage (resumable stage by stage) while `--force-from` reruns, and an
//! interrupted alignment stage resumes from its last checkpoint.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn pipeline(out: &Path, extra: &[&str]) -> Output {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/text/macbeth_40k.txt");
    Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "pipeline",
            "--preset",
            "tiny",
            "--extras",
            "--threads",
            "2",
            "--data",
        ])
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .expect("run ingot pipeline")
}

fn json(p: PathBuf) -> Value {
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap()
}

/// `(x, y)` of `key` in a metrics file.
fn series(p: PathBuf, key: &str) -> Vec<f64> {
    std::fs::read_to_string(&p)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok()?[key].as_f64())
        .collect()
}

fn mean(x: &[f64]) -> f64 {
    x.iter().sum::<f64>() / x.len() as f64
}

#[test]
fn tiny_pipeline_runs_every_stage_and_resumes() {
    let out = std::env::temp_dir().join(format!("ingot-pipeline-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let o = pipeline(&out, &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");

    for stage in [
        "pretrain", "sft", "rm", "ppo", "dpo", "rm2", "ppo2", "convert",
    ] {
        let marker = json(out.join(stage).join("stage.json"));
        assert_eq!(marker["stage"], stage);
        if stage != "convert" {
            assert!(
                out.join(stage).join("latest").is_file(),
                "{stage}: no checkpoint"
            );
        }
    }
    for f in [
        "pretrain_loss",
        "sft_loss",
        "rm_accuracy",
        "ppo_reward",
        "ppo_kl",
    ] {
        let svg = std::fs::read_to_string(out.join(format!("{f}.svg"))).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("<polyline"),
            "{f}.svg"
        );
    }
    assert!(std::fs::read_to_string(out.join("win_rate.svg"))
        .unwrap()
        .contains("<rect"));
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("held-out pairwise accuracy") && report.contains("win rate"),
        "{report}"
    );

    // losses fall
    let val = series(out.join("pretrain/metrics.jsonl"), "val_loss");
    assert!(
        val.len() >= 2 && val[val.len() - 1] < val[0] - 1.0,
        "pretraining {val:?}"
    );
    let sft = json(out.join("sft/summary.json"));
    let (before, after) = (
        sft["val_loss_before"].as_f64().unwrap(),
        sft["val_loss_after"].as_f64().unwrap(),
    );
    assert!(
        after < before - 0.3,
        "SFT held-out loss {before} -> {after}"
    );
    // the reward model beats chance on held-out pairs
    let rm = json(out.join("rm/summary.json"));
    let (acc, n) = (
        rm["heldout_accuracy"].as_f64().unwrap(),
        rm["heldout_pairs"].as_u64().unwrap(),
    );
    assert!(
        n >= 10 && acc >= 0.7,
        "RM held-out accuracy {acc} on {n} pairs"
    );
    // PPO raises the reward model's score, the KL to SFT stays bounded
    let score = series(out.join("ppo/metrics.jsonl"), "score");
    let kl = series(out.join("ppo/metrics.jsonl"), "kl");
    let h = score.len() / 2;
    assert!(
        mean(&score[h..]) > mean(&score[..h]),
        "PPO scores {score:?}"
    );
    assert!(
        kl[0].abs() < 1e-6 && kl.iter().all(|&k| k < 20.0),
        "PPO KL {kl:?}"
    );
    let ppo = json(out.join("ppo/summary.json"));
    assert_eq!(ppo["vs_sft"]["prompts"], 40);
    // `ingot train versus` compares as the PPO stage did (same prompts, seeds and temperature)
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/text/macbeth_40k.txt");
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "train",
            "versus",
            "--heldout-prompts",
            "40",
            "--threads",
            "2",
            "--corpus",
        ])
        .arg(&data)
        .arg("--model")
        .arg(out.join("ppo"))
        .arg("--baseline")
        .arg(out.join("sft"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Value = serde_json::from_slice(&o.stdout).unwrap();
    // and prompts a pretrained-only model with plain text (`line`): one answer per held-out prompt
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "train",
            "versus",
            "--heldout-prompts",
            "40",
            "--threads",
            "2",
            "--corpus",
        ])
        .arg(&data)
        .args(["--baseline-format", "line", "--model"])
        .arg(out.join("ppo"))
        .arg("--baseline")
        .arg(out.join("pretrain"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let line: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(line["prompts"], 40);
    assert_eq!(line["mean_score"], ppo["vs_sft"]["mean_score"], "{line}");
    for k in ["wins", "ties", "losses", "mean_score", "mean_score_sft"] {
        let theirs = if k == "mean_score_sft" {
            "mean_score_baseline"
        } else {
            k
        };
        assert_eq!(v[theirs], ppo["vs_sft"][k], "{k}: {v} vs {}", ppo["vs_sft"]);
    }

    // the GGUF runs with the ChatML template
    let gguf = out.join("ingot-chat.Q8_0.gguf");
    let file = ingot_runtime::gguf::GgufFile::open(&gguf).unwrap();
    let model = ingot_runtime::model::Model::from_file(&file).unwrap();
    assert!(model
        .chat_template
        .is_some_and(|t| t.contains("<|im_start|>")));

    // a second run skips every stage; --force-from reruns that stage and the later ones
    let o = pipeline(&out, &[]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("skipped").count(), 8, "{err}");
    let o = pipeline(&out, &["--force-from", "convert"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert_eq!(err.matches("skipped").count(), 7, "{err}");
    assert!(err.contains("== convert: done"), "{err}");

    // an alignment stage interrupted after its last checkpoint (its marker not yet written) resumes
    // from it (`ingot train ppo --resume`) and ends as it did
    let ckpt = |out: &Path| {
        let latest = std::fs::read_to_string(out.join("ppo/latest")).unwrap();
        std::fs::read(
            out.join("ppo")
                .join(latest.trim())
                .join("model.safetensors"),
        )
        .unwrap()
    };
    let (model, summary) = (ckpt(&out), json(out.join("ppo/summary.json")));
    std::fs::remove_file(out.join("ppo/stage.json")).unwrap();
    let o = pipeline(&out, &["--until", "ppo"]);
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("== ppo: resuming from its last checkpoint")
            && err.contains("ppo: resumed from"),
        "{err}"
    );
    assert!(ckpt(&out) == model, "the resumed PPO checkpoint differs");
    assert_eq!(
        json(out.join("ppo/summary.json"))["vs_sft"],
        summary["vs_sft"]
    );
    let _ = std::fs::remove_dir_all(&out);
}
