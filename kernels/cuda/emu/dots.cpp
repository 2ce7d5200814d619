// Host harness of kernels/tests/cuda_host_emu.rs: `dots FILE` reads
//   u32 ggml type id, u32 n (elements per row), u32 nrows, u32 act_bytes, then nrows weight rows
//   and one activation row (already in the type's activation format), and prints one line per row:
//   the sum over blocks and parts of the type's device `D::dot`, as the matvec kernel's lanes do
//   (here in block order).
// `dots --rope FILE` reads u32 n_head, n_head_kv, head_dim, n_rot, ntok, pos0, n_ctx, then q (ntok, H*D),
//   k (ntok, Hkv*D) and the table (n_ctx, n_rot) as f32, runs the `rope` kernel thread by thread (grid
//   ntok, block 256: it has no barrier or shuffle) and prints q then k as hex bits.
// `dots --quantize|--matmul|--rms|--attn-decode|--attn-prefill|--argmax|--swiglu|--embed-kernel|--kv-store FILE`: whole kernels,
//   launched as kernels/src/cuda/mod.rs launches them, on the inputs kernels/tests/cuda_host_emu.rs writes.
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
#include "../quantize.cu"
#include "../rms_norm.cu"
#include "../attention_decode.cu"
#include "../attention_prefill.cu"
#include "../argmax.cu"
#include "../swiglu.cu"
#include "../kv_store.cu"
#include "../add.cu"

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


// --- whole kernels, launched with the grid and block of kernels/src/cuda/mod.rs ---------------------
struct Reader {
    const std::vector<uint8_t>& b;
    size_t at = 0;
    uint32_t u32() { uint32_t v; std::memcpy(&v, b.data() + at, 4); at += 4; return v; }
    template <class T> std::vector<T> vec(size_t n) {
        std::vector<T> v(n);
        std::memcpy(v.data(), b.data() + at, n * sizeof(T));
        at += n * sizeof(T);
        return v;
    }
};
static void print_f32(const std::vector<float>& v) {
    for (float x : v) { uint32_t u; std::memcpy(&u, &x, 4); std::printf("%08x\n", u); }
}

static int quantize_mode(Reader r) {
    const int ty = (int)r.u32(), n = (int)r.u32(), nt = (int)r.u32();
    auto x = r.vec<float>((size_t)nt * n);
    const int rb = ty == 8 ? n / 32 * 34 : ty == 9 ? n / 32 * 36 : n / 256 * 292;
    const int os = (rb + 3) / 4 * 4;
    std::vector<uint8_t> out((size_t)nt * os, 0xa5);
    if (ty == 15) emu_launch({(unsigned)(n / 256), (unsigned)nt, 1}, {32, 1, 1}, [&] { quantize_q8_k(x.data(), out.data(), n, n, os); });
    else emu_launch({(unsigned)((n / 32 + 3) / 4), (unsigned)nt, 1}, {32, 4, 1}, [&] {
        if (ty == 8) quantize_q8_0(x.data(), out.data(), n, n, os);
        else quantize_q8_1(x.data(), out.data(), n, n, os);
    });
    for (int t = 0; t < nt; t++) {
        for (int i = 0; i < rb; i++) std::printf("%02x", out[(size_t)t * os + i]);
        std::printf("\n");
    }
    return 0;
}

static int matmul_mode(Reader r) {
    const int ty = (int)r.u32(), n = (int)r.u32(), nrows = (int)r.u32(), nt = (int)r.u32(), st = (int)r.u32();
    const int wbytes = (int)r.u32();
    auto w = r.vec<uint8_t>(wbytes);
    auto act = r.vec<uint8_t>((size_t)nt * st);
    std::vector<float> out((size_t)nt * nrows, NAN);
    using K = void (*)(const uint8_t*, const uint8_t*, float*, int, int, int, int);
    K mv = nullptr, mm = nullptr;
    switch (ty) {
        case TY_Q4_0: mv = matvec_q4_0; mm = matmul_q4_0; break;
        case TY_Q4_1: mv = matvec_q4_1; mm = matmul_q4_1; break;
        case TY_Q5_0: mv = matvec_q5_0; mm = matmul_q5_0; break;
        case TY_Q8_0: mv = matvec_q8_0; mm = matmul_q8_0; break;
        case TY_Q4_K: mv = matvec_q4_k; mm = matmul_q4_k; break;
        case TY_Q6_K: mv = matvec_q6_k; mm = matmul_q6_k; break;
        default: return 3;
    }
    const K f = nt == 1 ? mv : mm;
    const unsigned gy = nt == 1 ? 1u : (unsigned)((nt + 7) / 8);
    emu_launch({(unsigned)((nrows + 3) / 4), gy, 1}, {32, 4, 1}, [&] { f(w.data(), act.data(), out.data(), n, nrows, st, nt); });
    print_f32(out);
    return 0;
}

static int rms_mode(Reader r) {
    const int n = (int)r.u32(), nt = (int)r.u32();
    const uint32_t eb = r.u32();
    float eps;
    std::memcpy(&eps, &eb, 4);
    auto x = r.vec<float>((size_t)nt * n);
    auto w = r.vec<float>(n);
    std::vector<float> out((size_t)nt * n, NAN);
    emu_launch({(unsigned)nt, 1, 1}, {256, 1, 1}, [&] { rms_norm(x.data(), w.data(), out.data(), n, eps); });
    print_f32(out);
    return 0;
}

