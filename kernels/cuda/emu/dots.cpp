// Host harness of kernels/tests/cuda_host_emu.rs: `dots FILE` reads
//   u32 ggml type id, u32 n (elements per row), u32 nrows, u32 act_bytes, then nrows weight rows
//   and one activation row (already in the type's activation format), and prints one line per row:
//   the sum over blocks and parts of the type's device `D::dot`, as the matvec kernel's lanes do
//   (here in block order).
// `dots --rope FILE` reads u32 n_head, n_head_kv, head_dim, n_rot, ntok, pos0, n_ctx, then q (ntok, H*D),
//   k (ntok, Hkv*D) and the table (n_ctx, n_rot) as f32, runs the `rope` kernel thread by thread (grid
//   ntok, block 256: it has no barrier or shuffle) and prints q then k as hex bits.
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
#include "../rope.cu"

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

static int rope_mode(const std::vector<uint8_t>& buf) {
    uint32_t h[7];
    std::memcpy(h, buf.data(), sizeof h);
    const int nh = (int)h[0], nkv = (int)h[1], hd = (int)h[2], nrot = (int)h[3], nt = (int)h[4];
    const int pos0 = (int)h[5], nctx = (int)h[6];
    const size_t nq = (size_t)nt * nh * hd, nk = (size_t)nt * nkv * hd, ntab = (size_t)nctx * nrot;
    if (buf.size() != sizeof h + 4 * (nq + nk + ntab)) return 4;
    std::vector<float> q(nq), k(nk), tab(ntab);
    std::memcpy(q.data(), buf.data() + sizeof h, 4 * nq);
    std::memcpy(k.data(), buf.data() + sizeof h + 4 * nq, 4 * nk);
    std::memcpy(tab.data(), buf.data() + sizeof h + 4 * (nq + nk), 4 * ntab);
    blockDim.x = 256;
    for (blockIdx.x = 0; blockIdx.x < (unsigned)nt; blockIdx.x++)
        for (threadIdx.x = 0; threadIdx.x < blockDim.x; threadIdx.x++)
            rope(q.data(), k.data(), tab.data(), &pos0, nh, nkv, hd, nrot, nh * hd, nkv * hd);
    for (float v : q) { uint32_t u; std::memcpy(&u, &v, 4); std::printf("%08x\n", u); }
    for (float v : k) { uint32_t u; std::memcpy(&u, &v, 4); std::printf("%08x\n", u); }
    return 0;
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
    if (argc == 3 && std::string(argv[1]) == "--rope") return rope_mode(buf);
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
