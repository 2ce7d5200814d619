//! Runtime ISA selection: [`Kernels`] is the one entry point the runtime calls for dot products,
//! matrix-vector and matrix-matrix products and activation quantization.
//!
//! The CPU is detected once per token type (`Avx2::detect()` etc.); a [`Kernels`] holds the token of
//! the chosen path, so the per-call dispatch is a `match` with no `unsafe`. [`Kernels::best`] is
//! built once per process and honours `INGOT_ISA` (see [`Kernels::from_env`]);
//! [`Kernels::for_isa`] builds any available path, so tests run every one of them.
//!
//! Numerics: every path agrees with [`crate::reference`] to rounding (exactly on the integer part
//! of each block dot) and its activation quantizer is byte-identical to the reference's.

use crate::reference::{self, check_row};
use crate::QuantType;

#[cfg(target_arch = "aarch64")]
use crate::cpu::aarch64::{dotprod::NeonDotprod, neon::Neon};
#[cfg(target_arch = "x86_64")]
use crate::cpu::x86_64::{avx2::Avx2, avx512::Avx512Vnni, avxvnni::AvxVnni};

/// The environment variable that forces a kernel path: `scalar`, `avx2`, `avxvnni`, `avx512`,
/// `neon` or `dotprod`.
pub const ISA_ENV: &str = "INGOT_ISA";

/// A kernel path, slowest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Isa {
    /// [`crate::reference`]: portable, the definition of correct.
    Scalar,
    /// x86_64 AVX2 + FMA + F16C.
    Avx2,
    /// x86_64 AVX-VNNI (the VEX-encoded 256-bit `vpdpbusd`) plus AVX2 + FMA + F16C: the AVX2 path
    /// with its integer block dots done by `vpdpbusd` (same results).
    AvxVnni,
    /// x86_64 AVX-512 F/BW/VL + VNNI (plus AVX2 + FMA + F16C).
    Avx512Vnni,
    /// aarch64 Advanced SIMD (every AArch64 core).
    Neon,
    /// aarch64 Advanced SIMD + the ARMv8.2 dotprod extension (`SDOT`).
    NeonDotprod,
}

impl Isa {
    /// Every path, slowest first within each architecture (only one architecture's paths are
    /// ever available).
    pub const ALL: [Isa; 6] = [
        Isa::Scalar,
        Isa::Avx2,
        Isa::AvxVnni,
        Isa::Avx512Vnni,
        Isa::Neon,
        Isa::NeonDotprod,
    ];

    /// The `INGOT_ISA` spelling: `"scalar"`, `"avx2"`, `"avxvnni"`, `"avx512"`, `"neon"`,
    /// `"dotprod"`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::AvxVnni => "avxvnni",
            Isa::Avx512Vnni => "avx512",
            Isa::Neon => "neon",
            Isa::NeonDotprod => "dotprod",
        }
    }

    /// Parses an `INGOT_ISA` value (ASCII case-insensitive).
    pub fn from_name(s: &str) -> Option<Isa> {
        Isa::ALL
            .into_iter()
            .find(|isa| s.eq_ignore_ascii_case(isa.name()))
    }
}

impl core::fmt::Display for Isa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy, Debug)]
enum Backend {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    #[cfg(target_arch = "x86_64")]
    AvxVnni(AvxVnni),
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512Vnni),
    #[cfg(target_arch = "aarch64")]
    Neon(Neon),
    #[cfg(target_arch = "aarch64")]
    NeonDotprod(NeonDotprod),
}

/// A chosen set of CPU kernels. Cheap to copy; all methods are allocation-free, assert their slice
/// lengths (a mismatch is a caller bug) and accept byte slices at any alignment.
#[derive(Clone, Copy, Debug)]
pub struct Kernels {
    backend: Backend,
}

impl Kernels {
    /// The kernels every caller should use: [`Kernels::from_env`], or [`Kernels::detect`] when
    /// that fails. Built once per process. `best` never prints; a CLI that wants to warn about a
    /// bad `INGOT_ISA` calls `from_env` itself and prints its `Err`.
    pub fn best() -> Kernels {
        #[cfg(feature = "std")]
        {
            static BEST: std::sync::OnceLock<Kernels> = std::sync::OnceLock::new();
            *BEST.get_or_init(|| Kernels::from_env().unwrap_or_else(|_| Kernels::detect()))
        }
        // Without `std` there is no environment, and detection is a compile-time constant.
        #[cfg(not(feature = "std"))]
        Kernels::detect()
    }