static int attn_mode(Reader r, bool prefill) {
    const int nh = (int)r.u32(), nkv = (int)r.u32(), hd = (int)r.u32(), nctx = (int)r.u32();
    const int pos0 = (int)r.u32(), nt = (int)r.u32();
    const size_t qd = (size_t)nh * hd, kvd = (size_t)nkv * hd;
    auto q = r.vec<float>(nt * qd);
    auto kc = r.vec<__half>(nctx * kvd);
    auto vc = r.vec<__half>(nctx * kvd);
    const float scale = 1.0f / std::sqrt((float)hd);
    std::vector<float> out(nt * qd, NAN);
    if (prefill) {
        emu_launch({(unsigned)nh, (unsigned)((nt + 7) / 8), 1}, {32, 8, 1}, [&] {
            attn_prefill(q.data(), kc.data(), vc.data(), out.data(), &pos0, nt, nh, nkv, hd, scale);
        });
    } else {
        const int chunk = 128, ns = (nctx + chunk - 1) / chunk;
        std::vector<float> part((size_t)nh * ns * (hd + 2), NAN);
        emu_launch({(unsigned)nh, (unsigned)ns, 1}, {32, 1, 1}, [&] {
            attn_decode(q.data(), kc.data(), vc.data(), part.data(), &pos0, nh, nkv, hd, chunk, scale);
        });
        emu_launch({(unsigned)nh, 1, 1}, {(unsigned)hd, 1, 1}, [&] { attn_combine(part.data(), out.data(), hd, ns); });
    }
    print_f32(out);
    return 0;
}

static int argmax_mode(Reader r) {
    const int n = (int)r.u32();
    auto x = r.vec<float>(n);
    uint32_t out = 0xffffffffu;
    emu_launch({1, 1, 1}, {1024, 1, 1}, [&] { argmax(x.data(), n, &out); });
    std::printf("%u\n", out);
    return 0;
}

static int swiglu_mode(Reader r) {
    const int n = (int)r.u32();
    auto g = r.vec<float>(n);
    auto u = r.vec<float>(n);
    emu_launch({(unsigned)((n + 255) / 256), 1, 1}, {256, 1, 1}, [&] { swiglu(g.data(), u.data(), n); });
    print_f32(g);
    return 0;
}


// u32 ty, ncols, nvocab, ntok, row_bytes, then the table and ntok u32 token ids: out (ntok, ncols).
static int embed_kernel_mode(Reader r) {
    const int ty = (int)r.u32(), nc = (int)r.u32(), nv = (int)r.u32(), nt = (int)r.u32(), rb = (int)r.u32();
    auto table = r.vec<uint8_t>((size_t)nv * rb);
    auto tok = r.vec<uint32_t>(nt);
    std::vector<float> out((size_t)nt * nc, NAN);
    emu_launch({(unsigned)((nc + 255) / 256), (unsigned)nt, 1}, {256, 1, 1},
               [&] { embed(table.data(), tok.data(), out.data(), ty, nc, rb, nv); });
    print_f32(out);
    return 0;
}

// u32 kv_dim, n_ctx, pos0, ntok, then k, v (ntok, kv_dim) f32: prints both caches (n_ctx, kv_dim) as
// hex f16 bits, the cache prefilled with 0xc700 (-7.0).
static int kv_store_mode(Reader r) {
    const int kvd = (int)r.u32(), nctx = (int)r.u32(), pos0 = (int)r.u32(), nt = (int)r.u32();
    auto k = r.vec<float>((size_t)nt * kvd);
    auto v = r.vec<float>((size_t)nt * kvd);
    std::vector<__half> kc((size_t)nctx * kvd, __half{0xc700}), vc = kc;
    emu_launch({(unsigned)((kvd + 255) / 256), (unsigned)nt, 1}, {256, 1, 1},
               [&] { kv_store(k.data(), v.data(), kc.data(), vc.data(), &pos0, kvd, kvd, kvd); });
    for (auto h : kc) std::printf("%04x\n", h.bits);
    for (auto h : vc) std::printf("%04x\n", h.bits);
    // And the residual add, x += y over the first n of k and v.
    std::vector<float> x = k;
    const int n = (int)x.size();
    emu_launch({(unsigned)((n + 255) / 256), 1, 1}, {256, 1, 1}, [&] { add_inplace(x.data(), v.data(), n); });
    print_f32(x);
    return 0;
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
    if (argc == 3) {
        const std::string m = argv[1];
        if (m == "--rope") return rope_mode(buf);
        if (m == "--quantize") return quantize_mode(Reader{buf});
        if (m == "--matmul") return matmul_mode(Reader{buf});
        if (m == "--rms") return rms_mode(Reader{buf});
        if (m == "--attn-decode") return attn_mode(Reader{buf}, false);
        if (m == "--attn-prefill") return attn_mode(Reader{buf}, true);
        if (m == "--argmax") return argmax_mode(Reader{buf});
        if (m == "--swiglu") return swiglu_mode(Reader{buf});
        if (m == "--embed-kernel") return embed_kernel_mode(Reader{buf});
        if (m == "--kv-store") return kv_store_mode(Reader{buf});
    }
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
