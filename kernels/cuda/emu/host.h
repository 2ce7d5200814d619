// Just enough of CUDA for the host compiler to build the per-block device functions of the
// matvec_*.cu and embed.cu files (`D::dot`, `dequant`), so that kernels/tests/cuda_host_emu.rs can
// check their bit layouts and arithmetic against the reference on any machine, GPU or not. Compiled
// with -ffp-contract=off: every f32 operation rounds once, as the `__f*_rn` intrinsics do. Nothing
// here is used by nvcc.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#define __device__
#define __global__
#define __forceinline__ inline
#define __restrict__

struct dim3_emu { unsigned x = 0, y = 0, z = 0; };
static dim3_emu threadIdx, blockIdx, blockDim, gridDim;

struct __half { uint16_t bits; };

static inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.bits >> 15) << 31;
    const int exp = (h.bits >> 10) & 0x1f;
    const uint32_t man = h.bits & 0x3ff;
    float v;
    if (exp == 0) v = std::ldexp((float)man, -24);                   // zero and subnormals
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = std::ldexp((float)(man | 0x400), exp - 25);
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u |= sign;
    std::memcpy(&v, &u, 4);
    return v;
}

static inline int __dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; i++) c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
    return c;
}

static inline float __fmul_rn(float a, float b) { return a * b; }
static inline float __fadd_rn(float a, float b) { return a + b; }
static inline float __fsub_rn(float a, float b) { return a - b; }
static inline float __fdiv_rn(float a, float b) { return a / b; }
static inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
static inline float __shfl_xor_sync(unsigned, float v, int) { return v; }  // never called here
static inline int __shfl_xor_sync(unsigned, int v, int) { return v; }
using std::fmaf;
using std::max;
using std::min;
