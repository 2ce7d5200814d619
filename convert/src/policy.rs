//! Which type each tensor is written in: the target type or preset, `--tensor-type` overrides and
//! the per-tensor rules, modelled on llama.cpp's `llama_tensor_get_type` (`src/llama-quant.cpp`,
//! llama.cpp bundled with `llama-cpp-sys-2` 0.1.161).
//!
//! A target is a plain type (`Q4_0`, `Q4_K`, ...) or a llama.cpp file-type **preset** (`Q2_K`,
//! `Q3_K_M`, `Q4_K_S`, `Q4_K_M`, `Q5_K_S`, `Q5_K_M`, `Q6_K`): a default type plus per-tensor bumps.
//! `Q2_K` and `Q6_K` name the presets (`Q6_K` has no bumps, so it equals the plain type); `Q3_K`,
//! `Q4_K` and `Q5_K` are plain types. In `--tensor-type` every K name is the plain type.
//!
//! Rules, in order (the first that applies decides):
//!
//! 1. **Not a weight matrix → unchanged, F32.** A tensor is quantizable only when it has at least two
//!    dimensions, its name ends in `weight`, and it is not a norm (`_norm.weight`), an MoE router
//!    (`ffn_gate_inp.weight`) or a learned position / token-type embedding (llama.cpp's
//!    `tensor_allows_quantization`). Everything else keeps its type when that is F32 and is widened
//!    (exactly) to F32 when it is F16/BF16; llama.cpp copies these tensors unchanged, which for the
//!    files it writes means F32 as well. Overrides do not apply to them (as in llama.cpp).
//! 2. **`--tensor-type PATTERN=TYPE`**: the first override whose pattern occurs in the name
//!    ([`crate::pattern`]) sets the type (llama.cpp: the first `std::regex_search` hit; a manual type
//!    skips rules 3 and 4).
//! 3. **Output head (and tied token embeddings) at higher precision**, for every quantized target
//!    except Q8_0 (llama.cpp's `category == OUTPUT || (has_tied_embeddings && category == TOKEN_EMBD)`
//!    branch): `output.weight`, and `token_embd.weight` when the file has no `output.weight`, become
//!    **Q6_K** when their rows are a multiple of 256 elements and **Q8_0** otherwise (SmolLM2's 576:
//!    Q8_0). One deliberate difference: an *untied* `token_embd` is kept at Q8_0 for every quantized
//!    target below Q8_0 (plain or preset), where llama.cpp lets it follow the target (it is only a row
//!    lookup: the extra precision costs file size, not speed). With an F32/F16/BF16 or Q8_0 target the
//!    two tensors follow the target, as in llama.cpp.
//! 4. **Preset bumps** (only with a preset; `i` is the layer of the tensor, from `blk.<i>.`, `n` the
//!    number of layers; `more(i)` is llama.cpp's `use_more_bits`: `i < n/8 || i >= 7n/8 ||
//!    (i - n/8) % 3 == 2`; `gqa` = attention heads per KV head, from the `attn_q` / `attn_v` rows):
//!
//!    | preset | default | `attn_v` | `ffn_down` | `attn_output` |
//!    |---|---|---|---|---|
//!    | Q2_K   | Q2_K | Q4_K if gqa >= 4, else Q3_K | Q3_K | Q3_K |
//!    | Q3_K_M | Q3_K | Q5_K for i < 2, else Q4_K | Q5_K for i < n/16, else Q4_K | Q4_K |
//!    | Q4_K_S | Q4_K | Q5_K for i < 4 | Q5_K for i < n/8 | — |
//!    | Q4_K_M | Q4_K | Q6_K if more(i) | Q6_K if more(i) | — |
//!    | Q5_K_S | Q5_K | — | — | — |
//!    | Q5_K_M | Q5_K | Q6_K if more(i) | Q6_K if more(i) | — |
//!    | Q6_K   | Q6_K | — | — | — |
//!
//!    (llama.cpp counts `attn_v` / `ffn_down` tensors in file order; ingot reads the layer from the
//!    name, which is the same for llama files. Its MoE, Falcon and 70B special cases do not apply to
//!    the architectures ingot reads.)
//! 5. **Otherwise the target's default type.**
//!
//! Then the **shape fallback** (llama.cpp `tensor_type_fallback`): a quantized type needs the row length
//! (`dims[0]`) to be a multiple of its block (32, or 256 for K-quants). If it is not, a K-quant falls
//! back to a 32-element type — Q2_K and Q3_K to Q4_0, Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0 — and
//! when even that does not fit (or the type was a 32-element one) the tensor is written as F16.
//!
//! **Requantization.** A tensor that is already quantized is copied byte for byte when its chosen
//! type is its current type. Converting it to another *quantized* type is refused unless
//! `allow_requantize` is set (llama.cpp refuses with "requantizing from type X is disabled"); when
//! allowed, rows go through f32 (`to_f32` then `from_f32`, as llama.cpp's
//! `llama_tensor_dequantize_impl` + `ggml_quantize_chunk`). Dequantizing to F32, F16 or BF16 is always
//! allowed here (to F32 it is exact; llama.cpp refuses that too without `--allow-requantize`).

