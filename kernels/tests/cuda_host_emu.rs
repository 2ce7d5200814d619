//! The per-block device functions of the CUDA kernels, compiled for the host: `D::dot` of every
//! `matvec_*.cu` (quantized weights x quantized activations, the bit layouts and `__dp4a` integer
//! arithmetic of the GPU matrix products) and `dequant` of `embed.cu`, built from the very same
//! `.cu` sources by the host C++ compiler with `kernels/cuda/emu/host.h` standing in for CUDA
//! (`-ffp-contract=off`), then compared with `reference` on seeded random rows of odd lengths. This
//! runs on any machine, so the layouts are checked even where no GPU is (tests/cuda.rs checks the
//! kernels themselves on a GPU).
//!
//! Tolerance of the dots: the integer part is exact, each block's f32 expression is ggml's, and the
//! K-quant terms are split per 32-element part and summed in block order: 1e-5 of the sum of
//! |w x| (dequantized). `dequant` must equal `to_f32` bit for bit.
//! Needs a C++ compiler (`$CXX`, else `c++`, `g++`); without one the test says so and fails.
#![cfg(feature = "cuda")]

mod common;

use common::SplitMix64;
use ingot_kernels::cuda::{EMBED_TYPES, MATMUL_TYPES};
use ingot_kernels::{quantize_activations, reference};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds kernels/cuda/emu/dots.cpp once per test process.
fn harness() -> PathBuf {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("cuda");
        let out = std::env::temp_dir().join(format!("ingot-cuda-emu-{}", std::process::id()));
        let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
        let st = Command::new(&cxx)
            .args(["-std=c++17", "-O1", "-ffp-contract=off", "-DINGOT_HOST_EMU"])
            .arg("-I")
            .arg(&dir)
            .arg(dir.join("emu/dots.cpp"))
            .arg("-o")
            .arg(&out)
            .status()
            .unwrap_or_else(|e| panic!("cannot run the C++ compiler `{cxx}` (set CXX): {e}"));
        assert!(st.success(), "{cxx} failed on kernels/cuda/emu/dots.cpp");
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
