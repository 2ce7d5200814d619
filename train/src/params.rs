//! Where each parameter tensor lives in the one flat buffer that holds them all (and, in the same
//! layout, the gradients and the optimizer's moments), and the named views into it. Tensor names and
//! shapes are GGUF llama's (`token_embd.weight`, `blk.N.attn_q.weight`, ...) with shapes written
//! PyTorch-style `(rows, cols)` = `(out, in)`, so the converter maps them one to one.
//!
//! The order is defined once, by [`Tensors::build`]; the offsets table and the slice views both come
//! from it.

use crate::config::Config;

/// One layer's tensors (`S` is a shape, a range, or a slice).
#[derive(Debug, Clone)]
pub struct LayerTensors<S> {
    pub attn_norm: S,   // (C,)
    pub attn_q: S,      // (H*D, C)
    pub attn_k: S,      // (Hkv*D, C)
    pub attn_v: S,      // (Hkv*D, C)
    pub attn_output: S, // (C, H*D)
    pub ffn_norm: S,    // (C,)
    pub ffn_gate: S,    // (F, C)
    pub ffn_up: S,      // (F, C)
    pub ffn_down: S,    // (C, F)
}

/// The whole model's tensors, in flat-buffer order.
#[derive(Debug, Clone)]
pub struct Tensors<S> {
    pub token_embd: S, // (V, C)
    pub layers: Vec<LayerTensors<S>>,
    pub output_norm: S,    // (C,)
    pub output: Option<S>, // (V, C); `None` when tied to `token_embd`
}

/// A tensor's place in the flat buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorSpec {
    pub name: String,
    /// PyTorch order: `(out, in)` for a weight matrix.
    pub shape: Vec<usize>,
    pub offset: usize,
    pub len: usize,
}

impl TensorSpec {
    /// Matrices (embeddings, projections) get weight decay; vectors (norm gains) do not.
    pub fn is_matrix(&self) -> bool {
        self.shape.len() >= 2
    }
}

impl<S> Tensors<S> {
    /// Visits the tensors in buffer order, asking `take(name, shape)` for each.
    pub fn build(cfg: &Config, mut take: impl FnMut(String, Vec<usize>) -> S) -> Self {
        let (c, v, f, kv) = (cfg.dim, cfg.vocab_size, cfg.ffn_dim, cfg.kv_dim());
        let qd = cfg.n_heads * cfg.head_dim();
        let token_embd = take("token_embd.weight".into(), vec![v, c]);
        let layers = (0..cfg.n_layers)
            .map(|l| {
                let mut t =
                    |name: &str, shape: Vec<usize>| take(format!("blk.{l}.{name}.weight"), shape);
                LayerTensors {
                    attn_norm: t("attn_norm", vec![c]),
                    attn_q: t("attn_q", vec![qd, c]),
                    attn_k: t("attn_k", vec![kv, c]),
                    attn_v: t("attn_v", vec![kv, c]),
                    attn_output: t("attn_output", vec![c, qd]),
                    ffn_norm: t("ffn_norm", vec![c]),
                    ffn_gate: t("ffn_gate", vec![f, c]),
                    ffn_up: t("ffn_up", vec![f, c]),
                    ffn_down: t("ffn_down", vec![c, f]),
                }
            })
            .collect();
        let output_norm = take("output_norm.weight".into(), vec![c]);
        let output = (!cfg.tied_embeddings).then(|| take("output.weight".into(), vec![v, c]));
        Tensors {
            token_embd,
            layers,
            output_norm,
            output,
        }
    }
}

/// Every tensor's name, shape and offset, in buffer order.
pub fn layout(cfg: &Config) -> Vec<TensorSpec> {
    let mut specs = Vec::new();
    let mut offset = 0;
    Tensors::build(cfg, |name, shape| {
        let len = shape.iter().product();
        specs.push(TensorSpec {
            name,
            shape,
            offset,
            len,
        });
        offset += len;
    });
    specs
}

/// The number of parameters (the flat buffer's length).
pub fn num_params(cfg: &Config) -> usize {
    layout(cfg).iter().map(|s| s.len).sum()
}

/// Every tensor's range in the flat buffer, by name: built once, so a training step slices the
/// buffers with it instead of building [`views`] (which allocates the per-layer list each time).
pub fn ranges(cfg: &Config) -> Tensors<std::ops::Range<usize>> {
    let mut offset = 0;
    Tensors::build(cfg, |_, shape| {
        let len: usize = shape.iter().product();
        offset += len;
        offset - len..offset
    })
}

/// Named read-only views of a flat buffer laid out for `cfg`.
pub fn views<'a, F>(cfg: &Config, buf: &'a [F]) -> Tensors<&'a [F]> {
    let mut rest = buf;
    let t = Tensors::build(cfg, |_, shape| {
        let (a, b) = rest.split_at(shape.iter().product());
        rest = b;
        a
    });
    assert!(rest.is_empty(), "buffer longer than the layout");
    t
}

/// Named mutable views of a flat buffer laid out for `cfg`.
pub fn views_mut<'a, F>(cfg: &Config, buf: &'a mut [F]) -> Tensors<&'a mut [F]> {
    let mut rest = buf;
    let t = Tensors::build(cfg, |_, shape| {
        let (a, b) = std::mem::take(&mut rest).split_at_mut(shape.iter().product());
        rest = b;
        a
    });
    assert!(rest.is_empty(), "buffer longer than the layout");
    t
}
