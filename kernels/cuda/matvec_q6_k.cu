// Q6_K weights x Q8_K activations (ggml_vec_dot_q6_K_q8_K_generic). Per super-block:
// d * dx * sum_s scales[s] * sum_{e in s} (q_e - 32) * y_e over 16 sub-blocks of 16. One lane
// computes 32 elements (two sub-blocks) at a time (PARTS = 8).
#include "mmvq.cuh"

struct DotQ6_K {
    static constexpr int QKW = QK_K, W_BYTES = Q6_K_BYTES, A_BYTES = Q8_K_BYTES, PARTS = 8;
    // w: ql[128] | qh[64] | scales i8[16] | d f16. Element e = 32p + i (p = 0..8, i = 0..32), with
    // h = p / 4, k = p % 4: low 4 bits = (ql[64h + 32(k % 2) + i] >> 4(k / 2)) & 15, high 2 bits =
    // (qh[32h + i] >> 2k) & 3 (kernels/src/blocks/kquants.rs). a: d f32 | qs i8[256] | bsums.
    static __device__ __forceinline__ float dot(const uint8_t* w, const uint8_t* a, int p) {
        const int h = p / 4, k = p % 4;
        const uint8_t* ql = w + 64 * h + 32 * (k % 2);
        const uint8_t* qh = w + 128 + 32 * h;
        const uint8_t* y = a + 4 + 32 * p;
        int dot[2] = {0, 0}, sumy[2] = {0, 0};
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const int lo = (load_i32_a2(ql + 4 * j) >> (4 * (k / 2))) & 0x0f0f0f0f;
            const int hi = ((load_i32_a2(qh + 4 * j) >> (2 * k)) & 0x03030303) << 4;
            const int yv = load_i32_a2(y + 4 * j);
            dot[j / 4] = __dp4a(lo | hi, yv, dot[j / 4]);
            sumy[j / 4] = __dp4a(0x01010101, yv, sumy[j / 4]);
        }
        const int8_t* scales = reinterpret_cast<const int8_t*>(w + 192);
        const int sumi = (int)scales[2 * p] * (dot[0] - 32 * sumy[0]) + (int)scales[2 * p + 1] * (dot[1] - 32 * sumy[1]);
        return (load_f16(w + 208) * load_f32_a4(a)) * (float)sumi;
    }
};

MMVQ_ENTRIES(q6_k, DotQ6_K)
