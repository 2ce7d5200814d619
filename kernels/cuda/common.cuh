// Shared by every kernels/cuda/*.cu file (each .cu is one op and one module): ggml's block layouts
// (kernels/src/blocks.rs, ggml-common.h), byte access helpers and warp reductions.
//
// Device buffers come from cuMemAlloc (256-byte aligned) and every row of a quantized matrix is a
// whole number of blocks, but block sizes (18, 22, 34, 210 bytes) only guarantee 2-byte alignment of
// a block. So 32-bit words of quants are always assembled from two 16-bit loads (`load_i32_a2`),
// never read with one misaligned 32-bit load.
#pragma once
#ifdef INGOT_HOST_EMU
#include "emu/host.h"  // the device functions compiled for the host (kernels/tests/cuda_host_emu.rs)
#else
#include <cuda_fp16.h>
#endif
#include <stdint.h>

#define QK 32
#define QK_K 256
#define WARP 32

// Byte sizes of the blocks (kernels/src/blocks.rs; asserted there against ggml-common.h).
#define Q4_0_BYTES 18   // d f16 | qs[16]
#define Q4_1_BYTES 20   // d f16 | m f16 | qs[16]
#define Q5_0_BYTES 22   // d f16 | qh u32 | qs[16]
#define Q8_0_BYTES 34   // d f16 | qs i8[32]
#define Q8_1_BYTES 36   // d f16 | s f16 | qs i8[32]
#define Q4_K_BYTES 144  // d f16 | dmin f16 | scales[12] | qs[128]
#define Q6_K_BYTES 210  // ql[128] | qh[64] | scales i8[16] | d f16
#define Q8_K_BYTES 292  // d f32 | qs i8[256] | bsums i16[16]

// Element type ids shared with the host (kernels/src/cuda/mod.rs `TypeId`): ggml's type ids.
#define TY_F32 0
#define TY_F16 1
#define TY_Q4_0 2
#define TY_Q4_1 3
#define TY_Q5_0 6
#define TY_Q8_0 8
#define TY_Q4_K 12
#define TY_Q6_K 14

__device__ __forceinline__ float load_f16(const uint8_t* p) {
    // 2-byte aligned at least (see above).
    return __half2float(*reinterpret_cast<const __half*>(p));
}

__device__ __forceinline__ int load_i32_a2(const uint8_t* p) {
    const uint16_t* q = reinterpret_cast<const uint16_t*>(p);
    return (int)((uint32_t)q[0] | ((uint32_t)q[1] << 16));
}

__device__ __forceinline__ float load_f32_a4(const uint8_t* p) {
    return *reinterpret_cast<const float*>(p);
}

// Four signed bytes into one word, byte 0 lowest (what __dp4a pairs with byte 0 of the other word).
__device__ __forceinline__ int pack_i8x4(int a, int b, int c, int d) {
    return (int)((uint32_t)(a & 0xff) | ((uint32_t)(b & 0xff) << 8) | ((uint32_t)(c & 0xff) << 16) |
                 ((uint32_t)(d & 0xff) << 24));
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ int warp_sum_i(int v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}
