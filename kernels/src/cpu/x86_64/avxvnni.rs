//! AVX-VNNI kernels (Alder Lake, Meteor Lake, Sapphire Rapids and later): the AVX2 path with the
//! integer block dot done by the VEX-encoded 256-bit `vpdpbusd` (u8 x i8 products, four per i32
//! lane, added without an i16 step: `_mm256_dpbusd_avx_epi32`, CPUID.(7,1):EAX bit 4) instead of
//! `vpmaddubsw` + `vpmaddwd`. Only the products that use it are here: the row-major Q4_0, Q4_1,
//! Q5_0, Q5_1, Q8_0 and Q8_1 dots and (in `avx2_packed.rs`) the packed products; every other
//! type, the activation quantizers, K-quants, the f32 products and the ops run the AVX2 code,
//! which the token implies.
//!
//! The kernel bodies are written once, generic over `Dpbusd`: `Native` is the instruction
//! (its callers carry `avxvnni`), `Emulated` an exact AVX2 sequence for it (bytes widened to i16,
//! `vpmaddwd` on even and odd bytes, no saturation for any input). [`AvxVnni::detect`] gives the
//! native kernels; [`AvxVnni::emulated`] the same bodies with the emulation, which run on any AVX2
//! CPU, so the tests check the bodies on machines (and qemu models) without AVX-VNNI.
//!
//! Arithmetic: each i32 lane `l` of a block is the exact sum over bytes `4l..4l + 4`, exactly the
//! lanes of the AVX2 kernels (Q4_0 / Q5_0: `dpbusd(q, y) - dpbusd(8 | 16, y)`; Q8_0 / Q8_1: weights
//! biased to unsigned, `dpbusd(w ^ 0x80, y) - dpbusd(0x80, y)`, every byte pattern exact as on the
//! AVX-512 path), and the f32 steps are the AVX2 kernels' instruction for instruction, so every
//! result is bitwise the AVX2 path's (and ggml's AVX2 / `__AVXVNNI__` `vec_dot_*` order) for the
//! activations the quantizers write (the packed AVX2 Q8_0 product assumes codes in -127..=127).

use core::arch::x86_64::*;

use super::avx2::{hsum_ps, load32, load_f16x1, load_f16x2, nibbles32, q5_high_bits, Avx2};
use crate::blocks::QK;
use crate::dispatch::check_matmul;
use crate::reference::check_row;
use crate::QuantType;

/// `acc + sum(a_u8 * b_i8)` over each group of four bytes, into the eight i32 lanes (wrapping):
/// what `vpdpbusd` computes.
pub(crate) trait Dpbusd: Copy {
    /// # Safety
    /// The CPU has AVX2, and for [`Native`] AVX-VNNI; inlined only into callers that have the
    /// implementor's target features.
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i;
}

/// The AVX-VNNI instruction itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Native;

/// `vpdpbusd` by AVX2 instructions, exact for every input (see [`Emulated::dpbusd`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Emulated;

impl Dpbusd for Native {
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        _mm256_dpbusd_avx_epi32(acc, a, b)
    }
}

impl Dpbusd for Emulated {
    /// Even bytes zero- (a) and sign-extended (b) to i16 in place, odd bytes shifted down, one
    /// `vpmaddwd` each: every product is at most 255 * 128 and each pair sum 2 * 255 * 128 in
    /// magnitude, exact in i32 (`vpmaddubsw` + `vpmaddwd` would saturate its i16 pair sums once
    /// `a > 127`, e.g. the biased Q8_0 codes).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn dpbusd(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        let a_even = _mm256_and_si256(a, _mm256_set1_epi16(0x00ff));
        let a_odd = _mm256_srli_epi16::<8>(a);
        let b_even = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(b));
        let b_odd = _mm256_srai_epi16::<8>(b);
        let s = _mm256_add_epi32(
            _mm256_madd_epi16(a_even, b_even),
            _mm256_madd_epi16(a_odd, b_odd),
        );
        _mm256_add_epi32(acc, s)
    }
}

