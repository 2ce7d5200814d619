//! The tensor element types ingot understands and their one-row-per-type trait table.
//!
//! [`QuantType`] is a fieldless enum whose discriminants are *not* the file format; the GGUF type id
//! is [`QuantType::ggml_id`] and the name is ggml's spelling ([`QuantType::name`]), both verbatim from
//! `enum ggml_type` / `type_traits` in ggml. [`QuantType::info`] returns one `const` [`TypeInfo`] row
//! holding the block geometry and the reference kernels, modelled on ggml-cpu's `type_traits_cpu`.
//! A new format is one block struct in [`crate::blocks`], one row here and its reference functions
//! in [`crate::reference`]; the conformance tests iterate [`QuantType::ALL`] and pick it up.
//!
//! This module does not implement any arithmetic itself.

#![forbid(unsafe_code)]

use crate::blocks::{
    BlockQ2_K, BlockQ3_K, BlockQ4_0, BlockQ4_1, BlockQ4_K, BlockQ5_0, BlockQ5_1, BlockQ5_K,
    BlockQ6_K, BlockQ8_0, BlockQ8_1, BlockQ8_K, QK, QK_K,
};
use crate::reference as r;

/// A tensor element format. Names follow ggml (`Q4_0`, not `Q40`) because they are the file format.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QuantType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q8_1,
    BF16,
    Q2_K,
    Q3_K,
    Q4_K,
    Q5_K,
    Q6_K,
    Q8_K,
}

/// One row of the type table: geometry plus the scalar reference kernels for the type.
///
/// All functions take byte slices of *exactly* the encoded size and panic otherwise; they never
/// allocate and accept any alignment.
#[derive(Clone, Copy, Debug)]
pub struct TypeInfo {
    pub ty: QuantType,
    /// ggml's name, e.g. `"Q4_0"`.
    pub name: &'static str,
    /// Elements per block (1 for the float types).
    pub block_elems: usize,
    /// Bytes per block.
    pub block_bytes: usize,
    /// Dequantize `dst.len()` elements (a multiple of `block_elems`) from exactly
    /// `row_bytes(dst.len())` bytes; bit-exact with ggml's `dequantize_row_*` / `*_to_fp32_row`.
    pub to_f32: fn(src: &[u8], dst: &mut [f32]),
    /// Quantize with ggml's reference quantizer (`quantize_row_*_ref`): what `llama-quantize`
    /// writes into model files. `dst.len()` must equal `row_bytes(src.len())`.
    pub from_f32: fn(src: &[f32], dst: &mut [u8]),
    /// The activation format ggml's CPU backend converts the other operand to before `vec_dot`.
    pub vec_dot_type: QuantType,
    /// Dot product of `n` elements: `w` in this type, `x` in `vec_dot_type`, each exactly one
    /// row of `n` elements. Follows ggml's scalar `ggml_vec_dot_*` order of operations.
    pub vec_dot: fn(n: usize, w: &[u8], x: &[u8]) -> f32,
}

const fn row(
    ty: QuantType,
    to_f32: fn(&[u8], &mut [f32]),
    from_f32: fn(&[f32], &mut [u8]),
    vec_dot_type: QuantType,
    vec_dot: fn(usize, &[u8], &[u8]) -> f32,
) -> TypeInfo {
    TypeInfo {
        ty,
        name: ty.name(),
        block_elems: ty.block_elems(),
        block_bytes: ty.block_bytes(),
        to_f32,
        from_f32,
        vec_dot_type,
        vec_dot,
    }
}

