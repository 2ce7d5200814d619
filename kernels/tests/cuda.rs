//! Conformance of every CUDA kernel (`kernels/cuda/*.cu`) with the scalar reference
//! (`ingot_kernels::reference`, or the formula the runtime's CPU path uses where the reference is in
//! the runtime), on fresh random inputs of odd sizes. Every output buffer is filled with NaN (or a
//! sentinel byte) before the launch, so an element a kernel fails to write shows up as a mismatch.
//!
//! The seed changes each run and is printed (`INGOT_CUDA_SEED=<n>` repeats a run). Without a CUDA
//! driver, device or compiled kernels each GPU test prints why and passes, unless
//! `INGOT_REQUIRE_GPU=1` (what `scripts/device-check.sh` sets), which makes that a failure.
#![cfg(feature = "cuda")]

mod common;

use common::{SplitMix64, U32};
use cudarc::driver::CudaSlice;
use half::f16;
use ingot_kernels::cuda::{self, AttnShape, Error, Gpu, EMBED_TYPES, MATMUL_TYPES};
use ingot_kernels::reference::{self, ops as rops};
use ingot_kernels::{quantize_activations, Isa, Kernels, QuantType};

/// The device, or `None` (with the reason printed) where this machine cannot run the kernels.
fn gpu(test: &str) -> Option<Gpu> {
    let require = std::env::var("INGOT_REQUIRE_GPU").is_ok_and(|v| v == "1");
    match Gpu::new(0) {
        Ok(g) => Some(g),
        Err(e) if !require => {
            eprintln!("{test}: skipped: {e}");
            None
        }
        Err(e) => panic!("{test}: INGOT_REQUIRE_GPU=1 but {e}"),
    }
}

fn rng(test: &str) -> SplitMix64 {
    let seed = std::env::var("INGOT_CUDA_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("{test}: INGOT_CUDA_SEED={seed}");
    SplitMix64(seed)
}

fn randn(r: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| r.unit() * scale).collect()
}

fn nan_buf(g: &Gpu, n: usize) -> CudaSlice<f32> {
    g.upload(&vec![f32::NAN; n]).unwrap()
}

fn download<T: cudarc::driver::DeviceRepr + Default + Clone>(g: &Gpu, s: &CudaSlice<T>) -> Vec<T> {
    let mut h = vec![T::default(); s.len()];
    g.read(&s.slice(..), &mut h).unwrap();
    h
}

/// `|got - want| <= rel * mag + abs` for every element, and nothing NaN.
fn assert_close(what: &str, got: &[f32], want: &[f32], mag: &[f32], rel: f32, abs: f32) {
    assert_eq!(got.len(), want.len());
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        assert!(!g.is_nan(), "{what}: element {i} is NaN (not written?)");
        let tol = rel * mag[i] + abs;
        assert!(
            (g - w).abs() <= tol,
            "{what}: element {i}: got {g}, want {w} (tol {tol})"
        );
    }
}

#[test]
fn no_driver_is_a_clean_error() {
    // Runs everywhere: on a machine without a driver, opening a device is an error, not a panic.
    if !cuda::driver_present() {
        let e = Gpu::new(0).expect_err("no driver, yet a device opened");
        assert!(matches!(e, Error::NoDriver), "{e:?}");
        assert!(e.to_string().contains("driver"), "{e}");
    } else if !cuda::kernels_compiled() {
        assert!(matches!(Gpu::new(0), Err(Error::NoKernels)));
    }
}

