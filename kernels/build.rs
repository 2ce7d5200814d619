//! With the `cuda` feature: compiles every `cuda/*.cu` (one op each) with nvcc into `OUT_DIR` as
//! PTX for compute_80 and a fatbin with sm_80 and sm_90 SASS plus compute_80 PTX, and writes
//! `cuda_modules.rs`, the table `src/cuda` embeds (the pattern of candle-kernels; the toolchain
//! notes are in ../shared/docs/toolchains.md section C and `scripts/setup-cuda.sh`).
//!
//! nvcc is looked for in `$NVCC`, `$CUDA_HOME/bin/nvcc`, `$CUDA_PATH/bin/nvcc`, then `PATH`.
//! Without nvcc the crate builds with an empty table (a warning says so; `ingot_kernels::cuda`
//! then reports that no kernels were compiled in). `REQUIRE_CUDA_KERNELS=1` makes a missing nvcc a
//! hard error; a `.cu` that fails to compile is always one. Without the feature this does nothing.
use std::path::{Path, PathBuf};
use std::process::{Child, Command};

fn find_nvcc() -> Option<PathBuf> {
    let mut cands: Vec<PathBuf> = Vec::new();
    if let Some(p) = std::env::var_os("NVCC") {
        cands.push(p.into());
    }
    for v in ["CUDA_HOME", "CUDA_PATH"] {
        if let Some(h) = std::env::var_os(v) {
            cands.push(Path::new(&h).join("bin/nvcc"));
        }
    }
    cands.push("nvcc".into());
    cands.into_iter().find(|c| {
        Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn main() {
    println!("cargo::rustc-check-cfg=cfg(has_cuda_kernels)");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    for v in ["NVCC", "CUDA_HOME", "CUDA_PATH", "REQUIRE_CUDA_KERNELS"] {
        println!("cargo:rerun-if-env-changed={v}");
    }
    println!("cargo:rerun-if-changed=cuda");
    let require = std::env::var("REQUIRE_CUDA_KERNELS").is_ok_and(|v| v == "1");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let table = out.join("cuda_modules.rs");

    let Some(nvcc) = find_nvcc() else {
        if require {
            panic!("REQUIRE_CUDA_KERNELS=1 but no nvcc was found: set NVCC or CUDA_HOME (scripts/setup-cuda.sh installs one)");
        }
        println!("cargo:warning=nvcc not found: ingot-kernels is built without CUDA kernels (eval \"$(scripts/setup-cuda.sh --env)\" to get them)");
        std::fs::write(&table, "pub(crate) const MODULES: &[Module] = &[];\n")
            .expect("write table");
        return;
    };
    let mut sources: Vec<PathBuf> = std::fs::read_dir("cuda")
        .expect("kernels/cuda exists")
        .map(|e| e.expect("readable dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "cu" || x == "cuh"))
        .collect();
    sources.sort();
    for s in &sources {
        println!("cargo:rerun-if-changed={}", s.display());
    }
    sources.retain(|p| p.extension().is_some_and(|x| x == "cu"));

    // Every compile runs concurrently: about 1 s each, CPU-bound.
    let mut jobs: Vec<(String, Child)> = Vec::new();
    for cu in &sources {
        let stem = cu
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name");
        let variants: [(&str, &[&str]); 2] = [
            ("ptx", &["-ptx", "-arch=compute_80"]),
            (
                "fatbin",
                &[
                    "-fatbin",
                    "-gencode=arch=compute_80,code=[sm_80,compute_80]",
                    "-gencode=arch=compute_90,code=sm_90",
                ],
            ),
        ];
        for (ext, args) in variants {
            let child = Command::new(&nvcc)
                .args(args)
                .args(["-O3", "-std=c++17", "-Icuda", "-o"])
                .arg(out.join(format!("{stem}.{ext}")))
                .arg(cu)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", nvcc.display()));
            jobs.push((format!("{} ({ext})", cu.display()), child));
        }
    }
    let failed: Vec<String> = jobs
        .into_iter()
        .filter_map(|(what, mut child)| match child.wait() {
            Ok(st) if st.success() => None,
            _ => Some(what),
        })
        .collect();
    if !failed.is_empty() {
        panic!("nvcc failed on {}", failed.join(", "));
    }
    let mut rs = String::from("pub(crate) const MODULES: &[Module] = &[\n");
    for cu in &sources {
        let stem = cu
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("UTF-8 file name");
        rs += &format!(
            "    Module {{ name: {stem:?}, fatbin: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{stem}.fatbin\")), ptx: include_str!(concat!(env!(\"OUT_DIR\"), \"/{stem}.ptx\")) }},\n"
        );
    }
    rs += "];\n";
    std::fs::write(&table, rs).expect("write table");
    println!("cargo:rustc-cfg=has_cuda_kernels");
}