use crate::pattern::Pattern;
use crate::{Error, Result};
use ingot_kernels::QuantType;

/// The plain types `ingot convert` writes, in the order the help text lists them.
pub const SUPPORTED: [QuantType; 13] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q8_0,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
    QuantType::Q2_K,
    QuantType::Q3_K,
    QuantType::Q4_K,
    QuantType::Q5_K,
    QuantType::Q6_K,
];

/// llama.cpp file-type presets ingot writes (see the module docs for their rules).
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Preset {
    Q2_K,
    Q3_K_M,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
}

impl Preset {
    /// Every preset, in the order the help text lists them.
    pub const ALL: [Preset; 7] = [
        Preset::Q2_K,
        Preset::Q3_K_M,
        Preset::Q4_K_S,
        Preset::Q4_K_M,
        Preset::Q5_K_S,
        Preset::Q5_K_M,
        Preset::Q6_K,
    ];

    /// The llama.cpp name (`"Q4_K_M"`).
    pub const fn name(self) -> &'static str {
        match self {
            Preset::Q2_K => "Q2_K",
            Preset::Q3_K_M => "Q3_K_M",
            Preset::Q4_K_S => "Q4_K_S",
            Preset::Q4_K_M => "Q4_K_M",
            Preset::Q5_K_S => "Q5_K_S",
            Preset::Q5_K_M => "Q5_K_M",
            Preset::Q6_K => "Q6_K",
        }
    }

    /// The type of every tensor no rule bumps.
    pub const fn default_type(self) -> QuantType {
        match self {
            Preset::Q2_K => QuantType::Q2_K,
            Preset::Q3_K_M => QuantType::Q3_K,
            Preset::Q4_K_S | Preset::Q4_K_M => QuantType::Q4_K,
            Preset::Q5_K_S | Preset::Q5_K_M => QuantType::Q5_K,
            Preset::Q6_K => QuantType::Q6_K,
        }
    }

    /// llama.cpp's `LLAMA_FTYPE_MOSTLY_*` value (`include/llama.h`).
    pub const fn llama_ftype(self) -> u32 {
        match self {
            Preset::Q2_K => 10,
            Preset::Q3_K_M => 12,
            Preset::Q4_K_S => 14,
            Preset::Q4_K_M => 15,
            Preset::Q5_K_S => 16,
            Preset::Q5_K_M => 17,
            Preset::Q6_K => 18,
        }
    }
}

/// ggml types and llama.cpp file-type presets that exist but that ingot cannot write yet.
const NOT_YET: [&str; 20] = [
    "Q8_K", "Q2_K_S", "Q3_K_S", "Q3_K_L", "IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M",
    "IQ3_XXS", "IQ3_XS", "IQ3_S", "IQ3_M", "IQ4_NL", "IQ4_XS", "TQ1_0", "TQ2_0", "MXFP4", "Q8_1",
];

fn supported_list() -> String {
    SUPPORTED.map(|t| t.name()).join(", ")
}

fn preset_list() -> String {
    Preset::ALL.map(|p| p.name()).join(", ")
}

fn unsupported(name: &str, presets: bool) -> Error {
    let upper = name.trim().to_ascii_uppercase();
    let also = if presets {
        format!("; presets: {}", preset_list())
    } else {
        String::new()
    };
    let what = if NOT_YET.contains(&upper.as_str()) {
        format!(
            "not supported yet (i-quants and some presets come later); supported: {}{also}",
            supported_list()
        )
    } else if !presets && Preset::ALL.iter().any(|p| p.name() == upper) {
        format!(
            "is a file-type preset, not a tensor type; tensor types: {}",
            supported_list()
        )
    } else {
        format!("unknown type; supported: {}{also}", supported_list())
    };
    Error::UnsupportedType {
        name: name.to_string(),
        what,
    }
}

