//! The `ingot` binary end to end: the exact command forms scripts depend on, their output formats, and
//! clean failures (message on stderr, non-zero exit) for bad input.

mod common;

use common::{model_path, tiny_model, Tiny};
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn ingot(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args(args)
        .output()
        .expect("run ingot")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn temp_file(name: &str, bytes: &[u8]) -> PathBuf {
    let p = std::env::temp_dir().join(format!("ingot-cli-{}-{name}", std::process::id()));
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn tokenize_prints_a_json_array_and_detokenize_inverts_it() {
    let m = model_path();
    let m = m.to_str().unwrap();
    let o = ingot(&["tokenize", "-m", m, "Hello world, 123!"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let ids: Vec<u32> = serde_json::from_str(stdout(&o).trim()).expect("JSON array of ids");
    // "123" is split into single digits by SmolLM2's pre-tokenizer.
    assert!(ids.len() >= 6, "{ids:?}");
    let args: Vec<String> = ids.iter().map(u32::to_string).collect();
    let mut argv = vec!["detokenize", "-m", m];
    argv.extend(args.iter().map(String::as_str));
    let o = ingot(&argv);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim_end_matches('\n'), "Hello world, 123!");

    let o = ingot(&["tokenize", "-m", m, "<|im_start|>user"]);
    let special: Vec<u32> = serde_json::from_str(stdout(&o).trim()).unwrap();
    let o = ingot(&[
        "tokenize",
        "-m",
        m,
        "--no-parse-special",
        "<|im_start|>user",
    ]);
    let plain: Vec<u32> = serde_json::from_str(stdout(&o).trim()).unwrap();
    assert_eq!(special.len(), 2, "{special:?}");
    assert!(plain.len() > 2, "{plain:?}");
}

#[test]
fn detokenize_rejects_ids_outside_the_vocabulary() {
    let m = model_path();
    let o = ingot(&["detokenize", "-m", m.to_str().unwrap(), "1", "999999"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("outside the vocabulary"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn generate_greedy_is_deterministic_and_reports_timing() {
    let m = model_path();
    let args = [
        "generate",
        "-m",
        m.to_str().unwrap(),
        "-p",
        "The capital of France is",
        "-n",
        "8",
        "--temp",
        "0",
    ];
    let a = ingot(&args);
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(stdout(&a).contains("Paris"), "{}", stdout(&a));
    assert!(
        stderr(&a).contains("prefill:") && stderr(&a).contains("tok/s"),
        "{}",
        stderr(&a)
    );
    let b = ingot(&args);
    assert_eq!(stdout(&a), stdout(&b));
}

#[test]
fn generate_with_the_same_seed_gives_the_same_text() {
    let m = model_path();
    let run = |seed: &str| {
        let o = ingot(&[
            "generate",
            "-m",
            m.to_str().unwrap(),
            "-p",
            "Once upon a time",
            "-n",
            "12",
            "--temp",
            "1.0",
            "--seed",
            seed,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    assert_eq!(run("7"), run("7"));
    assert_ne!(run("7"), run("8"));
}

#[test]
fn chat_reads_one_turn_per_line_from_a_pipe() {
    let m = model_path();
    let mut child = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "chat",
            "-m",
            m.to_str().unwrap(),
            "--temp",
            "0",
            "--max-reply",
            "16",
        ])
        .args(["--system", "You are a helpful assistant."])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"What is the capital of France?\n/reset\nSay hi.\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("Paris"), "{out}");
    assert!(
        out.lines().filter(|l| !l.trim().is_empty()).count() >= 2,
        "{out}"
    );
}

#[test]
fn info_describes_the_model() {
    let m = model_path();
    let o = ingot(&["info", m.to_str().unwrap(), "--ctx", "4096"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in [
        "architecture:    llama",
        "layers:          30",
        "blk.0.attn_q.weight",
        "Q4_1",
        "--ctx 4096",
    ] {
        assert!(out.contains(needle), "missing `{needle}` in:\n{out}");
    }
}

#[test]
fn bad_files_and_requests_fail_cleanly() {
    let o = ingot(&["info", "/nonexistent/model.gguf"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("cannot open model"), "{}", stderr(&o));

    let bytes = tiny_model(&Tiny::default()).to_bytes();
    let truncated = temp_file("truncated.gguf", &bytes[..bytes.len() / 2]);
    let o = ingot(&["info", truncated.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid GGUF at byte"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));

    let not_gguf = temp_file("text.gguf", b"hello, this is not a model");
    let o = ingot(&["tokenize", "-m", not_gguf.to_str().unwrap(), "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a GGUF file"), "{}", stderr(&o));

    let tiny = temp_file("tiny.gguf", &bytes);
    let long = "hello ".repeat(100);
    let o = ingot(&[
        "generate",
        "-m",
        tiny.to_str().unwrap(),
        "-p",
        &long,
        "--ctx",
        "32",
    ]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("does not fit in the context"),
        "{}",
        stderr(&o)
    );

    let mut w = tiny_model(&Tiny::default());
    w.set(
        "general.architecture",
        ingot_runtime::gguf::writer::OwnedValue::String("mamba".into()),
    );
    let unknown = temp_file("mamba.gguf", &w.to_bytes());
    let o = ingot(&["generate", "-m", unknown.to_str().unwrap(), "-p", "hi"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown architecture `mamba`"),
        "{}",
        stderr(&o)
    );

    for p in [truncated, not_gguf, tiny, unknown] {
        let _ = std::fs::remove_file(p);
    }
}

/// `ingot bench --n-prompt 8 --roofline --json` on the test model with `args`: the output and the
/// JSON object it printed.
fn bench_json(args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let m = model_path();
    let mut all = vec!["bench", "-m", m.to_str().unwrap(), "--n-prompt", "8"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--roofline", "--json"]);
    let o = ingot(&all);
    assert!(o.status.success(), "{}", stderr(&o));
    let v = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    (o, v)
}

#[test]
fn bench_json_is_one_object_with_the_documented_fields() {
    let m = model_path();
    let (o, v) = bench_json(&["--n-gen", "4", "--runs", "2", "--threads", "2"]);
    assert_eq!(v["threads"], 2);
    assert_eq!(v["n_prompt"], 8);
    assert_eq!(v["n_gen"], 4);
    assert_eq!(v["n_ctx"], 512, "the default context");
    assert_eq!(v["model"], m.to_str().unwrap());
    for key in ["prefill_tok_s", "decode_tok_s"] {
        assert!(v[key].as_f64().is_some_and(|x| x > 0.0), "{key}: {v}");
    }
    assert_eq!(v["decode_runs_tok_s"].as_array().map(Vec::len), Some(2));
    let r = &v["roofline"];
    assert!(r["bandwidth_gb_s"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    assert!(r["fraction"].as_f64().is_some_and(|x| x > 0.0), "{v}");
    // Each run bracketed by two bandwidth measurements; the steady ones (within 10%) also alone.
    let steady = r["steady_runs"].as_array().expect("steady_runs");
    assert_eq!(steady.len(), 2, "{v}");
    match steady.iter().filter(|s| s.as_bool() == Some(true)).count() {
        0 => assert!(r["fraction_steady"].is_null(), "{v}"),
        _ => assert!(
            r["fraction_steady"].as_f64().is_some_and(|x| x > 0.0),
            "{v}"
        ),
    }
    // Two threads: each run tagged with the threads' round trip before and after its decode steps
    // and the placement that gives, or null where the worker never answered in time (it may not:
    // on a machine as busy as this test's, with other tests running, a worker can wait for a core
    // longer than the ~5 ms the bench gives it).
    for (runs, trips) in [
        (&v["placement_runs"], &v["round_trip_ns_runs"]),
        (&r["placement_runs"], &r["round_trip_ns_runs"]),
    ] {
        let (runs, trips) = (
            runs.as_array().expect("placement_runs"),
            trips.as_array().expect("round_trip_ns_runs"),
        );
        assert_eq!((runs.len(), trips.len()), (2, 2), "{v}");
        for (p, t) in runs.iter().zip(trips) {
            if p.is_null() {
                assert!(t.is_null(), "{v}");
                continue;
            }
            let t: Vec<f64> = t
                .as_array()
                .expect("[before, after]")
                .iter()
                .filter_map(|x| x.as_f64())
                .collect();
            assert!(t.len() == 2 && t.iter().all(|&x| x > 0.0), "{v}");
            let apart = |x: f64| x > 180.0;
            let want = match (apart(t[0]), apart(t[1])) {
                (false, false) => "together",
                (true, true) => "apart",
                _ => "changing",
            };
            assert_eq!(p.as_str(), Some(want), "{v}");
        }
    }
    // The fraction per placement covers exactly the tagged roofline runs.
    let by = r["fraction_by_placement"]
        .as_object()
        .expect("fraction_by_placement");
    let tagged = r["placement_runs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| !p.is_null())
        .count();
    let counted: u64 = by.values().map(|x| x["runs"].as_u64().unwrap()).sum();
    assert_eq!(counted as usize, tagged, "{v}");
    assert!(
        by.values()
            .all(|x| x["fraction"].as_f64().is_some_and(|f| f > 0.0)),
        "{v}"
    );
    // The readable report went to stderr, with a count of the runs by placement.
    assert!(stderr(&o).contains("decode 4 tokens"), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("threads during the decode runs: "),
        "{}",
        stderr(&o)
    );
}

#[test]
fn threads_above_the_cpus_are_warned_about() {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let over = (cpus + 1).to_string();
    let fits = cpus.min(2).to_string();
    let (o, _) = bench_json(&["--n-gen", "1", "--runs", "1", "--threads", &over]);
    let want = format!("warning: --threads {over} is more than the {cpus} CPU");
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    let (o, _) = bench_json(&["--n-gen", "1", "--runs", "1", "--threads", &fits]);
    assert!(!stderr(&o).contains("warning: --threads"), "{}", stderr(&o));
}

#[test]
fn bench_with_one_thread_tags_no_placement() {
    let (o, v) = bench_json(&["--n-gen", "2", "--runs", "1", "--threads", "1"]);
    assert!(
        v["placement_runs"].is_null() && v["round_trip_ns_runs"].is_null(),
        "{v}"
    );
    let r = &v["roofline"];
    assert!(r["placement_runs"].is_null(), "{v}");
    assert_eq!(
        r["fraction_by_placement"].as_object().map(|m| m.len()),
        Some(0),
        "{v}"
    );
    assert!(!stderr(&o).contains("round trip"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("threads during"), "{}", stderr(&o));
}

#[test]
fn bench_ctx_sets_the_context_and_refuses_one_too_small() {
    let m = model_path();
    let m = m.to_str().unwrap();
    let args = |ctx: &'static str| {
        [
            "bench",
            "-m",
            m,
            "--n-prompt",
            "8",
            "--n-gen",
            "4",
            "--runs",
            "1",
            "--ctx",
            ctx,
            "--json",
        ]
    };
    let o = ingot(&args("13"));
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(stdout(&o).trim()).expect("one JSON object");
    assert_eq!(v["n_ctx"], 13);
    let o = ingot(&args("12"));
    assert!(!o.status.success(), "--ctx 12 holds no 8 + 4 + 1 tokens");
    let err = stderr(&o);
    assert!(
        err.contains("--ctx 12 is too small") && !err.contains("panicked"),
        "{err}"
    );
    assert!(
        stdout(&o).trim().is_empty(),
        "partial output: {}",
        stdout(&o)
    );
}

#[test]
fn device_cuda_without_a_gpu_fails_cleanly() {
    // Without `--features cuda`, or without an NVIDIA driver, `--device cuda` is a one-line error
    // (never a panic or partial output); on a machine with a GPU and the feature it runs.
    let m = model_path();
    for cmd in ["generate", "bench"] {
        let mut args = vec![cmd, "-m", m.to_str().unwrap(), "--device", "cuda"];
        if cmd == "generate" {
            args.extend(["-p", "Hello", "-n", "2", "--temp", "0"]);
        } else {
            args.extend(["--prompt", "8", "--gen", "2", "--runs", "1"]);
        }
        let o = ingot(&args);
        let gpu = cfg!(feature = "cuda") && std::path::Path::new("/dev/nvidiactl").exists();
        if gpu {
            assert!(o.status.success(), "{}", stderr(&o));
            continue;
        }
        assert!(
            !o.status.success(),
            "{cmd} --device cuda succeeded without a GPU"
        );
        let err = stderr(&o);
        assert!(err.contains("CUDA") && !err.contains("panicked"), "{err}");
        assert!(
            stdout(&o).trim().is_empty(),
            "partial output: {}",
            stdout(&o)
        );
    }
}
