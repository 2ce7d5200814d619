//! The packed (interleaved) weight layouts of `ingot_kernels::packed` (Q4_0, Q8_0, Q4_1, Q5_0
//! and Q5_1):
//!
//! - `pack` then `unpack` gives back every byte, and the layout is the one documented (checked
//!   element by element against the row-major blocks);
//! - the scalar reference of the packed product agrees with an independent f64 evaluation of
//!   `sum_b d_w d_x sumi_b (+ m_w s_x)` within its rounding bound, and with the row-major `vec_dot`;
//! - every path available on the host (`matmul_packed`) is bitwise equal to that reference, for
//!   row counts of several groups, lengths with the table-chunk boundary, every token count up to
//!   two tiles, odd activation strides and addresses; and `matmul_par_packed` is bitwise equal to
//!   it for 1, 2 and 3 threads;
//! - non-packable shapes and short buffers are refused.

mod common;
use common::{shifted, SplitMix64, U32};

use half::f16;
use ingot_kernels::blocks::QK;
use ingot_kernels::packed::{
    matmul_packed_reference, matmul_packed_reference_in, pack, packable, unpack, unpack_row,
    LaneOrder, PACK_ROWS,
};
use ingot_kernels::{quantize_activations, Isa, Kernels, QuantType, ThreadPool};

const Q4_0: QuantType = QuantType::Q4_0;
const Q8_0: QuantType = QuantType::Q8_0;
const Q4_1: QuantType = QuantType::Q4_1;
const Q5_0: QuantType = QuantType::Q5_0;
const Q5_1: QuantType = QuantType::Q5_1;
/// The packable types.
const TYPES: [QuantType; 5] = [Q4_0, Q8_0, Q4_1, Q5_0, Q5_1];

/// f16 fields at the start of a block: `d`, or `d` and `m`.
fn scales(ty: QuantType) -> usize {
    if matches!(ty, Q4_1 | Q5_1) {
        2
    } else {
        1
    }
}

/// Bytes of a block's fields before its codes (`d`, `m`, `qh`).
fn header_bytes(ty: QuantType) -> usize {
    2 * scales(ty) + if matches!(ty, Q5_0 | Q5_1) { 4 } else { 0 }
}

/// Bytes of one row of `n` activations for `ty`'s products (its `vec_dot_type`).
fn act_bytes(ty: QuantType, n: usize) -> usize {
    ty.info().vec_dot_type.row_bytes(n).unwrap()
}

/// A random matrix of `ty` (from random values, so scales are realistic) and its packed form.
fn matrix(rng: &mut SplitMix64, ty: QuantType, rows: usize, n: usize) -> (Vec<u8>, Vec<u8>) {
    let vals: Vec<f32> = (0..rows * n)
        .map(|i| rng.unit() * (1.0 + (i / QK % 7) as f32))
        .collect();
    let mut w = vec![0u8; ty.row_bytes(rows * n).unwrap()];
    (ty.info().from_f32)(&vals, &mut w);
    let mut p = vec![0u8; w.len()];
    pack(ty, &w, rows, n, &mut p);
    (w, p)
}

/// Code `i` of a row-major block: `q - 8` for Q4_0, `q` for Q4_1 and Q5_1, `q - 16` for Q5_0
/// (bit 4 from bit `i` of `qh`), the signed byte for Q8_0.
fn code(ty: QuantType, blk: &[u8], i: usize) -> i64 {
    if ty == Q8_0 {
        return i64::from(blk[2 + i] as i8);
    }
    let qs = &blk[ty.block_bytes() - 16..];
    let mut q = i64::from(if i < 16 { qs[i] & 15 } else { qs[i - 16] >> 4 });
    if matches!(ty, Q5_0 | Q5_1) {
        let at = 2 * scales(ty);
        let qh = u32::from_le_bytes(blk[at..at + 4].try_into().unwrap());
        q += i64::from((qh >> i) & 1) * 16;
    }
    q - match ty {
        Q4_0 => 8,
        Q5_0 => 16,
        _ => 0,
    }
}

