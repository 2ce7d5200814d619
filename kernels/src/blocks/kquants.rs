//! ggml's K-quant super-block layouts (`ggml/src/ggml-common.h`, `QK_K == 256`), byte for byte.
//!
//! A super-block holds 256 consecutive elements of a row, split into 16 sub-blocks of 16 (Q2_K,
//! Q3_K, Q6_K) or 8 of 32 (Q4_K, Q5_K), each with a small integer scale (and for Q2_K/Q4_K/Q5_K a
//! small integer minimum) that multiplies one f16 super-block scale. [`BlockQ8_K`] is the matmul
//! activation format paired with all of them.
//!
//! As in [`crate::blocks`], kernels never reinterpret tensor bytes as these structs; every struct has
//! a safe `read` / `write` pair at the offsets `offset_of!` gives. What the numbers mean (how
//! scales are packed and applied) lives in [`crate::reference`] (`kquants.rs`).

use super::{get_array, get_f16, put_f16};
use core::mem::{offset_of, size_of};
use half::f16;

/// Elements per super-block (ggml `QK_K`).
pub const QK_K: usize = 256;

/// ggml `K_SCALE_SIZE`: 8 six-bit scales and 8 six-bit minimums of Q4_K / Q5_K.
pub const K_SCALE_SIZE: usize = 12;

/// `block_q2_K`, 84 bytes: element = `d * (scales[s] & 15) * q - dmin * (scales[s] >> 4)`, with a
/// 2-bit `q` and `s` its 16-element sub-block.
///
/// ```text
/// byte  0..16  scales  low nibble: scale of sub-block s, high nibble: its minimum
/// byte 16..80  qs      128-element halves h: qs[32h + l] bit pair p = q of element 128h + 32p + l
/// byte 80..82  d       f16 super-block scale of the scales
/// byte 82..84  dmin    f16 super-block scale of the minimums
/// ```
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ2_K {
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2_K>() == 84);

/// `block_q3_K`, 110 bytes: element = `d * (scale6[s] - 32) * (q - 4)`, with a 3-bit `q` (low two
/// bits in `qs` as Q2_K, bit 2 in `hmask`) and 6-bit sub-block scales.
///
/// ```text
/// byte   0..32   hmask   hmask[l] bit b = bit 2 of q of element 32b + l
/// byte  32..96   qs      as Q2_K
/// byte  96..108  scales  6-bit scale6[s]: low nibble in byte s (s < 8) or high nibble of byte s-8,
///                        top two bits in byte 8 + s%4 at bit 2*(s/4)
/// byte 108..110  d       f16 super-block scale
/// ```
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ3_K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3_K>() == 110);

/// `block_q4_K`, 144 bytes: element = `d * sc[s] * q - dmin * m[s]`, with a 4-bit `q` and 6-bit
/// `sc`, `m` per 32-element sub-block `s` (`get_scale_min_k4`).
///
/// ```text
/// byte   0..2    d       f16
/// byte   2..4    dmin    f16
/// byte   4..16   scales  s < 4: sc = b[s] & 63, m = b[s+4] & 63;
///                        s >= 4: sc = b[s+4] & 15 | (b[s-4] >> 6) << 4, m = b[s+4] >> 4 | (b[s] >> 6) << 4
/// byte  16..144  qs      64-element chunks c: qs[32c + l] = q[64c + l] | q[64c + 32 + l] << 4
/// ```
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4_K>() == 144);

/// `block_q5_K`, 176 bytes: as Q4_K with a 5-bit `q` whose bit 4 is in `qh`.
///
/// ```text
/// byte   0..2    d       f16
/// byte   2..4    dmin    f16
/// byte   4..16   scales  as Q4_K
/// byte  16..48   qh      qh[l] bit b = bit 4 of q of element 32b + l
/// byte  48..176  qs      low 4 bits, as Q4_K
/// ```
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5_K>() == 176);

/// `block_q6_K`, 210 bytes: element = `d * scales[s] * (q - 32)`, with a 6-bit `q` and an i8 scale
/// per 16-element sub-block `s`.
///
/// ```text
/// byte    0..128  ql      128-element halves h, l < 32: ql[64h + l]      = q[128h + l] & 15 | (q[128h + 64 + l] & 15) << 4
///                                                       ql[64h + 32 + l] = q[128h + 32 + l] & 15 | (q[128h + 96 + l] & 15) << 4
/// byte  128..192  qh      qh[32h + l] bit pair p = q[128h + 32p + l] >> 4
/// byte  192..208  scales  i8
/// byte  208..210  d       f16
/// ```
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ6_K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6_K>() == 210);

