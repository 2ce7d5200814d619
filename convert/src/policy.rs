//! Which type each tensor is written in: the target type, `--tensor-type` overrides and the
//! per-tensor rules, modelled on llama.cpp's `llama_tensor_get_type` (`src/llama-quant.cpp`,
//! llama.cpp bundled with `llama-cpp-sys-2` 0.1.161).
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
//!    skips rule 3).
//! 3. **Output head and token embeddings at least Q8_0.** When the target is a quantized type smaller
//!    than Q8_0 (Q4_0, Q4_1, Q5_0, Q5_1), `output.weight` and `token_embd.weight` are written as Q8_0.
//!    llama.cpp (`llama_tensor_get_type_impl`, the `category == OUTPUT || (has_tied_embeddings &&
//!    category == TOKEN_EMBD)` branch) picks **Q6_K** there whenever the target is not Q8_0, and its
//!    shape fallback then turns Q6_K into Q8_0 when the row length is not a multiple of 256 (SmolLM2:
//!    576, so on SmolLM2 both pick Q8_0 for every such tensor). ingot has no Q6_K writer yet, and Q8_0
//!    is the nearest type at least as precise, so for widths that are multiples of 256 these two
//!    tensors come out larger than llama.cpp's (8.5 instead of 6.56 bits per weight). One deliberate
//!    difference: an *untied* `token_embd` is kept at Q8_0 too, where llama.cpp lets it follow a legacy
//!    target (it is only a row lookup: the extra precision costs file size, not speed). With an
//!    F32/F16/BF16 or Q8_0 target the two tensors follow the target, as in llama.cpp.
//! 4. **Otherwise the target type.**
//!
//! Then the **shape fallback** (llama.cpp `tensor_type_fallback`): a quantized type needs the row length
//! (`dims[0]`) to be a multiple of its 32-element block; if it is not, the tensor is written as F16 (as
//! llama.cpp does for 32-block targets).
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

/// The types `ingot convert` writes, in the order the help text lists them.
pub const SUPPORTED: [QuantType; 8] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::BF16,
    QuantType::Q8_0,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q5_1,
];

/// ggml types and llama.cpp file-type presets that exist but that ingot cannot write yet.
const NOT_YET: [&str; 31] = [
    "Q2_K",
    "Q3_K",
    "Q4_K",
    "Q5_K",
    "Q6_K",
    "Q8_K",
    "Q2_K_S",
    "Q3_K_S",
    "Q3_K_M",
    "Q3_K_L",
    "Q4_K_S",
    "Q4_K_M",
    "Q5_K_S",
    "Q5_K_M",
    "IQ1_S",
    "IQ1_M",
    "IQ2_XXS",
    "IQ2_XS",
    "IQ2_S",
    "IQ2_M",
    "IQ3_XXS",
    "IQ3_XS",
    "IQ3_S",
    "IQ3_M",
    "IQ4_NL",
    "IQ4_XS",
    "TQ1_0",
    "TQ2_0",
    "MXFP4",
    "MXFP4_MOE",
    "Q8_1",
];

fn supported_list() -> String {
    SUPPORTED.map(|t| t.name()).join(", ")
}

/// Parses a type name (case-insensitive: `q4_0`, `Q4_0`, `bf16`) into one of [`SUPPORTED`]. K-quants,
/// i-quants and presets are refused with a message naming what is supported.
pub fn parse_type(name: &str) -> Result<QuantType> {
    let upper = name.trim().to_ascii_uppercase();
    if let Some(t) = SUPPORTED.iter().find(|t| t.name() == upper) {
        return Ok(*t);
    }
    let what = if NOT_YET.contains(&upper.as_str()) {
        format!(
            "not supported yet (K-quants, i-quants and their presets come later); supported: {}",
            supported_list()
        )
    } else {
        format!("unknown type; supported: {}", supported_list())
    };
    Err(Error::UnsupportedType {
        name: name.to_string(),
        what,
    })
}

/// llama.cpp's `enum llama_ftype` value for a file whose default type is `ty` (`include/llama.h`:
/// `LLAMA_FTYPE_ALL_F32 = 0`, `MOSTLY_F16 = 1`, `MOSTLY_Q4_0 = 2`, `MOSTLY_Q4_1 = 3`,
/// `MOSTLY_Q8_0 = 7`, `MOSTLY_Q5_0 = 8`, `MOSTLY_Q5_1 = 9`, `MOSTLY_BF16 = 32`). Stored as
/// `general.file_type`. `None` for Q8_1, which is never a file type.
pub const fn llama_ftype(ty: QuantType) -> Option<u32> {
    Some(match ty {
        QuantType::F32 => 0,
        QuantType::F16 => 1,
        QuantType::Q4_0 => 2,
        QuantType::Q4_1 => 3,
        QuantType::Q8_0 => 7,
        QuantType::Q5_0 => 8,
        QuantType::Q5_1 => 9,
        QuantType::BF16 => 32,
        QuantType::Q8_1 => return None,
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
    /// Rule 4: the target type.
    Target,
    /// The shape fallback replaced the type chosen by the rule that applied.
    RowFallback,
}

/// The target type plus overrides: decides each tensor's type.
#[derive(Clone, Debug)]
pub struct Policy {
    pub target: QuantType,
    pub overrides: Vec<Override>,
    pub allow_requantize: bool,
}

impl Policy {
    /// A policy writing `target` with no overrides, refusing requantization.
    pub fn new(target: QuantType) -> Policy {
        Policy {
            target,
            overrides: Vec::new(),
            allow_requantize: false,
        }
    }

    /// The type for tensor `name` with ggml-order `dims` (row length first), currently of type `src`,
    /// and the rule that chose it. Errors when the tensor would be requantized without permission.
    pub fn choose(&self, name: &str, dims: &[u64], src: QuantType) -> Result<(QuantType, Reason)> {
        let (ty, reason) = self.rule(name, dims);
        let (ty, reason) = match dims.first() {
            Some(&row) if row % ty.block_elems() as u64 != 0 => {
                (QuantType::F16, Reason::RowFallback)
            }
            _ => (ty, reason),
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
        let below_q8_0 = matches!(
            self.target,
            QuantType::Q4_0 | QuantType::Q4_1 | QuantType::Q5_0 | QuantType::Q5_1
        );
        if below_q8_0 && (name == "output.weight" || name == "token_embd.weight") {
            return (QuantType::Q8_0, Reason::KeptAtQ8_0);
        }
        (self.target, Reason::Target)
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
        assert!(e.contains("not supported yet") && e.contains("Q4_0"), "{e}");
        let e = parse_type("Q9_9").unwrap_err().to_string();
        assert!(e.contains("unknown type") && e.contains("Q5_1"), "{e}");
        assert!(parse_type("Q8_1").is_err());
        assert!(Override::parse("attn_v").is_err());
        assert!(Override::parse("attn_v=Q6_K").is_err());
    }

    #[test]
    fn ftypes_are_llama_cpp_values() {
        let got: Vec<_> = SUPPORTED.iter().map(|&t| llama_ftype(t).unwrap()).collect();
        assert_eq!(got, [0, 1, 32, 7, 2, 3, 8, 9]);
    }
}