/// `t` activation rows of `n` for `ty`'s products (Q8_0, or Q8_1 for Q4_1), `stride` bytes
/// apart.
fn activations(rng: &mut SplitMix64, ty: QuantType, t: usize, n: usize, stride: usize) -> Vec<u8> {
    let act = ty.info().vec_dot_type;
    let arb = act.row_bytes(n).unwrap();
    let mut x = vec![0x5au8; (t.max(1) - 1) * stride + arb];
    for j in 0..t {
        let v: Vec<f32> = (0..n).map(|_| rng.unit() * 3.0).collect();
        quantize_activations(act, &v, &mut x[j * stride..j * stride + arb]);
    }
    x
}

/// Every path this host has, plus the AVX-VNNI kernels with `vpdpbusd` emulated on AVX2 hosts.
fn paths() -> Vec<Kernels> {
    let ks: Vec<Kernels> = Isa::ALL
        .iter()
        .filter_map(|&i| Kernels::for_isa(i))
        .chain(Kernels::avxvnni_emulated())
        .collect();
    eprintln!(
        "packed paths: {:?}",
        ks.iter()
            .map(|k| (k.isa().name(), k.is_emulated()))
            .collect::<Vec<_>>()
    );
    ks
}

#[test]
fn pack_unpack_round_trips_and_follows_the_documented_layout() {
    let mut rng = SplitMix64(11);
    for ty in TYPES {
        let bb = ty.block_bytes();
        for (rows, n) in [(16, 32), (32, 96), (48, 256)] {
            let (w, p) = matrix(&mut rng, ty, rows, n);
            let mut back = vec![0u8; w.len()];
            unpack(ty, &p, rows, n, &mut back);
            assert_eq!(back, w, "{ty} {rows} x {n}");
            let nb = n / QK;
            let rb = nb * bb;
            let mut row = vec![0u8; rb];
            for r in 0..rows {
                unpack_row(ty, &p, rows, n, r, &mut row);
                assert_eq!(row, w[r * rb..][..rb], "{ty} {rows} x {n} row {r}");
            }
            for r in 0..rows {
                let (g, rr) = (r / PACK_ROWS, r % PACK_ROWS);
                for b in 0..nb {
                    let blk = &w[r * rb + b * bb..][..bb];
                    let gb = &p[g * PACK_ROWS * rb + b * 16 * bb..][..16 * bb];
                    // d (and m) of the 16 rows, (their qh), then the 64-byte code chunks.
                    let (h, hb) = (scales(ty), header_bytes(ty));
                    for f in 0..h {
                        assert_eq!(
                            &gb[32 * f + 2 * rr..][..2],
                            &blk[2 * f..2 * f + 2],
                            "scale {f} of row {r} block {b}"
                        );
                    }
                    if hb > 2 * h {
                        assert_eq!(&gb[32 * h + 4 * rr..][..4], &blk[2 * h..2 * h + 4], "qh");
                    }
                    for c in 0..(bb - hb) / 4 {
                        let at = 16 * hb + 64 * c + 4 * rr;
                        assert_eq!(&gb[at..at + 4], &blk[hb + 4 * c..][..4]);
                    }
                }
            }
        }
    }
}

