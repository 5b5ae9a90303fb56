// CPU SGEMM: the Goto/BLIS loop nest over packed panels and a 6x16 AVX2/FMA micro-kernel (gemm_kernel.cpp),
// cache-blocked, with the bias + activation epilogue fused into the last k block, threaded by splitting C
// into one rectangle per thread. Design and measurements: docs/cpu-backend.md.
#include "gemm.h"
#include "gemm_kernel.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <new>

namespace sgld {

// Cache blocking for Zen 3 class cores (32 KiB L1d, 512 KiB L2 per core, shared L3), BLIS' loop order:
//   KC: a KC x NR B micro-panel (32 KiB) is reused from L1/L2 while the A panels stream past it; deep k blocks
//       also mean few passes over C, whose tiles miss the cache when its rows alias (power-of-two ldc);
//   MC: the packed MC x KC A block (288 KiB) stays in L2;
//   NC: the packed KC x NC B block (8 MiB per thread) lives in L3.
// Measured alternatives are in docs/cpu-backend.md.
constexpr int64_t kGemmKC = 512;
constexpr int64_t kGemmMC = 144;   // multiple of MR
constexpr int64_t kGemmNC = 4096;  // multiple of NR

float apply_activation(float x, int32_t activation) {
    switch (activation) {
        case SGLD_ACT_GELU_TANH: {
            const float c = 0.7978845608028654f;  // sqrt(2/pi)
            return 0.5f * x * (1.0f + std::tanh(c * (x + 0.044715f * x * x * x)));
        }
        case SGLD_ACT_GELU_ERF: return 0.5f * x * (1.0f + std::erf(x * 0.7071067811865476f));
        case SGLD_ACT_SILU: return x / (1.0f + std::exp(-x));
        case SGLD_ACT_RELU: return x > 0.0f ? x : 0.0f;
        default: return x;
    }
}

void apply_activation_inplace(float *y, int64_t n, int32_t activation) {
    if (activation == SGLD_ACT_NONE) return;
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, activation256(_mm256_loadu_ps(y + i), activation));
#endif
    for (; i < n; ++i) y[i] = apply_activation(y[i], activation);
}

namespace {

// Per-thread packing buffers (see ScratchBuffer).
thread_local ScratchBuffer tls_pack_a, tls_pack_b;

struct GemmArgs {
    bool ta, tb;
    int64_t m, n, k;
    float alpha;
    const float *a; int64_t lda;
    const float *b; int64_t ldb;
    float beta;
    float *c; int64_t ldc;
    const float *bias;
    int32_t activation;

