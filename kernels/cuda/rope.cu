// RoPE in ggml's "normal" mode (adjacent pairs), as the runtime applies it (kernels
// reference::ops::rope): x0' = fma(x0, cos, -(x1 * sin)), x1' = fma(x0, sin, x1 * cos), for the
// first n_rot / 2 pairs of every head; the rest of a head is left alone. The cos/sin pairs come
// from `table` (S, n_rot), filled once on the host by the runtime's own `rope_cache` (ggml's
// repeated-multiplication angles), so both paths rotate by the same f32 values.
//
// Launch: grid T, block 256. Token t sits at position pos0[0] + t (pos0 lives on the device so a
// captured CUDA graph replays at every position). q (T, q_stride), k (T, k_stride) are rotated in
// place; thread i handles pairs i, i + 256, ... of the (n_head + n_head_kv) * n_rot / 2 pairs of
// the token, each pair exactly once.
#include "common.cuh"

extern "C" __global__ void rope(float* __restrict__ q, float* __restrict__ k,
                                const float* __restrict__ table, const int* __restrict__ pos0,
                                int n_head, int n_head_kv, int head_dim, int n_rot, int q_stride,
                                int k_stride) {
    const int t = blockIdx.x;
    const float* cs = table + (size_t)(pos0[0] + t) * n_rot;
    const int half_rot = n_rot / 2;
    const int total = (n_head + n_head_kv) * half_rot;
    for (int i = threadIdx.x; i < total; i += blockDim.x) {
        const int head = i / half_rot, pair = i % half_rot;
        float* x = head < n_head ? q + (size_t)t * q_stride + head * head_dim
                                 : k + (size_t)t * k_stride + (head - n_head) * head_dim;
        const float x0 = x[2 * pair], x1 = x[2 * pair + 1];
        const float c = cs[2 * pair], s = cs[2 * pair + 1];
        x[2 * pair] = fmaf(x0, c, -__fmul_rn(x1, s));
        x[2 * pair + 1] = fmaf(x0, s, __fmul_rn(x1, c));
    }
}