#[test]
fn quantize_activations_is_byte_identical() {
    let Some(g) = gpu("quantize") else { return };
    let mut r = rng("quantize");
    for (ty, blocks) in [
        (QuantType::Q8_0, [1usize, 3, 7, 17, 33]),
        (QuantType::Q8_1, [1, 3, 7, 17, 33]),
        (QuantType::Q8_K, [1, 2, 3, 5, 9]),
    ] {
        for nb in blocks {
            let n = nb * if ty == QuantType::Q8_K { 256 } else { 32 };
            let ntok = 3;
            let (xs, rb) = (n + 5, ty.row_bytes(n).unwrap());
            let os = rb.next_multiple_of(4) + 4;
            let mut x = randn(&mut r, ntok * xs, 3.0);
            x[7] = 0.0; // a zero and an all-zero block exercise the amax == 0 branch
            if nb > 1 {
                x[xs..xs + ty.info().block_elems].fill(0.0);
            }
            let dx = g.upload(&x).unwrap();
            let mut dout = g.upload(&vec![0xa5u8; ntok * os]).unwrap();
            g.quantize(ty, &dx.slice(..), &mut dout.slice_mut(..), n, ntok, xs, os)
                .unwrap();
            let got = download(&g, &dout);
            for t in 0..ntok {
                let mut want = vec![0u8; rb];
                quantize_activations(ty, &x[t * xs..t * xs + n], &mut want);
                assert_eq!(&got[t * os..t * os + rb], &want[..], "{ty} n={n} token {t}");
            }
        }
    }
}

#[test]
fn matmul_matches_reference() {
    let Some(g) = gpu("matmul") else { return };
    let mut r = rng("matmul");
    for ty in MATMUL_TYPES {
        let info = ty.info();
        let act_ty = info.vec_dot_type;
        let block_counts: &[usize] = if ty.is_k_quant() {
            &[1, 3]
        } else {
            &[1, 3, 17, 33]
        };
        for &nb in block_counts {
            let n = nb * info.block_elems;
            for (nrows, ntok) in [(1usize, 1usize), (37, 1), (5, 3), (37, 9), (13, 17)] {
                let rb = ty.row_bytes(n).unwrap();
                let wf = randn(&mut r, nrows * n, 1.0);
                let mut w = vec![0u8; nrows * rb];
                for (src, dst) in wf.chunks_exact(n).zip(w.chunks_exact_mut(rb)) {
                    (info.from_f32)(src, dst);
                }
                let arb = act_ty.row_bytes(n).unwrap();
                let stride = arb.next_multiple_of(4) + 8;
                let x = randn(&mut r, ntok * n, 2.0);
                let mut act = vec![0u8; ntok * stride];
                for t in 0..ntok {
                    quantize_activations(
                        act_ty,
                        &x[t * n..(t + 1) * n],
                        &mut act[t * stride..][..arb],
                    );
                }
                let (dw, da) = (g.upload(&w).unwrap(), g.upload(&act).unwrap());
                let mut dout = nan_buf(&g, ntok * nrows);
                g.matmul(
                    ty,
                    &dw.slice(..),
                    &da.slice(..),
                    &mut dout.slice_mut(..),
                    n,
                    nrows,
                    ntok,
                    stride,
                )
                .unwrap();
                let got = download(&g, &dout);
                let (mut want, mut mag) = (vec![0.0; ntok * nrows], vec![0.0; ntok * nrows]);
                let (mut wd, mut xd) = (vec![0.0; n], vec![0.0; n]);
                for t in 0..ntok {
                    let a = &act[t * stride..][..arb];
                    reference::matvec(ty, &mut want[t * nrows..(t + 1) * nrows], &w, a, n);
                    (act_ty.info().to_f32)(a, &mut xd);
                    for row in 0..nrows {
                        (info.to_f32)(&w[row * rb..(row + 1) * rb], &mut wd);
                        mag[t * nrows + row] = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
                    }
                }
                // The integer dot of each block is exact on both sides; the f32 per-block terms are
                // summed in another order (lanes, then a warp tree), and K-quant terms are split per
                // sub-block: an error of a few ulp of the sum of magnitudes per block, far below 1e-5.
                let what = format!("{ty} n={n} rows={nrows} tokens={ntok}");
                assert_close(&what, &got, &want, &mag, 1e-5, 1e-6);
            }
        }
    }
}

