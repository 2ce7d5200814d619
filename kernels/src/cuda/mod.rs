//! CUDA kernels (`kernels/cuda/*.cu`, one op per file, compiled by `build.rs` and embedded as
//! fatbins with sm_80/sm_90 SASS plus compute_80 PTX) and their launch wrappers on one device and
//! one stream ([`Gpu`]). Only with the `cuda` feature.
//!
//! The driver library is opened at run time (cudarc's `dynamic-loading`): nothing CUDA is needed to
//! build, and [`Gpu::new`] returns [`Error::NoDriver`] instead of panicking on a machine without
//! one. What each kernel computes, its grid and block layout and which thread writes which element
//! are documented at the top of its `.cu` file; `tests/cuda.rs` checks every one of them against
//! [`crate::reference`] on random inputs (skipped, with a message, where no GPU is present).
//!
//! This module owns no model state: device buffers are the caller's (`ingot-runtime`'s `cuda`
//! feature keeps the weights, KV cache and activations). Wrappers check sizes with `assert!` (a
//! wrong size is a caller bug) and launch asynchronously on [`Gpu::stream`]; nothing here
//! allocates device memory after [`Gpu::new`] or synchronizes, so a sequence of launches can be
//! captured into a CUDA graph.

use crate::QuantType;
pub use cudarc;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, CudaView, CudaViewMut,
    DeviceRepr, DriverError, LaunchConfig, PushKernelArg,
};
use std::fmt;
use std::sync::Arc;

/// One compiled `.cu` file.
pub(crate) struct Module {
    name: &'static str,
    fatbin: &'static [u8],
    ptx: &'static str,
}

// `MODULES`: every kernels/cuda/*.cu that build.rs compiled (empty without nvcc).
include!(concat!(env!("OUT_DIR"), "/cuda_modules.rs"));

/// Whether this build embeds the CUDA kernels (nvcc was found when the crate was built).
pub fn kernels_compiled() -> bool {
    !MODULES.is_empty()
}

/// Why the CUDA backend cannot be used, or a launch failed.
#[derive(Debug)]
pub enum Error {
    /// No CUDA driver library (libcuda.so) could be loaded: no NVIDIA driver on this machine.
    NoDriver,
    /// The driver is present but reports no device with this ordinal.
    NoDevice { ordinal: usize, count: i32 },
    /// The crate was built without nvcc, so it holds no kernels (see `scripts/setup-cuda.sh`).
    NoKernels,
    /// A kernel module could not be loaded (e.g. a driver older than CUDA 13.0's PTX ISA 9.0).
    Module {
        name: &'static str,
        err: DriverError,
    },
    /// A driver call failed.
    Driver { op: &'static str, err: DriverError },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoDriver => write!(
                f,
                "no CUDA driver found (libcuda.so could not be loaded): this machine has no usable NVIDIA GPU driver"
            ),
            Error::NoDevice { ordinal, count } => {
                write!(f, "CUDA device {ordinal} does not exist ({count} devices found)")
            }
            Error::NoKernels => write!(
                f,
                "this build has no CUDA kernels: nvcc was not found when ingot-kernels was compiled \
                 (run `eval \"$(scripts/setup-cuda.sh --env)\"` and rebuild with --features cuda)"
            ),
            Error::Module { name, err } => write!(
                f,
                "loading CUDA module {name}: {err} (the kernels need a driver for CUDA 13.0, >= 580, or an sm_80/sm_90 GPU)"
            ),
            Error::Driver { op, err } => write!(f, "CUDA {op}: {err}"),
        }
    }
}

impl std::error::Error for Error {}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = core::result::Result<T, E>;

fn drv<T>(op: &'static str) -> impl FnOnce(DriverError) -> Error {
    let _ = core::marker::PhantomData::<T>;
    move |err| Error::Driver { op, err }
}

/// Whether the driver library can be loaded, without touching a device. cudarc panics when it
/// first needs a library it cannot open, so every entry point asks this first.
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen the driver library by its usual names and
    // closes it again; it has no preconditions.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// The matrix-product kernels of one weight type: the decode matvec and the prefill product.