/// Indexed by `QuantType as usize`, in the order of [`QuantType::ALL`]. The pairings of
/// `vec_dot_type` are those of ggml-cpu's `type_traits_cpu` (`ggml-cpu.c`), except Q8_1 weights,
/// which ggml never multiplies; ingot gives them the obvious Q8_1 x Q8_1 product (likewise Q8_K).
static TABLE: [TypeInfo; 15] = {
    use QuantType::*;
    [
        row(F32, r::f32_to_f32, r::f32_from_f32, F32, r::vec_dot_f32),
        row(F16, r::f16_to_f32, r::f16_from_f32, F16, r::vec_dot_f16),
        row(
            Q4_0,
            r::dequantize_row_q4_0,
            r::quantize_row_q4_0_ref,
            Q8_0,
            r::vec_dot_q4_0_q8_0,
        ),
        row(
            Q4_1,
            r::dequantize_row_q4_1,
            r::quantize_row_q4_1_ref,
            Q8_1,
            r::vec_dot_q4_1_q8_1,
        ),
        row(
            Q5_0,
            r::dequantize_row_q5_0,
            r::quantize_row_q5_0_ref,
            Q8_0,
            r::vec_dot_q5_0_q8_0,
        ),
        row(
            Q5_1,
            r::dequantize_row_q5_1,
            r::quantize_row_q5_1_ref,
            Q8_1,
            r::vec_dot_q5_1_q8_1,
        ),
        row(
            Q8_0,
            r::dequantize_row_q8_0,
            r::quantize_row_q8_0_ref,
            Q8_0,
            r::vec_dot_q8_0_q8_0,
        ),
        row(
            Q8_1,
            r::dequantize_row_q8_1,
            r::quantize_row_q8_1_ref,
            Q8_1,
            r::vec_dot_q8_1_q8_1,
        ),
        row(
            BF16,
            r::bf16_to_f32,
            r::bf16_from_f32,
            BF16,
            r::vec_dot_bf16,
        ),
        row(
            Q2_K,
            r::dequantize_row_q2_k,
            r::quantize_row_q2_k_ref,
            Q8_K,
            r::vec_dot_q2_k_q8_k,
        ),
        row(
            Q3_K,
            r::dequantize_row_q3_k,
            r::quantize_row_q3_k_ref,
            Q8_K,
            r::vec_dot_q3_k_q8_k,
        ),
        row(
            Q4_K,
            r::dequantize_row_q4_k,
            r::quantize_row_q4_k_ref,
            Q8_K,
            r::vec_dot_q4_k_q8_k,
        ),
        row(
            Q5_K,
            r::dequantize_row_q5_k,
            r::quantize_row_q5_k_ref,
            Q8_K,
            r::vec_dot_q5_k_q8_k,
        ),
        row(
            Q6_K,
            r::dequantize_row_q6_k,
            r::quantize_row_q6_k_ref,
            Q8_K,
            r::vec_dot_q6_k_q8_k,
        ),
        row(
            Q8_K,
            r::dequantize_row_q8_k,
            r::quantize_row_q8_k_ref,
            Q8_K,
            r::vec_dot_q8_k_q8_k,
        ),
    ]
};

impl QuantType {
    /// Every supported type, in table order.
    pub const ALL: [QuantType; 15] = [
        QuantType::F32,
        QuantType::F16,
        QuantType::Q4_0,
        QuantType::Q4_1,
        QuantType::Q5_0,
        QuantType::Q5_1,
        QuantType::Q8_0,
        QuantType::Q8_1,
        QuantType::BF16,
        QuantType::Q2_K,
        QuantType::Q3_K,
        QuantType::Q4_K,
        QuantType::Q5_K,
        QuantType::Q6_K,
        QuantType::Q8_K,
    ];

    /// Whether this is one of ggml's 256-element super-block types (Q2_K..Q8_K).
    pub const fn is_k_quant(self) -> bool {
        matches!(
            self,
            QuantType::Q2_K
                | QuantType::Q3_K
                | QuantType::Q4_K
                | QuantType::Q5_K
                | QuantType::Q6_K
                | QuantType::Q8_K
        )
    }

