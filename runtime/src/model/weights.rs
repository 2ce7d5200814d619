//! Views of a llama model's weight tensors inside the mapped file, checked against the [`Config`] at
//! load so that the forward pass never meets a shape it did not expect. Nothing is copied.

use super::Config;
use crate::gguf::{Gguf, TensorInfo};
use crate::prelude::*;
use crate::{Error, Result};
use ingot_kernels::QuantType;

/// A 2-D weight matrix (or 1-D vector when `rows == 1`) borrowed from the file: `rows` rows of
/// `cols` elements each, every row `ty.row_bytes(cols)` bytes.
#[derive(Clone, Copy, Debug)]
pub struct Matrix<'a> {
    pub name: &'a str,
    pub ty: QuantType,
    pub rows: usize,
    pub cols: usize,
    pub data: &'a [u8],
    /// Where the model keeps this matrix repacked for its kernels ([`ingot_kernels::packed`]):
    /// `(offset, len)` in the model's packed arena; `None` when the products read `data`.
    pub packed: Option<(usize, usize)>,
}

impl<'a> Matrix<'a> {
    /// Bytes of one row.
    pub fn row_bytes(&self) -> usize {
        self.data.len() / self.rows
    }

    /// The bytes of row `r`.
    pub fn row(&self, r: usize) -> &'a [u8] {
        let rb = self.row_bytes();
        &self.data[r * rb..(r + 1) * rb]
    }
}

/// A 1-D f32 vector in the file (norm weights), read element by element so that no alignment of the
/// mapping is assumed.
#[derive(Clone, Copy, Debug)]
pub struct Vector<'a> {
    pub name: &'a str,
    pub(super) data: &'a [u8],
    /// Where [`super::Model::norm_bytes`] finds a copy of `data` made at load (offset, length in
    /// the model's copy), if one was made.
    pub(super) copy: Option<(usize, usize)>,
}

impl<'a> Vector<'a> {
    /// Element `i`.
    #[inline]
    pub fn get(&self, i: usize) -> f32 {
        let b = &self.data[4 * i..4 * i + 4];
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / 4
    }

    /// The elements as the file stores them: little-endian f32, 4 bytes each, any alignment.
    pub fn le_bytes(&self) -> &'a [u8] {
        self.data
    }

    /// True when empty (never, for a loaded model).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// The weights of one transformer block.
#[derive(Clone, Debug)]
pub struct Layer<'a> {
    pub attn_norm: Vector<'a>, // (C,)
    pub wq: Matrix<'a>,        // (H*D, C)
    pub wk: Matrix<'a>,        // (Hkv*D, C)
    pub wv: Matrix<'a>,        // (Hkv*D, C)
    pub wo: Matrix<'a>,        // (C, H*D)
    pub ffn_norm: Vector<'a>,  // (C,)
    pub w_gate: Matrix<'a>,    // (F, C)
    pub w_up: Matrix<'a>,      // (F, C)
    pub w_down: Matrix<'a>,    // (C, F)
}

/// All weights of a llama model.
#[derive(Clone, Debug)]
pub struct Weights<'a> {
    pub token_embd: Matrix<'a>,  // (V, C)
    pub output_norm: Vector<'a>, // (C,)
    /// The output projection; the embedding itself when the model ties them.
    pub output: Matrix<'a>, // (V, C)
    pub tied_output: bool,
    pub layers: Vec<Layer<'a>>,
}

fn tensor<'a, 'g>(gguf: &'g Gguf<'a>, name: &str) -> Result<&'g TensorInfo<'a>> {
    gguf.tensor(name).ok_or_else(|| Error::Tensor {
        name: name.into(),
        what: "missing from the file".into(),
    })
}

fn matrix<'a>(gguf: &Gguf<'a>, name: &str, rows: usize, cols: usize) -> Result<Matrix<'a>> {
    let t = tensor(gguf, name)?;
    check_shape(t, &[cols as u64, rows as u64])?;
    if matches!(t.ty, QuantType::Q8_1 | QuantType::Q8_K) {
        return Err(Error::Tensor {
            name: name.into(),
            what: format!("{} is an activation format, not a weight type", t.ty),
        });
    }
    Ok(Matrix {
        name: t.name,
        ty: t.ty,
        rows,
        cols,
        data: t.data,
        packed: None,
    })
}

fn vector<'a>(gguf: &Gguf<'a>, name: &str, len: usize) -> Result<Vector<'a>> {
    let t = tensor(gguf, name)?;
    check_shape(t, &[len as u64])?;
    if t.ty != QuantType::F32 {
        return Err(Error::Tensor {
            name: name.into(),
            what: format!("norm weights must be F32, found {}", t.ty.name()),
        });
    }
    Ok(Vector {
        name: t.name,
        data: t.data,
        copy: None,
    })
}

fn check_shape(t: &TensorInfo<'_>, want: &[u64]) -> Result<()> {
    // Trailing dimensions of 1 are equivalent to fewer dimensions.
    let mut got = t.shape();
    while got.len() > want.len() && got.last() == Some(&1) {
        got = &got[..got.len() - 1];
    }
    let mut want_trim = want;
    while want_trim.len() > got.len() && want_trim.last() == Some(&1) {
        want_trim = &want_trim[..want_trim.len() - 1];
    }
    if got != want_trim {
        return Err(Error::Tensor {
            name: t.name.into(),
            what: format!(
                "shape {got:?} does not match the metadata, expected {want:?} (ggml order)"
            ),
        });
    }
    Ok(())
}

impl<'a> Weights<'a> {
    /// Every weight matrix a product reads: the output projection, then each layer's seven.
    pub fn matrices(&self) -> impl Iterator<Item = &Matrix<'a>> {
        core::iter::once(&self.output).chain(
            self.layers
                .iter()
                .flat_map(|l| [&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down]),
        )
    }

    /// Finds and checks every tensor of a llama model described by `cfg`.
    pub fn from_gguf(gguf: &Gguf<'a>, cfg: &Config) -> Result<Weights<'a>> {
        let (c, v, f) = (cfg.n_embd, cfg.n_vocab, cfg.n_ff);
        let token_embd = matrix(gguf, "token_embd.weight", v, c)?;
        let output_norm = vector(gguf, "output_norm.weight", c)?;
        let (output, tied_output) = match gguf.tensor("output.weight") {
            Some(_) => (matrix(gguf, "output.weight", v, c)?, false),
            None => (token_embd, true),
        };
        let mut layers = Vec::with_capacity(cfg.n_layer);
        for i in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{i}.{s}.weight");
            layers.push(Layer {
                attn_norm: vector(gguf, &n("attn_norm"), c)?,
                wq: matrix(gguf, &n("attn_q"), cfg.q_dim(), c)?,
                wk: matrix(gguf, &n("attn_k"), cfg.kv_dim(), c)?,
                wv: matrix(gguf, &n("attn_v"), cfg.kv_dim(), c)?,
                wo: matrix(gguf, &n("attn_output"), c, cfg.q_dim())?,
                ffn_norm: vector(gguf, &n("ffn_norm"), c)?,
                w_gate: matrix(gguf, &n("ffn_gate"), f, c)?,
                w_up: matrix(gguf, &n("ffn_up"), f, c)?,
                w_down: matrix(gguf, &n("ffn_down"), c, f)?,
            });
        }
        Ok(Weights {
            token_embd,
            output_norm,
            output,
            tied_output,
            layers,
        })
    }
}
