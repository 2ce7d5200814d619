//! The model's hyperparameters and their validation. Dimension letters as in the crate docs.

use crate::error::{Error, Result};

/// A llama-style decoder's shape.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Config {
    /// `V`: vocabulary size.
    pub vocab_size: usize,
    /// `C`: model width (residual stream).
    pub dim: usize,
    /// `L`: number of blocks.
    pub n_layers: usize,
    /// `H`: query heads; `D = C / H`.
    pub n_heads: usize,
    /// `Hkv`: key/value heads, dividing `H` (`Hkv == H`: no grouping).
    pub n_kv_heads: usize,
    /// `F`: SwiGLU hidden width.
    pub ffn_dim: usize,
    /// Longest sequence `T` the RoPE table covers.
    pub max_seq_len: usize,
    /// RoPE base (`llama.rope.freq_base`).
    pub rope_base: f32,
    /// RMSNorm epsilon (`llama.attention.layer_norm_rms_epsilon`).
    pub norm_eps: f32,
    /// The output head reuses the token embedding (`V, C`) instead of its own matrix.
    pub tied_embeddings: bool,
}

impl Config {
    /// `D`: the head size.
    pub fn head_dim(&self) -> usize {
        self.dim / self.n_heads
    }

    /// `Hkv * D`: the width of the K and V projections.
    pub fn kv_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim()
    }

    /// Checks the shape is one the layers can run.
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(Error::Config { what });
        let sizes = [
            ("vocab_size", self.vocab_size),
            ("dim", self.dim),
            ("n_layers", self.n_layers),
            ("n_heads", self.n_heads),
            ("n_kv_heads", self.n_kv_heads),
            ("ffn_dim", self.ffn_dim),
            ("max_seq_len", self.max_seq_len),
        ];
        if let Some((name, _)) = sizes.iter().find(|(_, v)| *v == 0) {
            return bad(format!("{name} must be positive"));
        }
        if self.vocab_size > u32::MAX as usize {
            return bad(format!(
                "vocab_size {} does not fit a u32 token id",
                self.vocab_size
            ));
        }
        if !self.dim.is_multiple_of(self.n_heads) {
            return bad(format!(
                "n_heads {} must divide dim {}",
                self.n_heads, self.dim
            ));
        }
        if !self.n_heads.is_multiple_of(self.n_kv_heads) {
            return bad(format!(
                "n_kv_heads {} must divide n_heads {}",
                self.n_kv_heads, self.n_heads
            ));
        }
        if !self.head_dim().is_multiple_of(2) {
            return bad(format!(
                "head size {} must be even for RoPE",
                self.head_dim()
            ));
        }
        if !(self.rope_base.is_finite() && self.rope_base > 1.0) {
            return bad(format!("rope_base {} must exceed 1", self.rope_base));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return bad(format!("norm_eps {} must be positive", self.norm_eps));
        }
        Ok(())
    }
}