#[derive(Debug)]
struct MatmulFns {
    ty: QuantType,
    matvec: CudaFunction,
    matmul: CudaFunction,
}

/// Every kernel function, loaded once.
#[derive(Debug)]
struct Functions {
    quantize_q8_0: CudaFunction,
    quantize_q8_1: CudaFunction,
    quantize_q8_k: CudaFunction,
    matmul: Vec<MatmulFns>,
    rms_norm: CudaFunction,
    rope: CudaFunction,
    kv_store: CudaFunction,
    attn_decode: CudaFunction,
    attn_combine: CudaFunction,
    attn_prefill: CudaFunction,
    swiglu: CudaFunction,
    add_inplace: CudaFunction,
    argmax: CudaFunction,
    embed: CudaFunction,
}

/// Weight types with a CUDA matrix product, and the activation format each pairs with (the same
/// `vec_dot_type` as on the CPU).
pub const MATMUL_TYPES: [QuantType; 6] = [
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q8_0,
    QuantType::Q4_K,
    QuantType::Q6_K,
];

/// Token-embedding types the `embed` kernel dequantizes.
pub const EMBED_TYPES: [QuantType; 8] = [
    QuantType::F32,
    QuantType::F16,
    QuantType::Q4_0,
    QuantType::Q4_1,
    QuantType::Q5_0,
    QuantType::Q8_0,
    QuantType::Q4_K,
    QuantType::Q6_K,
];

/// Query tokens per block of `attn_prefill` and tokens per block of the `matmul_*` kernels.
const PREFILL_TILE: u32 = 8;

/// One CUDA device, its stream and every kernel.
#[derive(Debug)]
pub struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    _modules: Vec<Arc<CudaModule>>,
    f: Functions,
}

fn i32_of(what: &str, v: usize) -> i32 {
    i32::try_from(v).unwrap_or_else(|_| panic!("{what} = {v} does not fit a kernel's i32"))
}

fn u32_of(what: &str, v: usize) -> u32 {
    u32::try_from(v).unwrap_or_else(|_| panic!("{what} = {v} does not fit a grid dimension"))
}

fn grid(x: u32, y: u32, bx: u32, by: u32, smem: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (x, y, 1),
        block_dim: (bx, by, 1),
        shared_mem_bytes: smem,
    }
}

/// Launches kernel `$f` on the stream with the argument list `[...]`.
macro_rules! launch {
    ($self:ident, $f:expr, $cfg:expr, $op:literal, [$($arg:expr),*]) => {{
        let mut b = $self.stream.launch_builder($f);
        $( b.arg($arg); )*
        // SAFETY: every wrapper passes exactly the argument list (order and types) of the
        // `extern "C"` kernel it names, and has asserted the buffer sizes that kernel's header
        // comment requires, so the kernel stays within the buffers it is given.
        unsafe { b.launch($cfg) }
            .map(|_| ())
            .map_err(|err| Error::Driver { op: $op, err })
    }};
}

