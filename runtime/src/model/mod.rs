//! A loaded model: hyperparameters ([`Config`]), weight views ([`Weights`]), its tokenizer and chat
//! template, all borrowed from or built once from a parsed GGUF file. The model is read-only and can
//! be shared by many [`Session`]s, which own the mutable state.

mod config;
#[doc(hidden)]
pub mod ops;
mod session;
pub mod weights;

pub use config::{Config, LLAMA_LIKE};
pub use session::{
    kv_cache_bytes, session_bytes, threads_apart, AttentionPlace, KvType, Session, SessionParams,
    SESSION_ARENA_ALIGN, SESSION_HANDLE_BYTES, THREADS_APART_NS,
};
pub use weights::{Layer, Matrix, Vector, Weights};

use crate::gguf::{keys, Gguf};
use crate::prelude::*;
use crate::tokenizer::{Tokenizer, TokenizerConfig};
use crate::{Error, Result};
#[cfg(not(feature = "std"))]
use ingot_kernels::math::FloatExt;
use ingot_kernels::{packed, Kernels, QuantType};

/// A llama-architecture model over the bytes of a GGUF file.
#[derive(Debug)]
pub struct Model<'a> {
    pub gguf: Gguf<'a>,
    pub config: Config,
    pub weights: Weights<'a>,
    pub tokenizer: Tokenizer,
    /// `tokenizer.chat_template`, when the file has one.
    pub chat_template: Option<&'a str>,
    /// Weight matrices repacked at load for the kernels ([`ingot_kernels::packed`]); each
    /// [`Matrix::packed`] says where its copy is.
    packed: PackedMem,
    /// The norm weights copied out of the file at load ([`Model::from_file`]), so that decoding
    /// reads no page of the file's after loading; each [`Vector`]'s `copy` says where.
    norms: Vec<u8>,
}

/// The memory of the repacked weights. With `std` on Linux, an anonymous mapping advised for
/// transparent huge pages: a decode step streams all of it once per token, and with 4 KiB pages
/// the hardware prefetchers restart at every page and the TLB misses on every page.
#[derive(Debug)]
enum PackedMem {
    Heap(Vec<u8>),
    #[cfg(feature = "std")]
    Map(memmap2::MmapMut),
}

impl PackedMem {
    /// `len` zeroed bytes.
    fn zeroed(len: usize) -> Result<PackedMem> {
        #[cfg(feature = "std")]
        if len > 0 {
            if let Ok(m) = memmap2::MmapMut::map_anon(len) {
                #[cfg(target_os = "linux")]
                let _ = m.advise(memmap2::Advice::HugePage); // a hint: fine if refused
                return Ok(PackedMem::Map(m));
            }
        }
        let mut v = Vec::new();
        v.try_reserve_exact(len).map_err(|_| Error::Model {
            what: format!("cannot allocate {len} bytes to repack the weights"),
        })?;
        v.resize(len, 0);
        Ok(PackedMem::Heap(v))
    }
}

impl core::ops::Deref for PackedMem {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            PackedMem::Heap(v) => v,
            #[cfg(feature = "std")]
            PackedMem::Map(m) => m,
        }
    }
}

impl core::ops::DerefMut for PackedMem {
    fn deref_mut(&mut self) -> &mut [u8] {
        match self {
            PackedMem::Heap(v) => v,
            #[cfg(feature = "std")]
            PackedMem::Map(m) => m,
        }
    }
}

