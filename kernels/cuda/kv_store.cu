// Appends the keys and values of T tokens to one layer's f16 cache (llama.cpp's default cache
// type; f32 -> f16 rounds to nearest even, as the CPU path's `to_f16`).
//
// Cache layout (per layer): kc, vc (S, kv_dim), row p = position p. Launch: grid
// (ceil(kv_dim / 256), T), block 256; thread (x, t) writes element 256x + threadIdx.x of row
// pos0[0] + t of both caches.
#include "common.cuh"

extern "C" __global__ void kv_store(const float* __restrict__ k, const float* __restrict__ v,
                                    __half* __restrict__ kc, __half* __restrict__ vc,
                                    const int* __restrict__ pos0, int kv_dim, int k_stride,
                                    int v_stride) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= kv_dim) return;
    const int t = blockIdx.y;
    const size_t slot = (size_t)(pos0[0] + t) * kv_dim + i;
    kc[slot] = __float2half_rn(k[(size_t)t * k_stride + i]);
    vc[slot] = __float2half_rn(v[(size_t)t * v_stride + i]);
}
