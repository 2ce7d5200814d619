//! The float functions that `f32` / `f64` get from `std` (which calls the platform's libm or an
//! LLVM intrinsic), for `no_std` builds: the same method names on [`FloatExt`], implemented with the
//! `libm` crate. A module imports the trait only without `std`
//! (`#[cfg(not(feature = "std"))] use crate::math::FloatExt;`), so the `std` build calls std's methods
//! exactly as before and its results do not change.
//!
//! Without `std`, `mul_add` and `sqrt` are correctly rounded in both (fused multiply-add, IEEE square
//! root), so identical; `powi` repeats compiler-rt's `__powisf2` loop; `exp`, `powf`, `sin`, `cos`
//! are libm's (musl's algorithms), which may differ from glibc's in the last bit for some inputs.

/// `std`'s float methods that `core` lacks.
pub trait FloatExt: Sized {
    fn mul_add(self, a: Self, b: Self) -> Self;
    fn sqrt(self) -> Self;
    fn exp(self) -> Self;
    fn powf(self, n: Self) -> Self;
    fn powi(self, n: i32) -> Self;
    fn sin(self) -> Self;
    fn cos(self) -> Self;
    fn fract(self) -> Self;
    fn round_ties_even(self) -> Self;
}

macro_rules! float_ext {
    ($t:ty, $fma:path, $sqrt:path, $exp:path, $pow:path, $sin:path, $cos:path, $trunc:path, $rint:path) => {
        impl FloatExt for $t {
            fn mul_add(self, a: Self, b: Self) -> Self {
                $fma(self, a, b)
            }
            fn sqrt(self) -> Self {
                $sqrt(self)
            }
            fn exp(self) -> Self {
                $exp(self)
            }
            fn powf(self, n: Self) -> Self {
                $pow(self, n)
            }
            /// compiler-rt's `__powisf2` / `__powidf2`: square-and-multiply, then the reciprocal for a
            /// negative exponent.
            fn powi(self, n: i32) -> Self {
                let recip = n < 0;
                let mut b = n.unsigned_abs();
                let mut a = self;
                let mut r: Self = 1.0;
                loop {
                    if b & 1 != 0 {
                        r *= a;
                    }
                    b /= 2;
                    if b == 0 {
                        break;
                    }
                    a *= a;
                }
                if recip {
                    1.0 / r
                } else {
                    r
                }
            }
            fn sin(self) -> Self {
                $sin(self)
            }
            fn cos(self) -> Self {
                $cos(self)
            }
            /// As std: `self - self.trunc()`.
            fn fract(self) -> Self {
                self - $trunc(self)
            }
            /// Round half to even (libm's `rint` in the default rounding mode), as std's.
            fn round_ties_even(self) -> Self {
                $rint(self)
            }
        }
    };
}

float_ext!(
    f32,
    libm::fmaf,
    libm::sqrtf,
    libm::expf,
    libm::powf,
    libm::sinf,
    libm::cosf,
    libm::truncf,
    libm::rintf
);
float_ext!(
    f64,
    libm::fma,
    libm::sqrt,
    libm::exp,
    libm::pow,
    libm::sin,
    libm::cos,
    libm::trunc,
    libm::rint
);

#[cfg(test)]
mod tests {
    use super::FloatExt;

    /// The libm versions against std's on a sweep of inputs: bit-identical for the correctly rounded
    /// functions and `powi`, within 1 ulp for the transcendental ones.
    #[test]
    fn libm_versions_agree_with_std() {
        let ulps = |a: f32, b: f32| (a.to_bits() as i64 - b.to_bits() as i64).unsigned_abs();
        for i in -2000..2000 {
            let x = i as f32 * 0.0173 + 0.001;
            let (y, z) = (x * 0.37 - 1.0, x * 1.9 + 0.5);
            assert_eq!(
                FloatExt::mul_add(x, y, z).to_bits(),
                f32::mul_add(x, y, z).to_bits()
            );
            assert_eq!(
                FloatExt::sqrt(x.abs()).to_bits(),
                f32::sqrt(x.abs()).to_bits()
            );
            for n in [-7, -2, -1, 0, 1, 2, 3, 10] {
                assert_eq!(
                    FloatExt::powi(x, n).to_bits(),
                    f32::powi(x, n).to_bits(),
                    "{x} {n}"
                );
                assert_eq!(
                    FloatExt::powi(x as f64, n).to_bits(),
                    f64::powi(x as f64, n).to_bits()
                );
            }
            assert!(ulps(FloatExt::exp(x), f32::exp(x)) <= 1, "exp {x}");
            assert!(ulps(FloatExt::sin(x), f32::sin(x)) <= 1, "sin {x}");
            assert!(ulps(FloatExt::cos(x), f32::cos(x)) <= 1, "cos {x}");
            assert!(
                ulps(FloatExt::powf(x.abs(), 0.37), f32::powf(x.abs(), 0.37)) <= 1,
                "powf {x}"
            );
            assert_eq!(
                FloatExt::fract(x * 7.3).to_bits(),
                f32::fract(x * 7.3).to_bits()
            );
        }
    }
}
