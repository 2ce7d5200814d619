//! The CUDA kernels on the host: the very same `kernels/cuda/*.cu` sources compiled by the host C++
//! compiler (C++20) with `kernels/cuda/emu/host.h` standing in for CUDA: blocks run in turn, the
//! threads of a block as std::threads, `__syncthreads` and warp shuffles through barriers, shared
//! memory as statics, `-ffp-contract=off`. Each kernel is launched with the grid and block
//! `ingot_kernels::cuda` uses and compared with `reference` (or the CPU path's formula) on seeded
//! random inputs, with the tolerances of tests/cuda.rs: activation quantizers, RoPE and the
//! embedding (dequantization and the whole gather kernel), KV store and residual add bit for bit; matrix products (matvec and the 8-token matmul, every
//! type) within 1e-5 of the sum of |w x|; RMSNorm and SwiGLU within a few ulp (the host's expf is
//! not CUDA's); flash-decoding (+ combine) and tiled prefill attention within 2^-10 max|v| (the CPU
//! rounds probabilities to f16); argmax exactly. This runs on any machine, so the kernels' indexing,
//! layouts, reductions and synchronization are checked even where no GPU is; what it cannot check
//! (real warp scheduling, memory alignment faults, the driver) is left to tests/cuda.rs on a GPU.
//! Needs a C++20 compiler (`$CXX`, else `c++`); without one the test fails saying so.
#![cfg(feature = "cuda")]

mod common;

