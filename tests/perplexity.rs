//! `ingot perplexity` agrees with llama.cpp's perplexity (same method as `llama-perplexity`: chunks
//! of 512 tokens, second half scored) on the same text. The reference value was computed by llama.cpp
//! itself (tools/peer `perplexity`, recorded in testdata/peer/perplexity.json).

mod common;

use serde_json::Value;
use std::process::Command;

/// The bound: within 0.5% of llama.cpp's value.
const REL_TOL: f64 = 0.005;

#[test]
fn perplexity_matches_llama_cpp_within_half_a_percent() {
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(common::testdata("peer/perplexity.json")).unwrap(),
    )
    .unwrap();
    let text = common::testdata(&format!("text/{}", fixture["text_file"].as_str().unwrap()));
    // Two chunks keep the test short; the four-chunk figure is in BENCHMARKS.md.
    let run = fixture["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["chunks"] == 2)
        .unwrap();
    let want = run["ppl"].as_f64().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_ingot"))
        .args([
            "perplexity",
            "-m",
            common::model_path().to_str().unwrap(),
            "-f",
            text.to_str().unwrap(),
        ])
        .args(["--ctx", "512", "--chunks", "2", "--threads", "2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let last = stdout.lines().last().unwrap();
    let got: f64 = last
        .strip_prefix("PPL = ")
        .expect("last line is `PPL = <value>`")
        .parse()
        .unwrap();
    let scored: usize = stdout
        .lines()
        .find_map(|l| l.strip_prefix("scored tokens: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        scored as u64,
        run["tokens_scored"].as_u64().unwrap(),
        "same tokens scored as llama.cpp"
    );
    let rel = (got - want).abs() / want;
    println!(
        "ingot PPL {got:.4}, llama.cpp {want:.4}, relative difference {:.4}%",
        rel * 100.0
    );
    assert!(
        rel <= REL_TOL,
        "ingot PPL {got} vs llama.cpp {want}: {:.3}% apart",
        rel * 100.0
    );
}
