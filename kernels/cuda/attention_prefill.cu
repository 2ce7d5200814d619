// Causal attention for a batch of T new tokens (prefill) over the f16 KV cache, tiled: a block
// takes 8 query tokens of one head; 32-position tiles of K and V are staged in shared memory once
// for all 8 (one warp per query), and each warp keeps an online softmax over the tiles. Query t
// (at position pos0[0] + t) sees positions 0 ..= pos0[0] + t; grouped-query heads as in
// attention_decode.cu. Queries are rounded to f16 first (as ggml does); the rest is f32.
//
// Launch: grid (n_head, ceil(T / 8)), block (32, 8), static shared memory
// 2 * 32 * (256 + 2) * 2 + 8 * 256 * 4 = 41,216 bytes (head_dim <= 256, a multiple of 32).
// Within a tile, lane j scores position tile_start + j against the warp's query; then lane l
// accumulates dimensions l, l + 32, ... Warp w writes out[t * q_dim + h * head_dim + ...] for
// t = 8 * blockIdx.y + w < T, every dimension once (q_dim = n_head * head_dim). K/V rows in shared
// memory are padded by 2 halves so that 32 lanes reading 32 different rows hit distinct banks.
#include "common.cuh"

#define QT 8
#define KT 32
#define MAXD 256
#define KPAD (MAXD + 2)

extern "C" __global__ void attn_prefill(const float* __restrict__ q, const __half* __restrict__ kc,
                                        const __half* __restrict__ vc, float* __restrict__ out,
                                        const int* __restrict__ pos0, int ntok, int n_head,
                                        int n_head_kv, int head_dim, float scale) {
    __shared__ __half ks[KT][KPAD];
    __shared__ __half vs[KT][KPAD];
    __shared__ float qs[QT][MAXD];
    const int h = blockIdx.x, w = threadIdx.y, lane = threadIdx.x;
    const int tid = w * WARP + lane;
    const int kv_dim = n_head_kv * head_dim, q_dim = n_head * head_dim;
    const int kvh = h / (n_head / n_head_kv);
    const int nd = head_dim / WARP;
    const int p0 = pos0[0];
    const int t = (int)blockIdx.y * QT + w;
    const bool active = t < ntok;
    const int my_last = p0 + t;  // last position this query sees
    const int block_last = p0 + min((int)(blockIdx.y * QT + QT), ntok) - 1;

    for (int d = lane; d < head_dim; d += WARP)
        qs[w][d] = active ? __half2float(__float2half_rn(q[(size_t)t * q_dim + h * head_dim + d])) : 0.0f;
    float acc[MAXD / WARP];
#pragma unroll
    for (int i = 0; i < MAXD / WARP; i++) acc[i] = 0.0f;
    float m = -INFINITY, l = 0.0f;

    for (int start = 0; start <= block_last; start += KT) {
        __syncthreads();  // previous tile fully consumed (and qs written, on the first pass)
        for (int i = tid; i < KT * head_dim; i += QT * WARP) {
            const int j = i / head_dim, d = i % head_dim, p = start + j;
            const bool ok = p <= block_last;
            ks[j][d] = ok ? kc[(size_t)p * kv_dim + kvh * head_dim + d] : __float2half(0.0f);
            vs[j][d] = ok ? vc[(size_t)p * kv_dim + kvh * head_dim + d] : __float2half(0.0f);
        }
        __syncthreads();
        if (!active) continue;  // still takes part in every __syncthreads above
        const int p = start + lane;
        float sc = -INFINITY;
        if (p <= my_last) {
            float dot = 0.0f;
            for (int d = 0; d < head_dim; d++) dot += qs[w][d] * __half2float(ks[lane][d]);
            sc = dot * scale;
        }
        const float m_new = fmaxf(m, warp_max(sc));
        if (m_new == -INFINITY) continue;  // no visible position yet (cannot happen: position 0 is)
        const float corr = expf(m - m_new);
        const float pe = sc == -INFINITY ? 0.0f : expf(sc - m_new);
        l = l * corr + warp_sum(pe);
#pragma unroll
        for (int i = 0; i < MAXD / WARP; i++) acc[i] *= corr;
        for (int j = 0; j < KT; j++) {
            const float pj = __shfl_sync(0xffffffffu, pe, j);
#pragma unroll
            for (int i = 0; i < MAXD / WARP; i++)
                if (i < nd) acc[i] += pj * __half2float(vs[j][lane + WARP * i]);
        }
        m = m_new;
    }
    if (active) {
#pragma unroll
        for (int i = 0; i < MAXD / WARP; i++)
            if (i < nd) out[(size_t)t * q_dim + h * head_dim + lane + WARP * i] = acc[i] / l;
    }
}