#[test]
fn rms_norm_matches_cpu() {
    let Some(g) = gpu("rms_norm") else { return };
    let mut r = rng("rms_norm");
    let eps = 1e-5f32;
    for n in [1usize, 7, 33, 576, 1023, 2049] {
        let ntok = 3;
        let (x, w) = (randn(&mut r, ntok * n, 4.0), randn(&mut r, n, 1.0));
        let (dx, dw) = (g.upload(&x).unwrap(), g.upload(&w).unwrap());
        let mut dout = nan_buf(&g, ntok * n);
        g.rms_norm(
            &dx.slice(..),
            &dw.slice(..),
            &mut dout.slice_mut(..),
            n,
            ntok,
            eps,
        )
        .unwrap();
        let got = download(&g, &dout);
        // runtime::model::ops::rms_norm (the CPU path): f64 sum of f32 squares, f32 mean and scale.
        let mut want = vec![0.0; ntok * n];
        for t in 0..ntok {
            let xr = &x[t * n..(t + 1) * n];
            let sum: f64 = xr.iter().map(|&v| f64::from(v * v)).sum();
            let mean = (sum / n as f64) as f32;
            let scale = 1.0 / (mean + eps).sqrt();
            for i in 0..n {
                want[t * n + i] = (xr[i] * scale) * w[i];
            }
        }
        // Only the f64 summation order differs: the f32 mean is the same except at a rounding tie.
        let mag: Vec<f32> = want.iter().map(|v| v.abs()).collect();
        assert_close(
            &format!("rms_norm n={n}"),
            &got,
            &want,
            &mag,
            4.0 * U32 as f32,
            0.0,
        );
    }
}

#[test]
fn rope_is_bit_identical() {
    let Some(g) = gpu("rope") else { return };
    let mut r = rng("rope");
    for (shape, n_rot) in [
        (
            AttnShape {
                n_head: 9,
                n_head_kv: 3,
                head_dim: 64,
            },
            64,
        ),
        (
            AttnShape {
                n_head: 4,
                n_head_kv: 4,
                head_dim: 128,
            },
            96,
        ),
    ] {
        let (ntok, n_ctx, pos0) = (5usize, 40usize, 17i32);
        let (qd, kvd) = (shape.q_dim(), shape.kv_dim());
        let (q, k) = (
            randn(&mut r, ntok * qd, 2.0),
            randn(&mut r, ntok * kvd, 2.0),
        );
        let table = randn(&mut r, n_ctx * n_rot, 1.0);
        let (mut dq, mut dk) = (g.upload(&q).unwrap(), g.upload(&k).unwrap());
        let (dt, dp) = (g.upload(&table).unwrap(), g.upload(&[pos0]).unwrap());
        g.rope(
            &mut dq.slice_mut(..),
            &mut dk.slice_mut(..),
            &dt.slice(..),
            &dp.slice(..),
            shape,
            n_rot,
            ntok,
        )
        .unwrap();
        let (gq, gk) = (download(&g, &dq), download(&g, &dk));
        let (mut wq, mut wk) = (q.clone(), k.clone());
        for t in 0..ntok {
            let cache = &table[(pos0 as usize + t) * n_rot..][..n_rot];
            for head in wq[t * qd..(t + 1) * qd].chunks_exact_mut(shape.head_dim) {
                rops::rope(head, cache);
            }
            for head in wk[t * kvd..(t + 1) * kvd].chunks_exact_mut(shape.head_dim) {
                rops::rope(head, cache);
            }
        }
        assert_eq!(gq, wq, "rope q {shape:?}");
        assert_eq!(gk, wk, "rope k {shape:?}");
    }
}

