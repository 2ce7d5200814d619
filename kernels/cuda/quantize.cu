// Activation quantizers: f32 rows -> ggml's Q8_0 / Q8_1 / Q8_K blocks, byte for byte what
// kernels/src/reference (quantize_activations) writes, i.e. ggml-cpu's x86 `quantize_row_q8_0`,
// `quantize_row_q8_1` (ties to even, multiplier 127/amax) and `quantize_row_q8_K` (the `_ref` one).
//
// Arguments shared by all three: x (T, x_stride) f32, out (T rows of out_stride bytes), n elements
// per row (a multiple of 32, or 256 for Q8_K), T = ntok. out_stride must be a multiple of 4.
#include "common.cuh"

// Q8_0 / Q8_1. Grid (ceil(n/32 / 4), T), block (32, 4): warp w of block x quantizes block
// b = 4x + w of token row blockIdx.y; lane i owns element i of the block and writes qs[i]; lane 0
// writes the scale(s). One warp-wide max and (Q8_1) one warp-wide integer sum per block.
template <bool Q81>
__device__ void quantize_q8_32(const float* __restrict__ x, uint8_t* __restrict__ out, int n,
                               int x_stride, int out_stride) {
    const int nb = n / QK;
    const int b = blockIdx.x * blockDim.y + threadIdx.y;
    if (b >= nb) return;  // whole warps leave together, so the shuffles below stay full-warp
    const int t = blockIdx.y;
    const int lane = threadIdx.x;
    const float v = x[(size_t)t * x_stride + (size_t)b * QK + lane];
    const float amax = warp_max(fabsf(v));
    const float d = amax / 127.0f;
    const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    const int q32 = __float2int_rn(v * id);  // round to nearest even, as _mm256_round_ps
    const int q = max(-128, min(127, q32));
    uint8_t* blk = out + (size_t)t * out_stride + (size_t)b * (Q81 ? Q8_1_BYTES : Q8_0_BYTES);
    if (Q81) {
        const int isum = warp_sum_i(q32);  // wrapping sum of the unclamped values, as ggml
        blk[4 + lane] = (uint8_t)(int8_t)q;
        if (lane == 0) {
            reinterpret_cast<__half*>(blk)[0] = __float2half_rn(d);
            reinterpret_cast<__half*>(blk)[1] = __float2half_rn(d * (float)isum);
        }
    } else {
        blk[2 + lane] = (uint8_t)(int8_t)q;
        if (lane == 0) reinterpret_cast<__half*>(blk)[0] = __float2half_rn(d);
    }
}

extern "C" __global__ void quantize_q8_0(const float* __restrict__ x, uint8_t* __restrict__ out,
                                         int n, int x_stride, int out_stride) {
    quantize_q8_32<false>(x, out, n, x_stride, out_stride);
}

extern "C" __global__ void quantize_q8_1(const float* __restrict__ x, uint8_t* __restrict__ out,
                                         int n, int x_stride, int out_stride) {
    quantize_q8_32<true>(x, out, n, x_stride, out_stride);
}

// Q8_K. Grid (n/256, T), block 32: one warp per 256-element super-block; lane i owns elements
// 8i..8i+7 (so lane order is element order) and writes their qs; even lanes write one bsum (16
// elements = lanes 2g, 2g+1); lane 0 writes d.
// `max` is the signed value of largest magnitude, the first one in element order on ties, as the
// reference's strict `>` scan gives.
extern "C" __global__ void quantize_q8_k(const float* __restrict__ x, uint8_t* __restrict__ out,
                                         int n, int x_stride, int out_stride) {
    const int b = blockIdx.x;
    if (b >= n / QK_K) return;
    const int t = blockIdx.y;
    const int lane = threadIdx.x;
    const float* xb = x + (size_t)t * x_stride + (size_t)b * QK_K + 8 * lane;
    float v[8];
    float amax = 0.0f, mx = 0.0f;
    int idx = 0x7fffffff;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        v[i] = xb[i];
        if (fabsf(v[i]) > amax) {
            amax = fabsf(v[i]);
            mx = v[i];
            idx = 8 * lane + i;
        }
    }
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) {
        const float oa = __shfl_xor_sync(0xffffffffu, amax, off);
        const float om = __shfl_xor_sync(0xffffffffu, mx, off);
        const int oi = __shfl_xor_sync(0xffffffffu, idx, off);
        if (oa > amax || (oa == amax && oi < idx)) {
            amax = oa;
            mx = om;
            idx = oi;
        }
    }
    uint8_t* blk = out + (size_t)t * out_stride + (size_t)b * Q8_K_BYTES;
    int8_t* qs = reinterpret_cast<int8_t*>(blk + 4);
    int sum = 0;
    float d = 0.0f;
    if (amax != 0.0f) {
        const float iscale = -127.0f / mx;
#pragma unroll
        for (int i = 0; i < 8; i++) {
            const int q = min(127, __float2int_rn(iscale * v[i]));  // nearest_int: ties to even
            qs[8 * lane + i] = (int8_t)q;
            sum += q;
        }
        d = 1.0f / iscale;
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) qs[8 * lane + i] = 0;
    }
    sum += __shfl_xor_sync(0xffffffffu, sum, 1);
    if ((lane & 1) == 0) reinterpret_cast<int16_t*>(blk + 260)[lane / 2] = (int16_t)sum;
    if (lane == 0) *reinterpret_cast<float*>(blk) = d;
}
