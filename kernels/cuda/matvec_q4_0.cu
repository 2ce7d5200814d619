// Q4_0 weights x Q8_0 activations (ggml_vec_dot_q4_0_q8_0_generic): per block
// sumi = sum (q - 8) * y, then sumf += sumi * dw * dx. Entry points: see mmvq.cuh.
#include "mmvq.cuh"

struct DotQ4_0 {
    static constexpr int QKW = QK, W_BYTES = Q4_0_BYTES, A_BYTES = Q8_0_BYTES, PARTS = 1;
    // w: d f16 | qs[16] (qs[j] = e[j] | e[j+16] << 4); a: d f16 | qs i8[32].
    static __device__ __forceinline__ float dot(const uint8_t* w, const uint8_t* a, int) {
        int sumi = 0, sumy = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int v = load_i32_a2(w + 2 + 4 * j);
            const int y0 = load_i32_a2(a + 2 + 4 * j);       // elements 4j..4j+3
            const int y1 = load_i32_a2(a + 2 + 16 + 4 * j);  // elements 16+4j..
            sumi = __dp4a(v & 0x0f0f0f0f, y0, sumi);
            sumi = __dp4a((v >> 4) & 0x0f0f0f0f, y1, sumi);
            sumy = __dp4a(0x01010101, y0, sumy);
            sumy = __dp4a(0x01010101, y1, sumy);
        }
        sumi -= 8 * sumy;  // exact: sum (q - 8) y = sum q y - 8 sum y
        return (float)sumi * load_f16(w) * load_f16(a);
    }
};

MMVQ_ENTRIES(q4_0, DotQ4_0)