#[test]
fn kv_store_writes_its_rows_only() {
    let Some(g) = gpu("kv_store") else { return };
    let mut r = rng("kv_store");
    let (kv_dim, n_ctx, ntok, pos0) = (3 * 64 + 32, 50usize, 7usize, 11usize);
    let (k, v) = (
        randn(&mut r, ntok * kv_dim, 5.0),
        randn(&mut r, ntok * kv_dim, 5.0),
    );
    let sentinel = f16::from_f32(-7.0);
    let (dk, dv) = (g.upload(&k).unwrap(), g.upload(&v).unwrap());
    let mut kc = g.upload(&vec![sentinel; n_ctx * kv_dim]).unwrap();
    let mut vc = g.upload(&vec![sentinel; n_ctx * kv_dim]).unwrap();
    let dp = g.upload(&[pos0 as i32]).unwrap();
    g.kv_store(
        &dk.slice(..),
        &dv.slice(..),
        &mut kc.slice_mut(..),
        &mut vc.slice_mut(..),
        &dp.slice(..),
        kv_dim,
        ntok,
    )
    .unwrap();
    for (cache, src) in [(download(&g, &kc), &k), (download(&g, &vc), &v)] {
        for p in 0..n_ctx {
            for i in 0..kv_dim {
                let want = if (pos0..pos0 + ntok).contains(&p) {
                    f16::from_f32(src[(p - pos0) * kv_dim + i])
                } else {
                    sentinel
                };
                assert_eq!(
                    cache[p * kv_dim + i].to_bits(),
                    want.to_bits(),
                    "row {p} element {i}"
                );
            }
        }
    }
}

/// The CPU path's attention for query `q` (D,) of head `h` over positions `0..n_kv` of caches
/// (S, kv_dim): `Kernels::attention_head_ggml` on the scalar reference path.
#[allow(clippy::too_many_arguments)]
fn cpu_attention(
    shape: AttnShape,
    q: &[f32],
    h: usize,
    kc: &[f16],
    vc: &[f16],
    n_ctx: usize,
    n_kv: usize,
    batched: bool,
) -> Vec<f32> {
    let (d, kvd) = (shape.head_dim, shape.kv_dim());
    let kvh = h / (shape.n_head / shape.n_head_kv);
    let mut vt = vec![f16::ZERO; d * n_ctx];
    for p in 0..n_ctx {
        for i in 0..d {
            vt[i * n_ctx + p] = vc[p * kvd + kvh * d + i];
        }
    }
    let kern = Kernels::for_isa(Isa::Scalar).unwrap();
    let mut out = vec![0.0; d];
    let (mut scores, mut q16, mut p16) =
        (vec![0.0; n_kv], vec![f16::ZERO; d], vec![f16::ZERO; n_kv]);
    kern.attention_head_ggml(
        &mut out,
        q,
        &kc[kvh * d..],
        kvd,
        &vt,
        n_ctx,
        shape.scale(),
        batched,
        n_kv,
        &mut scores,
        &mut q16,
        &mut p16,
    );
    out
}

/// Tolerance of attention: the CPU path rounds the probabilities to f16 before the value
/// products (ggml), the GPU keeps them f32: a relative error of 2^-11 per probability, so at
/// most 2^-11 * max|v| on an output, doubled for margin.
fn attention_tol(vc: &[f16]) -> f32 {
    2.0 * vc.iter().fold(0.0f32, |m, v| m.max(v.to_f32().abs())) / 2048.0
}