/// Parses a plain type name (case-insensitive: `q4_0`, `Q4_K`, `bf16`) into one of [`SUPPORTED`]
/// (what `--tensor-type` takes). i-quants, Q8_K and presets are refused with a message naming what
/// is supported.
pub fn parse_type(name: &str) -> Result<QuantType> {
    let upper = name.trim().to_ascii_uppercase();
    SUPPORTED
        .iter()
        .find(|t| t.name() == upper)
        .copied()
        .ok_or_else(|| unsupported(name, false))
}

/// A conversion target: a plain type or a preset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Type(QuantType),
    Preset(Preset),
}

impl Target {
    /// Parses `--type`: a preset name first (so `Q2_K` and `Q6_K` are the presets), then a plain type.
    pub fn parse(name: &str) -> Result<Target> {
        let upper = name.trim().to_ascii_uppercase();
        if let Some(p) = Preset::ALL.iter().find(|p| p.name() == upper) {
            return Ok(Target::Preset(*p));
        }
        SUPPORTED
            .iter()
            .find(|t| t.name() == upper)
            .map(|t| Target::Type(*t))
            .ok_or_else(|| unsupported(name, true))
    }

    /// The type of tensors no rule changes.
    pub const fn default_type(self) -> QuantType {
        match self {
            Target::Type(t) => t,
            Target::Preset(p) => p.default_type(),
        }
    }

    /// `general.file_type`: the preset's `LLAMA_FTYPE_*`, or for a plain type the file type whose
    /// default it is ([`llama_ftype`]).
    pub const fn llama_ftype(self) -> Option<u32> {
        match self {
            Target::Type(t) => llama_ftype(t),
            Target::Preset(p) => Some(p.llama_ftype()),
        }
    }

    /// The name as given on the command line (`Q4_K_M`, `Q8_0`).
    pub const fn name(self) -> &'static str {
        match self {
            Target::Type(t) => t.name(),
            Target::Preset(p) => p.name(),
        }
    }
}

impl core::fmt::Display for Target {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

impl From<QuantType> for Target {
    fn from(t: QuantType) -> Target {
        Target::Type(t)
    }
}

/// llama.cpp's `enum llama_ftype` value for a file whose default type is `ty` (`include/llama.h`:
/// `LLAMA_FTYPE_ALL_F32 = 0`, `MOSTLY_F16 = 1`, `MOSTLY_Q4_0 = 2`, `MOSTLY_Q4_1 = 3`,
/// `MOSTLY_Q8_0 = 7`, `MOSTLY_Q5_0 = 8`, `MOSTLY_Q5_1 = 9`, `MOSTLY_BF16 = 32`; for the plain
/// K-quants the file type without bumps whose default they are: `MOSTLY_Q2_K = 10`,
/// `MOSTLY_Q3_K_S = 11`, `MOSTLY_Q4_K_S = 14`, `MOSTLY_Q5_K_S = 16`, `MOSTLY_Q6_K = 18`). Stored as
/// `general.file_type` (informational: loaders read each tensor's type). `None` for Q8_1 and Q8_K,
/// which are never file types.
pub const fn llama_ftype(ty: QuantType) -> Option<u32> {
    Some(match ty {
        QuantType::F32 => 0,
        QuantType::F16 => 1,
        QuantType::Q4_0 => 2,
        QuantType::Q4_1 => 3,
        QuantType::Q8_0 => 7,
        QuantType::Q5_0 => 8,
        QuantType::Q5_1 => 9,
        QuantType::Q2_K => 10,
        QuantType::Q3_K => 11,
        QuantType::Q4_K => 14,
        QuantType::Q5_K => 16,
        QuantType::Q6_K => 18,
        QuantType::BF16 => 32,
        QuantType::Q8_1 | QuantType::Q8_K => return None,
    })
}

/// `GGML_QNT_VERSION`: the version of the quantized block formats, stored as
/// `general.quantization_version`.
pub const QUANTIZATION_VERSION: u32 = 2;

/// Whether `ty` is a block-quantized type (not F32/F16/BF16).
pub fn is_quantized(ty: QuantType) -> bool {
    !matches!(ty, QuantType::F32 | QuantType::F16 | QuantType::BF16)
}

/// Bits per weight of a type (block bytes × 8 / block elements).
pub fn bits_per_weight(ty: QuantType) -> f64 {
    (ty.block_bytes() * 8) as f64 / ty.block_elems() as f64
}

/// A `--tensor-type PATTERN=TYPE` override.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Override {
    pub pattern: Pattern,
    pub ty: QuantType,
}