/// Proof that the AVX-VNNI kernels can run: AVX2, FMA and F16C (the [`Avx2`] token) and, for the
/// native kernels, AVX-VNNI. Built only by [`AvxVnni::detect`] (native) or
/// [`AvxVnni::emulated`] (the same kernels with `vpdpbusd` emulated; for tests).
#[derive(Clone, Copy, Debug)]
pub struct AvxVnni {
    avx2: Avx2,
    /// Whether `vpdpbusd` is the instruction (only `detect` sets it, after checking `avxvnni`).
    native: bool,
}

/// Kernel kinds: the const parameter of the generic kernels.
const K_Q4_0: u8 = 0;
const K_Q4_1: u8 = 1;
const K_Q5_0: u8 = 2;
const K_Q5_1: u8 = 3;
const K_Q8_0: u8 = 4;
const K_Q8_1: u8 = 5;

impl AvxVnni {
    /// `Some` iff the running CPU (and OS) support AVX-VNNI plus everything [`Avx2::detect`]
    /// checks.
    pub fn detect() -> Option<AvxVnni> {
        let avx2 = Avx2::detect()?;
        crate::x86_feature!("avxvnni").then_some(AvxVnni { avx2, native: true })
    }

    /// The AVX-VNNI kernels with `vpdpbusd` emulated by AVX2 instructions (exact): the same
    /// bodies and bits as [`AvxVnni::detect`]'s, slower than the AVX2 path, for testing the
    /// kernels on CPUs without AVX-VNNI.
    pub fn emulated(avx2: Avx2) -> AvxVnni {
        AvxVnni {
            avx2,
            native: false,
        }
    }

    /// The AVX2 token this one implies.
    pub fn avx2(self) -> Avx2 {
        self.avx2
    }

    /// Whether the kernels run the AVX-VNNI instruction (else its emulation).
    pub fn is_native(self) -> bool {
        self.native
    }

    /// Same contract as [`crate::TypeInfo::vec_dot`] for `ty` (every [`QuantType`]; bitwise the
    /// AVX2 path's).
    pub fn vec_dot(self, ty: QuantType, n: usize, w: &[u8], x: &[u8]) -> f32 {
        let Some(kind) = kind(ty) else {
            return self.avx2.vec_dot(ty, n, w, x);
        };
        check_row(ty, n, w.len());
        check_row(ty.info().vec_dot_type, n, x.len());
        let mut out = [0.0f32];
        let (wp, xp) = (w.as_ptr(), x.as_ptr());
        // SAFETY: w is one row of `n` elements of `ty` and x one of its vec_dot_type (checked
        // above), i.e. a 1 x 1 product whose activation stride is x.len(); out has 1 element.
        unsafe { self.mm(kind, &mut out, wp, w.len(), 1, xp, x.len(), 1, n) };
        out[0]
    }