use common::SplitMix64;
use ingot_kernels::cuda::{EMBED_TYPES, MATMUL_TYPES};
use ingot_kernels::{quantize_activations, reference};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds kernels/cuda/emu/dots.cpp once per test process, into cargo's scratch directory for
/// tests (under `target/`, so nothing is left in the system's temporary directory): built under a
/// name of this process's, then renamed over the previous build.
fn harness() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda");
        let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let built = tmp.join(format!("ingot-cuda-emu-{}", std::process::id()));
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let st = Command::new(&cxx)
            .args([
                "-std=c++20",
                "-O1",
                "-pthread",
                "-ffp-contract=off",
                "-DINGOT_HOST_EMU",
            ])
            .arg("-I")
            .arg(&dir)
            .arg(dir.join("emu/dots.cpp"))
            .arg("-o")
            .arg(&built)
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{cxx}` (set CXX): {e}"));
        assert!(st.success(), "{cxx} failed on kernels/cuda/emu/dots.cpp");
        let out = tmp.join("ingot-cuda-emu");
        std::fs::rename(&built, &out).unwrap();
        out
    })
    .clone()
}

fn run(args: &[&str], input: &[u8], tag: &str) -> Vec<String> {
    let file =
        std::env::temp_dir().join(format!("ingot-cuda-emu-{}-{tag}.bin", std::process::id()));
    std::fs::write(&file, input).unwrap();
    let out = Command::new(harness())
        .args(args)
        .arg(&file)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&file);
    assert!(out.status.success(), "harness failed: {out:?}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn randn(r: &mut SplitMix64, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| r.unit() * scale).collect()
}

#[test]
fn device_dots_match_reference() {
    let mut r = SplitMix64(0x5eed_c0da);
    for ty in MATMUL_TYPES {
        let info = ty.info();
        let act_ty = info.vec_dot_type;
        let counts: &[usize] = if ty.is_k_quant() {
            &[1, 3]
        } else {
            &[1, 3, 17]
        };
        for &nb in counts {
            let n = nb * info.block_elems;
            let nrows = 7;
            let rb = ty.row_bytes(n).unwrap();
            let mut w = vec![0u8; nrows * rb];
            let wf = randn(&mut r, nrows * n, 1.0);
            for (src, dst) in wf.chunks_exact(n).zip(w.chunks_exact_mut(rb)) {
                (info.from_f32)(src, dst);
            }
            let x = randn(&mut r, n, 3.0);
            let mut act = vec![0u8; act_ty.row_bytes(n).unwrap()];
            quantize_activations(act_ty, &x, &mut act);
            let mut input = Vec::new();
            for v in [ty.ggml_id(), n as u32, nrows as u32, act.len() as u32] {
                input.extend_from_slice(&v.to_le_bytes());
            }
            input.extend_from_slice(&w);
            input.extend_from_slice(&act);
            let got: Vec<f32> = run(&[], &input, &format!("{ty}-{n}"))
                .iter()
                .map(|l| l.parse().unwrap())
                .collect();
            let mut want = vec![0.0; nrows];
            reference::matvec(ty, &mut want, &w, &act, n);
            let (mut wd, mut xd) = (vec![0.0; n], vec![0.0; n]);
            (act_ty.info().to_f32)(&act, &mut xd);
            for row in 0..nrows {
                (info.to_f32)(&w[row * rb..(row + 1) * rb], &mut wd);
                let mag: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
                let tol = 1e-5 * mag + 1e-6;
                assert!(
                    (got[row] - want[row]).abs() <= tol,
                    "{ty} n={n} row {row}: device dot {} vs reference {} (tol {tol})",
                    got[row],
                    want[row]
                );
            }
        }
    }
}

#[test]
fn device_dequant_is_bit_identical() {
    let mut r = SplitMix64(0xe3be_dd00);
    for ty in EMBED_TYPES {
        let info = ty.info();
        let n = 2 * 256;
        let mut row = vec![0u8; ty.row_bytes(n).unwrap()];
        (info.from_f32)(&randn(&mut r, n, 2.0), &mut row);
        let mut input = Vec::new();
        for v in [ty.ggml_id(), n as u32] {
            input.extend_from_slice(&v.to_le_bytes());
        }
        input.extend_from_slice(&row);
        let got = run(&["--embed"], &input, &format!("embed-{ty}"));
        let mut want = vec![0.0f32; n];
        (info.to_f32)(&row, &mut want);
        assert_eq!(got.len(), n);
        for (e, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                u32::from_str_radix(g, 16).unwrap(),
                w.to_bits(),
                "{ty} element {e}: device {g}, reference {:08x}",
                w.to_bits()
            );
        }
    }
}

#[test]
fn rope_kernel_is_bit_identical() {
    // The whole `rope` kernel (no barrier or shuffle, so it runs thread by thread on the host):
    // head selection, pair indexing, the table row of each token's position, partial rotation.
    use ingot_kernels::reference::ops::rope;
    let mut r = SplitMix64(0x0123_4567);
    for (nh, nkv, hd, nrot) in [
        (9usize, 3usize, 64usize, 64usize),
        (4, 2, 128, 96),
        (2, 1, 32, 16),
    ] {
        let (nt, pos0, nctx) = (5usize, 9usize, 20usize);
        let (q, k) = (
            randn(&mut r, nt * nh * hd, 2.0),
            randn(&mut r, nt * nkv * hd, 2.0),
        );
        let table = randn(&mut r, nctx * nrot, 1.0);
        let mut input = Vec::new();
        for v in [nh, nkv, hd, nrot, nt, pos0, nctx] {
            input.extend_from_slice(&(v as u32).to_le_bytes());
        }
        for v in q.iter().chain(&k).chain(&table) {
            input.extend_from_slice(&v.to_le_bytes());
        }
        let got: Vec<u32> = run(&["--rope"], &input, &format!("rope-{hd}-{nrot}"))
            .iter()
            .map(|l| u32::from_str_radix(l, 16).unwrap())
            .collect();
        let (mut wq, mut wk) = (q.clone(), k.clone());
        for t in 0..nt {
            let cache = &table[(pos0 + t) * nrot..][..nrot];
            for head in wq[t * nh * hd..(t + 1) * nh * hd].chunks_exact_mut(hd) {
                rope(head, cache);
            }
            for head in wk[t * nkv * hd..(t + 1) * nkv * hd].chunks_exact_mut(hd) {
                rope(head, cache);
            }
        }
        let want: Vec<u32> = wq.iter().chain(&wk).map(|v| v.to_bits()).collect();
        assert_eq!(got, want, "rope H={nh} Hkv={nkv} D={hd} n_rot={nrot}");
    }
}

// --- whole kernels, run by the host emulator (blocks in turn, threads of a block as std::threads) ---

fn header(v: &[usize]) -> Vec<u8> {
    v.iter().flat_map(|&x| (x as u32).to_le_bytes()).collect()
}

fn f32s(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn hex_f32(lines: &[String]) -> Vec<f32> {
    lines
        .iter()
        .map(|l| f32::from_bits(u32::from_str_radix(l, 16).unwrap()))
        .collect()
}

#[test]
fn quantize_kernels_are_byte_identical() {
    use ingot_kernels::QuantType;
    let mut r = SplitMix64(0x9a9a_0001);
    for (ty, n) in [
        (QuantType::Q8_0, 7 * 32),
        (QuantType::Q8_1, 5 * 32),
        (QuantType::Q8_K, 3 * 256),
    ] {
        let nt = 3;
        let mut x = randn(&mut r, nt * n, 3.0);
        x[n..n + 32].fill(0.0); // an all-zero block
        let mut input = header(&[ty.ggml_id() as usize, n, nt]);
        input.extend(f32s(&x));
        let got = run(&["--quantize"], &input, &format!("q-{ty}"));
        for t in 0..nt {
            let mut want = vec![0u8; ty.row_bytes(n).unwrap()];
            quantize_activations(ty, &x[t * n..(t + 1) * n], &mut want);
            let want: String = want.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(got[t], want, "{ty} token {t}");
        }
    }
}

#[test]
fn matmul_kernels_match_reference() {
    let mut r = SplitMix64(0x9a9a_0002);
    for ty in MATMUL_TYPES {
        let info = ty.info();
        let act_ty = info.vec_dot_type;
        let n = if ty.is_k_quant() { 512 } else { 96 };
        for (nrows, nt) in [(5usize, 1usize), (6, 3), (3, 11)] {
            let rb = ty.row_bytes(n).unwrap();
            let mut w = vec![0u8; nrows * rb];
            for (src, dst) in randn(&mut r, nrows * n, 1.0)
                .chunks_exact(n)
                .zip(w.chunks_exact_mut(rb))
            {
                (info.from_f32)(src, dst);
            }
            let arb = act_ty.row_bytes(n).unwrap();
            let st = arb.next_multiple_of(4) + 4;
            let x = randn(&mut r, nt * n, 2.0);
            let mut act = vec![0u8; nt * st];
            for t in 0..nt {
                quantize_activations(act_ty, &x[t * n..(t + 1) * n], &mut act[t * st..][..arb]);
            }
            let mut input = header(&[ty.ggml_id() as usize, n, nrows, nt, st, w.len()]);
            input.extend(&w);
            input.extend(&act);
            let got = hex_f32(&run(&["--matmul"], &input, &format!("mm-{ty}-{nt}")));
            let (mut wd, mut xd) = (vec![0.0; n], vec![0.0; n]);
            for t in 0..nt {
                let a = &act[t * st..][..arb];
                let mut want = vec![0.0; nrows];
                reference::matvec(ty, &mut want, &w, a, n);
                (act_ty.info().to_f32)(a, &mut xd);
                for row in 0..nrows {
                    (info.to_f32)(&w[row * rb..(row + 1) * rb], &mut wd);
                    let mag: f32 = wd.iter().zip(&xd).map(|(a, b)| (a * b).abs()).sum();
                    let g = got[t * nrows + row];
                    assert!(
                        (g - want[row]).abs() <= 1e-5 * mag + 1e-6,
                        "{ty} rows {nrows} tokens {nt}: token {t} row {row}: {g} vs {}",
                        want[row]
                    );
                }
            }
        }
    }
}

#[test]
fn rms_norm_argmax_swiglu_kernels_match() {
    let mut r = SplitMix64(0x9a9a_0003);
    let (n, nt, eps) = (577usize, 3usize, 1e-5f32);
    let (x, w) = (randn(&mut r, nt * n, 4.0), randn(&mut r, n, 1.0));
    let mut input = header(&[n, nt, eps.to_bits() as usize]);
    input.extend(f32s(&x));
    input.extend(f32s(&w));
    let got = hex_f32(&run(&["--rms"], &input, "rms"));
    for t in 0..nt {
        let xr = &x[t * n..(t + 1) * n];
        let sum: f64 = xr.iter().map(|&v| f64::from(v * v)).sum();
        let scale = 1.0 / ((sum / n as f64) as f32 + eps).sqrt();
        for i in 0..n {
            let want = (xr[i] * scale) * w[i];
            let g = got[t * n + i];
            assert!(
                (g - want).abs() <= 4.0 * f32::EPSILON * want.abs(),
                "rms {t} {i}: {g} vs {want}"
            );
        }
    }

    let mut x = randn(&mut r, 3000, 10.0);
    x[1000] = 11.0;
    x[2000] = 11.0;
    x[2999] = f32::NAN;
    let mut input = header(&[x.len()]);
    input.extend(f32s(&x));
    assert_eq!(run(&["--argmax"], &input, "argmax")[0], "1000");

    let (g, u) = (randn(&mut r, 300, 8.0), randn(&mut r, 300, 2.0));
    let mut input = header(&[g.len()]);
    input.extend(f32s(&g));
    input.extend(f32s(&u));
    let got = hex_f32(&run(&["--swiglu"], &input, "swiglu"));
    let mut want = g.clone();
    reference::ops::swiglu(&mut want, &u);
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        assert!(
            (a - b).abs() <= 16.0 * f32::EPSILON * b.abs() + 1e-30,
            "swiglu {i}: {a} vs {b}"
        );
    }
}

/// The CPU path's attention of one query head (as in tests/cuda.rs).
#[allow(clippy::too_many_arguments)]
fn cpu_attention(
    (nh, nkv, d): (usize, usize, usize),
    q: &[f32],
    h: usize,
    kc: &[half::f16],
    vc: &[half::f16],
    n_ctx: usize,
    n_kv: usize,
    batched: bool,
) -> Vec<f32> {
    use half::f16;
    let kvd = nkv * d;
    let kvh = h / (nh / nkv);
    let mut vt = vec![f16::ZERO; d * n_ctx];
    for p in 0..n_ctx {
        for i in 0..d {
            vt[i * n_ctx + p] = vc[p * kvd + kvh * d + i];
        }
    }
    let kern = ingot_kernels::Kernels::for_isa(ingot_kernels::Isa::Scalar).unwrap();
    let mut out = vec![0.0; d];
    let (mut s, mut q16, mut p16) = (vec![0.0; n_kv], vec![f16::ZERO; d], vec![f16::ZERO; n_kv]);
    let scale = 1.0 / (d as f32).sqrt();
    kern.attention_head_ggml(
        &mut out,
        q,
        &kc[kvh * d..],
        kvd,
        &vt,
        n_ctx,
        scale,
        batched,
        n_kv,
        &mut s,
        &mut q16,
        &mut p16,
    );
    out
}

#[test]
fn attention_kernels_match_cpu() {
    use half::f16;
    let mut r = SplitMix64(0x9a9a_0004);
    let (nh, nkv, d, n_ctx) = (6usize, 2usize, 64usize, 260usize);
    let kvd = nkv * d;
    let kc: Vec<f16> = randn(&mut r, n_ctx * kvd, 2.0)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let vc: Vec<f16> = randn(&mut r, n_ctx * kvd, 2.0)
        .into_iter()
        .map(f16::from_f32)
        .collect();
    let vmax = vc.iter().fold(0.0f32, |m, v| m.max(v.to_f32().abs()));
    // The CPU rounds probabilities to f16 before the value products, the kernels do not.
    let tol = 2.0 * vmax / 2048.0;
    let cache: Vec<u8> = kc
        .iter()
        .chain(&vc)
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect();
    for (mode, pos0, nt) in [
        ("--attn-decode", 0usize, 1usize),
        ("--attn-decode", 200, 1),
        ("--attn-prefill", 0, 9),
        ("--attn-prefill", 100, 12),
    ] {
        let q = randn(&mut r, nt * nh * d, 1.5);
        let mut input = header(&[nh, nkv, d, n_ctx, pos0, nt]);
        input.extend(f32s(&q));
        input.extend(&cache);
        let got = hex_f32(&run(&[mode], &input, &format!("attn-{pos0}")));
        for t in 0..nt {
            for h in 0..nh {
                let qh = &q[(t * nh + h) * d..][..d];
                let want =
                    cpu_attention((nh, nkv, d), qh, h, &kc, &vc, n_ctx, pos0 + t + 1, nt > 1);
                for i in 0..d {
                    let g = got[(t * nh + h) * d + i];
                    assert!(
                        (g - want[i]).abs() <= tol,
                        "{mode} pos0 {pos0} token {t} head {h} dim {i}: {g} vs {} (tol {tol})",
                        want[i]
                    );
                }
            }
        }
    }
}

#[test]
fn embed_kv_store_add_kernels_match() {
    use half::f16;
    let mut r = SplitMix64(0x9a9a_0005);
    for ty in EMBED_TYPES {
        let info = ty.info();
        let (nc, nv) = (512usize, 11usize);
        let rb = ty.row_bytes(nc).unwrap();
        let mut table = vec![0u8; nv * rb];
        for (src, dst) in randn(&mut r, nv * nc, 1.0)
            .chunks_exact(nc)
            .zip(table.chunks_exact_mut(rb))
        {
            (info.from_f32)(src, dst);
        }
        let tokens = [10usize, 0, 3, 3];
        let mut input = header(&[ty.ggml_id() as usize, nc, nv, tokens.len(), rb]);
        input.extend(&table);
        input.extend(header(&tokens));
        let got = hex_f32(&run(&["--embed-kernel"], &input, &format!("embk-{ty}")));
        for (t, &tok) in tokens.iter().enumerate() {
            let mut want = vec![0.0f32; nc];
            (info.to_f32)(&table[tok * rb..][..rb], &mut want);
            let g: Vec<u32> = got[t * nc..(t + 1) * nc]
                .iter()
                .map(|v| v.to_bits())
                .collect();
            let w: Vec<u32> = want.iter().map(|v| v.to_bits()).collect();
            assert_eq!(g, w, "embed kernel {ty} token {t}");
        }
    }

    let (kvd, nctx, pos0, nt) = (320usize, 12usize, 5usize, 4usize);
    let (k, v) = (randn(&mut r, nt * kvd, 5.0), randn(&mut r, nt * kvd, 5.0));
    let mut input = header(&[kvd, nctx, pos0, nt]);
    input.extend(f32s(&k));
    input.extend(f32s(&v));
    let got = run(&["--kv-store"], &input, "kv");
    for (c, src) in [&k, &v].into_iter().enumerate() {
        for p in 0..nctx {
            for i in 0..kvd {
                let want = if (pos0..pos0 + nt).contains(&p) {
                    f16::from_f32(src[(p - pos0) * kvd + i])
                } else {
                    f16::from_f32(-7.0)
                };
                let g = &got[c * nctx * kvd + p * kvd + i];
                assert_eq!(
                    u16::from_str_radix(g, 16).unwrap(),
                    want.to_bits(),
                    "cache {c} row {p} elem {i}"
                );
            }
        }
    }
    let sums = hex_f32(&got[2 * nctx * kvd..]);
    let want: Vec<f32> = k.iter().zip(&v).map(|(a, b)| a + b).collect();
    assert_eq!(sums, want, "add");
}