impl Override {
    /// Parses `PATTERN=TYPE` (the last `=` separates them).
    pub fn parse(spec: &str) -> Result<Override> {
        let (pat, ty) = spec.rsplit_once('=').ok_or_else(|| Error::BadOverride {
            spec: spec.to_string(),
            what: "expected PATTERN=TYPE, e.g. attn_v=Q8_0".into(),
        })?;
        let ty = parse_type(ty).map_err(|e| Error::BadOverride {
            spec: spec.to_string(),
            what: e.to_string(),
        })?;
        Ok(Override {
            pattern: Pattern::new(pat)?,
            ty,
        })
    }
}

/// Why a tensor got its type (printed with the progress lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    /// Rule 1: not a quantizable weight matrix.
    NotAWeightMatrix,
    /// Rule 2: the override with this index.
    Override(usize),
    /// Rule 3: output head / token embeddings kept at Q8_0.
    KeptAtQ8_0,
    /// Rule 3: output head / tied token embeddings at Q6_K.
    OutputQ6K,
    /// Rule 4: a preset's bump.
    Preset,
    /// Rule 5: the target type.
    Target,
    /// The shape fallback replaced the type chosen by the rule that applied.
    RowFallback,
}

/// What the per-tensor rules need to know about the whole model, from its tensor list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ModelInfo {
    /// Number of layers (`1 + the largest <i> of blk.<i>.` names).
    pub n_layer: usize,
    /// Number of `attn_v.weight` tensors (llama.cpp's `n_attention_wv`).
    pub n_attn_v: usize,
    /// Attention heads per KV head: rows of `blk.0.attn_q.weight` / rows of `blk.0.attn_v.weight`
    /// (1 when either is missing).
    pub n_gqa: usize,
    /// No `output.weight`: the embedding matrix is also the output head.
    pub tied_embeddings: bool,
}

impl ModelInfo {
    /// From `(name, ggml-order dims)` of every tensor of the model.
    pub fn from_tensors<'a>(tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>) -> ModelInfo {
        let mut m = ModelInfo {
            tied_embeddings: true,
            ..ModelInfo::default()
        };
        let (mut q_rows, mut v_rows) = (0u64, 0u64);
        for (name, dims) in tensors {
            if let Some(i) = layer_of(name) {
                m.n_layer = m.n_layer.max(i + 1);
            }
            if name.contains("attn_v.weight") {
                m.n_attn_v += 1;
            }
            if name == "output.weight" {
                m.tied_embeddings = false;
            }
            let rows = dims.get(1).copied().unwrap_or(0);
            if name == "blk.0.attn_q.weight" {
                q_rows = rows;
            }
            if name == "blk.0.attn_v.weight" {
                v_rows = rows;
            }
        }
        m.n_gqa = if q_rows > 0 && v_rows > 0 {
            (q_rows / v_rows).max(1) as usize
        } else {
            1
        };
        m
    }
}

/// The layer `i` of a `blk.<i>.` tensor name.
fn layer_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    let (i, _) = rest.split_once('.')?;
    i.parse().ok()
}

/// The target plus overrides: decides each tensor's type.
#[derive(Clone, Debug)]
pub struct Policy {
    pub target: Target,
    pub overrides: Vec<Override>,
    pub allow_requantize: bool,
    /// Set by the input readers from the tensor list before planning ([`ModelInfo::from_tensors`]).
    pub model: ModelInfo,
}

impl Policy {
    /// A policy writing `target` with no overrides, refusing requantization.
    pub fn new(target: impl Into<Target>) -> Policy {
        Policy {
            target: target.into(),
            overrides: Vec::new(),
            allow_requantize: false,
            model: ModelInfo {
                n_gqa: 1,
                ..ModelInfo::default()
            },
        }
    }