    /// `out[j * rows + r] = vec_dot(ty, n, W[r], X[j])`: see [`crate::Kernels::matmul`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x_act: &[u8],
        act_stride: usize,
        t: usize,
        n: usize,
    ) {
        let Some(kind) = kind(ty) else {
            return self.avx2.matmul(ty, out, w, rows, x_act, act_stride, t, n);
        };
        let rb = check_matmul(ty, out.len(), w.len(), rows, x_act.len(), act_stride, t, n);
        let (wp, xp) = (w.as_ptr(), x_act.as_ptr());
        // SAFETY: `check_matmul` established rows * rb bytes of W, t activation rows act_stride
        // apart inside x_act, and out.len() == t * rows.
        unsafe { self.mm(kind, out, wp, rb, rows, xp, act_stride, t, n) };
    }

    /// As [`Avx2::quantize_activations`].
    pub fn quantize_activations(self, ty: QuantType, x: &[f32], out: &mut [u8]) {
        self.avx2.quantize_activations(ty, x, out)
    }

    /// Rows x tokens of kernel `kind`, native or emulated (chosen here, once per call).
    ///
    /// # Safety
    /// The contract of `cpu::matmul_body!`: `w` holds `rows` rows of `rb` bytes of the kind's
    /// weight type, `x` holds `t` activation rows `stride` bytes apart, `out.len() == t * rows`.
    #[allow(clippy::too_many_arguments)]
    unsafe fn mm(
        self,
        kind: u8,
        out: &mut [f32],
        w: *const u8,
        rb: usize,
        rows: usize,
        x: *const u8,
        stride: usize,
        t: usize,
        n: usize,
    ) {
        macro_rules! go {
            ($f:ident) => {
                match kind {
                    K_Q4_0 => $f::<K_Q4_0>(out, w, rb, rows, x, stride, t, n),
                    K_Q4_1 => $f::<K_Q4_1>(out, w, rb, rows, x, stride, t, n),
                    K_Q5_0 => $f::<K_Q5_0>(out, w, rb, rows, x, stride, t, n),
                    K_Q5_1 => $f::<K_Q5_1>(out, w, rb, rows, x, stride, t, n),
                    K_Q8_0 => $f::<K_Q8_0>(out, w, rb, rows, x, stride, t, n),
                    _ => $f::<K_Q8_1>(out, w, rb, rows, x, stride, t, n),
                }
            };
        }
        if self.native {
            // SAFETY: `native` is set only by `detect`, which found avx2+fma+f16c+avxvnni; the
            // buffers are the caller's guarantee.
            unsafe { go!(mm_native) }
        } else {
            // SAFETY: the Avx2 token proves avx2+fma+f16c; the buffers are the caller's guarantee.
            unsafe { go!(mm_emulated) }
        }
    }

    /// [`crate::Kernels::matmul_packed`] for a packed `w` (any packed type); bitwise the AVX2
    /// path's.
    ///
    /// # Panics
    /// As [`crate::Kernels::matmul_packed`].
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_packed(
        self,
        ty: QuantType,
        out: &mut [f32],
        w: &[u8],
        rows: usize,
        x: &[u8],
        stride: usize,
        t: usize,
        n: usize,
    ) {
        if self.native {
            super::avx2_packed::matmul_packed_vnni::<true>(self, ty, out, w, rows, x, stride, t, n)
        } else {
            super::avx2_packed::matmul_packed_vnni::<false>(self, ty, out, w, rows, x, stride, t, n)
        }
    }
}

/// The kernel kind of `ty` when it has an AVX-VNNI kernel.
fn kind(ty: QuantType) -> Option<u8> {
    Some(match ty {
        QuantType::Q4_0 => K_Q4_0,
        QuantType::Q4_1 => K_Q4_1,
        QuantType::Q5_0 => K_Q5_0,
        QuantType::Q5_1 => K_Q5_1,
        QuantType::Q8_0 => K_Q8_0,
        QuantType::Q8_1 => K_Q8_1,
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------------
// Block kernels: same contract as in `avx2` (the CPU has AVX2 + FMA + F16C and what `D` needs;
// `w` holds one row of `n` elements of the weight type, each `x[k]` one row of its vec_dot_type).
// `#[inline]` with AVX2's features: they are inlined into the `mm_native` / `mm_emulated`
// drivers, which carry the features of `D` (so `Native::dpbusd` becomes one instruction).

/// Q4_0 / Q5_0 (`Q5`) x Q8_0: `(dw * dx) * (dpbusd(q, y) - dpbusd(8 | 16, y))`, the f32 steps of
/// the AVX2 kernel.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_sym<D: Dpbusd, const Q5: bool, const T: usize>(
    n: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    let (bs, c) = if Q5 { (22, 16) } else { (18, 8) };
    let c = _mm256_set1_epi8(c);
    let z = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of bs bytes at w and 34 bytes at each x[k] (kernel
        // contract); the features of D are the caller's.
        unsafe {
            let wb = w.add(ib * bs);
            let dw = load_f16x1(wb);
            let q = if Q5 {
                _mm256_or_si256(nibbles32(wb.add(6)), q5_high_bits(wb.add(2)))
            } else {
                nibbles32(wb.add(2))
            };
            for k in 0..T {
                let xb = x[k].add(ib * 34);
                let d = _mm_mul_ss(dw, load_f16x1(xb));
                let y = load32(xb.add(2));
                let i = _mm256_sub_epi32(D::dpbusd(z, q, y), D::dpbusd(z, c, y));
                let s = _mm256_cvtepi32_ps(i);
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s, acc[k]);
            }
        }
    }
    let mut out = [0.0; T];
    for k in 0..T {
        out[k] = hsum_ps(acc[k]);
    }
    out
}

/// Q4_1 / Q5_1 (`Q5`) x Q8_1: `(dw * dx) * dpbusd(q, y)` by FMA plus `mw * sx` summed apart, as
/// the AVX2 kernel.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_asym<D: Dpbusd, const Q5: bool, const T: usize>(
    n: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    let bs = if Q5 { 24 } else { 20 };
    let z = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); T];
    let mut summs = [_mm_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of bs bytes at w and 36 bytes at each x[k] (kernel
        // contract); the features of D are the caller's.
        unsafe {
            let wb = w.add(ib * bs);
            let dm = load_f16x2(wb);
            let mw = _mm_movehdup_ps(dm);
            let q = if Q5 {
                _mm256_or_si256(nibbles32(wb.add(8)), q5_high_bits(wb.add(4)))
            } else {
                nibbles32(wb.add(4))
            };
            for k in 0..T {
                let xb = x[k].add(ib * 36);
                let ds = load_f16x2(xb);
                let p = _mm_mul_ss(dm, ds); // dw * dx
                summs[k] = _mm_fmadd_ss(mw, _mm_movehdup_ps(ds), summs[k]);
                let s = _mm256_cvtepi32_ps(D::dpbusd(z, q, load32(xb.add(4))));
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(p), s, acc[k]);
            }
        }
    }
    let mut out = [0.0; T];
    for k in 0..T {
        out[k] = hsum_ps(acc[k]) + _mm_cvtss_f32(summs[k]);
    }
    out
}