/// `block_q8_K`, 292 bytes: the activation format of K-quant dot products. element = `d * qs[i]`
/// with an f32 (not f16) scale; `bsums[g]` caches the sum of the 16 quants of group `g`.
///
/// ```text
/// byte    0..4    d      f32
/// byte    4..260  qs     i8, one per element, in order
/// byte  260..292  bsums  i16 LE
/// ```
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}
const _: () = assert!(size_of::<BlockQ8_K>() == 292);

impl BlockQ2_K {
    /// Size of one encoded block in bytes.
    pub const SIZE: usize = size_of::<Self>();

    /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn read(b: &[u8]) -> Self {
        debug_assert!(b.len() >= Self::SIZE);
        Self {
            scales: get_array(b, offset_of!(Self, scales)),
            qs: get_array(b, offset_of!(Self, qs)),
            d: get_f16(b, offset_of!(Self, d)),
            dmin: get_f16(b, offset_of!(Self, dmin)),
        }
    }

    /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put(b, offset_of!(Self, scales), &self.scales);
        put(b, offset_of!(Self, qs), &self.qs);
        put_f16(b, offset_of!(Self, d), self.d);
        put_f16(b, offset_of!(Self, dmin), self.dmin);
    }
}

impl BlockQ3_K {
    /// Size of one encoded block in bytes.
    pub const SIZE: usize = size_of::<Self>();

    /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn read(b: &[u8]) -> Self {
        debug_assert!(b.len() >= Self::SIZE);
        Self {
            hmask: get_array(b, offset_of!(Self, hmask)),
            qs: get_array(b, offset_of!(Self, qs)),
            scales: get_array(b, offset_of!(Self, scales)),
            d: get_f16(b, offset_of!(Self, d)),
        }
    }

    /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put(b, offset_of!(Self, hmask), &self.hmask);
        put(b, offset_of!(Self, qs), &self.qs);
        put(b, offset_of!(Self, scales), &self.scales);
        put_f16(b, offset_of!(Self, d), self.d);
    }
}

impl BlockQ4_K {
    /// Size of one encoded block in bytes.
    pub const SIZE: usize = size_of::<Self>();

    /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn read(b: &[u8]) -> Self {
        debug_assert!(b.len() >= Self::SIZE);
        Self {
            d: get_f16(b, offset_of!(Self, d)),
            dmin: get_f16(b, offset_of!(Self, dmin)),
            scales: get_array(b, offset_of!(Self, scales)),
            qs: get_array(b, offset_of!(Self, qs)),
        }
    }

    /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put_f16(b, offset_of!(Self, d), self.d);
        put_f16(b, offset_of!(Self, dmin), self.dmin);
        put(b, offset_of!(Self, scales), &self.scales);
        put(b, offset_of!(Self, qs), &self.qs);
    }
}

impl BlockQ5_K {
    /// Size of one encoded block in bytes.
    pub const SIZE: usize = size_of::<Self>();

    /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn read(b: &[u8]) -> Self {
        debug_assert!(b.len() >= Self::SIZE);
        Self {
            d: get_f16(b, offset_of!(Self, d)),
            dmin: get_f16(b, offset_of!(Self, dmin)),
            scales: get_array(b, offset_of!(Self, scales)),
            qh: get_array(b, offset_of!(Self, qh)),
            qs: get_array(b, offset_of!(Self, qs)),
        }
    }

    /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put_f16(b, offset_of!(Self, d), self.d);
        put_f16(b, offset_of!(Self, dmin), self.dmin);
        put(b, offset_of!(Self, scales), &self.scales);
        put(b, offset_of!(Self, qh), &self.qh);
        put(b, offset_of!(Self, qs), &self.qs);
    }
}

impl BlockQ6_K {
    /// Size of one encoded block in bytes.
    pub const SIZE: usize = size_of::<Self>();

    /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn read(b: &[u8]) -> Self {
        debug_assert!(b.len() >= Self::SIZE);
        Self {
            ql: get_array(b, offset_of!(Self, ql)),
            qh: get_array(b, offset_of!(Self, qh)),
            scales: super::get_i8_array(b, offset_of!(Self, scales)),
            d: get_f16(b, offset_of!(Self, d)),
        }
    }