#[test]
fn attention_decode_matches_cpu() {
    let Some(g) = gpu("attention_decode") else {
        return;
    };
    let mut r = rng("attention_decode");
    for shape in [
        AttnShape {
            n_head: 9,
            n_head_kv: 3,
            head_dim: 64,
        },
        AttnShape {
            n_head: 4,
            n_head_kv: 1,
            head_dim: 128,
        },
        AttnShape {
            n_head: 3,
            n_head_kv: 3,
            head_dim: 32,
        },
    ] {
        let n_ctx = 300; // 3 splits of 128, the last one partial
        let (qd, kvd) = (shape.q_dim(), shape.kv_dim());
        let kc: Vec<f16> = randn(&mut r, n_ctx * kvd, 2.0)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let vc: Vec<f16> = randn(&mut r, n_ctx * kvd, 2.0)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let (dkc, dvc) = (g.upload(&kc).unwrap(), g.upload(&vc).unwrap());
        for pos in [0usize, 1, 127, 128, 200, 299] {
            let q = randn(&mut r, qd, 1.5);
            let (dq, dp) = (g.upload(&q).unwrap(), g.upload(&[pos as i32]).unwrap());
            let mut part = nan_buf(&g, shape.part_len(n_ctx));
            let mut out = nan_buf(&g, qd);
            g.attention_decode(
                &dq.slice(..),
                &dkc.slice(..),
                &dvc.slice(..),
                &mut part.slice_mut(..),
                &mut out.slice_mut(..),
                &dp.slice(..),
                shape,
                n_ctx,
            )
            .unwrap();
            let got = download(&g, &out);
            let mut want = Vec::with_capacity(qd);
            for h in 0..shape.n_head {
                let qh = &q[h * shape.head_dim..(h + 1) * shape.head_dim];
                want.extend(cpu_attention(shape, qh, h, &kc, &vc, n_ctx, pos + 1, false));
            }
            let mag = vec![0.0; qd];
            assert_close(
                &format!("decode {shape:?} pos {pos}"),
                &got,
                &want,
                &mag,
                0.0,
                attention_tol(&vc),
            );
        }
    }
}

#[test]
fn attention_prefill_matches_cpu() {
    let Some(g) = gpu("attention_prefill") else {
        return;
    };
    let mut r = rng("attention_prefill");
    for shape in [
        AttnShape {
            n_head: 9,
            n_head_kv: 3,
            head_dim: 64,
        },
        AttnShape {
            n_head: 2,
            n_head_kv: 1,
            head_dim: 256,
        },
    ] {
        let n_ctx = 90;
        let (qd, kvd) = (shape.q_dim(), shape.kv_dim());
        let kc: Vec<f16> = randn(&mut r, n_ctx * kvd, 2.0)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let vc: Vec<f16> = randn(&mut r, n_ctx * kvd, 2.0)
            .into_iter()
            .map(f16::from_f32)
            .collect();
        let (dkc, dvc) = (g.upload(&kc).unwrap(), g.upload(&vc).unwrap());
        for (pos0, ntok) in [(0usize, 1usize), (0, 5), (0, 33), (40, 17), (81, 9)] {
            let q = randn(&mut r, ntok * qd, 1.5);
            let (dq, dp) = (g.upload(&q).unwrap(), g.upload(&[pos0 as i32]).unwrap());
            let mut out = nan_buf(&g, ntok * qd);
            g.attention_prefill(
                &dq.slice(..),
                &dkc.slice(..),
                &dvc.slice(..),
                &mut out.slice_mut(..),
                &dp.slice(..),
                shape,
                ntok,
            )
            .unwrap();
            let got = download(&g, &out);
            let mut want = Vec::with_capacity(ntok * qd);
            for t in 0..ntok {
                for h in 0..shape.n_head {
                    let qh = &q[t * qd + h * shape.head_dim..][..shape.head_dim];
                    want.extend(cpu_attention(
                        shape,
                        qh,
                        h,
                        &kc,
                        &vc,
                        n_ctx,
                        pos0 + t + 1,
                        true,
                    ));
                }
            }
            let mag = vec![0.0; ntok * qd];
            assert_close(
                &format!("prefill {shape:?} pos0 {pos0} T {ntok}"),
                &got,
                &want,
                &mag,
                0.0,
                attention_tol(&vc),
            );
        }
    }
}

