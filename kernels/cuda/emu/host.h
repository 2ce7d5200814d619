// Just enough of CUDA for the host C++ compiler (C++20) to build and run kernels/cuda/*.cu, so that
// kernels/tests/cuda_host_emu.rs can check the kernels against the reference on any machine, GPU or
// not. A launch (`emu_launch`) runs the blocks one after another and the threads of a block as
// std::threads: `__syncthreads` is a block-wide barrier, a warp shuffle a warp-wide exchange through
// a barrier, `__shared__` a static (one block runs at a time). Threads that return early drop out of
// both barriers, as exited threads do on a GPU. Compiled with -ffp-contract=off: every f32 operation
// rounds once, as the `__f*_rn` intrinsics do; `expf` is the host's, not CUDA's (a few ulp apart).
// Nothing here is used by nvcc.
#pragma once
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#define __device__
#define __global__
#define __forceinline__ inline
#define __restrict__
#define __shared__ static

struct dim3_emu {
    unsigned x = 1, y = 1, z = 1;
};
inline thread_local dim3_emu threadIdx, blockIdx;
inline dim3_emu blockDim, gridDim;

struct EmuWarp {
    std::barrier<>* bar;
    uint64_t slots[32];
};
inline thread_local EmuWarp* emu_warp = nullptr;
inline thread_local int emu_lane = 0;
inline std::barrier<>* emu_block_bar = nullptr;

template <class T>
inline T emu_shfl(T v, int src) {
    std::memcpy(&emu_warp->slots[emu_lane], &v, sizeof v);
    emu_warp->bar->arrive_and_wait();
    T r;
    std::memcpy(&r, &emu_warp->slots[src & 31], sizeof r);
    emu_warp->bar->arrive_and_wait();
    return r;
}
inline float __shfl_xor_sync(unsigned, float v, int off) { return emu_shfl(v, emu_lane ^ off); }
inline int __shfl_xor_sync(unsigned, int v, int off) { return emu_shfl(v, emu_lane ^ off); }
inline double __shfl_xor_sync(unsigned, double v, int off) { return emu_shfl(v, emu_lane ^ off); }
inline float __shfl_sync(unsigned, float v, int src) { return emu_shfl(v, src); }
inline void __syncthreads() { emu_block_bar->arrive_and_wait(); }

// Runs `kernel()` (a lambda calling the kernel with its arguments) over grid x block.
template <class F>
void emu_launch(dim3_emu grid, dim3_emu block, F kernel) {
    gridDim = grid;
    blockDim = block;
    const unsigned nt = block.x * block.y * block.z;
    for (unsigned bz = 0; bz < grid.z; bz++)
        for (unsigned by = 0; by < grid.y; by++)
            for (unsigned bx = 0; bx < grid.x; bx++) {
                std::barrier<> block_bar((std::ptrdiff_t)nt);
                emu_block_bar = &block_bar;
                const unsigned nw = (nt + 31) / 32;
                std::vector<std::unique_ptr<std::barrier<>>> bars;
                std::vector<EmuWarp> warps(nw);
                for (unsigned w = 0; w < nw; w++) {
                    bars.emplace_back(new std::barrier<>((std::ptrdiff_t)std::min(32u, nt - 32 * w)));
                    warps[w].bar = bars[w].get();
                }
                std::vector<std::thread> threads;
                for (unsigned i = 0; i < nt; i++) {
                    threads.emplace_back([&, i] {
                        threadIdx = {i % block.x, (i / block.x) % block.y, i / (block.x * block.y)};
                        blockIdx = {bx, by, bz};
                        emu_warp = &warps[i / 32];
                        emu_lane = (int)(i % 32);
                        kernel();
                        emu_warp->bar->arrive_and_drop();
                        block_bar.arrive_and_drop();
                    });
                }
                for (auto& t : threads) t.join();
            }
}

struct __half {
    uint16_t bits;
};

inline float __half2float(__half h) {
    const uint32_t sign = (uint32_t)(h.bits >> 15) << 31;
    const int exp = (h.bits >> 10) & 0x1f;
    const uint32_t man = h.bits & 0x3ff;
    float v;
    if (exp == 0) v = std::ldexp((float)man, -24);  // zero and subnormals
    else if (exp == 31) v = man ? NAN : INFINITY;
    else v = std::ldexp((float)(man | 0x400), exp - 25);
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u |= sign;
    std::memcpy(&v, &u, 4);
    return v;
}

// f32 -> f16, round to nearest even (what __float2half_rn and half::f16::from_f32 do).
inline __half __float2half_rn(float f) {
    uint32_t x;
    std::memcpy(&x, &f, 4);
    const uint32_t sign = (x >> 16) & 0x8000;
    const uint32_t ax = x & 0x7fffffff;
    uint16_t h;
    if (ax >= 0x7f800000) h = (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000 ? 0x200 : 0));
    else if (ax >= 0x477ff000) h = (uint16_t)(sign | 0x7c00);  // rounds to inf
    else if (ax < 0x38800000) {                                 // subnormal or zero in f16
        const float a = std::fabs(f) * 16777216.0f;               // exact: scale by 2^24
        h = (uint16_t)(sign | (uint32_t)std::nearbyint(a));
    } else {
        const uint32_t e = ((ax >> 23) - 127 + 15) << 10;
        const uint32_t m = ax & 0x7fffff;
        uint32_t r = e | (m >> 13);
        const uint32_t rest = m & 0x1fff;
        if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) r++;
        h = (uint16_t)(sign | r);
    }
    return __half{h};
}
inline __half __float2half(float f) { return __float2half_rn(f); }

inline int __dp4a(int a, int b, int c) {
    for (int i = 0; i < 4; i++) c += (int)(int8_t)(a >> (8 * i)) * (int)(int8_t)(b >> (8 * i));
    return c;
}

inline int __float2int_rn(float f) { return (int)std::nearbyint(f); }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline float __int_as_float(int i) {
    float f;
    std::memcpy(&f, &i, 4);
    return f;
}
using std::fmaf;
using std::max;
using std::min;
