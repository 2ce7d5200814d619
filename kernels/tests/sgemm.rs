//! [`Kernels::sgemm`] on every available ISA path against [`sgemm_reference`] (bitwise: each
//! element is one fused multiply-add chain over `k` on every path), and the reference against an f64
//! product within the FMA-chain error bound. Sizes cover 1..=70 in each dimension, the micro-tile
//! edges (4, 6, 12, 16, 32 and neighbours) and the cache-block edges (`KC`, the row and column
//! blocks); operands come plain, transposed and with general strides; 1, 2 and 3 threads and
//! `sgemm_serial` must give the same bits; accumulation and `K = 0` are covered. Inputs from a seeded splitmix64.

mod common;
use common::{SplitMix64, U32};

use ingot_kernels::sgemm::{sgemm_reference, KC};
use ingot_kernels::{Isa, Kernels, MatRef, SgemmScratch, ThreadPool};

fn paths() -> Vec<Kernels> {
    let ks: Vec<Kernels> = Isa::ALL.into_iter().filter_map(Kernels::for_isa).collect();
    let names: Vec<&str> = ks.iter().map(|k| k.isa().name()).collect();
    assert!(names.contains(&"scalar"));
    eprintln!("sgemm: ran {names:?}");
    ks
}

/// How an operand is stored: row-major, transposed (column-major), or inside a larger buffer with
/// both strides > 1.
#[derive(Clone, Copy, Debug)]
enum Store {
    Rows,
    Transposed,
    Strided,
}

/// An operand `(rows, cols)` stored as `store` says, with its values in logical order `v`.
struct Operand {
    data: Vec<f32>,
    rs: usize,
    cs: usize,
}

impl Operand {
    fn new(v: &[f32], rows: usize, cols: usize, store: Store, rng: &mut SplitMix64) -> Operand {
        let (rs, cs, len) = match store {
            Store::Rows => (cols, 1, rows * cols),
            Store::Transposed => (1, rows, rows * cols),
            // every other element of rows 3 apart within rows of 2 * cols + 1
            Store::Strided => (2 * cols + 1, 2, rows * (2 * cols + 1)),
        };
        let mut data: Vec<f32> = (0..len).map(|_| rng.unit() * 1e3).collect(); // junk around
        for r in 0..rows {
            for c in 0..cols {
                data[r * rs + c * cs] = v[r * cols + c];
            }
        }
        Operand { data, rs, cs }
    }

    fn view(&self) -> MatRef<'_> {
        MatRef::new(&self.data, self.rs, self.cs)
    }
}

/// Runs one product on every path and thread count, with `C` at row stride `n + 3` (the padding
/// must stay untouched), and checks every result bitwise against the reference.
#[allow(clippy::too_many_arguments)]
fn check_all(
    ks: &[Kernels],
    pools: &[ThreadPool],
    m: usize,
    n: usize,
    k: usize,
    sa: Store,
    sb: Store,
    accumulate: bool,
    rng: &mut SplitMix64,
) {
    let av: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
    let bv: Vec<f32> = (0..k * n).map(|_| rng.unit()).collect();
    let a = Operand::new(&av, m, k, sa, rng);
    let b = Operand::new(&bv, k, n, sb, rng);
    let ldc = n + 3;
    let c0: Vec<f32> = (0..m * ldc).map(|_| rng.unit()).collect();
    let mut want = c0.clone();
    sgemm_reference(accumulate, m, n, k, a.view(), b.view(), &mut want, ldc);
    for kern in ks {
        let mut scratch = SgemmScratch::default();
        let mut got = c0.clone();
        let (av, bv) = (a.view(), b.view());
        kern.sgemm_serial(&mut scratch, accumulate, m, n, k, av, bv, &mut got, ldc);
        assert!(
            got.iter().zip(&want).all(|(x, y)| x.to_bits() == y.to_bits()),
            "{} serial: ({m}, {n}, {k}) {sa:?} x {sb:?} acc {accumulate} differs from the reference",
            kern.isa()
        );
        for pool in pools {
            let mut scratch = SgemmScratch::default();
            let mut got = c0.clone();
            kern.sgemm(
                pool,
                &mut scratch,
                accumulate,
                m,
                n,
                k,
                a.view(),
                b.view(),
                &mut got,
                ldc,
            );
            let same = got
                .iter()
                .zip(&want)
                .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same,
                "{} at {} threads: ({m}, {n}, {k}) {sa:?} x {sb:?} acc {accumulate} differs from \
                 the reference",
                kern.isa(),
                pool.n_threads()
            );
        }
    }
}

fn pools() -> Vec<ThreadPool> {
    [1, 2, 3].map(|t| ThreadPool::new(t).unwrap()).into()
}

#[test]
fn every_size_from_1_to_70_bitwise() {
    let (ks, pools) = (paths(), pools());
    let mut rng = SplitMix64(1);
    let others = [1, 5, 12, 17, 33];
    for d in 1..=70 {
        let o1 = others[d % others.len()];
        let o2 = others[(d / 3) % others.len()];
        check_all(
            &ks,
            &pools,
            d,
            o1,
            o2,
            Store::Rows,
            Store::Rows,
            false,
            &mut rng,
        );
        check_all(
            &ks,
            &pools,
            o1,
            d,
            o2,
            Store::Rows,
            Store::Transposed,
            false,
            &mut rng,
        );
        check_all(
            &ks,
            &pools,
            o2,
            o1,
            d,
            Store::Transposed,
            Store::Rows,
            true,
            &mut rng,
        );
    }
}

