// Q4_K weights x Q8_K activations (ggml_vec_dot_q4_K_q8_K_generic). Per super-block:
// d * dx * sum_s sc[s] * dot_s  -  dmin * dx * sum_g bsums[g] * m[g / 2], where s runs over the 8
// sub-blocks of 32 and dot_s is the integer dot of its 4-bit quants with the activations. One lane
// computes one sub-block's share of both terms (PARTS = 8).
#include "mmvq.cuh"

// ggml get_scale_min_k4: 6-bit scale and minimum of sub-block j from the 12 packed bytes.
__device__ __forceinline__ void scale_min_k4(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xf) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

struct DotQ4_K {
    static constexpr int QKW = QK_K, W_BYTES = Q4_K_BYTES, A_BYTES = Q8_K_BYTES, PARTS = 8;
    // w: d f16 | dmin f16 | scales[12] | qs[128] (qs[32c + i] = q[64c + i] | q[64c + 32 + i] << 4);
    // a: d f32 | qs i8[256] | bsums i16[16].
    static __device__ __forceinline__ float dot(const uint8_t* w, const uint8_t* a, int s) {
        int sc, m;
        scale_min_k4(s, w + 4, &sc, &m);
        const int c = s / 2, shift = 4 * (s % 2);
        int dot = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int v = (load_i32_a2(w + 16 + 32 * c + 4 * j) >> shift) & 0x0f0f0f0f;
            dot = __dp4a(v, load_i32_a2(a + 4 + 32 * s + 4 * j), dot);
        }
        const int16_t* bsums = reinterpret_cast<const int16_t*>(a + 260);
        const int summ = m * ((int)bsums[2 * s] + (int)bsums[2 * s + 1]);
        const float dx = load_f32_a4(a);
        return (load_f16(w) * dx) * (float)(sc * dot) - (load_f16(w + 2) * dx) * (float)summ;
    }
};

MMVQ_ENTRIES(q4_k, DotQ4_K)
