// RMSNorm as ggml's rms_norm then mul (runtime/src/model/ops.rs `rms_norm`): squares rounded to
// f32 and summed in f64, the mean rounded to f32, scale = 1 / sqrtf(mean + eps) in f32, then
// out = (x * scale) * w with two roundings (no fused multiply-add).
//
// Launch: grid T (one block per token row), block 256. x, out (T, n) rows n apart; w (n,).
// Thread i writes out[t, i], out[t, i + 256], ...: every element of the row once.
#include "common.cuh"

extern "C" __global__ void rms_norm(const float* __restrict__ x, const float* __restrict__ w,
                                    float* __restrict__ out, int n, float eps) {
    __shared__ double warp_sums[32];
    const int t = blockIdx.x;
    const float* xr = x + (size_t)t * n;
    double sum = 0.0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) sum += (double)__fmul_rn(xr[i], xr[i]);
#pragma unroll
    for (int off = WARP / 2; off > 0; off >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, off);
    const int lane = threadIdx.x % WARP, wid = threadIdx.x / WARP;
    if (lane == 0) warp_sums[wid] = sum;
    __syncthreads();
    if (wid == 0) {
        const int nw = (blockDim.x + WARP - 1) / WARP;
        double s = lane < nw ? warp_sums[lane] : 0.0;
#pragma unroll
        for (int off = WARP / 2; off > 0; off >>= 1) s += __shfl_xor_sync(0xffffffffu, s, off);
        if (lane == 0) warp_sums[0] = s;
    }
    __syncthreads();
    const float mean = (float)(warp_sums[0] / (double)n);
    const float scale = __fdiv_rn(1.0f, __fsqrt_rn(mean + eps));
    float* o = out + (size_t)t * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) o[i] = __fmul_rn(__fmul_rn(xr[i], scale), w[i]);
}