    /// The fastest path the running CPU supports, ignoring `INGOT_ISA`.
    pub fn detect() -> Kernels {
        Isa::ALL
            .into_iter()
            .rev()
            .find_map(Kernels::for_isa)
            .unwrap_or(Kernels {
                backend: Backend::Scalar,
            })
    }

    /// [`Kernels::detect`] unless `INGOT_ISA` is set (and non-empty), in which case that path.
    /// `Err` (a one-line message naming the fallback, for the caller to print) when the value is
    /// unknown or the path is not available on this CPU.
    #[cfg(feature = "std")]
    pub fn from_env() -> Result<Kernels, String> {
        match std::env::var(ISA_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Kernels::detect()),
            Err(std::env::VarError::NotUnicode(v)) => Err(format!(
                "{ISA_ENV}={v:?} is not valid UTF-8; using {}",
                Kernels::detect().isa()
            )),
            Ok(v) if v.trim().is_empty() => Ok(Kernels::detect()),
            Ok(v) => Kernels::parse_choice(v.trim()),
        }
    }

    #[cfg(feature = "std")]
    fn parse_choice(v: &str) -> Result<Kernels, String> {
        let fallback = Kernels::detect().isa();
        match Isa::from_name(v) {
            None => {
                let names: Vec<&str> = Isa::ALL.iter().map(|i| i.name()).collect();
                Err(format!(
                    "{ISA_ENV}={v:?} is not one of {}; using {fallback}",
                    names.join("|")
                ))
            }
            Some(isa) => Kernels::for_isa(isa).ok_or_else(|| {
                format!("{ISA_ENV}={v}: this CPU does not support {isa}; using {fallback}")
            }),
        }
    }

    /// The kernels of path `isa`, or `None` when this CPU (or target) lacks it. `Scalar` is
    /// always available.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        let backend = match isa {
            Isa::Scalar => Backend::Scalar,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Backend::Avx2(Avx2::detect()?),
            #[cfg(target_arch = "x86_64")]
            Isa::AvxVnni => Backend::AvxVnni(AvxVnni::detect()?),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => Backend::Avx512(Avx512Vnni::detect()?),
            #[cfg(target_arch = "aarch64")]
            Isa::Neon => Backend::Neon(Neon::detect()?),
            #[cfg(target_arch = "aarch64")]
            Isa::NeonDotprod => Backend::NeonDotprod(NeonDotprod::detect()?),
            // The other architecture's paths.
            _ => return None,
        };
        Some(Kernels { backend })
    }

    /// The [`Isa::AvxVnni`] kernels with `vpdpbusd` emulated (exactly) by AVX2 instructions, on
    /// any CPU with AVX2 (`None` without): the same kernel bodies and the same bits as the native
    /// path, slower than the AVX2 path. For tests on CPUs without AVX-VNNI; never chosen by
    /// [`Kernels::detect`] or `INGOT_ISA`. Its [`Kernels::isa`] is [`Isa::AvxVnni`].
    pub fn avxvnni_emulated() -> Option<Kernels> {
        #[cfg(target_arch = "x86_64")]
        {
            Avx2::detect().map(|a| Kernels {
                backend: Backend::AvxVnni(AvxVnni::emulated(a)),
            })
        }
        #[cfg(not(target_arch = "x86_64"))]
        None
    }

    /// Whether these kernels emulate an instruction the CPU lacks ([`Kernels::avxvnni_emulated`]).
    pub fn is_emulated(&self) -> bool {
        #[cfg(target_arch = "x86_64")]
        if let Backend::AvxVnni(k) = self.backend {
            return !k.is_native();
        }
        false
    }

    /// Which path these kernels run.
    pub fn isa(&self) -> Isa {
        match self.backend {
            Backend::Scalar => Isa::Scalar,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(_) => Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(_) => Isa::AvxVnni,
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(_) => Isa::Avx512Vnni,
            #[cfg(target_arch = "aarch64")]
            Backend::Neon(_) => Isa::Neon,
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(_) => Isa::NeonDotprod,
        }
    }

    /// Dot product of `n` elements, same contract as [`crate::TypeInfo::vec_dot`]: `w` is one row
    /// in `ty`, `x` one row in `ty.info().vec_dot_type`, each exactly `row_bytes(n)` long.
    ///
    /// # Panics
    /// If `n` is not whole blocks or a length disagrees with `n`.
    pub fn vec_dot(&self, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        if ty.is_k_quant() {
            return crate::cpu::kquants::vec_dot(self.isa(), ty, n, w, x);
        }
        match self.backend {
            Backend::Scalar => (ty.info().vec_dot)(n, w, x),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(k) => k.vec_dot(ty, n, w, x),
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(k) => k.vec_dot(ty, n, w, x),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(k) => k.vec_dot(ty, n, w, x),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon(k) => k.vec_dot(ty, n, w, x),
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(k) => k.vec_dot(ty, n, w, x),
        }
    }

    /// Converts activations `x` (n,) to activation format `ty` (F32, F16, BF16, Q8_0, Q8_1 or Q8_K),
    /// byte-identical to [`crate::reference::quantize_activations`]. `out.len()` must be
    /// `ty.row_bytes(x.len())`.
    ///
    /// # Panics
    /// If `ty` is not an activation format or the lengths disagree.
    pub fn quantize_activations(&self, ty: QuantType, x: &[f32], out: &mut [u8]) {
        match self.backend {
            Backend::Scalar => reference::quantize_activations(ty, x, out),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(k) => k.quantize_activations(ty, x, out),
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(k) => k.quantize_activations(ty, x, out),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(k) => k.quantize_activations(ty, x, out),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon(k) => k.quantize_activations(ty, x, out),
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(k) => k.quantize_activations(ty, x, out),
        }
    }

    /// Quantizes the `T = x.len() / n` activation rows of `x` (T, n) for a product with a weight
    /// matrix of type `weight` and `rows` rows, row `j` at `act[j * stride..]`:
    /// [`Kernels::quantize_activations`] to the weight's `vec_dot_type`, except the first
    /// `T - T % 4` rows of a product that llama.cpp runs with its repacked gemm on x86 (Q4_K, and on
    /// AVX-512 Q2_K, matrices whose row count is a multiple of 8), which it quantizes in groups of
    /// four (`reference::quantize_row_q8_k_4x8_x86`; see `cpu/kquants.rs`).
    ///
    /// # Panics
    /// If `n` is not whole blocks of the activation format, `x` not whole rows, or `act` too short.
    pub fn quantize_batch(
        &self,
        weight: QuantType,
        rows: usize,
        x: &[f32],
        n: usize,
        act: &mut [u8],
        stride: usize,
    ) {
        let act_ty = weight.info().vec_dot_type;
        let arb = act_ty.row_bytes(n).expect("quantize_batch: n whole blocks");
        assert!(
            n > 0 && x.len().is_multiple_of(n),
            "quantize_batch: whole rows"
        );
        let t = x.len() / n;
        let fours = if crate::cpu::kquants::quantizes_in_fours(self.isa(), weight, rows) {
            t - t % 4
        } else {
            0
        };
        for (j, row) in x.chunks_exact(n).enumerate() {
            let dst = &mut act[j * stride..j * stride + arb];
            if j < fours {
                reference::quantize_row_q8_k_4x8_x86(row, dst);
            } else {
                self.quantize_activations(act_ty, row, dst);
            }
        }
    }

    /// Whether products with weight matrices `a` and `b` (type, row count) read the same quantized
    /// activations ([`Kernels::quantize_batch`] gives both the same bytes).
    pub fn same_activations(&self, a: (QuantType, usize), b: (QuantType, usize)) -> bool {
        let fours = |(t, rows)| crate::cpu::kquants::quantizes_in_fours(self.isa(), t, rows);
        a.0.info().vec_dot_type == b.0.info().vec_dot_type && fours(a) == fours(b)
    }

    /// `out[r] = vec_dot(ty, n, W[r], x_act)`: W (d, n) in `ty` @ x (n,) -> out (d,), `d =
    /// out.len()`, row stride `ty.row_bytes(n)`, `x_act` in `ty.info().vec_dot_type`. Same contract
    /// as [`crate::reference::matvec`]; bitwise equal to `matmul` with `t = 1`.
    ///
    /// # Panics
    /// As [`crate::reference::matvec`].
    pub fn matvec(&self, ty: QuantType, out: &mut [f32], w: &[u8], x_act: &[u8], n: usize) {
        check_row(ty.info().vec_dot_type, n, x_act.len());
        let rows = out.len();
        let stride = x_act.len();
        self.matmul(ty, out, w, rows, x_act, stride, 1, n);
    }

    /// Whether [`Kernels::matmul_packed`] has a fast path for `ty` here, i.e. whether a model
    /// may repack its `ty` weights ([`crate::packed`]) for these kernels. Other paths still
    /// compute packed products, by the scalar reference.
    pub fn packs(&self, ty: QuantType) -> bool {
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        let _ = ty;
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(_) | Backend::AvxVnni(_) | Backend::Avx2(_) => matches!(
                ty,
                QuantType::Q4_0
                    | QuantType::Q8_0
                    | QuantType::Q4_1
                    | QuantType::Q5_0
                    | QuantType::Q5_1
            ),
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(_) => matches!(
                ty,
                QuantType::Q4_0
                    | QuantType::Q8_0
                    | QuantType::Q4_1
                    | QuantType::Q5_0
                    | QuantType::Q5_1
            ),
            _ => false,
        }
    }

    /// The float order of this path's packed products of `ty` ([`crate::packed::LaneOrder`]):
    /// the one its row-major products have where it [packs](Kernels::packs) `ty`, i.e.
    /// [`Four`](crate::packed::LaneOrder::Four) for Q8_0, Q4_1, Q5_0 and Q5_1 on the NEON
    /// dotprod path, [`Eight`](crate::packed::LaneOrder::Eight) everywhere else (the
    /// reference's default).
    pub fn packed_order(&self, ty: QuantType) -> crate::packed::LaneOrder {
        #[cfg(not(target_arch = "aarch64"))]
        let _ = ty;
        match self.backend {
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(_) if ty != QuantType::Q4_0 && self.packs(ty) => {
                crate::packed::LaneOrder::Four
            }
            _ => crate::packed::LaneOrder::Eight,
        }
    }

    /// [`Kernels::matmul`] for a weight matrix in a packed layout ([`crate::packed::pack`]):
    /// `out[j * rows + r]` for `t` activation rows (the type's `vec_dot_type`: Q8_0, or Q8_1 for
    /// Q4_1 and Q5_1) `act_stride` bytes apart. Every path is bitwise equal to
    /// [`crate::packed::matmul_packed_reference_in`] in its [`Kernels::packed_order`] for `ty`;
    /// for the other types than Q4_0, on a path that [packs](Kernels::packs) them, also to
    /// `matmul` on the unpacked rows (for Q4_0 not: its packed arithmetic is llama.cpp's
    /// repacked one). The activation codes must lie in -127..=127, as every Q8 quantizer
    /// ([`Kernels::quantize_activations`], ggml's) writes them: the AVX2 Q8_0 product multiplies
    /// `|w|` by `y` with `w`'s sign in `vpmaddubsw`, as ggml's AVX2 dot does, and `-128` would
    /// overflow it (weights may hold any byte).
    ///
    /// # Panics
    /// If the matrix is not [`crate::packed::packable`] or a length or stride disagrees.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_packed(
        &self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(k) => k.matmul_packed(ty, out, w, rows, x_act, act_stride, t, n),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(k) if self.packs(ty) => {
                k.matmul_packed(ty, out, w, rows, x_act, act_stride, t, n)
            }
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(k) if self.packs(ty) => {
                k.matmul_packed(ty, out, w, rows, x_act, act_stride, t, n)
            }
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(k) if self.packs(ty) => {
                k.matmul_packed(ty, out, w, rows, x_act, act_stride, t, n)
            }
            _ => crate::packed::matmul_packed_reference(ty, out, w, rows, x_act, act_stride, t, n),
        }
    }

    /// Batched product for prefill: `out[j * rows + r] = vec_dot(ty, n, W[r], X[j])`.
    ///
    /// - `out` (T, rows) row-major, `T = t`;
    /// - `w` (rows, n) in `ty`, `rows` rows of `ty.row_bytes(n)` bytes;
    /// - `x_act` (T, n) in `ty.info().vec_dot_type`, token `j` at byte `j * act_stride` (so
    ///   `act_stride >= row_bytes(n)` and `x_act.len() >= (t - 1) * act_stride + row_bytes(n)`).
    ///
    /// Each weight row is read from memory once and dotted with every token while it is in L1,
    /// four tokens per pass over its blocks. The result is bitwise identical to calling
    /// [`Kernels::vec_dot`] for every (row, token) with the same `Kernels`, except for K-quant
    /// weights on x86, which follow the order llama.cpp uses for the whole product (ggml's tiled
    /// matmul from 8 tokens; its repacked gemv / gemm for Q4_K and, on AVX-512, Q2_K matrices with
    /// a multiple of 8 rows; `cpu/kquants.rs`). `w` is the whole matrix; for a part of one, see
    /// [`Kernels::matmul_part`].
    ///
    /// # Panics
    /// If `n` is not whole blocks or any length or stride disagrees with the above.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        if ty.is_k_quant() {
            let isa = self.isa();
            return crate::cpu::kquants::matmul(
                isa, ty, rows, out, w, rows, x_act, act_stride, t, n,
            );
        }
        match self.backend {
            Backend::Scalar => {
                let rb = check_matmul(ty, out.len(), w.len(), rows, x_act.len(), act_stride, t, n);
                let arb = ty.info().vec_dot_type.row_bytes(n).unwrap_or(0);
                let vec_dot = ty.info().vec_dot;
                for r in 0..rows {
                    let wr = &w[r * rb..(r + 1) * rb];
                    for j in 0..t {
                        let x = &x_act[j * act_stride..j * act_stride + arb];
                        out[j * rows + r] = vec_dot(n, wr, x);
                    }
                }
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(k) => k.matmul(ty, out, w, rows, x_act, act_stride, t, n),
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(k) => k.matmul(ty, out, w, rows, x_act, act_stride, t, n),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(k) => k.matmul(ty, out, w, rows, x_act, act_stride, t, n),
            #[cfg(target_arch = "aarch64")]
            Backend::Neon(k) => k.matmul(ty, out, w, rows, x_act, act_stride, t, n),
            #[cfg(target_arch = "aarch64")]
            Backend::NeonDotprod(k) => k.matmul(ty, out, w, rows, x_act, act_stride, t, n),
        }
    }

    /// [`Kernels::matmul`] of `rows` consecutive rows of a weight matrix that has `whole_rows` rows
    /// (a thread's share of a product): the same bits as those rows of `matmul` on the whole matrix
    /// (for K-quants on x86 the order depends on the whole row count, as llama.cpp's repacking does).
    ///
    /// # Panics
    /// As [`Kernels::matmul`], or if `rows > whole_rows`.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_part(
        &self,
        ty: QuantType,
        whole_rows: usize,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        if ty.is_k_quant() {
            let isa = self.isa();
            return crate::cpu::kquants::matmul(
                isa, ty, whole_rows, out, w, rows, x_act, act_stride, t, n,
            );
        }
        assert!(
            rows <= whole_rows,
            "matmul_part: {rows} rows of a {whole_rows}-row matrix"
        );
        self.matmul(ty, out, w, rows, x_act, act_stride, t, n)
    }
}

