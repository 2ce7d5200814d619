// The quantized matrix product template shared by the matvec_*.cu files (one weight type each):
// out (T, nrows) = act (T, ncols, already quantized to the type's activation format) @ W^T, with
// W (nrows, ncols) in ggml's row layout. Integer dot per block with __dp4a (sm_61+), then the f32
// expression of ggml's `ggml_vec_dot_*_generic` per block; lanes take blocks round robin and the
// warp sums their partial sums, so results equal the scalar reference up to f32 summation order.
//
// A "part" is what one lane computes at a time: a whole 32-element block (PARTS = 1) or one
// 32-element sub-block of a 256-element K-quant super-block (PARTS = 8), so that short K-quant rows
// (a 1024-wide row is only 4 super-blocks) still keep all 32 lanes busy.
//
// Launch: block (32, 4); grid (ceil(nrows / 4), ceil(T / NT)). Warp y of block x computes row
// r = 4x + y for tokens NT*blockIdx.y .. +NT (fewer at the end) and lane 0 writes out[t*nrows + r]
// for each of them: every element of out (T, nrows) is written exactly once. NT = 1 is the decode
// matvec; NT = 8 the prefill product, which reuses each weight block (from L1) for 8 tokens.
// act rows are act_stride bytes apart (a multiple of 4).
#pragma once
#include "common.cuh"

template <class D, int NT>
__device__ __forceinline__ void mmvq(const uint8_t* __restrict__ w, const uint8_t* __restrict__ act,
                                     float* __restrict__ out, int ncols, int nrows, int act_stride,
                                     int ntok) {
    const int row = blockIdx.x * blockDim.y + threadIdx.y;
    if (row >= nrows) return;  // warp-uniform
    const int lane = threadIdx.x;
    const int t0 = blockIdx.y * NT;
    const int nt = min(NT, ntok - t0);
    const int nblk = ncols / D::QKW;
    const uint8_t* wr = w + (size_t)row * nblk * D::W_BYTES;
    const uint8_t* a0 = act + (size_t)t0 * act_stride;
    float acc[NT];
#pragma unroll
    for (int j = 0; j < NT; j++) acc[j] = 0.0f;
    const int nparts = nblk * D::PARTS;
    for (int i = lane; i < nparts; i += WARP) {
        const int b = i / D::PARTS, part = i % D::PARTS;
        const uint8_t* wb = wr + (size_t)b * D::W_BYTES;
#pragma unroll
        for (int j = 0; j < NT; j++) {
            if (j < nt) acc[j] += D::dot(wb, a0 + (size_t)j * act_stride + (size_t)b * D::A_BYTES, part);
        }
    }
#pragma unroll
    for (int j = 0; j < NT; j++) {
        const float s = warp_sum(acc[j]);
        if (lane == 0 && j < nt) out[(size_t)(t0 + j) * nrows + row] = s;
    }
}

// The two entry points of one weight type: `matvec_<ty>` (NT = 1) and `matmul_<ty>` (NT = 8).
#define MMVQ_ENTRIES(ty, D)                                                                        \
    extern "C" __global__ void matvec_##ty(const uint8_t* __restrict__ w,                          \
                                           const uint8_t* __restrict__ act, float* __restrict__ out, \
                                           int ncols, int nrows, int act_stride, int ntok) {        \
        mmvq<D, 1>(w, act, out, ncols, nrows, act_stride, ntok);                                   \
    }                                                                                              \
    extern "C" __global__ void matmul_##ty(const uint8_t* __restrict__ w,                          \
                                           const uint8_t* __restrict__ act, float* __restrict__ out, \
                                           int ncols, int nrows, int act_stride, int ntok) {        \
        mmvq<D, 8>(w, act, out, ncols, nrows, act_stride, ntok);                                   \
    }