impl Gpu {
    /// Opens device `ordinal` and loads every kernel. [`Error::NoDriver`] without a driver,
    /// [`Error::NoDevice`] without that device, [`Error::NoKernels`] for a build without nvcc.
    pub fn new(ordinal: usize) -> Result<Gpu> {
        if !driver_present() {
            return Err(Error::NoDriver);
        }
        if !kernels_compiled() {
            return Err(Error::NoKernels);
        }
        let count = CudaContext::device_count().map_err(drv::<()>("cuDeviceGetCount"))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::NoDevice { ordinal, count });
        }
        let ctx = CudaContext::new(ordinal).map_err(drv::<()>("context creation"))?;
        // One stream does all the work, so cudarc's cross-stream event tracking is useless, and
        // its events would be recorded into captured graphs.
        // SAFETY: no buffer of this context exists yet, and every later launch and copy goes
        // through the single `stream` below, which orders them.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(drv::<()>("stream creation"))?;
        let mut modules = Vec::new();
        let mut by_name = |name: &'static str| -> Result<Arc<CudaModule>> {
            let m = MODULES
                .iter()
                .find(|m| m.name == name)
                .ok_or(Error::NoKernels)?;
            // SASS for sm_80/sm_90 from the fatbin; else the driver JITs the PTX.
            let loaded = ctx
                .load_module(cudarc::nvrtc::Ptx::from_binary(m.fatbin.to_vec()))
                .or_else(|_| ctx.load_module(cudarc::nvrtc::Ptx::from_src(m.ptx)))
                .map_err(|err| Error::Module { name, err })?;
            modules.push(loaded.clone());
            Ok(loaded)
        };
        let func = |m: &Arc<CudaModule>, name: &'static str| {
            m.load_function(name)
                .map_err(drv::<()>("cuModuleGetFunction"))
        };
        let quantize = by_name("quantize")?;
        let attn_d = by_name("attention_decode")?;
        let mut matmul = Vec::new();
        for ty in MATMUL_TYPES {
            let tag = ty.name().to_ascii_lowercase();
            let m = by_name(match ty {
                QuantType::Q4_0 => "matvec_q4_0",
                QuantType::Q4_1 => "matvec_q4_1",
                QuantType::Q5_0 => "matvec_q5_0",
                QuantType::Q8_0 => "matvec_q8_0",
                QuantType::Q4_K => "matvec_q4_k",
                _ => "matvec_q6_k",
            })?;
            matmul.push(MatmulFns {
                ty,
                matvec: m
                    .load_function(&format!("matvec_{tag}"))
                    .map_err(drv::<()>("cuModuleGetFunction"))?,
                matmul: m
                    .load_function(&format!("matmul_{tag}"))
                    .map_err(drv::<()>("cuModuleGetFunction"))?,
            });
        }
        let f = Functions {
            quantize_q8_0: func(&quantize, "quantize_q8_0")?,
            quantize_q8_1: func(&quantize, "quantize_q8_1")?,
            quantize_q8_k: func(&quantize, "quantize_q8_k")?,
            matmul,
            rms_norm: func(&by_name("rms_norm")?, "rms_norm")?,
            rope: func(&by_name("rope")?, "rope")?,
            kv_store: func(&by_name("kv_store")?, "kv_store")?,
            attn_decode: func(&attn_d, "attn_decode")?,
            attn_combine: func(&attn_d, "attn_combine")?,
            attn_prefill: func(&by_name("attention_prefill")?, "attn_prefill")?,
            swiglu: func(&by_name("swiglu")?, "swiglu")?,
            add_inplace: func(&by_name("add")?, "add_inplace")?,
            argmax: func(&by_name("argmax")?, "argmax")?,
            embed: func(&by_name("embed")?, "embed")?,
        };
        Ok(Gpu {
            ctx,
            stream,
            _modules: modules,
            f,
        })
    }

    /// The device's name, e.g. "NVIDIA H200".
    pub fn name(&self) -> Result<String> {
        self.ctx.name().map_err(drv::<()>("cuDeviceGetName"))
    }

    /// The stream every wrapper launches on (for copies, synchronization and graph capture).
    pub fn stream(&self) -> &Arc<CudaStream> {
        &self.stream
    }

    /// Allocates `n` zeroed elements on the device.
    pub fn zeros<T: DeviceRepr + cudarc::driver::ValidAsZeroBits>(
        &self,
        n: usize,
    ) -> Result<CudaSlice<T>> {
        self.stream
            .alloc_zeros(n.max(1))
            .map_err(drv::<()>("cuMemAlloc"))
    }

    /// Copies `host` to a new device buffer.
    pub fn upload<T: DeviceRepr>(&self, host: &[T]) -> Result<CudaSlice<T>> {
        self.stream
            .clone_htod(host)
            .map_err(drv::<()>("cuMemcpyHtoD"))
    }

    /// Copies `host` into the device buffer `dst` (same length).
    pub fn write<T: DeviceRepr>(&self, host: &[T], dst: &mut CudaViewMut<'_, T>) -> Result<()> {
        assert_eq!(host.len(), dst.len(), "write: lengths differ");
        self.stream
            .memcpy_htod(host, dst)
            .map_err(drv::<()>("cuMemcpyHtoD"))
    }

    /// Copies the device buffer `src` into `host` (same length), waiting for the stream.
    pub fn read<T: DeviceRepr>(&self, src: &CudaView<'_, T>, host: &mut [T]) -> Result<()> {
        assert_eq!(host.len(), src.len(), "read: lengths differ");
        self.stream
            .memcpy_dtoh(src, host)
            .map_err(drv::<()>("cuMemcpyDtoH"))?;
        self.sync()
    }

    /// Waits for every launch so far.
    pub fn sync(&self) -> Result<()> {
        self.stream
            .synchronize()
            .map_err(drv::<()>("cuStreamSynchronize"))
    }

    /// Whether [`Gpu::matmul`] supports weights of type `ty`.
    pub fn supports(ty: QuantType) -> bool {
        MATMUL_TYPES.contains(&ty)
    }

    /// Quantizes `ntok` rows of `x` (rows `x_stride` elements apart, `n` used) into `out` (rows
    /// `out_stride` bytes apart) in the activation format `ty` (Q8_0, Q8_1 or Q8_K), as
    /// [`crate::quantize_activations`] does: byte-identical output.
    #[allow(clippy::too_many_arguments)]
    pub fn quantize(
        &self,
        ty: QuantType,
        x: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, u8>,
        n: usize,
        ntok: usize,
        x_stride: usize,
        out_stride: usize,
    ) -> Result<()> {
        let rb = ty.row_bytes(n).unwrap_or(usize::MAX);
        assert!(ntok >= 1 && n >= 1, "quantize: empty input");
        assert!(
            x_stride >= n && x.len() >= (ntok - 1) * x_stride + n,
            "quantize: x too short"
        );
        assert!(
            out_stride >= rb && out_stride.is_multiple_of(4),
            "quantize: bad out_stride"
        );
        assert!(
            out.len() >= (ntok - 1) * out_stride + rb,
            "quantize: out too short"
        );
        let (f, cfg) = match ty {
            QuantType::Q8_0 | QuantType::Q8_1 => {
                let nb = u32_of("blocks", n / 32);
                let f = if ty == QuantType::Q8_0 {
                    &self.f.quantize_q8_0
                } else {
                    &self.f.quantize_q8_1
                };
                (f, grid(nb.div_ceil(4), u32_of("ntok", ntok), 32, 4, 0))
            }
            QuantType::Q8_K => (
                &self.f.quantize_q8_k,
                grid(u32_of("blocks", n / 256), u32_of("ntok", ntok), 32, 1, 0),
            ),
            _ => panic!("quantize: {ty} is not a CUDA activation format"),
        };
        let (n, xs, os) = (
            i32_of("n", n),
            i32_of("x_stride", x_stride),
            i32_of("out_stride", out_stride),
        );
        launch!(self, f, cfg, "quantize", [x, out, &n, &xs, &os])
    }

    /// `out (ntok, nrows) = act @ W^T`: W (nrows, ncols) in `ty` (one of [`MATMUL_TYPES`]), `act`
    /// `ntok` rows `act_stride` bytes apart already quantized by [`Gpu::quantize`] to
    /// `ty.info().vec_dot_type`. One token uses the matvec kernel, more the 8-token product.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        ty: QuantType,
        w: &CudaView<'_, u8>,
        act: &CudaView<'_, u8>,
        out: &mut CudaViewMut<'_, f32>,
        ncols: usize,
        nrows: usize,
        ntok: usize,
        act_stride: usize,
    ) -> Result<()> {
        let fns = self
            .f
            .matmul
            .iter()
            .find(|m| m.ty == ty)
            .unwrap_or_else(|| panic!("matmul: no CUDA kernel for {ty}"));
        let rb = ty
            .row_bytes(ncols)
            .expect("matmul: ncols is not whole blocks");
        let arb = ty
            .info()
            .vec_dot_type
            .row_bytes(ncols)
            .unwrap_or(usize::MAX);
        assert!(ntok >= 1 && nrows >= 1, "matmul: empty product");
        assert_eq!(w.len(), rb * nrows, "matmul: W is not nrows x row bytes");
        assert!(
            act_stride >= arb && act_stride.is_multiple_of(4),
            "matmul: bad act_stride"
        );
        assert!(
            act.len() >= (ntok - 1) * act_stride + arb,
            "matmul: act too short"
        );
        assert!(out.len() >= ntok * nrows, "matmul: out too short");
        let (f, ty_rows) = if ntok == 1 {
            (&fns.matvec, u32_of("ntok", ntok))
        } else {
            (&fns.matmul, u32_of("ntok", ntok).div_ceil(PREFILL_TILE))
        };
        let cfg = grid(u32_of("nrows", nrows).div_ceil(4), ty_rows, 32, 4, 0);
        let (nc, nr, st, nt) = (
            i32_of("ncols", ncols),
            i32_of("nrows", nrows),
            i32_of("act_stride", act_stride),
            i32_of("ntok", ntok),
        );
        launch!(self, f, cfg, "matmul", [w, act, out, &nc, &nr, &st, &nt])
    }

    /// `out[t] = rmsnorm(x[t]) * w` for `ntok` rows of `n`.
    pub fn rms_norm(
        &self,
        x: &CudaView<'_, f32>,
        w: &CudaView<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
        n: usize,
        ntok: usize,
        eps: f32,
    ) -> Result<()> {
        assert!(n >= 1 && ntok >= 1, "rms_norm: empty");
        assert!(
            x.len() >= n * ntok && out.len() >= n * ntok && w.len() >= n,
            "rms_norm: sizes"
        );
        let cfg = grid(u32_of("ntok", ntok), 1, 256, 1, 0);
        let n = i32_of("n", n);
        launch!(
            self,
            &self.f.rms_norm,
            cfg,
            "rms_norm",
            [x, w, out, &n, &eps]
        )
    }

    /// Rotates the first `n_rot` dimensions of every query and key head of `ntok` tokens in place,
    /// token `t` at position `pos0[0] + t`, by the cos/sin pairs of `table` (S, n_rot).
    #[allow(clippy::too_many_arguments)]
    pub fn rope(
        &self,
        q: &mut CudaViewMut<'_, f32>,
        k: &mut CudaViewMut<'_, f32>,
        table: &CudaView<'_, f32>,
        pos0: &CudaView<'_, i32>,
        shape: AttnShape,
        n_rot: usize,
        ntok: usize,
    ) -> Result<()> {
        let (qd, kvd) = (shape.q_dim(), shape.kv_dim());
        assert!(
            n_rot.is_multiple_of(2) && n_rot <= shape.head_dim,
            "rope: bad n_rot"
        );
        assert!(
            q.len() >= ntok * qd && k.len() >= ntok * kvd,
            "rope: q/k too short"
        );
        assert!(
            table.len().is_multiple_of(n_rot.max(1)) && !pos0.is_empty(),
            "rope: table"
        );
        let cfg = grid(u32_of("ntok", ntok), 1, 256, 1, 0);
        let (nh, nkv, hd, nr, qs, ks) = (
            i32_of("n_head", shape.n_head),
            i32_of("n_head_kv", shape.n_head_kv),
            i32_of("head_dim", shape.head_dim),
            i32_of("n_rot", n_rot),
            i32_of("q_dim", qd),
            i32_of("kv_dim", kvd),
        );
        launch!(
            self,
            &self.f.rope,
            cfg,
            "rope",
            [q, k, table, pos0, &nh, &nkv, &hd, &nr, &qs, &ks]
        )
    }

    /// Stores `ntok` rows of keys and values (kv_dim each) as f16 at rows `pos0[0]..` of one
    /// layer's caches `kc`, `vc` (S, kv_dim).
    #[allow(clippy::too_many_arguments)]
    pub fn kv_store(
        &self,
        k: &CudaView<'_, f32>,
        v: &CudaView<'_, f32>,
        kc: &mut CudaViewMut<'_, half::f16>,
        vc: &mut CudaViewMut<'_, half::f16>,
        pos0: &CudaView<'_, i32>,
        kv_dim: usize,
        ntok: usize,
    ) -> Result<()> {
        assert!(
            k.len() >= ntok * kv_dim && v.len() >= ntok * kv_dim,
            "kv_store: k/v too short"
        );
        assert!(
            kc.len() == vc.len() && kc.len().is_multiple_of(kv_dim),
            "kv_store: caches"
        );
        let cfg = grid(
            u32_of("kv_dim", kv_dim).div_ceil(256),
            u32_of("ntok", ntok),
            256,
            1,
            0,
        );
        let d = i32_of("kv_dim", kv_dim);
        launch!(
            self,
            &self.f.kv_store,
            cfg,
            "kv_store",
            [k, v, kc, vc, pos0, &d, &d, &d]
        )
    }

    /// Attention of one token (at position `pos0[0]`, seeing positions `0..=pos0[0]`) over one
    /// layer's caches, flash-decoding style: [`AttnShape::splits`] partial results in `part`, then
    /// combined into `out` (q_dim).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_decode(
        &self,
        q: &CudaView<'_, f32>,
        kc: &CudaView<'_, half::f16>,
        vc: &CudaView<'_, half::f16>,
        part: &mut CudaViewMut<'_, f32>,
        out: &mut CudaViewMut<'_, f32>,
        pos0: &CudaView<'_, i32>,
        shape: AttnShape,
        n_ctx: usize,
    ) -> Result<()> {
        shape.check();
        let (n_split, chunk) = shape.splits(n_ctx);
        assert!(
            q.len() >= shape.q_dim() && out.len() >= shape.q_dim(),
            "attention: q/out"
        );
        assert!(kc.len() >= n_ctx * shape.kv_dim() && vc.len() >= n_ctx * shape.kv_dim());
        assert!(
            part.len() >= shape.part_len(n_ctx),
            "attention: part too short"
        );
        let cfg = grid(
            u32_of("n_head", shape.n_head),
            u32_of("splits", n_split),
            32,
            1,
            0,
        );
        let (nh, nkv, hd, ch, ns) = (
            i32_of("n_head", shape.n_head),
            i32_of("n_head_kv", shape.n_head_kv),
            i32_of("head_dim", shape.head_dim),
            i32_of("chunk", chunk),
            i32_of("splits", n_split),
        );
        let scale = shape.scale();
        launch!(
            self,
            &self.f.attn_decode,
            cfg,
            "attn_decode",
            [q, kc, vc, &mut *part, pos0, &nh, &nkv, &hd, &ch, &scale]
        )?;
        let part = part.slice(..);
        let cfg = grid(
            u32_of("n_head", shape.n_head),
            1,
            u32_of("head_dim", shape.head_dim),
            1,
            0,
        );
        launch!(
            self,
            &self.f.attn_combine,
            cfg,
            "attn_combine",
            [&part, out, &hd, &ns]
        )
    }

    /// Causal attention of `ntok` tokens (token `t` at position `pos0[0] + t`) over one layer's
    /// caches, which must already hold their keys and values: `out` (ntok, q_dim).
    #[allow(clippy::too_many_arguments)]
    pub fn attention_prefill(
        &self,
        q: &CudaView<'_, f32>,
        kc: &CudaView<'_, half::f16>,
        vc: &CudaView<'_, half::f16>,
        out: &mut CudaViewMut<'_, f32>,
        pos0: &CudaView<'_, i32>,
        shape: AttnShape,
        ntok: usize,
    ) -> Result<()> {
        shape.check();
        assert!(q.len() >= ntok * shape.q_dim() && out.len() >= ntok * shape.q_dim());
        assert!(
            kc.len() == vc.len() && kc.len().is_multiple_of(shape.kv_dim()),
            "attention: caches"
        );
        let cfg = grid(
            u32_of("n_head", shape.n_head),
            u32_of("ntok", ntok).div_ceil(PREFILL_TILE),
            32,
            PREFILL_TILE,
            0,
        );
        let (nt, nh, nkv, hd) = (
            i32_of("ntok", ntok),
            i32_of("n_head", shape.n_head),
            i32_of("n_head_kv", shape.n_head_kv),
            i32_of("head_dim", shape.head_dim),
        );
        let scale = shape.scale();
        launch!(
            self,
            &self.f.attn_prefill,
            cfg,
            "attn_prefill",
            [q, kc, vc, out, pos0, &nt, &nh, &nkv, &hd, &scale]
        )
    }

    /// `g = silu(g) * u` over the first `n` elements.
    pub fn swiglu(
        &self,
        g: &mut CudaViewMut<'_, f32>,
        u: &CudaView<'_, f32>,
        n: usize,
    ) -> Result<()> {
        assert!(g.len() >= n && u.len() >= n, "swiglu: sizes");
        let cfg = grid(u32_of("n", n).div_ceil(256), 1, 256, 1, 0);
        let n = i32_of("n", n);
        launch!(self, &self.f.swiglu, cfg, "swiglu", [g, u, &n])
    }

    /// `x += y` over the first `n` elements.
    pub fn add(&self, x: &mut CudaViewMut<'_, f32>, y: &CudaView<'_, f32>, n: usize) -> Result<()> {
        assert!(x.len() >= n && y.len() >= n, "add: sizes");
        let cfg = grid(u32_of("n", n).div_ceil(256), 1, 256, 1, 0);
        let n = i32_of("n", n);
        launch!(self, &self.f.add_inplace, cfg, "add", [x, y, &n])
    }

    /// `out[0]` = index of the largest of `x[..n]` (lowest on ties), as `sampler::argmax`.
    pub fn argmax(
        &self,
        x: &CudaView<'_, f32>,
        n: usize,
        out: &mut CudaViewMut<'_, u32>,
    ) -> Result<()> {
        assert!(x.len() >= n && !out.is_empty(), "argmax: sizes");
        let n = i32_of("n", n);
        launch!(
            self,
            &self.f.argmax,
            grid(1, 1, 1024, 1, 0),
            "argmax",
            [x, &n, out]
        )
    }

    /// Rows `tokens[..ntok]` of the embedding `table` (nvocab, ncols) in `ty` (one of
    /// [`EMBED_TYPES`]), dequantized into `out` (ntok, ncols) exactly as the type's `to_f32`.
    #[allow(clippy::too_many_arguments)]
    pub fn embed(
        &self,
        table: &CudaView<'_, u8>,
        ty: QuantType,
        tokens: &CudaView<'_, u32>,
        out: &mut CudaViewMut<'_, f32>,
        ncols: usize,
        nvocab: usize,
        ntok: usize,
    ) -> Result<()> {
        assert!(
            EMBED_TYPES.contains(&ty),
            "embed: no CUDA dequantizer for {ty}"
        );
        let rb = ty
            .row_bytes(ncols)
            .expect("embed: ncols is not whole blocks");
        assert_eq!(table.len(), rb * nvocab, "embed: table size");
        assert!(
            tokens.len() >= ntok && out.len() >= ntok * ncols,
            "embed: sizes"
        );
        let cfg = grid(
            u32_of("ncols", ncols).div_ceil(256),
            u32_of("ntok", ntok),
            256,
            1,
            0,
        );
        let (id, nc, rb, nv) = (
            i32_of("type", ty.ggml_id() as usize),
            i32_of("ncols", ncols),
            i32_of("row_bytes", rb),
            i32_of("nvocab", nvocab),
        );
        launch!(
            self,
            &self.f.embed,
            cfg,
            "embed",
            [table, tokens, out, &id, &nc, &rb, &nv]
        )
    }
}