#[test]
fn reference_is_the_documented_sum_and_close_to_vec_dot() {
    let mut rng = SplitMix64(12);
    for (ty, rows, n) in TYPES
        .iter()
        .flat_map(|&ty| [(ty, 16, 32), (ty, 32, 320), (ty, 16, 4096)])
    {
        let bb = ty.block_bytes();
        let (w, p) = matrix(&mut rng, ty, rows, n);
        let arb = act_bytes(ty, n);
        let x = activations(&mut rng, ty, 3, n, arb);
        let mut out = vec![0f32; 3 * rows];
        matmul_packed_reference(ty, &mut out, &p, rows, &x, arb, 3, n);
        let mut four = vec![0f32; 3 * rows];
        matmul_packed_reference_in(LaneOrder::Four, ty, &mut four, &p, rows, &x, arb, 3, n);
        let nb = n / QK;
        for (j, order) in (0..3).flat_map(|j| [(j, LaneOrder::Eight), (j, LaneOrder::Four)]) {
            let out = if order == LaneOrder::Eight {
                &out
            } else {
                &four
            };
            let xr = &x[j * arb..][..arb];
            for r in 0..rows {
                let wr = &w[r * nb * bb..][..nb * bb];
                // Independent evaluation in f64 from the row-major blocks.
                let (mut exact, mut mag) = (0f64, 0f64);
                let xbb = arb / nb;
                for b in 0..nb {
                    let (bw, bx) = (&wr[b * bb..][..bb], &xr[b * xbb..][..xbb]);
                    let dw = f16::from_le_bytes([bw[0], bw[1]]).to_f64();
                    let dx = f16::from_le_bytes([bx[0], bx[1]]).to_f64();
                    let mut s = 0i64;
                    let mut a = 0i64;
                    for i in 0..QK {
                        let v = code(ty, bw, i) * i64::from(bx[xbb - 32 + i] as i8);
                        s += v;
                        a += v.abs();
                    }
                    exact += dw * dx * s as f64;
                    mag += (dw * dx).abs() * a as f64;
                    if scales(ty) == 2 {
                        // + m_w * s_x, where s_x = d_x * sum(y) as stored (f16).
                        let mw = f16::from_le_bytes([bw[2], bw[3]]).to_f64();
                        let sx = f16::from_le_bytes([bx[2], bx[3]]).to_f64();
                        exact += mw * sx;
                        mag += (mw * sx).abs();
                    }
                }
                let got = f64::from(out[j * rows + r]);
                // nb sequential FMAs, each one rounding plus one for d_w * d_x.
                let tol = (2.0 * nb as f64 + 4.0) * U32 * mag + 1e-30;
                assert!(
                    (got - exact).abs() <= tol,
                    "{ty} {order:?} {rows}x{n} r{r} j{j}: {got} vs {exact} (tol {tol})"
                );
                let vd = (ty.info().vec_dot)(n, wr, xr) as f64;
                assert!((got - vd).abs() <= 2.0 * tol, "vs vec_dot: {got} vs {vd}");
            }
        }
    }
}

#[test]
fn every_path_is_bitwise_equal_to_the_reference() {
    let mut rng = SplitMix64(13);
    let ks = paths();
    // 4128 elements = 129 blocks: crosses the 128-block scale-table chunk of the AVX-512 path.
    let shapes = [(16, 32), (48, 96), (32, 4128), (160, 576)];
    for (ty, rows, n) in TYPES.iter().flat_map(|&ty| shapes.map(|(r, n)| (ty, r, n))) {
        let (_, p) = matrix(&mut rng, ty, rows, n);
        let arb = act_bytes(ty, n);
        for t in (1..=17).chain([33]) {
            for (stride, off) in [(arb, 0), (arb + 5, 3)] {
                let x = shifted(&activations(&mut rng, ty, t, n, stride), off);
                let x = &x[off..];
                let mut want = vec![0f32; t * rows];
                matmul_packed_reference(ty, &mut want, &p, rows, x, stride, t, n);
                let mut four = vec![0f32; t * rows];
                matmul_packed_reference_in(
                    LaneOrder::Four,
                    ty,
                    &mut four,
                    &p,
                    rows,
                    x,
                    stride,
                    t,
                    n,
                );
                for k in &ks {
                    let want: &[f32] = match k.packed_order(ty) {
                        LaneOrder::Eight => &want,
                        LaneOrder::Four => &four,
                    };
                    let mut got = vec![f32::NAN; t * rows];
                    k.matmul_packed(ty, &mut got, &p, rows, x, stride, t, n);
                    for (i, (g, w)) in got.iter().zip(want).enumerate() {
                        assert_eq!(
                            g.to_bits(),
                            w.to_bits(),
                            "{} {ty} {rows}x{n} t{t} stride{stride} at {i}: {g} vs {w}",
                            k.isa().name()
                        );
                    }
                }
            }
        }
    }
}