#[test]
fn tile_edges_layouts_and_accumulation() {
    let (ks, pools) = (paths(), pools());
    let mut rng = SplitMix64(2);
    let stores = [Store::Rows, Store::Transposed, Store::Strided];
    for (m, n, k) in [
        (12, 32, 8),
        (13, 33, 9),
        (11, 31, 7),
        (24, 64, 3),
        (6, 16, 1),
        (25, 17, 40),
    ] {
        for sa in stores {
            for sb in stores {
                for acc in [false, true] {
                    check_all(&ks, &pools, m, n, k, sa, sb, acc, &mut rng);
                }
            }
        }
    }
}

#[test]
fn cache_block_edges() {
    // K across the KC blocks (the running value is stored and reloaded), M across the 1536-row and
    // N across the 2048-column packing blocks, with work-item edges inside.
    let (ks, pools) = (paths(), pools());
    let mut rng = SplitMix64(3);
    for (m, n, k) in [
        (3, 5, KC - 1),
        (7, 9, KC),
        (13, 35, KC + 1),
        (2, 3, 2 * KC + 7),
        (1537, 3, 2),
        (100, 1, 3),
        (2, 2049, 2),
        (1, 130, 5),
        // B packed whole over 6 K blocks: 2088 x 700 floats exceed one phase's packing budget
        // (2^20), so the K blocks run in groups (NC-wide: 4 blocks, then 2), and N crosses NC.
        (5, 2088, 700),
        // Several K blocks in one group, edges on every side (packed whole with strided operands).
        (37, 45, 3 * KC + 5),
    ] {
        let stores = [
            (Store::Rows, Store::Transposed),
            (Store::Strided, Store::Strided),
        ];
        for ((sa, sb), acc) in stores.into_iter().flat_map(|s| [(s, false), (s, true)]) {
            check_all(&ks, &pools, m, n, k, sa, sb, acc, &mut rng);
        }
    }
}

#[test]
fn empty_dimensions() {
    let mut rng = SplitMix64(4);
    for kern in paths() {
        let pool = ThreadPool::new(2).unwrap();
        let mut s = SgemmScratch::default();
        // K = 0: C = 0, or unchanged when accumulating; padding untouched.
        let c0: Vec<f32> = (0..3 * 6).map(|_| rng.unit() + 2.0).collect();
        for acc in [false, true] {
            let mut c = c0.clone();
            let empty = MatRef::rows(&[], 0);
            kern.sgemm(&pool, &mut s, acc, 3, 4, 0, empty, empty, &mut c, 6);
            for (i, (&x, &y)) in c.iter().zip(&c0).enumerate() {
                let want = if acc || i % 6 >= 4 { y } else { 0.0 };
                assert_eq!(x, want, "{} acc {acc} at {i}", kern.isa());
            }
        }
        // M = 0 or N = 0: nothing to do, any C.
        let a = [1.0f32; 4];
        kern.sgemm(
            &pool,
            &mut s,
            false,
            0,
            2,
            2,
            MatRef::rows(&a, 2),
            MatRef::rows(&a, 2),
            &mut [],
            2,
        );
        kern.sgemm(
            &pool,
            &mut s,
            false,
            2,
            0,
            2,
            MatRef::rows(&a, 2),
            MatRef::rows(&a, 0),
            &mut [],
            0,
        );
    }
}

/// The reference (so every path) against the exact product: an FMA chain of `k` terms is within
/// `gamma_k * sum |a||b|` (+ the rounding of the start value) of the true value, `gamma_k =
/// k u / (1 - k u)` (Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §3.1).
#[test]
fn reference_within_error_bound_of_f64() {
    let mut rng = SplitMix64(5);
    for (m, n, k) in [(7, 9, 1), (13, 17, 64), (5, 3, 700), (2, 2, 4000)] {
        let a: Vec<f32> = (0..m * k).map(|_| rng.unit()).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.unit() * 3.0).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| rng.unit()).collect();
        for acc in [false, true] {
            let mut c = c0.clone();
            sgemm_reference(
                acc,
                m,
                n,
                k,
                MatRef::rows(&a, k),
                MatRef::rows(&b, n),
                &mut c,
                n,
            );
            let gamma = k as f64 * U32 / (1.0 - k as f64 * U32);
            for i in 0..m {
                for j in 0..n {
                    let start = if acc { c0[i * n + j] as f64 } else { 0.0 };
                    let (mut exact, mut mag) = (start, start.abs());
                    for p in 0..k {
                        let t = a[i * k + p] as f64 * b[p * n + j] as f64;
                        exact += t;
                        mag += t.abs();
                    }
                    let err = (c[i * n + j] as f64 - exact).abs();
                    assert!(
                        err <= gamma * mag + f64::MIN_POSITIVE,
                        "({m},{n},{k}) [{i},{j}]: {} vs {exact}, err {err:e} > {:e}",
                        c[i * n + j],
                        gamma * mag
                    );
                }
            }
        }
    }
}

#[test]
#[should_panic(expected = "sgemm: B (5, 4) with strides (4, 1) needs more than 19 elements")]
fn short_operand_panics_naming_it() {
    let a = vec![0.0f32; 3 * 5];
    let b = vec![0.0f32; 19];
    let mut c = vec![0.0f32; 3 * 4];
    let pool = ThreadPool::new(1).unwrap();
    Kernels::best().sgemm(
        &pool,
        &mut SgemmScratch::default(),
        false,
        3,
        4,
        5,
        MatRef::rows(&a, 5),
        MatRef::rows(&b, 4),
        &mut c,
        4,
    );
}
