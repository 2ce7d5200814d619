// Q4_1 weights x Q8_1 activations (ggml_vec_dot_q4_1_q8_1_generic): per block
// sumf += (dw * dx) * sumi + mw * sx, with sumi = sum q * y over unsigned nibbles.
#include "mmvq.cuh"

struct DotQ4_1 {
    static constexpr int QKW = QK, W_BYTES = Q4_1_BYTES, A_BYTES = Q8_1_BYTES, PARTS = 1;
    // w: d f16 | m f16 | qs[16]; a: d f16 | s f16 | qs i8[32].
    static __device__ __forceinline__ float dot(const uint8_t* w, const uint8_t* a, int) {
        int sumi = 0;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int v = load_i32_a2(w + 4 + 4 * j);
            sumi = __dp4a(v & 0x0f0f0f0f, load_i32_a2(a + 4 + 4 * j), sumi);
            sumi = __dp4a((v >> 4) & 0x0f0f0f0f, load_i32_a2(a + 4 + 16 + 4 * j), sumi);
        }
        return (load_f16(w) * load_f16(a)) * (float)sumi + load_f16(w + 2) * load_f16(a + 2);
    }
};

MMVQ_ENTRIES(q4_1, DotQ4_1)