/// The integer parts are exact for every weight byte pattern, not only for what the quantizers
/// make: Q8_0 weight codes of -128 (the AVX2 path multiplies `|q|` by the activation with `q`'s
/// sign, the AVX-512 path biases the codes, NEON multiplies them signed), random scales, and
/// random activation codes in -127..=127: the range every Q8 quantizer writes, which the AVX2
/// path counts on as ggml's own AVX2 dot does (`-128` would overflow its `vpmaddubsw` pairs).
#[test]
fn every_path_is_exact_for_arbitrary_code_bytes() {
    let mut rng = SplitMix64(16);
    let ks = paths();
    let (rows, n, t) = (32, 320, 5);
    for ty in TYPES {
        let (bb, h) = (ty.block_bytes(), scales(ty));
        let scale = |rng: &mut SplitMix64| f16::from_f32(rng.unit() * 0.02).to_le_bytes();
        let mut w: Vec<u8> = (0..rows * n / QK * bb)
            .map(|_| rng.next_u64() as u8)
            .collect();
        for blk in w.chunks_exact_mut(bb) {
            for f in 0..h {
                blk[2 * f..2 * f + 2].copy_from_slice(&scale(&mut rng));
            }
        }
        // One Q8_0 weight code per block set to -128, one activation code to -127.
        if ty == Q8_0 {
            for blk in w.chunks_exact_mut(bb) {
                blk[2 + (rng.next_u64() % 32) as usize] = 0x80;
            }
        }
        let mut p = vec![0u8; w.len()];
        pack(ty, &w, rows, n, &mut p);
        let arb = act_bytes(ty, n);
        let xbb = arb / (n / QK);
        let mut x: Vec<u8> = (0..t * arb)
            .map(|_| match rng.next_u64() as u8 {
                0x80 => 0x81,
                b => b,
            })
            .collect();
        for blk in x.chunks_exact_mut(xbb) {
            for f in 0..xbb / 2 - 16 {
                blk[2 * f..2 * f + 2].copy_from_slice(&scale(&mut rng));
            }
            blk[xbb - 32 + (rng.next_u64() % 32) as usize] = 0x81;
        }
        for k in &ks {
            let mut want = vec![0f32; t * rows];
            matmul_packed_reference_in(k.packed_order(ty), ty, &mut want, &p, rows, &x, arb, t, n);
            let mut got = vec![f32::NAN; t * rows];
            k.matmul_packed(ty, &mut got, &p, rows, &x, arb, t, n);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.to_bits(), w.to_bits(), "{} {ty} at {i}", k.isa().name());
            }
        }
    }
}

/// Packed Q8_0 and Q4_1 keep ggml's x86 eight-lane order: where the row-major kernels reproduce
/// ggml's `vec_dot_q8_0_q8_0` / `vec_dot_q4_1_q8_1` bit for bit (the AVX-512 VNNI path:
/// `ingot-peer kernel-parity` and the llama.cpp parity tests; the AVX2 path, whose lanes are
/// ggml's AVX2 lanes), the packed reference equals the row-major product bit for bit.
#[test]
fn packed_q8_0_and_q4_1_equal_the_x86_row_major_product_bitwise() {
    let mut rng = SplitMix64(15);
    let x86: Vec<Kernels> = [Isa::Avx512Vnni, Isa::AvxVnni, Isa::Avx2]
        .iter()
        .filter_map(|&i| Kernels::for_isa(i))
        .chain(Kernels::avxvnni_emulated())
        .collect();
    if x86.is_empty() {
        println!("skipped: no AVX-512 VNNI or AVX2 path on this host");
        return;
    }
    println!(
        "row-major = packed on {:?}",
        x86.iter().map(|k| k.isa().name()).collect::<Vec<_>>()
    );
    let shapes = [(16, 32), (48, 96), (32, 4128), (160, 576)];
    for (ty, rows, n) in [Q8_0, Q4_1]
        .iter()
        .flat_map(|&ty| shapes.map(|(r, n)| (ty, r, n)))
    {
        let (w, p) = matrix(&mut rng, ty, rows, n);
        let arb = act_bytes(ty, n);
        for t in [1usize, 2, 3, 5, 9] {
            let x = activations(&mut rng, ty, t, n, arb);
            let mut want = vec![0f32; t * rows];
            matmul_packed_reference(ty, &mut want, &p, rows, &x, arb, t, n);
            for k in &x86 {
                let mut got = vec![f32::NAN; t * rows];
                k.matmul(ty, &mut got, &w, rows, &x, arb, t, n);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        w.to_bits(),
                        "{} {ty} row-major {rows}x{n} t{t} at {i}: {g} vs packed {w}",
                        k.isa().name()
                    );
                }
            }
        }
    }
}

