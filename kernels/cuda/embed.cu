// Embedding lookup (ggml_get_rows): dequantizes row tokens[t] of the token embedding table into
// out (T, ncols), with the reference's expressions (kernels/src/reference `dequantize_row_*`), each
// operation rounded separately, so the rows equal the CPU path's bit for bit.
//
// Launch: grid (ceil(ncols / 256), T), block 256; thread (x, t) writes out[t, 256x + threadIdx.x].
// Token ids are checked against the vocabulary on the host before upload; an id >= nvocab still
// never reads out of bounds here (it writes 0).
#include "common.cuh"

__device__ __forceinline__ int nibble(const uint8_t* qs, int i) {
    return i < 16 ? (qs[i] & 0xf) : (qs[i - 16] >> 4);
}

__device__ float dequant(const uint8_t* row, int ty, int e) {
    switch (ty) {
        case TY_F32: return load_f32_a4(row + 4 * e);
        case TY_F16: return load_f16(row + 2 * e);
        case TY_Q4_0: {
            const uint8_t* b = row + (e / QK) * Q4_0_BYTES;
            return __fmul_rn((float)(nibble(b + 2, e % QK) - 8), load_f16(b));
        }
        case TY_Q4_1: {
            const uint8_t* b = row + (e / QK) * Q4_1_BYTES;
            return __fadd_rn(__fmul_rn((float)nibble(b + 4, e % QK), load_f16(b)), load_f16(b + 2));
        }
        case TY_Q5_0: {
            const uint8_t* b = row + (e / QK) * Q5_0_BYTES;
            const int i = e % QK;
            const uint32_t qh = (uint32_t)load_i32_a2(b + 2);
            const int q = nibble(b + 6, i) | (int)(((qh >> i) & 1u) << 4);
            return __fmul_rn((float)(q - 16), load_f16(b));
        }
        case TY_Q8_0: {
            const uint8_t* b = row + (e / QK) * Q8_0_BYTES;
            return __fmul_rn((float)(int8_t)b[2 + e % QK], load_f16(b));
        }
        case TY_Q4_K: {
            const uint8_t* b = row + (e / QK_K) * Q4_K_BYTES;
            const int i = e % QK_K, s = i / 32, c = i / 64;
            const uint8_t* sc = b + 4;
            int scale, m;
            if (s < 4) {
                scale = sc[s] & 63;
                m = sc[s + 4] & 63;
            } else {
                scale = (sc[s + 4] & 0xf) | ((sc[s - 4] >> 6) << 4);
                m = (sc[s + 4] >> 4) | ((sc[s] >> 6) << 4);
            }
            const int q = (b[16 + 32 * c + i % 32] >> (4 * (s % 2))) & 0xf;
            const float dl = __fmul_rn(load_f16(b), (float)scale);
            const float ml = __fmul_rn(load_f16(b + 2), (float)m);
            return __fsub_rn(__fmul_rn(dl, (float)q), ml);
        }
        case TY_Q6_K: {
            const uint8_t* b = row + (e / QK_K) * Q6_K_BYTES;
            const int i = e % QK_K, h = i / 128, k = (i / 32) % 4, l = i % 32;
            const int lo = (b[64 * h + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0xf;
            const int hi = (b[128 + 32 * h + l] >> (2 * k)) & 3;
            const float ds = __fmul_rn(load_f16(b + 208), (float)(int8_t)b[192 + i / 16]);
            return __fmul_rn(ds, (float)((lo | (hi << 4)) - 32));
        }
        default: return __int_as_float(0x7fc00000);  // unknown type: NaN (the host never passes one)
    }
}

extern "C" __global__ void embed(const uint8_t* __restrict__ table, const uint32_t* __restrict__ tokens,
                                 float* __restrict__ out, int ty, int ncols, int row_bytes, int nvocab) {
    const int e = blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= ncols) return;
    const int t = blockIdx.y;
    const uint32_t tok = tokens[t];
    out[(size_t)t * ncols + e] = tok < (uint32_t)nvocab ? dequant(table + (size_t)tok * row_bytes, ty, e) : 0.0f;
}
