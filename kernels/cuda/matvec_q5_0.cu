// Q5_0 weights x Q8_0 activations (ggml_vec_dot_q5_0_q8_0_generic): per block
// sumi = sum (q - 16) * y with 5-bit q, then sumf += (dw * dx) * sumi.
#include "mmvq.cuh"

struct DotQ5_0 {
    static constexpr int QKW = QK, W_BYTES = Q5_0_BYTES, A_BYTES = Q8_0_BYTES, PARTS = 1;
    // w: d f16 | qh u32 LE (bit e = bit 4 of element e) | qs[16]; a: d f16 | qs i8[32].
    static __device__ __forceinline__ float dot(const uint8_t* w, const uint8_t* a, int) {
        const uint32_t qh = (uint32_t)load_i32_a2(w + 2);
        int sumi = 0, sumy = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int v = load_i32_a2(w + 6 + 4 * j);
            int lo = v & 0x0f0f0f0f, hi = (v >> 4) & 0x0f0f0f0f;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                lo |= (int)(((qh >> (4 * j + k)) & 1u) << (8 * k + 4));
                hi |= (int)(((qh >> (16 + 4 * j + k)) & 1u) << (8 * k + 4));
            }
            const int y0 = load_i32_a2(a + 2 + 4 * j);
            const int y1 = load_i32_a2(a + 2 + 16 + 4 * j);
            sumi = __dp4a(lo, y0, sumi);
            sumi = __dp4a(hi, y1, sumi);
            sumy = __dp4a(0x01010101, y0, sumy);
            sumy = __dp4a(0x01010101, y1, sumy);
        }
        sumi -= 16 * sumy;
        return (load_f16(w) * load_f16(a)) * (float)sumi;
    }
};

MMVQ_ENTRIES(q5_0, DotQ5_0)
