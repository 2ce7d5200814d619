//! ggml's quantized block layouts (`ggml/src/ggml-common.h`), byte for byte.
//!
//! Each block holds 32 consecutive elements of a row. The structs are `#[repr(C)]` copies of ggml's
//! `block_q*` types so that their sizes and field offsets *are* the file format; a size change is a
//! compile error. Kernels never reinterpret tensor bytes as these structs: GGUF rows of 18- or 22-byte
//! blocks start at odd addresses while `f16` wants 2-byte alignment. Instead every struct has a safe
//! [`read`](BlockQ4_0::read) / [`write`](BlockQ4_0::write) pair that decodes from / encodes to a
//! little-endian byte slice at the offsets `core::mem::offset_of!` gives for the struct, so the layout
//! is written down exactly once. The K-quant super-blocks (`QK_K = 256` elements) are in the
//! submodule `kquants.rs` and re-exported here.
//!
//! This module owns layouts only; what the numbers mean (scales, rounding, dot products) lives in
//! [`crate::reference`].
//!
//! Element numbering within a block, shared by all 4- and 5-bit types (ggml packs the two *halves* of
//! the block into one byte, not neighbouring elements):
//!
//! ```text
//! qs[j] (j = 0..16):  bits 0..3 = low 4 bits of element j
//!                     bits 4..7 = low 4 bits of element j + 16
//! qh (u32, LE):       bit j     = bit 4 of element j        (j = 0..32)
//! ```

#![forbid(unsafe_code)]

use core::mem::{offset_of, size_of};
use half::f16;

mod kquants;
pub use kquants::{
    BlockQ2_K, BlockQ3_K, BlockQ4_K, BlockQ5_K, BlockQ6_K, BlockQ8_K, K_SCALE_SIZE, QK_K,
};

/// Elements per block for every type in this module (ggml `QK4_0 == QK4_1 == QK5_0 == QK5_1 ==
/// QK8_0 == QK8_1 == 32`).
pub const QK: usize = 32;

#[inline]
fn get_f16(b: &[u8], at: usize) -> f16 {
    f16::from_bits(u16::from_le_bytes([b[at], b[at + 1]]))
}

#[inline]
fn put_f16(b: &mut [u8], at: usize, v: f16) {
    b[at..at + 2].copy_from_slice(&v.to_bits().to_le_bytes());
}

#[inline]
fn get_array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[at..at + N]);
    a
}

#[inline]
fn get_i8_array<const N: usize>(b: &[u8], at: usize) -> [i8; N] {
    let mut a = [0i8; N];
    for (q, &byte) in a.iter_mut().zip(&b[at..at + N]) {
        *q = byte as i8;
    }
    a
}

#[inline]
fn put_i8_array(b: &mut [u8], at: usize, a: &[i8]) {
    for (byte, &q) in b[at..at + a.len()].iter_mut().zip(a) {
        *byte = q as u8;
    }
}

/// `block_q4_0`, 18 bytes: element `i` = `(nibble_i - 8) * d`.
///
/// ```text
/// byte  0..2   d   f16 scale
/// byte  2..18  qs  qs[j] = e[j] | e[j+16] << 4, each e in 0..16
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// `block_q4_1`, 20 bytes: element `i` = `nibble_i * d + m`.
///
/// ```text
/// byte  0..2   d   f16 scale
/// byte  2..4   m   f16 minimum (offset)
/// byte  4..20  qs  qs[j] = e[j] | e[j+16] << 4, each e in 0..16
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// `block_q5_0`, 22 bytes: element `i` = `(q_i - 16) * d` with 5-bit `q_i`.
///
/// ```text
/// byte  0..2   d   f16 scale
/// byte  2..6   qh  u32 LE, bit j = bit 4 of q[j]
/// byte  6..22  qs  qs[j] = (q[j] & 15) | (q[j+16] & 15) << 4
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// `block_q5_1`, 24 bytes: element `i` = `q_i * d + m` with 5-bit `q_i`.
///
/// ```text
/// byte  0..2   d   f16 scale
/// byte  2..4   m   f16 minimum (offset)
/// byte  4..8   qh  u32 LE, bit j = bit 4 of q[j]
/// byte  8..24  qs  qs[j] = (q[j] & 15) | (q[j+16] & 15) << 4
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// `block_q8_0`, 34 bytes: element `i` = `qs[i] * d`.
///
/// ```text
/// byte  0..2   d   f16 scale
/// byte  2..34  qs  i8, one per element, in order
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