#[test]
fn swiglu_add_match_reference() {
    let Some(g) = gpu("swiglu") else { return };
    let mut r = rng("swiglu");
    for n in [1usize, 15, 257, 4097] {
        let (gate, up) = (randn(&mut r, n, 8.0), randn(&mut r, n, 2.0));
        let (mut dg, du) = (g.upload(&gate).unwrap(), g.upload(&up).unwrap());
        g.swiglu(&mut dg.slice_mut(..), &du.slice(..), n).unwrap();
        let got = download(&g, &dg);
        let mut want = gate.clone();
        rops::swiglu(&mut want, &up);
        // CUDA's expf (2 ulp) vs ggml's polynomial: a few ulp after the division and product.
        let mag: Vec<f32> = want.iter().map(|v| v.abs()).collect();
        assert_close(
            &format!("swiglu n={n}"),
            &got,
            &want,
            &mag,
            16.0 * U32 as f32,
            1e-30,
        );

        let (mut dx, dy) = (g.upload(&gate).unwrap(), g.upload(&up).unwrap());
        g.add(&mut dx.slice_mut(..), &dy.slice(..), n).unwrap();
        let want: Vec<f32> = gate.iter().zip(&up).map(|(a, b)| a + b).collect();
        assert_eq!(download(&g, &dx), want, "add n={n}");
    }
}

#[test]
fn argmax_matches_sampler() {
    let Some(g) = gpu("argmax") else { return };
    let mut r = rng("argmax");
    for n in [1usize, 2, 1023, 1025, 49152, 100_003] {
        let mut x = randn(&mut r, n, 10.0);
        if n > 10 {
            // A tie for the maximum (the lower index wins) and a NaN (never chosen).
            let (a, b) = (n / 3, 2 * n / 3);
            x[a] = 11.0;
            x[b] = 11.0;
            x[n - 1] = f32::NAN;
        }
        let dx = g.upload(&x).unwrap();
        let mut out = g.upload(&[u32::MAX]).unwrap();
        g.argmax(&dx.slice(..), n, &mut out.slice_mut(..)).unwrap();
        // runtime::sampler::argmax: the first strict maximum.
        let mut best = (0usize, f32::NEG_INFINITY);
        for (i, &v) in x.iter().enumerate() {
            if v > best.1 {
                best = (i, v);
            }
        }
        assert_eq!(download(&g, &out)[0] as usize, best.0, "argmax n={n}");
    }
}

#[test]
fn embed_is_bit_identical() {
    let Some(g) = gpu("embed") else { return };
    let mut r = rng("embed");
    for ty in EMBED_TYPES {
        let info = ty.info();
        let ncols = 3 * 256; // whole blocks of every type
        let nvocab = 37;
        let rb = ty.row_bytes(ncols).unwrap();
        let wf = randn(&mut r, nvocab * ncols, 1.0);
        let mut table = vec![0u8; nvocab * rb];
        for (src, dst) in wf.chunks_exact(ncols).zip(table.chunks_exact_mut(rb)) {
            (info.from_f32)(src, dst);
        }
        let tokens: Vec<u32> = vec![0, 36, 5, 5, (r.next_u64() % 37) as u32];
        let ntok = tokens.len();
        let (dt, dtok) = (g.upload(&table).unwrap(), g.upload(&tokens).unwrap());
        let mut out = nan_buf(&g, ntok * ncols);
        g.embed(
            &dt.slice(..),
            ty,
            &dtok.slice(..),
            &mut out.slice_mut(..),
            ncols,
            nvocab,
            ntok,
        )
        .unwrap();
        let got = download(&g, &out);
        for (t, &tok) in tokens.iter().enumerate() {
            let mut want = vec![0.0; ncols];
            (info.to_f32)(&table[tok as usize * rb..][..rb], &mut want);
            let gr = &got[t * ncols..(t + 1) * ncols];
            assert!(
                gr.iter()
                    .zip(&want)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "embed {ty} token {tok}"
            );
        }
    }
}