impl Kernels {
    /// `C (M, N) = A (M, K) · B (K, N)`, or `C += A · B` when `accumulate`, in f32 (the trainer's
    /// products; [`crate::sgemm`]). `A` and `B` are strided views, so transposes are free; `C` is
    /// row-major with row stride `ldc`. Work is spread over `pool`; `scratch` holds the packed
    /// panels and is reused (no allocation once it has grown). Every path and thread count gives
    /// the same bits as [`crate::sgemm::sgemm_reference`]: each `C[i][j]` is one fused
    /// multiply-add chain over `k` in order.
    ///
    /// # Panics
    /// If an operand is too short for its shape and strides, or `ldc < N`.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm(
        &self,
        pool: &crate::ThreadPool,
        scratch: &mut crate::SgemmScratch,
        accumulate: bool,
        m: usize,
        n: usize,
        k: usize,
        a: crate::MatRef<'_>,
        b: crate::MatRef<'_>,
        c: &mut [f32],
        ldc: usize,
    ) {
        use crate::sgemm::{drive, Scalar};
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(t) => drive(t, Some(pool), scratch, accumulate, m, n, k, a, b, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(t) => drive(t, Some(pool), scratch, accumulate, m, n, k, a, b, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(t) => {
                let t = t.avx2();
                drive(t, Some(pool), scratch, accumulate, m, n, k, a, b, c, ldc)
            }
            _ => drive(
                Scalar,
                Some(pool),
                scratch,
                accumulate,
                m,
                n,
                k,
                a,
                b,
                c,
                ldc,
            ),
        }
    }

    /// [`Kernels::sgemm`] on the calling thread alone (for products inside a pool's work item,
    /// e.g. one attention head); the same bits.
    #[allow(clippy::too_many_arguments)]
    pub fn sgemm_serial(
        &self,
        scratch: &mut crate::SgemmScratch,
        accumulate: bool,
        m: usize,
        n: usize,
        k: usize,
        a: crate::MatRef<'_>,
        b: crate::MatRef<'_>,
        c: &mut [f32],
        ldc: usize,
    ) {
        use crate::sgemm::{drive, Scalar};
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512(t) => drive(t, None, scratch, accumulate, m, n, k, a, b, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2(t) => drive(t, None, scratch, accumulate, m, n, k, a, b, c, ldc),
            #[cfg(target_arch = "x86_64")]
            Backend::AvxVnni(t) => {
                drive(t.avx2(), None, scratch, accumulate, m, n, k, a, b, c, ldc)
            }
            _ => drive(Scalar, None, scratch, accumulate, m, n, k, a, b, c, ldc),
        }
    }
}