/// The repack policy's guarantee (`Kernels::packs`): wherever a path packs Q8_0, Q4_1, Q5_0 or
/// Q5_1, its packed product equals its row-major product bit for bit (x86: ggml's eight lanes;
/// aarch64 with dotprod: the four `SDOT` lanes), for matvecs and batches, and the reference in
/// the path's order agrees. (Q4_0 is exempt: its packed arithmetic is llama.cpp's repacked one.)
#[test]
fn packing_paths_equal_their_row_major_product_bitwise() {
    let mut rng = SplitMix64(17);
    let ks = paths();
    for ty in [Q8_0, Q4_1, Q5_0, Q5_1] {
        println!(
            "packed {ty} = row-major on {:?}",
            ks.iter()
                .filter(|k| k.packs(ty))
                .map(|k| (k.isa().name(), k.packed_order(ty)))
                .collect::<Vec<_>>()
        );
    }
    let shapes = [(16, 32), (48, 96), (32, 4128), (160, 576)];
    for (ty, rows, n) in [Q8_0, Q4_1, Q5_0, Q5_1]
        .iter()
        .flat_map(|&ty| shapes.map(|(r, n)| (ty, r, n)))
    {
        let (w, p) = matrix(&mut rng, ty, rows, n);
        let arb = act_bytes(ty, n);
        for t in [1usize, 2, 3, 4, 5, 9] {
            let x = activations(&mut rng, ty, t, n, arb);
            for k in ks.iter().filter(|k| k.packs(ty)) {
                let mut row_major = vec![f32::NAN; t * rows];
                k.matmul(ty, &mut row_major, &w, rows, &x, arb, t, n);
                let mut packed = vec![f32::NAN; t * rows];
                k.matmul_packed(ty, &mut packed, &p, rows, &x, arb, t, n);
                let mut reference = vec![f32::NAN; t * rows];
                let o = k.packed_order(ty);
                matmul_packed_reference_in(o, ty, &mut reference, &p, rows, &x, arb, t, n);
                for (i, ((a, b), c)) in row_major.iter().zip(&packed).zip(&reference).enumerate() {
                    assert!(
                        a.to_bits() == b.to_bits() && b.to_bits() == c.to_bits(),
                        "{} {ty} {rows}x{n} t{t} at {i}: row-major {a}, packed {b}, reference {c}",
                        k.isa().name()
                    );
                }
            }
        }
    }
}

#[test]
fn threaded_product_is_bitwise_equal_for_any_thread_count() {
    let mut rng = SplitMix64(14);
    let (rows, n) = (576, 192);
    let k = Kernels::best();
    for (ty, t) in TYPES.iter().flat_map(|&ty| [(ty, 1), (ty, 7), (ty, 16)]) {
        let arb = act_bytes(ty, n);
        let (_, p) = matrix(&mut rng, ty, rows, n);
        let x = activations(&mut rng, ty, t, n, arb);
        let mut want = vec![0f32; t * rows];
        matmul_packed_reference_in(k.packed_order(ty), ty, &mut want, &p, rows, &x, arb, t, n);
        for threads in [1, 2, 3] {
            let pool = ThreadPool::new(threads).unwrap();
            let mut got = vec![f32::NAN; t * rows];
            let mut scratch = vec![0f32; t * rows];
            k.matmul_par_packed(&pool, ty, &mut got, &p, rows, &x, arb, t, n, &mut scratch);
            let same = got
                .iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits());
            assert!(same, "{threads} threads, t = {t}");
        }
    }
}