    /// The type with GGUF / `enum ggml_type` id `id`, or `None` for ids ingot does not support
    /// (including the retired ids 4 and 5, once Q4_2 / Q4_3).
    pub const fn from_ggml_id(id: u32) -> Option<QuantType> {
        Some(match id {
            0 => QuantType::F32,
            1 => QuantType::F16,
            2 => QuantType::Q4_0,
            3 => QuantType::Q4_1,
            6 => QuantType::Q5_0,
            7 => QuantType::Q5_1,
            8 => QuantType::Q8_0,
            9 => QuantType::Q8_1,
            10 => QuantType::Q2_K,
            11 => QuantType::Q3_K,
            12 => QuantType::Q4_K,
            13 => QuantType::Q5_K,
            14 => QuantType::Q6_K,
            15 => QuantType::Q8_K,
            30 => QuantType::BF16,
            _ => return None,
        })
    }

    /// The GGUF / `enum ggml_type` id.
    pub const fn ggml_id(self) -> u32 {
        match self {
            QuantType::F32 => 0,
            QuantType::F16 => 1,
            QuantType::Q4_0 => 2,
            QuantType::Q4_1 => 3,
            QuantType::Q5_0 => 6,
            QuantType::Q5_1 => 7,
            QuantType::Q8_0 => 8,
            QuantType::Q8_1 => 9,
            QuantType::BF16 => 30,
            QuantType::Q2_K => 10,
            QuantType::Q3_K => 11,
            QuantType::Q4_K => 12,
            QuantType::Q5_K => 13,
            QuantType::Q6_K => 14,
            QuantType::Q8_K => 15,
        }
    }

    /// ggml's `type_name`, upper-case as in GGUF tooling (`"Q4_0"`, `"BF16"`).
    pub const fn name(self) -> &'static str {
        match self {
            QuantType::F32 => "F32",
            QuantType::F16 => "F16",
            QuantType::Q4_0 => "Q4_0",
            QuantType::Q4_1 => "Q4_1",
            QuantType::Q5_0 => "Q5_0",
            QuantType::Q5_1 => "Q5_1",
            QuantType::Q8_0 => "Q8_0",
            QuantType::Q8_1 => "Q8_1",
            QuantType::BF16 => "BF16",
            QuantType::Q2_K => "Q2_K",
            QuantType::Q3_K => "Q3_K",
            QuantType::Q4_K => "Q4_K",
            QuantType::Q5_K => "Q5_K",
            QuantType::Q6_K => "Q6_K",
            QuantType::Q8_K => "Q8_K",
        }
    }

    /// This type's row of the trait table.
    pub fn info(self) -> &'static TypeInfo {
        &TABLE[self as usize]
    }

    /// Elements per block: 1 for F32/F16/BF16, 256 for the K-quants, 32 for the other
    /// block-quantized types.
    pub const fn block_elems(self) -> usize {
        match self {
            QuantType::F32 | QuantType::F16 | QuantType::BF16 => 1,
            _ if self.is_k_quant() => QK_K,
            _ => QK,
        }
    }

    /// Bytes per block.
    pub const fn block_bytes(self) -> usize {
        match self {
            QuantType::F32 => 4,
            QuantType::F16 | QuantType::BF16 => 2,
            QuantType::Q4_0 => BlockQ4_0::SIZE,
            QuantType::Q4_1 => BlockQ4_1::SIZE,
            QuantType::Q5_0 => BlockQ5_0::SIZE,
            QuantType::Q5_1 => BlockQ5_1::SIZE,
            QuantType::Q8_0 => BlockQ8_0::SIZE,
            QuantType::Q8_1 => BlockQ8_1::SIZE,
            QuantType::Q2_K => BlockQ2_K::SIZE,
            QuantType::Q3_K => BlockQ3_K::SIZE,
            QuantType::Q4_K => BlockQ4_K::SIZE,
            QuantType::Q5_K => BlockQ5_K::SIZE,
            QuantType::Q6_K => BlockQ6_K::SIZE,
            QuantType::Q8_K => BlockQ8_K::SIZE,
        }
    }

    /// Bytes of a row of `n` elements, or `None` when `n` is not a whole number of blocks or the
    /// size overflows `usize`.
    pub fn row_bytes(self, n: usize) -> Option<usize> {
        let be = self.block_elems();
        if !n.is_multiple_of(be) {
            return None;
        }
        (n / be).checked_mul(self.block_bytes())
    }
}