    /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put(b, offset_of!(Self, ql), &self.ql);
        put(b, offset_of!(Self, qh), &self.qh);
        super::put_i8_array(b, offset_of!(Self, scales), &self.scales);
        put_f16(b, offset_of!(Self, d), self.d);
    }
}

impl BlockQ8_K {
    /// Size of one encoded block in bytes.
    pub const SIZE: usize = size_of::<Self>();

    /// Decodes one block from the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn read(b: &[u8]) -> Self {
        debug_assert!(b.len() >= Self::SIZE);
        let at = offset_of!(Self, bsums);
        Self {
            d: f32::from_le_bytes(get_array(b, offset_of!(Self, d))),
            qs: super::get_i8_array(b, offset_of!(Self, qs)),
            bsums: core::array::from_fn(|g| i16::from_le_bytes([b[at + 2 * g], b[at + 2 * g + 1]])),
        }
    }

    /// Encodes this block into the first `SIZE` bytes of `b` (any alignment).
    #[inline]
    pub fn write(&self, b: &mut [u8]) {
        put(b, offset_of!(Self, d), &self.d.to_le_bytes());
        super::put_i8_array(b, offset_of!(Self, qs), &self.qs);
        let at = offset_of!(Self, bsums);
        for (g, s) in self.bsums.iter().enumerate() {
            put(b, at + 2 * g, &s.to_le_bytes());
        }
    }
}

#[inline]
fn put(b: &mut [u8], at: usize, v: &[u8]) {
    b[at..at + v.len()].copy_from_slice(v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_offsets_match_ggml_common_h() {
        assert_eq!(
            [
                BlockQ2_K::SIZE,
                BlockQ3_K::SIZE,
                BlockQ4_K::SIZE,
                BlockQ5_K::SIZE,
                BlockQ6_K::SIZE,
                BlockQ8_K::SIZE
            ],
            [84, 110, 144, 176, 210, 292]
        );
        assert_eq!(offset_of!(BlockQ2_K, qs), 16);
        assert_eq!(offset_of!(BlockQ2_K, d), 80);
        assert_eq!(offset_of!(BlockQ3_K, scales), 96);
        assert_eq!(offset_of!(BlockQ3_K, d), 108);
        assert_eq!(offset_of!(BlockQ4_K, scales), 4);
        assert_eq!(offset_of!(BlockQ4_K, qs), 16);
        assert_eq!(offset_of!(BlockQ5_K, qh), 16);
        assert_eq!(offset_of!(BlockQ5_K, qs), 48);
        assert_eq!(offset_of!(BlockQ6_K, qh), 128);
        assert_eq!(offset_of!(BlockQ6_K, scales), 192);
        assert_eq!(offset_of!(BlockQ6_K, d), 208);
        assert_eq!(offset_of!(BlockQ8_K, qs), 4);
        assert_eq!(offset_of!(BlockQ8_K, bsums), 260);
    }

    #[test]
    fn read_write_round_trip_at_odd_offsets() {
        let src: [u8; 300] = core::array::from_fn(|i| (i as u8).wrapping_mul(37).wrapping_add(11));
        for off in [0usize, 1, 3] {
            macro_rules! round_trip {
                ($ty:ident) => {{
                    let mut out = [0u8; 300];
                    let b = $ty::read(&src[off..]);
                    b.write(&mut out[off..]);
                    assert_eq!(
                        out[off..off + $ty::SIZE],
                        src[off..off + $ty::SIZE],
                        "{}",
                        stringify!($ty)
                    );
                    b
                }};
            }
            round_trip!(BlockQ2_K);
            round_trip!(BlockQ3_K);
            let b = round_trip!(BlockQ4_K);
            assert_eq!(b.d.to_bits(), u16::from_le_bytes([src[off], src[off + 1]]));
            round_trip!(BlockQ5_K);
            let b = round_trip!(BlockQ6_K);
            assert_eq!(b.scales[0], src[off + 192] as i8);
            let b = round_trip!(BlockQ8_K);
            assert_eq!(
                b.bsums[15],
                i16::from_le_bytes([src[off + 290], src[off + 291]])
            );
            assert_eq!(
                b.d.to_bits(),
                u32::from_le_bytes([src[off], src[off + 1], src[off + 2], src[off + 3]])
            );
        }
    }
}