    /// This policy with the model facts of `tensors` (`(name, dims)`).
    pub fn for_model<'a>(&self, tensors: impl IntoIterator<Item = (&'a str, &'a [u64])>) -> Policy {
        Policy {
            model: ModelInfo::from_tensors(tensors),
            ..self.clone()
        }
    }

    /// The type for tensor `name` with ggml-order `dims` (row length first), currently of type `src`,
    /// and the rule that chose it. Errors when the tensor would be requantized without permission.
    pub fn choose(&self, name: &str, dims: &[u64], src: QuantType) -> Result<(QuantType, Reason)> {
        let (ty, reason) = self.rule(name, dims);
        let ty_fallback = match dims.first() {
            Some(&row) => fallback(ty, row),
            None => ty,
        };
        let (ty, reason) = if ty_fallback != ty {
            (ty_fallback, Reason::RowFallback)
        } else {
            (ty, reason)
        };
        if is_quantized(src) && is_quantized(ty) && src != ty && !self.allow_requantize {
            return Err(Error::Requantize {
                tensor: name.to_string(),
                from: src,
                to: ty,
            });
        }
        Ok((ty, reason))
    }

    fn rule(&self, name: &str, dims: &[u64]) -> (QuantType, Reason) {
        if !quantizable(name, dims) {
            return (QuantType::F32, Reason::NotAWeightMatrix);
        }
        if let Some((i, o)) = self
            .overrides
            .iter()
            .enumerate()
            .find(|(_, o)| o.pattern.is_match(name))
        {
            return (o.ty, Reason::Override(i));
        }
        let default = self.target.default_type();
        if is_quantized(default) && default != QuantType::Q8_0 {
            let output = name == "output.weight"
                || (self.model.tied_embeddings && name == "token_embd.weight");
            if output {
                return match dims.first() {
                    Some(&row) if row.is_multiple_of(256) => (QuantType::Q6_K, Reason::OutputQ6K),
                    _ => (QuantType::Q8_0, Reason::KeptAtQ8_0),
                };
            }
            if name == "token_embd.weight" {
                // ingot's deliberate difference: untied embeddings kept at Q8_0.
                return (QuantType::Q8_0, Reason::KeptAtQ8_0);
            }
        }
        if let Target::Preset(p) = self.target {
            if let Some(t) = self.bump(p, name) {
                if t != default {
                    return (t, Reason::Preset);
                }
            }
        }
        (default, Reason::Target)
    }

    /// Rule 4: the preset's type for `name`, when it has a rule for it.
    fn bump(&self, p: Preset, name: &str) -> Option<QuantType> {
        use QuantType::{Q3_K, Q4_K, Q5_K, Q6_K};
        let n = self.model.n_layer as i64;
        let i = layer_of(name).unwrap_or(0) as i64;
        let more = |i: i64, n: i64| i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
        if name.contains("attn_v.weight") {
            let nv = self.model.n_attn_v as i64;
            return match p {
                Preset::Q2_K => Some(if self.model.n_gqa >= 4 { Q4_K } else { Q3_K }),
                Preset::Q3_K_M => Some(if i < 2 { Q5_K } else { Q4_K }),
                Preset::Q4_K_M | Preset::Q5_K_M if more(i, nv) => Some(Q6_K),
                Preset::Q4_K_S if i < 4 => Some(Q5_K),
                _ => None,
            };
        }
        if name.contains("ffn_down") {
            return match p {
                Preset::Q2_K => Some(Q3_K),
                Preset::Q3_K_M => Some(if i < n / 16 { Q5_K } else { Q4_K }),
                Preset::Q4_K_M | Preset::Q5_K_M if more(i, n) => Some(Q6_K),
                Preset::Q4_K_S if i < n / 8 => Some(Q5_K),
                _ => None,
            };
        }
        if name.contains("attn_output.weight") {
            return match p {
                Preset::Q2_K => Some(Q3_K),
                Preset::Q3_K_M => Some(Q4_K),
                _ => None,
            };
        }
        None
    }

    /// `general.file_type` of the output.
    pub fn file_type(&self) -> Option<u32> {
        self.target.llama_ftype()
    }
}