/// Head layout of attention: H query heads, Hkv key/value heads of D dimensions each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnShape {
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
}

impl AttnShape {
    /// Positions per split of [`Gpu::attention_decode`].
    pub const CHUNK: usize = 128;

    /// H * D.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }

    /// Hkv * D.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// `1 / sqrt(D)`, as the CPU path.
    pub fn scale(&self) -> f32 {
        1.0 / (self.head_dim as f32).sqrt()
    }

    /// Whether the CUDA attention kernels take this shape: D a multiple of 32 up to 256, and H a
    /// multiple of Hkv.
    pub fn supported(&self) -> bool {
        self.head_dim.is_multiple_of(32)
            && (32..=256).contains(&self.head_dim)
            && self.n_head_kv >= 1
            && self.n_head.is_multiple_of(self.n_head_kv)
    }

    fn check(&self) {
        assert!(
            self.supported(),
            "attention: unsupported head shape {self:?}"
        );
    }

    /// `(splits, positions per split)` of decode attention for a cache of `n_ctx` positions.
    pub fn splits(&self, n_ctx: usize) -> (usize, usize) {
        (n_ctx.div_ceil(Self::CHUNK).max(1), Self::CHUNK)
    }

    /// f32 elements of the partial results of decode attention: H * splits * (D + 2).
    pub fn part_len(&self, n_ctx: usize) -> usize {
        self.n_head * self.splits(n_ctx).0 * (self.head_dim + 2)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every (module, kernel) pair [`Gpu::new`] loads, as the `.cu` files name them.
    const ENTRY_POINTS: &[(&str, &[&str])] = &[
        (
            "quantize",
            &["quantize_q8_0", "quantize_q8_1", "quantize_q8_k"],
        ),
        ("matvec_q4_0", &["matvec_q4_0", "matmul_q4_0"]),
        ("matvec_q4_1", &["matvec_q4_1", "matmul_q4_1"]),
        ("matvec_q5_0", &["matvec_q5_0", "matmul_q5_0"]),
        ("matvec_q8_0", &["matvec_q8_0", "matmul_q8_0"]),
        ("matvec_q4_k", &["matvec_q4_k", "matmul_q4_k"]),
        ("matvec_q6_k", &["matvec_q6_k", "matmul_q6_k"]),
        ("rms_norm", &["rms_norm"]),
        ("rope", &["rope"]),
        ("kv_store", &["kv_store"]),
        ("attention_decode", &["attn_decode", "attn_combine"]),
        ("attention_prefill", &["attn_prefill"]),
        ("swiglu", &["swiglu"]),
        ("add", &["add_inplace"]),
        ("argmax", &["argmax"]),
        ("embed", &["embed"]),
    ];

    /// Runs without a GPU: when nvcc built the kernels, every module `Gpu::new` loads is embedded,
    /// its PTX declares each kernel it looks up (unmangled, `extern "C"`), and its fatbin is one
    /// (magic 0xBA55ED50).
    #[test]
    fn embedded_modules_have_every_entry_point() {
        if !kernels_compiled() {
            eprintln!("built without nvcc: no kernels embedded (REQUIRE_CUDA_KERNELS=1 makes that an error)");
            return;
        }
        assert_eq!(
            MODULES.len(),
            ENTRY_POINTS.len(),
            "a .cu file is not listed here"
        );
        for (module, entries) in ENTRY_POINTS {
            let m = MODULES
                .iter()
                .find(|m| m.name == *module)
                .unwrap_or_else(|| panic!("module {module} not embedded"));
            for e in *entries {
                assert!(
                    m.ptx.contains(&format!(".entry {e}(")),
                    "{module}.ptx lacks .entry {e}"
                );
            }
            assert!(
                m.ptx.contains(".target sm_80"),
                "{module}: PTX not for compute_80"
            );
            assert_eq!(
                m.fatbin.get(..4),
                Some(&0xBA55_ED50u32.to_le_bytes()[..]),
                "{module}.fatbin is not a fatbin"
            );
        }
    }
}