impl<'a> Model<'a> {
    /// Validates everything the forward pass and tokenizer will rely on: hyperparameters, every tensor's
    /// presence, type and shape, and the tokenizer's consistency with the embedding.
    ///
    /// Weight matrices that the best kernels of this CPU ([`Kernels::best`]) compute faster in a
    /// packed layout are repacked here, once, as [`Repack::from_env`] says (by default Q4_0, Q8_0
    /// and Q4_1 where the kernels pack them, each in the row-major path's arithmetic; see
    /// [`Repack::Exact`]).
    pub fn from_gguf(gguf: Gguf<'a>) -> Result<Model<'a>> {
        Self::from_gguf_with(gguf, Repack::from_env()?)
    }

    /// [`Model::from_gguf`] with an explicit repacking policy.
    pub fn from_gguf_with(gguf: Gguf<'a>, repack: Repack) -> Result<Model<'a>> {
        let mut model = Self::from_gguf_unpacked(gguf)?;
        model.repack(&Kernels::best(), repack, &mut |_| ())?;
        Ok(model)
    }

    /// [`Model::from_gguf`] over a mapped file, releasing the file's pages
    /// ([`GgufFile::release`](crate::gguf::GgufFile::release)) as it goes, so the process holds
    /// one copy of the repacked weights, not two. The norm weights are copied out first (a few
    /// KiB a layer); then the whole mapping is released after the metadata and norms are read and
    /// after each repacked matrix: what is still read from the file later (weights not repacked,
    /// embedding rows of an untied model, the chat template) comes back page by page when first
    /// read. Releasing the whole mapping, not just the bytes read, matters: the kernel maps whole
    /// page-cache folios (up to 2 MiB) and 64 KiB of fault-around at each fault, so reading the 61
    /// norm vectors of SmolLM2 mapped 24 MiB of the file, and reading a matrix maps the edges of
    /// its neighbours (BENCHMARKS.md).
    #[cfg(feature = "std")]
    pub fn from_file(file: &'a crate::gguf::GgufFile) -> Result<Model<'a>> {
        let mut model = Self::from_gguf_unpacked(file.parse()?)?;
        model.copy_norms();
        file.release(file.bytes());
        // The peak is the packed copy so far plus about one matrix of the file, not two copies.
        model.repack(&Kernels::best(), Repack::from_env()?, &mut |_| {
            file.release(file.bytes());
        })?;
        file.release(file.bytes());
        Ok(model)
    }

    /// Copies every norm vector into [`Model::norms`] and points it there.
    #[cfg(feature = "std")]
    fn copy_norms(&mut self) {
        let w = &mut self.weights;
        let vectors = w
            .layers
            .iter_mut()
            .flat_map(|l| [&mut l.attn_norm, &mut l.ffn_norm])
            .chain([&mut w.output_norm]);
        for v in vectors {
            v.copy = Some((self.norms.len(), v.data.len()));
            self.norms.extend_from_slice(v.data);
        }
    }

    /// The little-endian f32 bytes of norm vector `v` of this model: its copy made at load, else
    /// the file's.
    pub fn norm_bytes(&self, v: &Vector<'a>) -> &[u8] {
        match v.copy {
            Some((off, len)) => &self.norms[off..off + len],
            None => v.le_bytes(),
        }
    }

    /// As [`Model::from_gguf`], without repacking ([`Repack::None`]): every product reads the
    /// file's bytes, exactly as llama.cpp's non-repacked CPU path computes them.
    pub fn from_gguf_unpacked(gguf: Gguf<'a>) -> Result<Model<'a>> {
        let config = Config::from_gguf(&gguf)?;
        let weights = Weights::from_gguf(&gguf, &config)?;
        let tokenizer = Tokenizer::new(tokenizer_config(&gguf)?)?;
        if tokenizer.n_vocab() > config.n_vocab {
            return Err(Error::Model {
                what: format!(
                    "the tokenizer has {} tokens but the embedding only {} rows",
                    tokenizer.n_vocab(),
                    config.n_vocab
                ),
            });
        }
        let chat_template = gguf.get_str(keys::TOKENIZER_CHAT_TEMPLATE)?;
        Ok(Model {
            gguf,
            config,
            weights,
            tokenizer,
            chat_template,
            packed: PackedMem::Heap(Vec::new()),
            norms: Vec::new(),
        })
    }

    /// Copies every matrix that `kernels` [`Kernels::packs`] and `policy` selects into the packed
    /// arena, in the packed layout (same size as the original). The embedding itself is only
    /// gathered from, so it keeps its rows (the tied output projection is packed like any other
    /// product).
    fn repack(
        &mut self,
        kernels: &Kernels,
        policy: Repack,
        release: &mut dyn FnMut(&'a [u8]),
    ) -> Result<()> {
        let w = &mut self.weights;
        let mut mats: Vec<&mut Matrix<'a>> = vec![&mut w.output];
        for l in &mut w.layers {
            mats.extend([
                &mut l.wq,
                &mut l.wk,
                &mut l.wv,
                &mut l.wo,
                &mut l.w_gate,
                &mut l.w_up,
                &mut l.w_down,
            ]);
        }
        mats.retain(|m| {
            policy.selects(m.ty) && kernels.packs(m.ty) && packed::packable(m.ty, m.rows, m.cols)
        });
        let total: usize = mats.iter().map(|m| m.data.len()).sum();
        let mut arena = PackedMem::zeroed(total)?;
        let mut off = 0;
        for m in mats {
            let len = m.data.len();
            packed::pack(m.ty, m.data, m.rows, m.cols, &mut arena[off..off + len]);
            release(m.data);
            m.packed = Some((off, len));
            off += len;
        }
        self.packed = arena;
        Ok(())
    }

    /// Row `r` of the token embedding, in the file's bytes: the file's row, or, when the output
    /// projection is the embedding itself and was repacked (its file pages released at load), the
    /// row unpacked from the packed copy into `scratch` (one row of the embedding's bytes), so the
    /// lookups of a session never map the file's pages back in.
    ///
    /// # Panics
    /// If `r` is not a row of the embedding, or `scratch` is not one row when it is needed.
    pub fn embedding_row<'s>(&'s self, r: usize, scratch: &'s mut [u8]) -> &'s [u8] {
        let w = &self.weights;
        match w.output.packed {
            Some(_) if w.tied_output => {
                let m = &w.output;
                packed::unpack_row(m.ty, self.product_bytes(m), m.rows, m.cols, r, scratch);
                scratch
            }
            _ => w.token_embd.row(r),
        }
    }

    /// The bytes the products of `m` read: its packed copy when it has one, else the file's.
    pub fn product_bytes(&self, m: &Matrix<'a>) -> &[u8] {
        match m.packed {
            Some((off, len)) => &self.packed[off..off + len],
            None => m.data,
        }
    }

    /// Bytes of the packed copies made at load (0 when nothing was repacked).
    pub fn packed_bytes(&self) -> usize {
        self.packed.len()
    }

    /// Bytes of all weight tensors (what a decode step reads, roughly).
    pub fn weight_bytes(&self) -> u64 {
        self.gguf.tensor_bytes()
    }
}

/// Which weight matrices a model repacks at load for its kernels ([`ingot_kernels::packed`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Repack {
    /// None: every product reads the file's rows.
    None,
    /// Every type the kernels can pack with the arithmetic of the row-major path
    /// ([`Kernels::packs`]), so logits do not change: Q4_0 (llama.cpp repacks it the same way),
    /// Q8_0, Q4_1, Q5_0 and Q5_1 on AVX-512, AVX2 and NEON+dotprod, each in its path's row-major
    /// lane order ([`Kernels::packed_order`]: ggml's eight lanes on x86, so bit-identical to
    /// llama.cpp's x86 logits; the four `SDOT` lanes of ingot's row-major kernels on aarch64).
    /// See [`ingot_kernels::packed`]. The default.
    #[default]
    Exact,
}

impl Repack {
    /// From the environment variable `INGOT_REPACK`: `0` or `none`, `exact` (the default, also
    /// when unset; `all`, the name of an earlier mode that packed Q8_0 in another order, is the
    /// same now).
    pub fn from_env() -> Result<Repack> {
        #[cfg(feature = "std")]
        if let Some(v) = std::env::var_os("INGOT_REPACK") {
            return match v.to_str() {
                Some("0" | "none") => Ok(Repack::None),
                Some("exact" | "all" | "1" | "") => Ok(Repack::Exact),
                _ => Err(Error::Model {
                    what: format!("INGOT_REPACK={v:?}: expected 0, none, exact or all"),
                }),
            };
        }
        Ok(Repack::default())
    }

    /// Whether this policy repacks weights of type `ty` (where the kernels can).
    pub fn selects(self, ty: QuantType) -> bool {
        match self {
            Repack::None => false,
            Repack::Exact => matches!(
                ty,
                QuantType::Q4_0
                    | QuantType::Q8_0
                    | QuantType::Q4_1
                    | QuantType::Q5_0
                    | QuantType::Q5_1
            ),
        }
    }
}

/// Collects the `tokenizer.ggml.*` metadata into a [`TokenizerConfig`].
pub fn tokenizer_config(gguf: &Gguf<'_>) -> Result<TokenizerConfig> {
    let model = gguf
        .get_str(keys::TOKENIZER_MODEL)?
        .ok_or_else(|| Error::MissingKey {
            key: keys::TOKENIZER_MODEL.into(),
        })?
        .to_string();
    let pre = gguf
        .get_str(keys::TOKENIZER_PRE)?
        .unwrap_or("default")
        .to_string();
    let tokens_arr = gguf
        .get_array(keys::TOKENIZER_TOKENS)?
        .ok_or_else(|| Error::MissingKey {
            key: keys::TOKENIZER_TOKENS.into(),
        })?;
    let tokens: Vec<String> = tokens_arr
        .strings()
        .ok_or_else(|| Error::BadMetadata {
            key: keys::TOKENIZER_TOKENS.into(),
            what: "not an array of strings".into(),
        })?
        .map(str::to_string)
        .collect();
    let token_types = match gguf.get_array(keys::TOKENIZER_TOKEN_TYPE)? {
        None => Vec::new(),
        Some(a) => {
            let v: Option<Vec<i32>> = a
                .iter()
                .map(|x| x.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i32))
                .collect();
            let v = v.ok_or_else(|| Error::BadMetadata {
                key: keys::TOKENIZER_TOKEN_TYPE.into(),
                what: "not an array of integers".into(),
            })?;
            if v.len() != tokens.len() {
                return Err(Error::BadMetadata {
                    key: keys::TOKENIZER_TOKEN_TYPE.into(),
                    what: format!("{} entries for {} tokens", v.len(), tokens.len()),
                });
            }
            v
        }
    };
    let scores = match gguf.get_array(keys::TOKENIZER_SCORES)? {
        None => Vec::new(),
        Some(a) => {
            let v: Option<Vec<f32>> = a.iter().map(|x| x.as_f64().map(|f| f as f32)).collect();
            v.ok_or_else(|| Error::BadMetadata {
                key: keys::TOKENIZER_SCORES.into(),
                what: "not an array of numbers".into(),
            })?
        }
    };
    let merges = match gguf.get_array(keys::TOKENIZER_MERGES)? {
        None if model == "gpt2" => {
            return Err(Error::MissingKey {
                key: keys::TOKENIZER_MERGES.into(),
            })
        }
        None => Vec::new(),
        Some(a) => a
            .strings()
            .ok_or_else(|| Error::BadMetadata {
                key: keys::TOKENIZER_MERGES.into(),
                what: "not an array of strings".into(),
            })?
            .map(str::to_string)
            .collect(),
    };
    let id = |key: &str| -> Result<Option<u32>> {
        match gguf.get_u64(key)? {
            None => Ok(None),
            Some(v) if (v as usize) < tokens.len() => Ok(Some(v as u32)),
            Some(v) => Err(Error::BadMetadata {
                key: key.into(),
                what: format!("token id {v} is outside the vocabulary of {}", tokens.len()),
            }),
        }
    };
    let add_bos = match gguf.get_bool(keys::TOKENIZER_ADD_BOS)? {
        Some(b) => b,
        None => TokenizerConfig::default_add_bos(&model, &pre),
    };
    Ok(TokenizerConfig {
        model,
        pre,
        bos: id(keys::TOKENIZER_BOS_ID)?,
        eos: id(keys::TOKENIZER_EOS_ID)?,
        eot: id(keys::TOKENIZER_EOT_ID)?,
        unk: id(keys::TOKENIZER_UNK_ID)?,
        pad: id(keys::TOKENIZER_PAD_ID)?,
        add_bos,
        add_eos: gguf.get_bool(keys::TOKENIZER_ADD_EOS)?.unwrap_or(false),
        tokens,
        token_types,
        merges,
        scores,
    })
}