impl core::fmt::Display for QuantType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_rows_are_in_enum_order_and_consistent() {
        for (i, ty) in QuantType::ALL.into_iter().enumerate() {
            let info = ty.info();
            assert_eq!(info.ty, ty);
            assert_eq!(ty as usize, i);
            assert_eq!(info.name, ty.name());
            assert_eq!(info.block_elems, ty.block_elems());
            assert_eq!(info.block_bytes, ty.block_bytes());
            assert_eq!(QuantType::from_ggml_id(ty.ggml_id()), Some(ty));
            // A vec_dot_type must itself pair with itself (it is an activation format).
            let act = info.vec_dot_type;
            assert_eq!(act.info().vec_dot_type, act, "{ty}");
            assert_eq!(act.block_elems(), ty.block_elems(), "{ty}");
        }
    }

    #[test]
    fn ggml_pairings() {
        use QuantType::*;
        let pairs: Vec<_> = QuantType::ALL
            .iter()
            .map(|t| (*t, t.info().vec_dot_type))
            .collect();
        assert_eq!(
            pairs,
            [
                (F32, F32),
                (F16, F16),
                (Q4_0, Q8_0),
                (Q4_1, Q8_1),
                (Q5_0, Q8_0),
                (Q5_1, Q8_1),
                (Q8_0, Q8_0),
                (Q8_1, Q8_1),
                (BF16, BF16),
                (Q2_K, Q8_K),
                (Q3_K, Q8_K),
                (Q4_K, Q8_K),
                (Q5_K, Q8_K),
                (Q6_K, Q8_K),
                (Q8_K, Q8_K)
            ]
        );
    }

    #[test]
    fn ggml_ids_and_names() {
        let got: Vec<_> = QuantType::ALL
            .iter()
            .map(|t| (t.ggml_id(), t.name()))
            .collect();
        assert_eq!(
            got,
            [
                (0, "F32"),
                (1, "F16"),
                (2, "Q4_0"),
                (3, "Q4_1"),
                (6, "Q5_0"),
                (7, "Q5_1"),
                (8, "Q8_0"),
                (9, "Q8_1"),
                (30, "BF16"),
                (10, "Q2_K"),
                (11, "Q3_K"),
                (12, "Q4_K"),
                (13, "Q5_K"),
                (14, "Q6_K"),
                (15, "Q8_K")
            ]
        );
    }

    #[test]
    fn unknown_ggml_ids_are_none() {
        let known = [0u32, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 30];
        for id in (0..1000).chain([u32::MAX, u32::MAX - 1, 1 << 31]) {
            assert_eq!(
                QuantType::from_ggml_id(id).is_some(),
                known.contains(&id),
                "id {id}"
            );
        }
    }

    #[test]
    fn row_bytes() {
        use QuantType::*;
        assert_eq!(Q4_0.row_bytes(0), Some(0));
        assert_eq!(Q4_0.row_bytes(64), Some(36));
        assert_eq!(Q8_1.row_bytes(4096), Some(128 * 36));
        assert_eq!(F32.row_bytes(3), Some(12));
        assert_eq!(BF16.row_bytes(3), Some(6));
        assert_eq!(Q4_0.row_bytes(31), None);
        assert_eq!(Q5_1.row_bytes(33), None);
        assert_eq!(Q4_K.row_bytes(512), Some(288));
        assert_eq!(Q6_K.row_bytes(576), None);
        assert_eq!(Q8_K.row_bytes(256), Some(292));
        // Whole blocks whose byte size overflows usize.
        assert_eq!(F32.row_bytes(usize::MAX), None);
        assert_eq!(F16.row_bytes(usize::MAX / 2 + 1), None);
        // 36 bytes per 32 elements: the most whole blocks overflow, Q4_0's 18 bytes do not.
        let nb = usize::MAX / 32;
        assert_eq!(Q8_1.row_bytes(nb * 32), None);
        assert_eq!(Q4_0.row_bytes(nb * 32), Some(nb * 18));
    }
}