/// Asserts the [`Kernels::matmul`] shape contract and returns the weight row stride in bytes.
/// Every path calls this before touching memory; the SIMD paths rely on it for soundness.
#[track_caller]
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_matmul(
    ty: QuantType,
    out_len: usize,
    w_len: usize,
    rows: usize,
    x_len: usize,
    act_stride: usize,
    t: usize,
    n: usize,
) -> usize {
    let rb = ty.row_bytes(n);
    assert!(
        rb.is_some(),
        "matmul: {ty} row of {n} elements is not whole blocks"
    );
    let rb = rb.unwrap_or(0);
    assert_eq!(
        rb.checked_mul(rows),
        Some(w_len),
        "matmul: W must be {rows} rows of {rb} bytes"
    );
    assert_eq!(
        t.checked_mul(rows),
        Some(out_len),
        "matmul: out must be {t} x {rows}"
    );
    let act = ty.info().vec_dot_type;
    let arb = act.row_bytes(n).unwrap_or(0);
    if t > 0 {
        assert!(
            act_stride >= arb,
            "matmul: act_stride {act_stride} < {act} row of {arb} bytes"
        );
        let need = (t - 1)
            .checked_mul(act_stride)
            .and_then(|v| v.checked_add(arb));
        assert!(
            need.is_some_and(|need| x_len >= need),
            "matmul: x_act has {x_len} bytes, {t} rows at stride {act_stride} need {need:?}"
        );
    }
    rb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isa_choice_parsing() {
        let k = Kernels::parse_choice("scalar").expect("scalar is always available");
        assert_eq!(k.isa(), Isa::Scalar);
        let e = Kernels::parse_choice("neon9").unwrap_err();
        assert!(
            e.starts_with(
                "INGOT_ISA=\"neon9\" is not one of scalar|avx2|avxvnni|avx512|neon|dotprod; using "
            ),
            "{e}"
        );
        assert!(!e.contains('\n'));
        for isa in Isa::ALL {
            match (Kernels::parse_choice(isa.name()), Kernels::for_isa(isa)) {
                (Ok(k), Some(_)) => assert_eq!(k.isa(), isa),
                (Err(e), None) => assert!(e.contains("does not support"), "{e}"),
                (got, avail) => panic!("{isa}: {got:?} vs available {avail:?}"),
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for isa in Isa::ALL {
            assert_eq!(Isa::from_name(isa.name()), Some(isa));
            assert_eq!(Isa::from_name(&isa.name().to_uppercase()), Some(isa));
        }
        assert_eq!(Isa::from_name("neon"), Some(Isa::Neon));
        assert_eq!(Isa::from_name("dotprod"), Some(Isa::NeonDotprod));
        // A token of one architecture never exists on the other.
        let x86 = [Isa::Avx2, Isa::AvxVnni, Isa::Avx512Vnni];
        let arm = [Isa::Neon, Isa::NeonDotprod];
        let other: &[Isa] = if cfg!(target_arch = "aarch64") {
            &x86
        } else {
            &arm
        };
        for &isa in other {
            assert!(Kernels::for_isa(isa).is_none(), "{isa}");
        }
        if cfg!(target_arch = "aarch64") {
            // NEON is baseline on AArch64, so it is always there and detect() picks at least it.
            assert!(Kernels::for_isa(Isa::Neon).is_some());
            assert!(Kernels::detect().isa() >= Isa::Neon);
        }
    }

    #[test]
    fn detect_is_the_fastest_available() {
        let best = Isa::ALL
            .into_iter()
            .filter(|i| Kernels::for_isa(*i).is_some())
            .max();
        assert_eq!(Some(Kernels::detect().isa()), best);
    }
}
