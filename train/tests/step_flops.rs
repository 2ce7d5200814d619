//! `bench::step_flops` against PyTorch's own FLOP counter (`torch.utils.flop_counter.FlopCounterMode`)
//! on the two bench configurations (`testdata/train/step_flops.json`, made by
//! `tools/oracles/bench_torch_train.py --flops-json`).

use ingot_train::bench::step_flops;
use ingot_train::Config;

fn fixture() -> serde_json::Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/train/step_flops.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
}

fn config(f: &serde_json::Value) -> (Config, usize, usize) {
    let u = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{k}")) as usize;
    let cfg = Config {
        vocab_size: u("vocab"),
        dim: u("dim"),
        n_layers: u("layers"),
        n_heads: u("heads"),
        n_kv_heads: u("heads"),
        ffn_dim: u("ffn"),
        max_seq_len: u("ctx"),
        rope_base: 10000.0,
        norm_eps: 1e-5,
        tied_embeddings: true,
    };
    (cfg, u("batch"), u("ctx"))
}

#[test]
fn matches_pytorch_flop_counter() {
    let fx = fixture();
    for name in ["baby", "large"] {
        let f = &fx[name];
        let (cfg, b, t) = config(f);
        let s = step_flops(&cfg, b, t);
        let n = |k: &str| f[k].as_u64().unwrap_or_else(|| panic!("{name}.{k}")) as f64;
        // Every linear layer's forward and both backward products, the tied head once.
        assert_eq!(s.matmul, n("mm"), "{name}: matrix products");
        // Attention's forward over the full T x T square, as PyTorch counts it.
        assert_eq!(s.attention_forward_dense, n("sdpa_forward"), "{name}");
        // PyTorch's flash-attention backward recomputes the scores (5 products to our 4, which
        // reuse the saved probabilities): 2.5x its forward against our 2x.
        assert_eq!(n("sdpa_backward"), 2.5 * n("sdpa_forward"), "{name}");
        let tt = t as f64;
        let causal = 3.0 * n("sdpa_forward") * (tt + 1.0) / (2.0 * tt);
        assert_eq!(s.attention_causal, causal, "{name}");
        assert!(f["other"].as_object().is_some_and(|o| o.is_empty()));
    }
}