/// llama.cpp's `tensor_type_fallback` for a row of `row` elements.
pub fn fallback(ty: QuantType, row: u64) -> QuantType {
    if row.is_multiple_of(ty.block_elems() as u64) {
        return ty;
    }
    let smaller = match ty {
        QuantType::Q2_K | QuantType::Q3_K => QuantType::Q4_0,
        QuantType::Q4_K => QuantType::Q5_0,
        QuantType::Q5_K => QuantType::Q5_1,
        QuantType::Q6_K => QuantType::Q8_0,
        _ => QuantType::F16,
    };
    if row.is_multiple_of(smaller.block_elems() as u64) {
        smaller
    } else {
        QuantType::F16
    }
}

/// llama.cpp's `tensor_allows_quantization`, the parts that concern the architectures ingot reads.
pub fn quantizable(name: &str, dims: &[u64]) -> bool {
    dims.len() >= 2
        && name.ends_with("weight")
        && !name.contains("_norm.weight")
        && !name.contains("ffn_gate_inp.weight")
        && name != "position_embd.weight"
        && name != "token_types.weight"
}

#[cfg(test)]
mod tests {
    use super::*;
    use QuantType::*;

    fn pick(p: &Policy, name: &str, dims: &[u64], src: QuantType) -> QuantType {
        p.choose(name, dims, src).unwrap().0
    }

    #[test]
    fn per_tensor_rules() {
        let p = Policy::new(Q4_0);
        assert_eq!(pick(&p, "blk.0.attn_norm.weight", &[576], F32), F32);
        assert_eq!(pick(&p, "blk.0.attn_norm.weight", &[576], F16), F32);
        assert_eq!(pick(&p, "blk.0.attn_q.weight", &[576, 576], F32), Q4_0);
        assert_eq!(pick(&p, "output.weight", &[576, 100], F32), Q8_0);
        assert_eq!(pick(&p, "token_embd.weight", &[576, 100], F16), Q8_0);
        // Rows not a whole number of blocks fall back to F16.
        assert_eq!(pick(&p, "blk.0.ffn_down.weight", &[100, 64], F32), F16);
        assert_eq!(
            p.choose("blk.0.ffn_down.weight", &[100, 64], F32)
                .unwrap()
                .1,
            Reason::RowFallback
        );
        // Q8_0 and float targets apply to the head and embeddings too.
        assert_eq!(
            pick(&Policy::new(Q8_0), "output.weight", &[64, 8], F32),
            Q8_0
        );
        assert_eq!(
            pick(&Policy::new(F16), "token_embd.weight", &[64, 8], Q8_0),
            F16
        );
        assert_eq!(
            pick(&Policy::new(BF16), "blk.1.attn_k.weight", &[64, 8], F32),
            BF16
        );
    }

    #[test]
    fn requantize_needs_permission() {
        let mut p = Policy::new(Q4_0);
        let e = p
            .choose("blk.0.attn_q.weight", &[64, 64], Q4_1)
            .unwrap_err();
        assert!(
            matches!(
                e,
                Error::Requantize {
                    from: Q4_1,
                    to: Q4_0,
                    ..
                }
            ),
            "{e}"
        );
        // Same type: a copy. To a float type: a dequantization.
        assert_eq!(pick(&p, "token_embd.weight", &[64, 8], Q8_0), Q8_0);
        assert_eq!(
            pick(&Policy::new(F32), "blk.0.attn_q.weight", &[64, 64], Q4_1),
            F32
        );
        p.allow_requantize = true;
        assert_eq!(pick(&p, "blk.0.attn_q.weight", &[64, 64], Q4_1), Q4_0);
    }

    #[test]
    fn overrides_win_over_the_q8_0_rule_but_not_over_rule_one() {
        let mut p = Policy::new(Q4_0);
        p.overrides = vec![
            Override::parse("attn_v=q8_0").unwrap(),
            Override::parse("^output.weight$=Q5_1").unwrap(),
            Override::parse("norm=Q4_0").unwrap(),
        ];
        assert_eq!(pick(&p, "blk.3.attn_v.weight", &[64, 64], F32), Q8_0);
        assert_eq!(
            p.choose("blk.3.attn_v.weight", &[64, 64], F32).unwrap().1,
            Reason::Override(0)
        );
        assert_eq!(pick(&p, "output.weight", &[64, 64], F32), Q5_1);
        assert_eq!(pick(&p, "blk.3.ffn_norm.weight", &[64], F32), F32);
        assert_eq!(pick(&p, "blk.3.attn_q.weight", &[64, 64], F32), Q4_0);
    }

