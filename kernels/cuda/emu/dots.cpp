// Host harness of kernels/tests/cuda_host_emu.rs: `dots FILE` reads
//   u32 ggml type id, u32 n (elements per row), u32 nrows, u32 act_bytes, then nrows weight rows
//   and one activation row (already in the type's activation format), and prints one line per row:
//   the sum over blocks and parts of the type's device `D::dot`, as the matvec kernel's lanes do
//   (here in block order).
// `dots --embed FILE` reads u32 type id, u32 n, then one row, and prints `dequant` of each element
// (hex bits, so the comparison is exact).
#include <cstdio>
#include <string>
#include <vector>

#include "../matvec_q4_0.cu"
#include "../matvec_q4_1.cu"
#include "../matvec_q5_0.cu"
#include "../matvec_q8_0.cu"
#include "../matvec_q4_k.cu"
#include "../matvec_q6_k.cu"
#include "../embed.cu"

template <class D>
static void rows(const std::vector<uint8_t>& w, const uint8_t* a, int n, int nrows) {
    const int nblk = n / D::QKW;
    for (int r = 0; r < nrows; r++) {
        const uint8_t* wr = w.data() + (size_t)r * nblk * D::W_BYTES;
        float acc = 0.0f;
        for (int b = 0; b < nblk; b++)
            for (int p = 0; p < D::PARTS; p++) acc += D::dot(wr + (size_t)b * D::W_BYTES, a + (size_t)b * D::A_BYTES, p);
        std::printf("%.9g\n", acc);
    }
}

int main(int argc, char** argv) {
    const bool embed_mode = argc == 3 && std::string(argv[1]) == "--embed";
    FILE* f = std::fopen(argv[argc - 1], "rb");
    if (!f) return 2;
    std::vector<uint8_t> buf;
    uint8_t tmp[4096];
    size_t k;
    while ((k = std::fread(tmp, 1, sizeof tmp, f)) > 0) buf.insert(buf.end(), tmp, tmp + k);
    std::fclose(f);
    uint32_t hdr[4] = {0, 0, 0, 0};
    std::memcpy(hdr, buf.data(), embed_mode ? 8 : 16);
    const int ty = (int)hdr[0], n = (int)hdr[1];
    if (embed_mode) {
        const uint8_t* row = buf.data() + 8;
        for (int e = 0; e < n; e++) {
            const float v = dequant(row, ty, e);
            uint32_t u;
            std::memcpy(&u, &v, 4);
            std::printf("%08x\n", u);
        }
        return 0;
    }
    const int nrows = (int)hdr[2], act_bytes = (int)hdr[3];
    std::vector<uint8_t> w(buf.begin() + 16, buf.end() - act_bytes);
    const uint8_t* a = buf.data() + buf.size() - act_bytes;
    switch (ty) {
        case TY_Q4_0: rows<DotQ4_0>(w, a, n, nrows); break;
        case TY_Q4_1: rows<DotQ4_1>(w, a, n, nrows); break;
        case TY_Q5_0: rows<DotQ5_0>(w, a, n, nrows); break;
        case TY_Q8_0: rows<DotQ8_0>(w, a, n, nrows); break;
        case TY_Q4_K: rows<DotQ4_K>(w, a, n, nrows); break;
        case TY_Q6_K: rows<DotQ6_K>(w, a, n, nrows); break;
        default: return 3;
    }
    return 0;
}