#[test]
fn only_packable_types_with_whole_groups_pack() {
    assert!(packable(Q4_0, 16, 32));
    assert!(packable(Q8_0, 32, 64));
    assert!(!packable(Q4_0, 24, 32));
    assert!(!packable(Q4_0, 0, 32));
    assert!(!packable(Q8_0, 16, 48));
    // Q8_0 rows of up to 512 blocks (the kernels' per-row tables).
    assert!(packable(Q8_0, 16, 512 * 32));
    assert!(!packable(Q8_0, 16, 513 * 32));
    assert!(packable(Q4_0, 16, 513 * 32));
    assert!(packable(Q4_1, 16, 32));
    assert!(!packable(Q4_1, 16, 513 * 32));
    assert!(packable(Q5_0, 16, 32));
    assert!(packable(Q5_1, 32, 512 * 32));
    assert!(!packable(Q5_1, 16, 513 * 32));
    assert!(!packable(QuantType::F16, 16, 32));
    assert!(!packable(QuantType::Q4_K, 16, 256));
    for k in paths() {
        assert!(!k.packs(QuantType::F16) && !k.packs(QuantType::Q4_K));
    }
}

#[test]
#[should_panic(expected = "has no packed layout")]
fn packing_a_partial_group_is_refused() {
    let w = vec![0u8; 24 * 18];
    let mut p = vec![0u8; w.len()];
    pack(Q4_0, &w, 24, 32, &mut p);
}

#[test]
#[should_panic(expected = "activations too short")]
fn short_activations_are_refused() {
    let p = vec![0u8; 16 * 18];
    let x = vec![0u8; 33];
    let mut out = vec![0f32; 16];
    Kernels::best().matmul_packed(Q4_0, &mut out, &p, 16, &x, 34, 1, 32);
}

#[test]
fn grouped_matvecs_equal_the_single_products_for_any_thread_count() {
    use ingot_kernels::pool::MatVec;
    let mut rng = SplitMix64(15);
    let n = 192;
    let k = Kernels::best();
    // A packed Q4_0 matrix, a row-major Q4_0 one and a packed Q8_0 one (all take Q8_0
    // activations), with row counts that split into several work items or just one.
    let (_, p0) = matrix(&mut rng, Q4_0, 576, n);
    let (w1, _) = matrix(&mut rng, Q4_0, 48, n);
    let (_, p2) = matrix(&mut rng, Q8_0, 1536, n);
    let x = activations(&mut rng, Q4_0, 1, n, act_bytes(Q4_0, n));
    let parts: [(QuantType, bool, &[u8], usize); 3] = [
        (Q4_0, true, &p0, 576),
        (Q4_0, false, &w1, 48),
        (Q8_0, true, &p2, 1536),
    ];
    let single = |threads: usize| -> Vec<Vec<f32>> {
        let pool = ThreadPool::new(threads).unwrap();
        parts
            .iter()
            .map(|&(ty, packed, w, rows)| {
                let mut out = vec![f32::NAN; rows];
                if packed {
                    k.matmul_par_packed(&pool, ty, &mut out, w, rows, &x, x.len(), 1, n, &mut []);
                } else {
                    k.matmul_par(&pool, ty, &mut out, w, rows, &x, x.len(), 1, n, &mut []);
                }
                out
            })
            .collect()
    };
    let want = single(1);
    for threads in [1, 2, 3] {
        assert_eq!(single(threads), want, "single products, {threads} threads");
        let pool = ThreadPool::new(threads).unwrap();
        let mut outs: Vec<Vec<f32>> = parts.iter().map(|p| vec![f32::NAN; p.3]).collect();
        let [o0, o1, o2] = &mut outs[..] else {
            unreachable!()
        };
        let mut group = [o0, o1, o2]
            .into_iter()
            .zip(parts)
            .map(|(out, (ty, packed, w, rows))| MatVec {
                ty,
                packed,
                w,
                rows,
                out,
            })
            .collect::<Vec<_>>();
        // `first` runs once, on the calling thread, whatever the thread count.
        let caller = std::thread::current().id();
        let firsts = std::sync::atomic::AtomicUsize::new(0);
        k.matvec_par_group(&pool, &mut group, &x, n, &|| {
            assert_eq!(std::thread::current().id(), caller, "first ran on a worker");
            firsts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        });
        assert_eq!(firsts.into_inner(), 1, "first ran other than once");
        drop(group);
        for (got, want) in outs.iter().zip(&want) {
            assert!(
                got.iter()
                    .zip(want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "grouped products, {threads} threads"
            );
        }
    }
}
