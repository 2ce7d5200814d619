//! What the kernels' integration tests share: the seeded generator, the lengths and offsets every
//! kernel is run at, and the helper that places a slice at an odd address.
#![allow(dead_code)]

/// Row lengths, in blocks, that every kernel is tested at (tails, powers of two and their neighbours).
pub const LENGTH_BLOCKS: [usize; 12] = [1, 2, 3, 7, 8, 15, 16, 17, 31, 33, 255, 1023];
/// Byte offsets at which inputs are placed, so kernels meet unaligned slices.
pub const OFFSETS: [usize; 3] = [0, 1, 3];
/// f32 unit roundoff.
pub const U32: f64 = 1.0 / (1u64 << 24) as f64;
/// f64 unit roundoff.
pub const U64: f64 = 1.0 / (1u64 << 53) as f64;

/// splitmix64: tiny, seeded, reproducible (no `rand` dependency).
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-1, 1) with 24 random bits.
    pub fn unit(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u32 << 23) as f32) - 1.0
    }
}

/// `bytes` copied behind `off` junk bytes, so kernels see a slice at that address offset.
pub fn shifted(bytes: &[u8], off: usize) -> Vec<u8> {
    let mut v = vec![0xa5u8; off];
    v.extend_from_slice(bytes);
    v
}