    #[test]
    fn type_names() {
        assert_eq!(parse_type("q5_1").unwrap(), Q5_1);
        assert_eq!(parse_type("BF16").unwrap(), BF16);
        let e = parse_type("Q4_K_M").unwrap_err().to_string();
        assert!(e.contains("preset") && e.contains("Q4_0"), "{e}");
        let e = parse_type("IQ2_XS").unwrap_err().to_string();
        assert!(e.contains("not supported yet") && e.contains("Q6_K"), "{e}");
        assert_eq!(parse_type("q6_k").unwrap(), Q6_K);
        assert_eq!(
            Target::parse("q4_k_m").unwrap(),
            Target::Preset(Preset::Q4_K_M)
        );
        assert_eq!(Target::parse("Q2_K").unwrap(), Target::Preset(Preset::Q2_K));
        assert_eq!(Target::parse("Q4_K").unwrap(), Target::Type(Q4_K));
        let e = Target::parse("Q3_K_L").unwrap_err().to_string();
        assert!(
            e.contains("not supported yet") && e.contains("Q5_K_M"),
            "{e}"
        );
        assert!(parse_type("Q8_K").is_err());
        let e = parse_type("Q9_9").unwrap_err().to_string();
        assert!(e.contains("unknown type") && e.contains("Q5_1"), "{e}");
        assert!(parse_type("Q8_1").is_err());
        assert!(Override::parse("attn_v").is_err());
        assert!(Override::parse("attn_v=Q4_K_M").is_err());
        assert_eq!(Override::parse("attn_v=Q6_K").unwrap().ty, Q6_K);
    }

    #[test]
    fn ftypes_are_llama_cpp_values() {
        let got: Vec<_> = SUPPORTED.iter().map(|&t| llama_ftype(t).unwrap()).collect();
        assert_eq!(got, [0, 1, 32, 7, 2, 3, 8, 9, 10, 11, 14, 16, 18]);
        let presets: Vec<_> = Preset::ALL.iter().map(|p| p.llama_ftype()).collect();
        assert_eq!(presets, [10, 12, 14, 15, 16, 17, 18]);
    }

    /// SmolLM2-135M's shapes: 30 layers, 9 heads over 3 KV heads, width 576 (not a multiple of
    /// 256), tied embeddings.
    fn smollm2() -> Vec<(String, Vec<u64>)> {
        let mut t = vec![("token_embd.weight".to_string(), vec![576, 49152])];
        for i in 0..30 {
            for (n, d) in [
                ("attn_q", [576u64, 576]),
                ("attn_k", [576, 192]),
                ("attn_v", [576, 192]),
                ("attn_output", [576, 576]),
                ("ffn_gate", [576, 1536]),
                ("ffn_up", [576, 1536]),
                ("ffn_down", [1536, 576]),
            ] {
                t.push((format!("blk.{i}.{n}.weight"), d.to_vec()));
            }
            t.push((format!("blk.{i}.attn_norm.weight"), vec![576]));
        }
        t
    }

    fn policy_for(target: &str, t: &[(String, Vec<u64>)]) -> Policy {
        Policy::new(Target::parse(target).unwrap())
            .for_model(t.iter().map(|(n, d)| (n.as_str(), d.as_slice())))
    }

    #[test]
    fn model_info_from_tensors() {
        let t = smollm2();
        let m = ModelInfo::from_tensors(t.iter().map(|(n, d)| (n.as_str(), d.as_slice())));
        assert_eq!(
            m,
            ModelInfo {
                n_layer: 30,
                n_attn_v: 30,
                n_gqa: 3,
                tied_embeddings: true
            }
        );
    }

    #[test]
    fn k_quant_fallbacks_follow_llama_cpp() {
        assert_eq!(fallback(Q2_K, 576), Q4_0);
        assert_eq!(fallback(Q3_K, 576), Q4_0);
        assert_eq!(fallback(Q4_K, 576), Q5_0);
        assert_eq!(fallback(Q5_K, 576), Q5_1);
        assert_eq!(fallback(Q6_K, 576), Q8_0);
        assert_eq!(fallback(Q6_K, 1536), Q6_K);
        assert_eq!(fallback(Q4_K, 100), F16);
        assert_eq!(fallback(Q4_0, 100), F16);
        assert_eq!(fallback(Q4_0, 96), Q4_0);
    }

