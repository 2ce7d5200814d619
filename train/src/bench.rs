//! What one training step costs in floating-point operations, and the process's time on the CPU: the
//! figures `ingot train bench` turns into GFLOP/s and that BENCHMARKS.md compares with the core's peak
//! (`kernels/examples/fma_peak.rs`) to bound the tokens/s any f32 engine can reach.
//!
//! Counting convention (PyTorch's `torch.utils.flop_counter`, checked against it in
//! `tests/step_flops.rs`): a product of `(M, K)` by `(K, N)` is `2 M N K` FLOPs; element-wise work
//! (norms, RoPE, SwiGLU, softmax, cross-entropy, AdamW) is not counted: it is `O(N C)` against the
//! products' `O(N C^2)` and runs far below the FMA units' rate anyway.

use crate::config::Config;

/// FLOPs of one optimizer step (forward and backward of one `(B, T)` micro-batch).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepFlops {
    /// The linear layers' products, the head included: `2 N P` forward (`P` the matrices'
    /// parameters; a tied head counted once), twice that backward (`dY W` and `dYᵀ X`), `6 N P` in all.
    pub matmul: f64,
    /// Attention's forward products (`Q Kᵀ` and `P V`) over the whole `T x T` square:
    /// `4 B H T² D` per block, what PyTorch's counter reports for `scaled_dot_product_attention`.
    pub attention_forward_dense: f64,
    /// Attention forward and backward (`dP = dO Vᵀ`, `dV = Pᵀ dO`, `dQ = dS K`, `dK = dSᵀ Q`: twice the
    /// forward) on the causal lower triangle only (`T (T + 1) / 2` of the `T²` scores): the least any
    /// engine that keeps the probabilities must multiply.
    pub attention_causal: f64,
}

impl StepFlops {
    /// The FLOPs no f32 engine can avoid: the linear layers and causal attention, forward and backward.
    pub fn essential(&self) -> f64 {
        self.matmul + self.attention_causal
    }
}

/// The FLOPs of one step of `cfg` on a `(B, T)` batch.
pub fn step_flops(cfg: &Config, b: usize, t: usize) -> StepFlops {
    let n = (b * t) as f64;
    let (c, f, v) = (cfg.dim as f64, cfg.ffn_dim as f64, cfg.vocab_size as f64);
    let (nh, d) = (cfg.n_heads as f64, cfg.head_dim() as f64);
    let (qd, kvd) = (nh * d, cfg.kv_dim() as f64);
    let per_block = c * qd + 2.0 * c * kvd + qd * c + 3.0 * c * f; // Wq, Wk, Wv, Wo, gate, up, down
    let matrices = cfg.n_layers as f64 * per_block + v * c; // the head; tied or not, one product
    let t = t as f64;
    let attention_forward_dense = 4.0 * b as f64 * nh * t * t * d * cfg.n_layers as f64;
    StepFlops {
        matmul: 6.0 * n * matrices,
        attention_forward_dense,
        attention_causal: 3.0 * attention_forward_dense * (t + 1.0) / (2.0 * t),
    }
}

/// Seconds all of this process's threads have run on a CPU (the sum over `/proc/self/task/*/schedstat`,
/// nanoseconds), so time the OS gives other processes on a busy machine does not count; `None` where
/// that file does not exist (not Linux). Threads that have exited are not counted: measure while the
/// pool's threads live.
pub fn process_cpu_seconds() -> Option<f64> {
    let mut ns = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let s = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        ns += s.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(ns as f64 * 1e-9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_advances_with_work() {
        let Some(t0) = process_cpu_seconds() else {
            return; // not Linux
        };
        let mut x = 1u64;
        let start = std::time::Instant::now();
        while start.elapsed().as_millis() < 30 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let t1 = process_cpu_seconds().expect("read once");
        assert!(t1 > t0, "{t0} -> {t1}");
    }
}