/// `block_q8_1`, 36 bytes: element `i` = `qs[i] * d`; `s` caches `d * sum(qs)` (rounded to f16) so
/// that the `m` term of Q4_1/Q5_1 dot products costs one multiply per block.
///
/// ```text
/// byte  0..2   d   f16 scale
/// byte  2..4   s   f16, d * sum(qs)
/// byte  4..36  qs  i8, one per element, in order
/// ```
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BlockQ8_1 {
    pub d: f16,
    pub s: f16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_1>() == 36);

/// Implements `SIZE`, `read` and `write` for a block struct from its field list, so the byte offsets
/// always come from `offset_of!` on the `#[repr(C)]` struct.
macro_rules! block_codec {
    ($ty:ident { $($f16_field:ident: f16),* ; $($u8_field:ident: u8),* ; $($i8_field:ident: i8),* }) => {
        impl $ty {
            /// Size of one encoded block in bytes.
            pub const SIZE: usize = size_of::<$ty>();

            /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
            #[inline]
            pub fn read(b: &[u8]) -> Self {
                debug_assert!(b.len() >= Self::SIZE);
                Self {
                    $($f16_field: get_f16(b, offset_of!($ty, $f16_field)),)*
                    $($u8_field: get_array(b, offset_of!($ty, $u8_field)),)*
                    $($i8_field: get_i8_array(b, offset_of!($ty, $i8_field)),)*
                }
            }

            /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
            #[inline]
            pub fn write(&self, b: &mut [u8]) {
                debug_assert!(b.len() >= Self::SIZE);
                $(put_f16(b, offset_of!($ty, $f16_field), self.$f16_field);)*
                $({
                    let at = offset_of!($ty, $u8_field);
                    b[at..at + self.$u8_field.len()].copy_from_slice(&self.$u8_field);
                })*
                $(put_i8_array(b, offset_of!($ty, $i8_field), &self.$i8_field);)*
            }
        }
    };
}

block_codec!(BlockQ4_0 { d: f16; qs: u8; });
block_codec!(BlockQ4_1 { d: f16, m: f16; qs: u8; });
block_codec!(BlockQ5_0 { d: f16; qh: u8, qs: u8; });
block_codec!(BlockQ5_1 { d: f16, m: f16; qh: u8, qs: u8; });
block_codec!(BlockQ8_0 { d: f16; ; qs: i8 });
block_codec!(BlockQ8_1 { d: f16, s: f16; ; qs: i8 });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_offsets_match_ggml_common_h() {
        assert_eq!(
            [
                BlockQ4_0::SIZE,
                BlockQ4_1::SIZE,
                BlockQ5_0::SIZE,
                BlockQ5_1::SIZE,
                BlockQ8_0::SIZE,
                BlockQ8_1::SIZE
            ],
            [18, 20, 22, 24, 34, 36]
        );
        assert_eq!(offset_of!(BlockQ4_0, qs), 2);
        assert_eq!(offset_of!(BlockQ4_1, m), 2);
        assert_eq!(offset_of!(BlockQ4_1, qs), 4);
        assert_eq!(offset_of!(BlockQ5_0, qh), 2);
        assert_eq!(offset_of!(BlockQ5_0, qs), 6);
        assert_eq!(offset_of!(BlockQ5_1, qh), 4);
        assert_eq!(offset_of!(BlockQ5_1, qs), 8);
        assert_eq!(offset_of!(BlockQ8_0, qs), 2);
        assert_eq!(offset_of!(BlockQ8_1, s), 2);
        assert_eq!(offset_of!(BlockQ8_1, qs), 4);
    }

    #[test]
    fn read_write_round_trip_at_odd_offsets() {
        // Distinct byte values so a swapped or shifted field shows up as a mismatch.
        let src: [u8; 40] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        for off in [0usize, 1, 3] {
            let mut out = [0u8; 40];
            let b = BlockQ5_1::read(&src[off..]);
            assert_eq!(b.d.to_bits(), u16::from_le_bytes([src[off], src[off + 1]]));
            assert_eq!(
                b.m.to_bits(),
                u16::from_le_bytes([src[off + 2], src[off + 3]])
            );
            assert_eq!(b.qh, src[off + 4..off + 8]);
            b.write(&mut out[off..]);
            assert_eq!(out[off..off + 24], src[off..off + 24]);

            let b = BlockQ8_1::read(&src[off..]);
            assert_eq!(b.qs[0], src[off + 4] as i8);
            assert_eq!(b.qs[31], src[off + 35] as i8);
            b.write(&mut out[off..]);
            assert_eq!(out[off..off + 36], src[off..off + 36]);
        }
    }
}
