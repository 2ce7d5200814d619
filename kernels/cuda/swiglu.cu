// SwiGLU in place: g = silu(g) * u = (g / (1 + exp(-g))) * u (ggml_vec_swiglu_f32), each
// operation rounded separately. expf here is CUDA's (max 2 ulp), ggml's is its own polynomial:
// the two agree to a few ulp, not bit for bit.
//
// Launch: grid ceil(n / 256), block 256; thread i writes g[i]. g, u (n,) with n = T * F.
#include "common.cuh"

extern "C" __global__ void swiglu(float* __restrict__ g, const float* __restrict__ u, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float x = g[i];
    g[i] = __fmul_rn(__fdiv_rn(x, __fadd_rn(1.0f, expf(-x))), u[i]);
}
