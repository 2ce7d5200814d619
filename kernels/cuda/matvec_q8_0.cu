// Q8_0 weights x Q8_0 activations (ggml_vec_dot_q8_0_q8_0_generic): per block
// sumf += sumi * (dw * dx).
#include "mmvq.cuh"

struct DotQ8_0 {
    static constexpr int QKW = QK, W_BYTES = Q8_0_BYTES, A_BYTES = Q8_0_BYTES, PARTS = 1;
    // w and a: d f16 | qs i8[32].
    static __device__ __forceinline__ float dot(const uint8_t* w, const uint8_t* a, int) {
        int sumi = 0;
#pragma unroll
        for (int j = 0; j < 8; j++) sumi = __dp4a(load_i32_a2(w + 2 + 4 * j), load_i32_a2(a + 2 + 4 * j), sumi);
        return (float)sumi * (load_f16(w) * load_f16(a));
    }
};

MMVQ_ENTRIES(q8_0, DotQ8_0)
