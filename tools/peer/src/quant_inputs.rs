//! The seeded rows of the quantizer parity check, shared by `ingot-peer quantize-parity` (which
//! quantizes them with ggml) and the workspace test `tests/convert.rs` (which quantizes them with
//! ingot and checks the committed hashes in `testdata/peer/quantize.json`). Dependency-free so the
//! test can include it with `#[path]`; changing anything here changes the inputs, which the fixture's
//! `input_fnv` catches.

// The edge values are written exactly (1 + 2^-11, ...), not in their shortest f32 spelling.
#![allow(clippy::excessive_precision)]

/// Elements per row: 8 blocks of 32.
pub const ROW: usize = 256;
/// Rows per random set.
pub const ROWS: usize = 48;
/// Seed of the committed fixture.
pub const SEED: u64 = 1;

/// splitmix64.
pub struct Rng(pub u64);

impl Rng {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [-1, 1), 24 random bits.
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Roughly normal (Irwin-Hall of 4), mean 0, standard deviation about 0.58.
    pub fn normalish(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() * 0.5
    }
}

/// FNV-1a, 64 bits: the fixture's hash of byte strings.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The f32 values as little-endian bytes (for hashing).
pub fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Named sets of `ROWS` rows of `ROW` elements (row-major), all finite.
pub fn random_sets(seed: u64) -> Vec<(&'static str, Vec<f32>)> {
    let mut rng = Rng(seed);
    let n = ROW * ROWS;
    let mut sets: Vec<(&'static str, Vec<f32>)> = Vec::new();
    sets.push(("uniform", (0..n).map(|_| rng.uniform()).collect()));
    sets.push(("weights", (0..n).map(|_| rng.normalish() * 0.04).collect()));
    // Zeros, negative zeros and rows of zeros with one non-zero element per block.
    sets.push((
        "zeros",
        (0..n)
            .map(|i| match (i / ROW) % 3 {
                0 => 0.0,
                1 => -0.0,
                _ if i % 32 == 17 => rng.uniform(),
                _ => 0.0,
            })
            .collect(),
    ));
    // Each row one value (a block whose max equals min: d = 0 for Q4_1/Q5_1).
    let consts: Vec<f32> = (0..ROWS)
        .map(|r| match r % 4 {
            0 => rng.uniform(),
            1 => -rng.uniform().abs() * 100.0,
            2 => 1.0,
            _ => rng.uniform() * 1e-5,
        })
        .collect();
    sets.push(("all_equal", (0..n).map(|i| consts[i / ROW]).collect()));
    // Tiny magnitudes: scales that are f16 subnormals or flush to zero, and f32 subnormals.
    sets.push((
        "tiny",
        (0..n)
            .map(|i| {
                let s = [1e-5f32, 1e-7, 1e-9, 1e-38][(i / ROW) % 4];
                rng.uniform() * s
            })
            .collect(),
    ));
    // Huge magnitudes: near the f16 maximum, and beyond it (the stored f16 scale overflows to inf).
    sets.push((
        "huge",
        (0..n)
            .map(|i| {
                let s = [3e4f32, 6.5e4, 1e6, 1e30][(i / ROW) % 4];
                rng.uniform() * s
            })
            .collect(),
    ));
    // Small values with rare large outliers, as real activations and some weights have.
    sets.push((
        "outliers",
        (0..n)
            .map(|_| {
                let u = rng.uniform() * 0.1;
                if rng.next_u64().is_multiple_of(50) {
                    u * 300.0
                } else {
                    u
                }
            })
            .collect(),
    ));
    // Multiples of 1/2 and of 1/16 in [-8, 8]: quantized values land exactly on rounding ties.
    sets.push((
        "ties",
        (0..n)
            .map(|i| {
                let k = (rng.next_u64() % 33) as f32 - 16.0;
                if (i / ROW).is_multiple_of(2) {
                    k * 0.5
                } else {
                    k / 16.0
                }
            })
            .collect(),
    ));
    // Random bit patterns: any sign, exponents from 2^-30 to 2^20, any mantissa.
    sets.push((
        "bits",
        (0..n)
            .map(|_| {
                let r = rng.next_u64();
                let exp = 127 - 30 + (r % 51) as u32;
                f32::from_bits(((r >> 8) as u32 & 0x807f_ffff) | (exp << 23))
            })
            .collect(),
    ));
    // f16 / bf16 rounding edges: halfway cases, subnormals, the f16 maximum and just past it.
    let edges = [
        65504.0f32,
        65519.0,
        65520.0,
        -65520.0,
        6.1035156e-5,
        5.9604645e-8,
        2.9802322e-8,
        2.9802326e-8,
        1.0009766,
        1.00048828125,
        1.0004883,
        1.00390625,
        1.0039063,
        1.01171875,
        -1.00048828125,
        3.0e-39,
    ];
    sets.push((
        "float_edges",
        (0..n)
            .map(|i| {
                let e = edges[i % edges.len()];
                if (i / ROW).is_multiple_of(2) {
                    e
                } else {
                    e * (1.0 + rng.uniform() * 1e-3)
                }
            })
            .collect(),
    ));
    sets
}

/// Tensors whose rows (dequantized to f32) form the `smollm2` set: (name, rows taken from the start).
pub const SMOLLM2_ROWS: [(&str, usize); 5] = [
    ("token_embd.weight", 256),
    ("blk.0.attn_q.weight", 576),
    ("blk.0.ffn_down.weight", 576),
    ("blk.14.ffn_gate.weight", 256),
    ("blk.29.attn_v.weight", 192),
];

/// FNV-1a of a model's tensors independent of their order in the file: for each tensor sorted by
/// name, its name, `0`, its ggml type id (u32 LE) and its data bytes. Compares ingot's converted files
/// with `llama_model_quantize`'s (which orders tensors differently).
pub fn tensors_fnv(tensors: &mut [(&str, u32, &[u8])]) -> u64 {
    tensors.sort_by(|a, b| a.0.cmp(b.0));
    let mut all = Vec::new();
    for (name, ty, data) in tensors.iter() {
        all.extend_from_slice(name.as_bytes());
        all.push(0);
        all.extend_from_slice(&ty.to_le_bytes());
        all.extend_from_slice(data);
    }
    fnv1a(&all)
}