/// Q8_0 x Q8_0 and Q8_1 x Q8_1 (`Q81`; the `s` fields are ignored): `(dw * dx) * (dpbusd(w + 128,
/// y) - dpbusd(128, y))`, lane `l` the sum over bytes `4l..4l + 4` as the AVX2 kernel's.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot_q8<D: Dpbusd, const Q81: bool, const T: usize>(
    n: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    let (bs, qo) = if Q81 { (36, 4) } else { (34, 2) };
    let bias = _mm256_set1_epi8(-128);
    let z = _mm256_setzero_si256();
    let mut acc = [_mm256_setzero_ps(); T];
    for ib in 0..n / QK {
        // SAFETY: ib < n / QK blocks of bs bytes at w and at each x[k] (kernel contract); the
        // features of D are the caller's.
        unsafe {
            let wb = w.add(ib * bs);
            let dw = load_f16x1(wb);
            let q = _mm256_xor_si256(load32(wb.add(qo)), bias);
            for k in 0..T {
                let xb = x[k].add(ib * bs);
                let d = _mm_mul_ss(dw, load_f16x1(xb));
                let y = load32(xb.add(qo));
                let i = _mm256_sub_epi32(D::dpbusd(z, q, y), D::dpbusd(z, bias, y));
                let s = _mm256_cvtepi32_ps(i);
                acc[k] = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s, acc[k]);
            }
        }
    }
    let mut out = [0.0; T];
    for k in 0..T {
        out[k] = hsum_ps(acc[k]);
    }
    out
}

/// The block kernel of `KIND` (a constant: the `match` folds away).
///
/// # Safety
/// As the block kernels above.
#[inline]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot<D: Dpbusd, const KIND: u8, const T: usize>(
    n: usize,
    w: *const u8,
    x: [*const u8; T],
) -> [f32; T] {
    // SAFETY: forwarded from the caller.
    unsafe {
        match KIND {
            K_Q4_0 => dot_sym::<D, false, T>(n, w, x),
            K_Q5_0 => dot_sym::<D, true, T>(n, w, x),
            K_Q4_1 => dot_asym::<D, false, T>(n, w, x),
            K_Q5_1 => dot_asym::<D, true, T>(n, w, x),
            K_Q8_0 => dot_q8::<D, false, T>(n, w, x),
            _ => dot_q8::<D, true, T>(n, w, x),
        }
    }
}

/// Rows x tokens with the native `vpdpbusd`: see `cpu::matmul_body!` for the safety contract.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c,avxvnni")]
unsafe fn mm_native<const KIND: u8>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    x: *const u8,
    stride: usize,
    t: usize,
    n: usize,
) {
    matmul_body!(dot[Native, KIND], out, w, rb, rows, x, stride, t, n)
}

