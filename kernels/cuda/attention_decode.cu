// Flash-decoding attention for one new token over the f16 KV cache (split-K over the cached
// positions, then a combine kernel), with grouped-query heads: query head h reads KV head
// h / (n_head / n_head_kv). softmax(scale * q.k) over positions 0..n_kv-1, n_kv = pos0[0] + 1.
// The query is rounded to f16 first (ggml converts it to the cache's f16 vec_dot_type); scores,
// probabilities and sums stay f32, so the result agrees with the CPU path to f32 rounding.
//
// The number of splits is fixed by the context length at launch (n_split = ceil(S / chunk)), and
// splits past n_kv write an empty partial result, so one captured CUDA graph serves every position.
//
// attn_decode: grid (n_head, n_split), block 32 (one warp). Warp (h, s) runs an online softmax
// over positions s*chunk .. min((s+1)*chunk, n_kv); lane l owns dimensions l, l + 32, ... of the
// head (head_dim a multiple of 32, at most 256). It writes part[(h * n_split + s) * (head_dim + 2)
// + ...] = [running max m, sum of exp l, unnormalized output acc (head_dim)]: lane 0 writes m and
// l, lane l its dimensions. Empty splits write m = -inf, l = 0, acc = 0.
//
// attn_combine: grid n_head, block head_dim; thread d writes out[h * head_dim + d] =
// sum_s e^(m_s - M) acc_s[d] / sum_s e^(m_s - M) l_s with M = max_s m_s (split 0 is never empty).
#include "common.cuh"

#define MAX_DIM_PER_LANE 8  // head_dim <= 256

extern "C" __global__ void attn_decode(const float* __restrict__ q, const __half* __restrict__ kc,
                                       const __half* __restrict__ vc, float* __restrict__ part,
                                       const int* __restrict__ pos0, int n_head, int n_head_kv,
                                       int head_dim, int chunk, float scale) {
    const int h = blockIdx.x, s = blockIdx.y, n_split = gridDim.y;
    const int lane = threadIdx.x;
    const int kv_dim = n_head_kv * head_dim;
    const int kvh = h / (n_head / n_head_kv);
    const int nd = head_dim / WARP;
    const int n_kv = pos0[0] + 1;
    const int start = s * chunk, end = min(start + chunk, n_kv);

    float qv[MAX_DIM_PER_LANE], acc[MAX_DIM_PER_LANE];
#pragma unroll
    for (int i = 0; i < MAX_DIM_PER_LANE; i++) {
        qv[i] = i < nd ? __half2float(__float2half_rn(q[h * head_dim + lane + WARP * i])) : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int p = start; p < end; p++) {
        const __half* kr = kc + (size_t)p * kv_dim + kvh * head_dim;
        float dot = 0.0f;
#pragma unroll
        for (int i = 0; i < MAX_DIM_PER_LANE; i++)
            if (i < nd) dot += qv[i] * __half2float(kr[lane + WARP * i]);
        const float sc = warp_sum(dot) * scale;
        const float m_new = fmaxf(m, sc);
        const float corr = expf(m - m_new);  // 0 on the first position (m = -inf)
        const float pe = expf(sc - m_new);
        l = l * corr + pe;
        const __half* vr = vc + (size_t)p * kv_dim + kvh * head_dim;
#pragma unroll
        for (int i = 0; i < MAX_DIM_PER_LANE; i++)
            if (i < nd) acc[i] = acc[i] * corr + pe * __half2float(vr[lane + WARP * i]);
        m = m_new;
    }
    float* dst = part + ((size_t)h * n_split + s) * (head_dim + 2);
    if (lane == 0) {
        dst[0] = m;
        dst[1] = l;
    }
#pragma unroll
    for (int i = 0; i < MAX_DIM_PER_LANE; i++)
        if (i < nd) dst[2 + lane + WARP * i] = acc[i];
}

extern "C" __global__ void attn_combine(const float* __restrict__ part, float* __restrict__ out,
                                        int head_dim, int n_split) {
    const int h = blockIdx.x, d = threadIdx.x;
    if (d >= head_dim) return;
    const float* ph = part + (size_t)h * n_split * (head_dim + 2);
    float mx = -INFINITY;
    for (int s = 0; s < n_split; s++) mx = fmaxf(mx, ph[s * (head_dim + 2)]);
    float num = 0.0f, den = 0.0f;
    for (int s = 0; s < n_split; s++) {
        const float* p = ph + s * (head_dim + 2);
        if (p[1] == 0.0f) continue;  // empty split (m = -inf)
        const float w = expf(p[0] - mx);
        num += w * p[2 + d];
        den += w * p[1];
    }
    out[h * head_dim + d] = num / den;
}
