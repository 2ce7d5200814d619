//! `ingot train pretrain` end to end on a tiny model: a few steps on Macbeth, then `--resume` for a few
//! more; the checkpoints, `latest`, the token cache and `metrics.jsonl` are where they should be, the
//! losses finite, and a run resumed from a checkpoint writes the same bytes as one never stopped.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MACBETH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/text/macbeth_40k.txt");
const TINY: &[&str] = &[
    "--data",
    MACBETH,
    "--batch",
    "2",
    "--ctx",
    "16",
    "--layers",
    "1",
    "--width",
    "32",
    "--heads",
    "2",
    "--ffn",
    "64",
    "--warmup",
    "2",
    "--eval-every",
    "3",
    "--eval-batches",
    "2",
    "--save-every",
    "3",
    "--threads",
    "2",
];

fn pretrain(out: &Path, extra: &[&str]) -> Output {
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(["train", "pretrain", "--out", out.to_str().unwrap()])
        .args(extra)
        .output()
        .expect("run ingot");
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    o
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("train-cli-{name}"));
    let _ = fs::remove_dir_all(&dir);
    dir
}

/// `(step, loss, val_loss)` of each line of `metrics.jsonl`.
fn metrics(out: &Path) -> Vec<(u64, Option<f64>, Option<f64>)> {
    fs::read_to_string(out.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["step"].as_u64().unwrap(),
                v["loss"].as_f64(),
                v["val_loss"].as_f64(),
            )
        })
        .collect()
}

#[test]
fn pretrain_then_resume() {
    let out = scratch("resume");
    let o = pretrain(&out, &[TINY, &["--steps", "4"]].concat());
    assert!(o.status.success());
    assert_eq!(
        fs::read_to_string(out.join("latest")).unwrap(),
        "step-00000004\n"
    );
    for f in [
        "checkpoint.json",
        "model.safetensors",
        "optimizer.safetensors",
    ] {
        assert!(out.join("step-00000003").join(f).is_file(), "{f}");
        assert!(out.join("step-00000004").join(f).is_file(), "{f}");
    }
    let cache: Vec<_> = fs::read_dir(out.join("cache")).unwrap().collect();
    assert_eq!(cache.len(), 1, "one token cache entry");

    // Resume for three more steps (the run's other options come from the checkpoint).
    let resume = [
        "--resume",
        out.to_str().unwrap(),
        "--steps",
        "7",
        "--eval-every",
        "3",
    ];
    let o = pretrain(&out, &resume);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("token cache hit"));
    assert_eq!(
        fs::read_to_string(out.join("latest")).unwrap(),
        "step-00000007\n"
    );
    // --keep 2: the step-3 checkpoint is gone.
    assert!(!out.join("step-00000003").exists());
    let m = metrics(&out);
    let steps: Vec<u64> = m.iter().map(|r| r.0).collect();
    assert_eq!(steps, [0, 1, 2, 3, 4, 5, 6, 7]);
    assert!(m[1..].iter().all(|r| r.1.is_some_and(f64::is_finite)));
    let evaluated: Vec<u64> = m.iter().filter(|r| r.2.is_some()).map(|r| r.0).collect();
    assert_eq!(evaluated, [0, 3, 4, 6, 7]);
    assert!(m.iter().filter_map(|r| r.2).all(f64::is_finite));
    // The loss curve is redrawn at the end: one polyline each for training and validation loss.
    let svg = fs::read_to_string(out.join("loss.svg")).unwrap();
    assert!(
        svg.starts_with("<svg") && svg.matches("<polyline").count() >= 2,
        "{svg}"
    );
}

#[test]
fn resume_from_a_checkpoint_matches_the_straight_run() {
    // Seven steps straight, keeping every checkpoint (3, 6, 7).
    let straight = scratch("straight");
    let o = pretrain(
        &straight,
        &[TINY, &["--steps", "7", "--keep", "3"]].concat(),
    );
    assert!(o.status.success());
    // A second run directory holding only the step-3 checkpoint, resumed from that directory.
    let resumed = scratch("from-step-3");
    let ckpt = resumed.join("step-00000003");
    fs::create_dir_all(&ckpt).unwrap();
    for e in fs::read_dir(straight.join("step-00000003")).unwrap() {
        let e = e.unwrap();
        fs::copy(e.path(), ckpt.join(e.file_name())).unwrap();
    }
    let o = pretrain(&resumed, &["--resume", ckpt.to_str().unwrap()]);
    assert!(o.status.success());
    for f in [
        "model.safetensors",
        "optimizer.safetensors",
        "checkpoint.json",
    ] {
        let a = fs::read(straight.join("step-00000007").join(f)).unwrap();
        let b = fs::read(resumed.join("step-00000007").join(f)).unwrap();
        assert!(
            a == b,
            "{f} differs between the straight and the resumed run"
        );
    }
}

#[test]
fn refuses_conflicts_and_reuse() {
    let out = scratch("refuse");
    let o = pretrain(&out, &[TINY, &["--steps", "1"]].concat());
    assert!(o.status.success());
    let err = |o: &Output| String::from_utf8_lossy(&o.stderr).into_owned();
    // A fresh run into a directory that holds one.
    let o = pretrain(&out, &[TINY, &["--steps", "1"]].concat());
    assert!(!o.status.success());
    assert!(err(&o).contains("--resume"), "{}", err(&o));
    // A resumed run with another shape.
    let o = pretrain(&out, &["--resume", out.to_str().unwrap(), "--width", "64"]);
    assert!(!o.status.success());
    assert!(err(&o).contains("--width 64"), "{}", err(&o));
    // A data path that does not exist.
    let o = pretrain(
        &scratch("nodata"),
        &["--data", "/nonexistent/corpus", "--steps", "1"],
    );
    assert!(!o.status.success());
    assert!(err(&o).contains("/nonexistent/corpus"), "{}", err(&o));
}