    const float *a_at(int64_t i, int64_t p) const { return ta ? a + p * lda + i : a + i * lda + p; }
    const float *b_at(int64_t p, int64_t j) const { return tb ? b + j * ldb + p : b + p * ldb + j; }
};

// k == 0 (or alpha == 0): C = act(beta * C + bias), without touching A or B.
void scale_only(const GemmArgs &g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    for (int64_t i = m0; i < m1; ++i) {
        float *row = g.c + i * g.ldc;
        for (int64_t j = n0; j < n1; ++j) {
            float v = g.beta == 0.0f ? 0.0f : g.beta * row[j];
            if (g.bias) v += g.bias[j];
            row[j] = v;
        }
        apply_activation_inplace(row + n0, n1 - n0, g.activation);
    }
}

// Splits n into blocks of at most `block`, of near-equal size rounded up to `multiple` (no thin last block).
int64_t balanced_block(int64_t n, int64_t block, int64_t multiple) {
    int64_t count = (n + block - 1) / block;
    return std::min(block, round_up((n + count - 1) / count, multiple));
}

// At most this many rows, a GEMM is a handful of dot products per weight (a per-sample projection such as a
// timestep embedding) and bound by reading B: B is streamed once, unpacked, instead of packed first.
constexpr int64_t kSmallM = 4;
thread_local ScratchBuffer tls_small_rows;

// C[i, j] for the <= kSmallM rows [m0, m1) and columns [n0, n1).
bool gemm_small_m(const GemmArgs &g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    const int64_t rows = m1 - m0, k = g.k;
    // alpha * op(A) rows, contiguous in k.
    float *ar = tls_small_rows.get(size_t(rows * k));
    if (!ar) return false;
    for (int64_t i = 0; i < rows; ++i)
        for (int64_t p = 0; p < k; ++p) ar[i * k + p] = g.alpha * *g.a_at(m0 + i, p);
    auto finish = [&](int64_t i, int64_t j, float dot) {
        float *c = g.c + (m0 + i) * g.ldc + j;
        float v = dot + (g.beta == 0.0f ? 0.0f : g.beta * *c) + (g.bias ? g.bias[j] : 0.0f);
        *c = apply_activation(v, g.activation);
    };
    if (g.tb) {
        // Column j of op(B) is row j of B: one dot product per (row, column), B read once for all rows.
        for (int64_t j = n0; j < n1; ++j) {
            const float *bj = g.b + j * g.ldb;
            float dots[kSmallM];
            int64_t p = 0;
#if SGLD_HAVE_AVX2
            __m256 acc0[kSmallM], acc1[kSmallM];
            for (int64_t i = 0; i < rows; ++i) acc0[i] = acc1[i] = _mm256_setzero_ps();
            for (; p + 16 <= k; p += 16) {
                const __m256 b0 = _mm256_loadu_ps(bj + p), b1 = _mm256_loadu_ps(bj + p + 8);
                for (int64_t i = 0; i < rows; ++i) {
                    acc0[i] = _mm256_fmadd_ps(_mm256_loadu_ps(ar + i * k + p), b0, acc0[i]);
                    acc1[i] = _mm256_fmadd_ps(_mm256_loadu_ps(ar + i * k + p + 8), b1, acc1[i]);
                }
            }
            for (int64_t i = 0; i < rows; ++i) dots[i] = hsum256(_mm256_add_ps(acc0[i], acc1[i]));
#else
            for (int64_t i = 0; i < rows; ++i) dots[i] = 0.0f;
#endif
            for (; p < k; ++p)
                for (int64_t i = 0; i < rows; ++i) dots[i] += ar[i * k + p] * bj[p];
            for (int64_t i = 0; i < rows; ++i) finish(i, j, dots[i]);
        }
        return true;
    }
    // Row p of B holds op(B)(p, :): stream B's rows in 256-column chunks (contiguous, prefetch-friendly),
    // accumulating each output row chunk in L1, four rows of B per pass over the chunk (a quarter of the
    // accumulator loads and stores).
    constexpr int64_t kChunk = 256;
    alignas(32) float acc[kSmallM][kChunk];
    for (int64_t jc = n0; jc < n1; jc += kChunk) {
        const int64_t w = std::min(kChunk, n1 - jc);
        for (int64_t i = 0; i < rows; ++i) std::fill(acc[i], acc[i] + w, 0.0f);
        int64_t p = 0;
#if SGLD_HAVE_AVX2
        for (; p + 4 <= k; p += 4) {
            const float *b0 = g.b + p * g.ldb + jc, *b1 = b0 + g.ldb, *b2 = b1 + g.ldb, *b3 = b2 + g.ldb;
            // Each row segment starts a new page when ldb is large: fetch the next four rows ourselves.
            if (p + 8 <= k)
                for (int64_t j = 0; j < w; j += 16)
                    for (int q = 4; q < 8; ++q) _mm_prefetch(reinterpret_cast<const char *>(b0 + q * g.ldb + j), _MM_HINT_T0);
            for (int64_t i = 0; i < rows; ++i) {
                const float *ai = ar + i * k + p;
                const __m256 a0 = _mm256_set1_ps(ai[0]), a1 = _mm256_set1_ps(ai[1]);
                const __m256 a2 = _mm256_set1_ps(ai[2]), a3 = _mm256_set1_ps(ai[3]);
                float *ci = acc[i];
                int64_t j = 0;
                for (; j + 8 <= w; j += 8) {
                    __m256 x = _mm256_fmadd_ps(a0, _mm256_loadu_ps(b0 + j), _mm256_load_ps(ci + j));
                    x = _mm256_fmadd_ps(a1, _mm256_loadu_ps(b1 + j), x);
                    x = _mm256_fmadd_ps(a2, _mm256_loadu_ps(b2 + j), x);
                    _mm256_store_ps(ci + j, _mm256_fmadd_ps(a3, _mm256_loadu_ps(b3 + j), x));
                }
                // The same fused steps as the vector lanes, so a column's result never depends on where a
                // thread's column range starts.
                for (; j < w; ++j)
                    ci[j] = std::fma(ai[3], b3[j], std::fma(ai[2], b2[j], std::fma(ai[1], b1[j], std::fma(ai[0], b0[j], ci[j]))));
            }
        }
#endif
        for (; p < k; ++p) {
            const float *bp = g.b + p * g.ldb + jc;
            for (int64_t i = 0; i < rows; ++i) {
                const float av = ar[i * k + p];
                float *ci = acc[i];
#if SGLD_HAVE_AVX2
                for (int64_t j = 0; j < w; ++j) ci[j] = std::fma(av, bp[j], ci[j]);
#else
                for (int64_t j = 0; j < w; ++j) ci[j] += av * bp[j];
#endif
            }
        }
        for (int64_t i = 0; i < rows; ++i)
            for (int64_t j = 0; j < w; ++j) finish(i, jc + j, acc[i][j]);
    }
    return true;
}

// The serial Goto loop nest over the rectangle [m0, m1) x [n0, n1) of C.
bool gemm_rect(const GemmArgs &g, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
    if (m1 <= m0 || n1 <= n0) return true;
    if (g.k == 0 || g.alpha == 0.0f) { scale_only(g, m0, m1, n0, n1); return true; }
    if (g.m <= kSmallM) return gemm_small_m(g, m0, m1, n0, n1);  // by the whole GEMM: same path on any split
    const int64_t MR = kGemmMR, NR = kGemmNR;
    const int64_t kc_max = balanced_block(g.k, kGemmKC, 4);
    const int64_t mc_max = balanced_block(m1 - m0, kGemmMC, MR);
    const int64_t nc_max = balanced_block(n1 - n0, kGemmNC, NR);
    float *pa = tls_pack_a.get(size_t(round_up(mc_max, MR) * kc_max));
    float *pb = tls_pack_b.get(size_t(round_up(nc_max, NR) * kc_max));
    if (!pa || !pb) return false;

    alignas(32) float edge_tile[kGemmMR * kGemmNR];
    alignas(32) float edge_bias[kGemmNR];
    for (int64_t jc = n0; jc < n1; jc += nc_max) {
        const int64_t nc = std::min(nc_max, n1 - jc);
        for (int64_t pc = 0; pc < g.k; pc += kc_max) {
            const int64_t kc = std::min(kc_max, g.k - pc);
            const bool first = pc == 0, last = pc + kc == g.k;
            // A transposed B (a Linear weight) is packed one micro-panel at a time during the first row block,
            // right before the kernels that read it (so it is still in L1 then); later row blocks reuse the
            // packed block from L2/L3. A row-major B is packed whole first, reading along its rows (see
            // pack_b_panels).
            const bool pack_lazily = g.tb;
            if (!pack_lazily) pack_b_panels(false, kc, nc, g.b_at(pc, jc), g.ldb, pb);
            for (int64_t ic = m0; ic < m1; ic += mc_max) {
                const int64_t mc = std::min(mc_max, m1 - ic);
                pack_a_panels(g.ta, mc, kc, g.a_at(ic, pc), g.lda, g.alpha, pa);
                for (int64_t jr = 0; jr < nc; jr += NR) {
                    const int64_t cols = std::min(NR, nc - jr);
                    float *b_panel = pb + jr * kc;
                    if (pack_lazily && ic == m0) pack_b_panels(true, kc, cols, g.b_at(pc, jc + jr), g.ldb, b_panel);
                    TileEpilogue e;
                    e.load = !first ? TileLoad::Accumulate : g.beta != 0.0f ? TileLoad::Beta : TileLoad::Overwrite;
                    e.beta = g.beta;
                    if (last) {
                        e.activation = g.activation;
                        if (g.bias) {
                            if (cols == NR) e.bias = g.bias + jc + jr;
                            else {
                                std::fill(edge_bias, edge_bias + NR, 0.0f);
                                std::copy(g.bias + jc + jr, g.bias + jc + jr + cols, edge_bias);
                                e.bias = edge_bias;
                            }
                        }
                    }
                    for (int64_t ir = 0; ir < mc; ir += MR) {
                        const int64_t rows = std::min(MR, mc - ir);
                        float *c = g.c + (ic + ir) * g.ldc + jc + jr;
                        const float *a_panel = pa + ir * kc;
                        if (rows == MR && cols == NR) {
                            gemm_micro_kernel(kc, a_panel, b_panel, c, g.ldc, e);
                            continue;
                        }
                        // Edge tile: run the kernel on a full scratch tile and copy the valid part.
                        if (e.load != TileLoad::Overwrite)
                            for (int64_t i = 0; i < rows; ++i) std::copy(c + i * g.ldc, c + i * g.ldc + cols, edge_tile + i * NR);
                        gemm_micro_kernel(kc, a_panel, b_panel, edge_tile, NR, e);
                        for (int64_t i = 0; i < rows; ++i) std::copy(edge_tile + i * NR, edge_tile + i * NR + cols, c + i * g.ldc);
                    }
                }
            }
        }
    }
    return true;
}

struct Rect { int64_t m0, m1, n0, n1; };

// Splits C into `parts` rectangles (a tm x tn grid, tm * tn = parts) that minimise the largest rectangle's
// cost: its multiply-adds plus the packing it repeats (A once per NC block, B once per rectangle).
std::vector<Rect> split_rectangles(int64_t m, int64_t n, int64_t k, int parts) {
    int best_tm = 1;
    double best_cost = -1;
    for (int tm = 1; tm <= parts; ++tm) {
        if (parts % tm) continue;
        const int tn = parts / tm;
        const double mr = double(round_up((m + tm - 1) / tm, kGemmMR)), nr = double(round_up((n + tn - 1) / tn, kGemmNR));
        const double cost = mr * nr * double(k) + 8.0 * double(k) * (mr * std::ceil(nr / double(kGemmNC)) + nr);
        if (best_cost < 0 || cost < best_cost) { best_cost = cost; best_tm = tm; }
    }
    const int tm = best_tm, tn = parts / tm;
    const int64_t mstep = round_up((m + tm - 1) / tm, kGemmMR), nstep = round_up((n + tn - 1) / tn, kGemmNR);
    std::vector<Rect> rects;
    for (int64_t i = 0; i < m; i += mstep)
        for (int64_t j = 0; j < n; j += nstep) rects.push_back({i, std::min(m, i + mstep), j, std::min(n, j + nstep)});
    return rects;
}

// Below this many multiply-adds a GEMM runs on the caller alone: waking the pool costs a few microseconds.
constexpr double kParallelMinMacs = 1 << 18;

bool run_sgemm(sgld_context_t ctx, const GemmArgs &g) {
    const int threads = ctx ? ctx->pool.size() : 1;
    if (threads == 1 || double(g.m) * double(g.n) * double(g.k) < kParallelMinMacs)
        return gemm_rect(g, 0, g.m, 0, g.n);
    if (g.m <= kSmallM) {  // split the columns only
        std::atomic<bool> ok{true};
        parallel_for(ctx, g.n, 64, [&](int64_t j0, int64_t j1) { if (!gemm_rect(g, 0, g.m, j0, j1)) ok.store(false); });
        return ok.load();
    }
    const std::vector<Rect> rects = split_rectangles(g.m, g.n, g.k, threads);
    std::atomic<bool> ok{true};
    ctx->pool.run(int64_t(rects.size()), [&](int64_t t) {
        const Rect &r = rects[size_t(t)];
        if (!gemm_rect(g, r.m0, r.m1, r.n0, r.n1)) ok.store(false);
    });
    return ok.load();
}

GemmArgs make_args(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                   const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias, int32_t act) {
    return GemmArgs{ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act};
}

}  // namespace

void sgemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias, int32_t act) {
    if (!gemm_rect(make_args(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act), 0, m, 0, n))
        throw std::bad_alloc();
}

void sgemm(sgld_context_t ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
           int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
           int32_t act) {
    if (!run_sgemm(ctx, make_args(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act)))
        throw std::bad_alloc();
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_gemm(sgld_context_t ctx, int32_t dtype, int32_t trans_a, int32_t trans_b, int64_t m,
                                 int64_t n, int64_t k, float alpha, const void *a, int64_t lda, int64_t stride_a,
                                 const void *b, int64_t ldb, int64_t stride_b, float beta, void *c, int64_t ldc,
                                 int64_t stride_c, int64_t batch, const void *bias, int32_t activation) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_gemm")) return s;
    if (m < 0 || n < 0 || k < 0 || batch < 0) return fail(SGLD_ERR_INVALID, "sgld_gemm: negative size");
    if (activation < SGLD_ACT_NONE || activation > SGLD_ACT_RELU)
        return fail(SGLD_ERR_INVALID, "sgld_gemm: unknown activation %d", activation);
    if (m == 0 || n == 0 || batch == 0) return SGLD_OK;
    SGLD_CHECK_PTR(c);
    if (k > 0) { SGLD_CHECK_PTR(a); SGLD_CHECK_PTR(b); }
    if (ldc < n) return fail(SGLD_ERR_INVALID, "sgld_gemm: ldc %lld < n %lld", (long long)ldc, (long long)n);
    if (k > 0) {
        const int64_t a_width = trans_a ? m : k, b_width = trans_b ? k : n;
        if (lda < a_width) return fail(SGLD_ERR_INVALID, "sgld_gemm: lda %lld < %lld", (long long)lda, (long long)a_width);
        if (ldb < b_width) return fail(SGLD_ERR_INVALID, "sgld_gemm: ldb %lld < %lld", (long long)ldb, (long long)b_width);
    }
    const float *A = static_cast<const float *>(a), *B = static_cast<const float *>(b), *bi = static_cast<const float *>(bias);
    float *C = static_cast<float *>(c);
    const int threads = ctx->pool.size();
    try {
        if (batch > 1 && (batch % threads == 0 || double(m) * double(n) * double(k) < kParallelMinMacs)) {
            // Whole batch items per thread: no shared panels, no split.
            std::atomic<bool> ok{true};
            parallel_for(ctx, batch, 1, [&](int64_t b0, int64_t b1) {
                try {
                    for (int64_t bt = b0; bt < b1; ++bt)
                        sgemm_serial(trans_a, trans_b, m, n, k, alpha, A + bt * stride_a, lda, B + bt * stride_b, ldb,
                                     beta, C + bt * stride_c, ldc, bi, activation);
                } catch (const std::bad_alloc &) { ok.store(false); }
            });
            if (!ok.load()) throw std::bad_alloc();
        } else {
            for (int64_t bt = 0; bt < batch; ++bt)
                sgemm(ctx, trans_a, trans_b, m, n, k, alpha, A + bt * stride_a, lda, B + bt * stride_b, ldb, beta,
                      C + bt * stride_c, ldc, bi, activation);
        }
    } catch (const std::bad_alloc &) {
        return fail(SGLD_ERR_NO_MEMORY, "sgld_gemm: out of memory for packing buffers");
    }
    return SGLD_OK;
}