/// Rows x tokens with the emulated `vpdpbusd`: see `cpu::matmul_body!` for the safety
/// contract.
#[allow(clippy::too_many_arguments)]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn mm_emulated<const KIND: u8>(
    out: &mut [f32],
    w: *const u8,
    rb: usize,
    rows: usize,
    x: *const u8,
    stride: usize,
    t: usize,
    n: usize,
) {
    matmul_body!(dot[Emulated, KIND], out, w, rb, rows, x, stride, t, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The definition of `vpdpbusd` (Intel SDM, VPDPBUSD): per i32 lane, the four products of
    /// unsigned bytes of `a` and signed bytes of `b` summed exactly, added to `acc`, wrapping.
    fn model(acc: [i32; 8], a: [u8; 32], b: [u8; 32]) -> [i32; 8] {
        core::array::from_fn(|l| {
            let s: i32 = (4 * l..4 * l + 4)
                .map(|i| i32::from(a[i]) * i32::from(b[i] as i8))
                .sum();
            acc[l].wrapping_add(s)
        })
    }

    #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
    fn native(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: this function has Native's features.
        unsafe { Native::dpbusd(acc, a, b) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn emulated(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
        // SAFETY: this function has Emulated's features.
        unsafe { Emulated::dpbusd(acc, a, b) }
    }

    /// `Emulated` (everywhere with AVX2) and `Native` (where the CPU has AVX-VNNI) against the
    /// model, on random bytes, the extremes 0 / 255 x -128 / 127 in every lane (where
    /// `vpmaddubsw` pairs would saturate), and accumulators near the i32 limits (wrapping).
    #[test]
    fn dpbusd_matches_the_instruction_definition() {
        if Avx2::detect().is_none() {
            eprintln!("skipped: no AVX2 on this CPU");
            return;
        }
        let native_too = AvxVnni::detect().is_some();
        eprintln!("dpbusd: emulated checked, native {native_too}");
        let mut s = 0x5eed_u64;
        let mut next = move || {
            // splitmix64
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        };
        let extremes = [0u8, 255, 128, 127, 1];
        for case in 0..4000 {
            let (a, b): ([u8; 32], [u8; 32]) = match case % 4 {
                0 => (
                    core::array::from_fn(|_| next() as u8),
                    core::array::from_fn(|_| next() as u8),
                ),
                1 => (
                    core::array::from_fn(|_| extremes[(next() % 5) as usize]),
                    core::array::from_fn(|_| extremes[(next() % 5) as usize]),
                ),
                2 => ([255; 32], [0x80; 32]),
                _ => ([255; 32], [0x7f; 32]),
            };
            let acc: [i32; 8] = core::array::from_fn(|l| match (case / 4 + l) % 3 {
                0 => next() as i32,
                1 => i32::MAX - (next() % 100_000) as i32,
                _ => i32::MIN + (next() % 100_000) as i32,
            });
            let want = model(acc, a, b);
            let load = |v: &[u8; 32]| {
                // SAFETY: 32 readable bytes; SSE2/AVX loads are baseline here (AVX2 detected).
                unsafe { _mm256_loadu_si256(v.as_ptr().cast()) }
            };
            // SAFETY: 32 readable bytes (AVX2 detected).
            let vacc = unsafe { _mm256_loadu_si256(acc.as_ptr().cast()) };
            let mut got = [[0i32; 8]; 2];
            // SAFETY: AVX2 detected (the token above); the store writes 32 bytes into got[0].
            unsafe {
                let r = emulated(vacc, load(&a), load(&b));
                _mm256_storeu_si256(got[0].as_mut_ptr().cast(), r);
            }
            assert_eq!(
                got[0], want,
                "emulated, case {case}: a {a:?} b {b:?} acc {acc:?}"
            );
            if native_too {
                // SAFETY: AVX-VNNI detected; the store writes 32 bytes into got[1].
                unsafe {
                    let r = native(vacc, load(&a), load(&b));
                    _mm256_storeu_si256(got[1].as_mut_ptr().cast(), r);
                }
                assert_eq!(
                    got[1], want,
                    "native, case {case}: a {a:?} b {b:?} acc {acc:?}"
                );
            }
        }
    }
}