    #[test]
    fn presets_on_smollm2_shapes() {
        let t = smollm2();
        let types = |target: &str| -> Vec<(String, QuantType)> {
            let p = policy_for(target, &t);
            t.iter()
                .map(|(n, d)| (n.clone(), p.choose(n, d, F32).unwrap().0))
                .collect()
        };
        let get =
            |v: &[(String, QuantType)], name: &str| v.iter().find(|(n, _)| n == name).unwrap().1;
        // Q4_K_M: tied embeddings of width 576 -> Q8_0; rows of 576 fall back from Q4_K to Q5_0,
        // ffn_down (rows of 1536) is Q6_K on the "more bits" layers (0..3, 26..29, every third).
        let v = types("Q4_K_M");
        assert_eq!(get(&v, "token_embd.weight"), Q8_0);
        assert_eq!(get(&v, "blk.0.attn_q.weight"), Q5_0);
        assert_eq!(get(&v, "blk.0.attn_v.weight"), Q8_0); // Q6_K (more bits) -> fallback Q8_0
        assert_eq!(get(&v, "blk.4.attn_v.weight"), Q5_0);
        assert_eq!(get(&v, "blk.5.attn_v.weight"), Q8_0); // (5 - 3) % 3 == 2
        assert_eq!(get(&v, "blk.0.ffn_down.weight"), Q6_K);
        assert_eq!(get(&v, "blk.4.ffn_down.weight"), Q4_K);
        assert_eq!(get(&v, "blk.29.ffn_down.weight"), Q6_K);
        assert_eq!(get(&v, "blk.7.attn_norm.weight"), F32);
        // Q2_K: gqa 3 < 4 -> attn_v Q3_K (falls back to Q4_0), ffn_down Q3_K.
        let v = types("Q2_K");
        assert_eq!(get(&v, "blk.3.attn_v.weight"), Q4_0);
        assert_eq!(get(&v, "blk.3.ffn_down.weight"), Q3_K);
        assert_eq!(get(&v, "blk.3.attn_output.weight"), Q4_0);
        // Q3_K_M: ffn_down Q5_K below n/16 = 1, then Q4_K.
        let v = types("Q3_K_M");
        assert_eq!(get(&v, "blk.0.ffn_down.weight"), Q5_K);
        assert_eq!(get(&v, "blk.1.ffn_down.weight"), Q4_K);
        // Q4_K_S: ffn_down Q5_K below n/8 = 3.
        let v = types("Q4_K_S");
        assert_eq!(get(&v, "blk.2.ffn_down.weight"), Q5_K);
        assert_eq!(get(&v, "blk.3.ffn_down.weight"), Q4_K);
        // Q6_K: everything Q6_K where rows allow, Q8_0 otherwise.
        let v = types("Q6_K");
        assert_eq!(get(&v, "blk.3.ffn_down.weight"), Q6_K);
        assert_eq!(get(&v, "blk.3.ffn_up.weight"), Q8_0);
    }

    #[test]
    fn output_head_is_q6_k_when_rows_allow() {
        let t = vec![
            ("token_embd.weight".to_string(), vec![512u64, 1000]),
            ("output.weight".to_string(), vec![512, 1000]),
            ("blk.0.attn_q.weight".to_string(), vec![512, 512]),
        ];
        let p = policy_for("Q4_0", &t);
        assert_eq!(
            p.choose("output.weight", &[512, 1000], F32).unwrap(),
            (Q6_K, Reason::OutputQ6K)
        );
        // Untied embeddings: ingot keeps them at Q8_0.
        assert_eq!(
            p.choose("token_embd.weight", &[512, 1000], F32).unwrap(),
            (Q8_0, Reason::KeptAtQ8_0)
        );
        // Tied (no output.weight): the embeddings are the head.
        let p = policy_for(
            "Q4_K_M",
            &t[..1].iter().chain(&t[2..]).cloned().collect::<Vec<_>>(),
        );
        assert_eq!(
            p.choose("token_embd.weight", &[512, 1000], F32).unwrap().0,
            Q6_K
        );
        assert_eq!(
            policy_for("Q8_0", &t)
                .choose("output.weight", &[512, 1000], F32)
                .unwrap()
                .0,
            Q8_0
        );
    }
}
