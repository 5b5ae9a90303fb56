// Flash-style multi-head attention and the log-sum-exp merge of partial results (sgld.h), CPU backend.
//
// One task = one (batch, head) pair and a range of queries. The task packs K^T and V once into GEMM B panels
// (O(kv_len x head_dim) workspace), then walks query tiles of kQueryTile rows and, inside a tile, key blocks of
// kKeyBlock keys. For each micro-panel of 6 query rows: S = (scale Q) K^T for the block (qk_micro_kernel: the
// GEMM micro-kernel's k loop storing straight into the score rows); the online softmax on S's rows while they
// are in L1 (running max m and sum l, earlier output rescaled by exp(m_old - m_new), P = exp(S - m) in
// place); O += P V with a micro-kernel that reads P's rows where they are (pv_micro_kernel: no packing pass).
// No seq x seq buffer exists anywhere. Design notes and measurements: docs/cpu-backend.md.
#include "gemm_kernel.h"
#include "gemm_kstep_asm.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace sgld {
namespace {

constexpr int64_t kQueryTile = 96;  // rows of Q per tile (16 micro-tiles of 6); O tile 96 x 128 = 48 KiB
constexpr int64_t kKeyBlock = 256;  // keys per block (multiple of NR); K, V blocks 2 x 128 KiB at dim 128 in L2;
                                    // one micro-panel's S (then P) 6 KiB in L1
constexpr float kNegInf = -std::numeric_limits<float>::infinity();

struct AttentionArgs {
    int64_t batch, heads, q_len, kv_len, head_dim;
    const float *q, *k, *v;
    float *out;
    const int64_t *qs, *ks, *vs, *os;  // [3]: batch, seq, head
    float *lse;
    float scale;
    const float *bias;
    const int64_t *bias_s;  // [4]: b, h, i, j
    const float *key_bias;
    int64_t key_bias_sb;
};

// Workspace of one task, kept per thread.
struct AttentionScratch {
    ScratchBuffer k_panels, v_panels, q_panels, scores, out_tile, row_state;
};
thread_local AttentionScratch tls_scratch;

// s[j] += bias_row[j * bias_sj] + key_bias[j] (either may be null) and returns max_j s[j].
float add_biases_and_max(float *s, int64_t n, const float *bias_row, int64_t bias_sj, const float *key_bias) {
    int64_t j = 0;
    float mx = kNegInf;
#if SGLD_HAVE_AVX2
    __m256 vmax = _mm256_set1_ps(kNegInf);
    for (; j + 8 <= n; j += 8) {
        __m256 x = _mm256_loadu_ps(s + j);
        if (bias_row) {
            if (bias_sj == 1) x = _mm256_add_ps(x, _mm256_loadu_ps(bias_row + j));
            else if (bias_sj == 0) x = _mm256_add_ps(x, _mm256_set1_ps(bias_row[0]));
            else {
                alignas(32) float tmp[8];
                for (int u = 0; u < 8; ++u) tmp[u] = bias_row[(j + u) * bias_sj];
                x = _mm256_add_ps(x, _mm256_load_ps(tmp));
            }
        }
        if (key_bias) x = _mm256_add_ps(x, _mm256_loadu_ps(key_bias + j));
        _mm256_storeu_ps(s + j, x);
        vmax = _mm256_max_ps(vmax, x);
    }
    mx = hmax256(vmax);
#endif
    for (; j < n; ++j) {
        float x = s[j];
        if (bias_row) x += bias_row[j * bias_sj];
        if (key_bias) x += key_bias[j];
        s[j] = x;
        mx = std::max(mx, x);
    }
    return mx;
}

void scale_row(float *x, int64_t n, float f) {
    int64_t j = 0;
#if SGLD_HAVE_AVX2
    const __m256 vf = _mm256_set1_ps(f);
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), vf));
#endif
    for (; j < n; ++j) x[j] *= f;
}

#if SGLD_HAVE_AVX2
// exp256 (gemm_simd.h) for x <= 0 only, bit for bit: the upper clamp is a no-op there, so it is left out.
// Below -88.38 (and for -inf) the result is exactly 0; NaN stays NaN.
inline __m256 exp_nonpositive256(__m256 x) { return exp256_clamped(_mm256_max_ps(_mm256_set1_ps(-88.3762626647949f), x)); }
#endif

// s[j] = exp(s[j] - m) in place over n values; returns their sum. m is finite and no smaller than any s[j].
float exp_shift_and_sum(float *s, int64_t n, float m) {
    int64_t j = 0;
    float sum = 0.0f;
#if SGLD_HAVE_AVX2
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        const __m256 e = exp_nonpositive256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    sum = hsum256(vsum);
#endif
    for (; j < n; ++j) { s[j] = std::exp(s[j] - m); sum += s[j]; }
    return sum;
}

// O[0:6, 0:16] (row stride ldo) += P[0:6, 0:kc] . V panel, where P is row-major with row stride kKeyBlock (the
// score rows themselves, no packing) and the V panel is a GEMM B panel (kc x 16). The k loop is shaped like the
// GEMM micro-kernel's (gemm_kstep_asm.h), with P's six rows broadcast from fixed offsets of one pointer.
void pv_micro_kernel(int64_t kc, const float *p, const float *v_panel, float *o, int64_t ldo);

#if SGLD_HAVE_AVX2
static_assert(kGemmMR == 6 && kGemmNR == 16, "pv_micro_kernel is written for 6 x 16 tiles");
static_assert(kKeyBlock == 256, "the micro-kernels' score row offsets are 256 floats (1024 bytes)");

// One k step: two V vectors, six P broadcasts (rows 1024 bytes apart), twelve FMAs into ymm0-11.
#define SGLD_PV_KSTEP_ASM(PO, VO)                                                        \
    "vmovaps " #VO "(%[v]), %%ymm12\n\t"                                                 \
    "vmovaps " #VO "+32(%[v]), %%ymm13\n\t"                                              \
    "vbroadcastss " #PO "(%[p]), %%ymm14\n\t"                                            \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm0\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm1\n\t"                                           \
    "vbroadcastss " #PO "+1024(%[p]), %%ymm15\n\t"                                       \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm2\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm3\n\t"                                           \
    "vbroadcastss " #PO "+2048(%[p]), %%ymm14\n\t"                                       \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm4\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm5\n\t"                                           \
    "vbroadcastss " #PO "+3072(%[p]), %%ymm15\n\t"                                       \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm6\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm7\n\t"                                           \
    "vbroadcastss " #PO "+4096(%[p]), %%ymm14\n\t"                                       \
    "vfmadd231ps %%ymm12, %%ymm14, %%ymm8\n\t"                                           \
    "vfmadd231ps %%ymm13, %%ymm14, %%ymm9\n\t"                                           \
    "vbroadcastss " #PO "+5120(%[p]), %%ymm15\n\t"                                       \
    "vfmadd231ps %%ymm12, %%ymm15, %%ymm10\n\t"                                          \
    "vfmadd231ps %%ymm13, %%ymm15, %%ymm11\n\t"

void pv_micro_kernel(int64_t kc, const float *p, const float *v_panel, float *o, int64_t ldo) {
    for (int r = 0; r < 6; ++r) {
        _mm_prefetch(reinterpret_cast<const char *>(o + r * ldo), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char *>(o + r * ldo + 15), _MM_HINT_T0);
    }
    alignas(32) float acc[96];
    int64_t k_iter = kc / 4, k_left = kc % 4;
    __asm__ volatile(
        SGLD_ZERO_ACC_ASM
        "test %[k_iter], %[k_iter]\n\t"
        "jz 2f\n\t"
        ".p2align 5\n"
        "1:\n\t"
        SGLD_PV_KSTEP_ASM(0, 0)
        SGLD_PV_KSTEP_ASM(4, 64)
        SGLD_PV_KSTEP_ASM(8, 128)
        SGLD_PV_KSTEP_ASM(12, 192)
        "add $16, %[p]\n\t"
        "add $256, %[v]\n\t"
        "dec %[k_iter]\n\t"
        "jnz 1b\n"
        "2:\n\t"
        "test %[k_left], %[k_left]\n\t"
        "jz 4f\n"
        "3:\n\t"
        SGLD_PV_KSTEP_ASM(0, 0)
        "add $4, %[p]\n\t"
        "add $64, %[v]\n\t"
        "dec %[k_left]\n\t"
        "jnz 3b\n"
        "4:\n\t"
        SGLD_STORE_ACC_ASM
        : [p] "+r"(p), [v] "+r"(v_panel), [k_iter] "+r"(k_iter), [k_left] "+r"(k_left)
        : [acc] "r"(acc)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
    for (int r = 0; r < 6; ++r) {
        float *row = o + r * ldo;
        _mm256_storeu_ps(row, _mm256_add_ps(_mm256_loadu_ps(row), _mm256_load_ps(acc + 16 * r)));
        _mm256_storeu_ps(row + 8, _mm256_add_ps(_mm256_loadu_ps(row + 8), _mm256_load_ps(acc + 16 * r + 8)));
    }
}
#undef SGLD_PV_KSTEP_ASM

#else  // portable fallback, same contract

void pv_micro_kernel(int64_t kc, const float *p, const float *v_panel, float *o, int64_t ldo) {
    float acc[kGemmMR][kGemmNR] = {};
    for (int64_t k = 0; k < kc; ++k, v_panel += kGemmNR)
        for (int64_t i = 0; i < kGemmMR; ++i)
            for (int64_t j = 0; j < kGemmNR; ++j) acc[i][j] += p[i * kKeyBlock + k] * v_panel[j];
    for (int64_t i = 0; i < kGemmMR; ++i)
        for (int64_t j = 0; j < kGemmNR; ++j) o[i * ldo + j] += acc[i][j];
}

#endif

// S[0:6, 0:16] (rows kKeyBlock floats apart) = Q panel . K panel over kc = head_dim steps: the GEMM micro-kernel
// (packed 6-row A panel, packed 16-column B panel) with its accumulators stored straight into the score rows
// (no staging tile and no epilogue choices: scores are only ever overwritten).
void qk_micro_kernel(int64_t kc, const float *q_panel, const float *k_panel, float *s);

#if SGLD_HAVE_AVX2

void qk_micro_kernel(int64_t kc, const float *q_panel, const float *k_panel, float *s) {
    int64_t k_iter = kc / 4, k_left = kc % 4;
    __asm__ volatile(
        SGLD_ZERO_ACC_ASM
        SGLD_PANEL_KLOOP_ASM("")
        "vmovups %%ymm0, 0(%[s])\n\t"
        "vmovups %%ymm1, 32(%[s])\n\t"
        "vmovups %%ymm2, 1024(%[s])\n\t"
        "vmovups %%ymm3, 1056(%[s])\n\t"
        "vmovups %%ymm4, 2048(%[s])\n\t"
        "vmovups %%ymm5, 2080(%[s])\n\t"
        "vmovups %%ymm6, 3072(%[s])\n\t"
        "vmovups %%ymm7, 3104(%[s])\n\t"
        "vmovups %%ymm8, 4096(%[s])\n\t"
        "vmovups %%ymm9, 4128(%[s])\n\t"
        "vmovups %%ymm10, 5120(%[s])\n\t"
        "vmovups %%ymm11, 5152(%[s])\n\t"
        : [a] "+r"(q_panel), [b] "+r"(k_panel), [k_iter] "+r"(k_iter), [k_left] "+r"(k_left)
        : [s] "r"(s)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
}

#else  // portable fallback, same contract

void qk_micro_kernel(int64_t kc, const float *q_panel, const float *k_panel, float *s) {
    float acc[kGemmMR][kGemmNR] = {};
    for (int64_t p = 0; p < kc; ++p, q_panel += kGemmMR, k_panel += kGemmNR)
        for (int64_t i = 0; i < kGemmMR; ++i)
            for (int64_t j = 0; j < kGemmNR; ++j) acc[i][j] += q_panel[i] * k_panel[j];
    for (int64_t i = 0; i < kGemmMR; ++i)
        for (int64_t j = 0; j < kGemmNR; ++j) s[i * kKeyBlock + j] = acc[i][j];
}

#endif

// max_j s[j] over n values, read only.
float row_max_of(const float *s, int64_t n) {
    int64_t j = 0;
    float mx = kNegInf;
#if SGLD_HAVE_AVX2
    __m256 v0 = _mm256_set1_ps(kNegInf), v1 = v0;
    for (; j + 16 <= n; j += 16) {
        v0 = _mm256_max_ps(v0, _mm256_loadu_ps(s + j));
        v1 = _mm256_max_ps(v1, _mm256_loadu_ps(s + j + 8));
    }
    if (j + 8 <= n) { v0 = _mm256_max_ps(v0, _mm256_loadu_ps(s + j)); j += 8; }
    mx = hmax256(_mm256_max_ps(v0, v1));
#endif
    for (; j < n; ++j) mx = std::max(mx, s[j]);
    return mx;
}

// Attention for queries [q0, q1) of one (b, h). Returns false when the workspace could not be allocated.
//
// Loops: query tile (kQueryTile rows; its O tile and the key block's K and V panels stay in L2) > key block
// (kKeyBlock keys) > micro-panel of MR query rows. Each micro-panel runs its whole softmax step in L1: its
// MR x kKeyBlock score rows are computed, reduced to row maxima, exponentiated in place, and multiplied into O
// by pv_micro_kernel reading them where they are (no packing pass) before the next micro-panel starts.
bool attend_range(const AttentionArgs &g, int64_t b, int64_t h, int64_t q0, int64_t q1) {
    const int64_t D = g.head_dim, Dp = round_up(D, kGemmNR), kv = g.kv_len;
    const int64_t MR = kGemmMR, NR = kGemmNR;
    const int64_t tile_rows = round_up(std::min(kQueryTile, q1 - q0), MR);
    AttentionScratch &ws = tls_scratch;
    float *k_panels = ws.k_panels.get(size_t(round_up(kv, NR) * D));
    float *v_panels = ws.v_panels.get(size_t(kv * Dp));
    float *q_panels = ws.q_panels.get(size_t(tile_rows * D));
    float *scores = ws.scores.get(size_t(MR * kKeyBlock));
    float *out_tile = ws.out_tile.get(size_t(tile_rows * Dp));
    float *row_state = ws.row_state.get(size_t(2 * tile_rows));
    if (!k_panels || !v_panels || !q_panels || !scores || !out_tile || !row_state) return false;
    float *row_max = row_state, *row_sum = row_state + tile_rows;

    const float *kb = g.k + b * g.ks[0] + h * g.ks[2];
    const float *vb = g.v + b * g.vs[0] + h * g.vs[2];
    // K^T as B panels (op(B)(d, j) = K[j, d]), V as B panels (op(B)(j, d) = V[j, d]).
    pack_b_panels(true, D, kv, kb, g.ks[1], k_panels);
    pack_b_panels(false, kv, D, vb, g.vs[1], v_panels);

    const float *key_bias = g.key_bias ? g.key_bias + b * g.key_bias_sb : nullptr;
    const bool biased = g.bias || key_bias;

    for (int64_t i0 = q0; i0 < q1; i0 += kQueryTile) {
        const int64_t rows = std::min(kQueryTile, q1 - i0), rows_p = round_up(rows, MR);
        pack_a_panels(false, rows, D, g.q + b * g.qs[0] + i0 * g.qs[1] + h * g.qs[2], g.qs[1], g.scale, q_panels);
        std::fill(out_tile, out_tile + rows_p * Dp, 0.0f);
        std::fill(row_max, row_max + rows_p, kNegInf);
        std::fill(row_sum, row_sum + rows_p, 0.0f);

        for (int64_t j0 = 0; j0 < kv; j0 += kKeyBlock) {
            const int64_t cols = std::min(kKeyBlock, kv - j0), cols_p = round_up(cols, NR);
            const bool last_block = j0 + kKeyBlock >= kv;
            for (int64_t ir = 0; ir < rows_p; ir += MR) {
                // The output rows are written once, at the end of the tile, scattered head_dim floats apart a
                // whole token row: fetch their lines for writing now, one micro-panel at a time, so the final
                // stores hit cache instead of waiting on memory (they were ~10% of the non-GEMM time).
                if (last_block) {
                    for (int64_t i = ir; i < std::min(ir + MR, rows); ++i) {
                        const char *o = reinterpret_cast<const char *>(g.out + b * g.os[0] + (i0 + i) * g.os[1] + h * g.os[2]);
                        for (int64_t byte = 0; byte < D * int64_t(sizeof(float)); byte += 64) __builtin_prefetch(o + byte, 1, 3);
                    }
                    // Likewise the next tile's query rows, which pack_a_panels reads right after this tile.
                    for (int64_t i = i0 + kQueryTile + ir; i < std::min(i0 + kQueryTile + ir + MR, q1); ++i) {
                        const char *qrow = reinterpret_cast<const char *>(g.q + b * g.qs[0] + i * g.qs[1] + h * g.qs[2]);
                        for (int64_t byte = 0; byte < D * int64_t(sizeof(float)); byte += 64) __builtin_prefetch(qrow + byte, 0, 3);
                    }
                }
                // S = (scale Q) K^T for MR rows; padded key columns hold zeros and are never read.
                for (int64_t jr = 0; jr < cols_p; jr += NR)
                    qk_micro_kernel(D, q_panels + ir * D, k_panels + (j0 + jr) * D, scores + jr);
                // Online softmax per row: m_new = max(m, block max), P = exp(S - m_new),
                // l = l * exp(m - m_new) + sum P, O *= exp(m - m_new). Padded query rows (Q = 0) just see S = 0.
                float shift[kGemmMR];
                bool live[kGemmMR];
                for (int64_t r = 0; r < MR; ++r) {
                    const int64_t i = ir + r;
                    float *s = scores + r * kKeyBlock;
                    float block_max;
                    if (biased && i < rows) {
                        const float *bias_row = g.bias ? g.bias + b * g.bias_s[0] + h * g.bias_s[1] + (i0 + i) * g.bias_s[2] + j0 * g.bias_s[3] : nullptr;
                        block_max = add_biases_and_max(s, cols, bias_row, g.bias ? g.bias_s[3] : 0, key_bias ? key_bias + j0 : nullptr);
                    } else {
                        block_max = row_max_of(s, cols);
                    }
                    const float m_old = row_max[i], m_new = std::max(m_old, block_max);
                    // Every key so far masked: this block contributes nothing. Shift 0 turns its -inf scores
                    // into P = 0 (exp256 is exactly 0 there).
                    live[r] = m_new != kNegInf;
                    shift[r] = live[r] ? m_new : 0.0f;
                    if (!live[r]) continue;
                    if (m_old != m_new && m_old != kNegInf) {
                        const float alpha = std::exp(m_old - m_new);
                        row_sum[i] *= alpha;
                        scale_row(out_tile + i * Dp, Dp, alpha);
                    }
                    row_max[i] = m_new;
                }
                for (int64_t r = 0; r < MR; ++r) {
                    const float sum = exp_shift_and_sum(scores + r * kKeyBlock, cols, shift[r]);
                    if (live[r]) row_sum[ir + r] += sum;
                }
                // O += P V over this key block, P read in place (kc = the block's real key count).
                for (int64_t dr = 0; dr < Dp; dr += NR)
                    pv_micro_kernel(cols, scores, v_panels + dr * kv + j0 * NR, out_tile + ir * Dp + dr, Dp);
            }
        }
        // out = O / l; lse = m + log l. A row with no unmasked key has l = 0: out 0, lse -inf.
        for (int64_t i = 0; i < rows; ++i) {
            float *o = g.out + b * g.os[0] + (i0 + i) * g.os[1] + h * g.os[2];
            const float l = row_sum[i];
            const float inv = l > 0.0f ? 1.0f / l : 0.0f;
            const float *src = out_tile + i * Dp;
            for (int64_t d = 0; d < D; ++d) o[d] = src[d] * inv;
            if (g.lse) g.lse[(b * g.heads + h) * g.q_len + i0 + i] = l > 0.0f ? row_max[i] + std::log(l) : kNegInf;
        }
    }
    return true;
}

int64_t gcd64(int64_t a, int64_t b) { while (b) { int64_t t = a % b; a = b; b = t; } return a; }

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_attention(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t heads, int64_t q_len,
                                      int64_t kv_len, int64_t head_dim, const void *q, const int64_t *q_strides,
                                      const void *k, const int64_t *k_strides, const void *v,
                                      const int64_t *v_strides, void *out, const int64_t *out_strides, float *lse,
                                      float scale, const float *bias, const int64_t *bias_strides,
                                      const float *key_bias, int64_t key_bias_sb) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_attention")) return s;
    if (batch < 0 || heads < 0 || q_len < 0 || kv_len < 0 || head_dim < 1)
        return fail(SGLD_ERR_INVALID, "sgld_attention: bad sizes (batch %lld, heads %lld, q_len %lld, kv_len %lld, head_dim %lld)",
                    (long long)batch, (long long)heads, (long long)q_len, (long long)kv_len, (long long)head_dim);
    if (batch == 0 || heads == 0 || q_len == 0) return SGLD_OK;
    SGLD_CHECK_PTR(q); SGLD_CHECK_PTR(q_strides); SGLD_CHECK_PTR(out); SGLD_CHECK_PTR(out_strides);
    if (kv_len > 0) { SGLD_CHECK_PTR(k); SGLD_CHECK_PTR(k_strides); SGLD_CHECK_PTR(v); SGLD_CHECK_PTR(v_strides); }
    if (bias && !bias_strides) return fail(SGLD_ERR_INVALID, "sgld_attention: bias given without bias_strides");

    static const int64_t no_strides[3] = {0, 0, 0};
    AttentionArgs g{batch, heads, q_len, kv_len, head_dim,
                    static_cast<const float *>(q), static_cast<const float *>(k), static_cast<const float *>(v),
                    static_cast<float *>(out), q_strides, kv_len > 0 ? k_strides : no_strides,
                    kv_len > 0 ? v_strides : no_strides, out_strides, lse, scale, bias, bias_strides, key_bias,
                    key_bias_sb};

    // Tasks: (b, h) pairs times query chunks, enough chunks that the task count is a multiple of the thread
    // count (each chunk repacks K and V, so no more than needed), and never under one query tile per chunk.
    const int64_t pairs = batch * heads, threads = ctx->pool.size();
    const int64_t q_tiles = (q_len + kQueryTile - 1) / kQueryTile;
    const int64_t chunks = std::max<int64_t>(1, std::min(q_tiles, threads / gcd64(pairs, threads)));
    const int64_t tiles_per_chunk = (q_tiles + chunks - 1) / chunks;
    std::atomic<bool> ok{true};
    auto task = [&](int64_t t) {
        const int64_t pair = t / chunks, chunk = t % chunks;
        const int64_t q0 = std::min(q_len, chunk * tiles_per_chunk * kQueryTile);
        const int64_t q1 = std::min(q_len, (chunk + 1) * tiles_per_chunk * kQueryTile);
        if (q0 < q1 && !attend_range(g, pair / heads, pair % heads, q0, q1)) ok.store(false);
    };
    const double work = double(q_len) * double(kv_len + 1) * double(head_dim) * double(pairs);
    if (threads == 1 || work < double(1 << 16)) for (int64_t t = 0; t < pairs * chunks; ++t) task(t);
    else ctx->pool.run(pairs * chunks, task);
    if (!ok.load()) return fail(SGLD_ERR_NO_MEMORY, "sgld_attention: out of memory for the workspace");
    return SGLD_OK;
}

extern "C" sgld_status sgld_attention_merge(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t heads,
                                            int64_t seq, int64_t head_dim, void *out_acc,
                                            const int64_t *acc_strides, float *lse_acc, const void *out_part,
                                            const int64_t *part_strides, const float *lse_part) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_attention_merge")) return s;
    if (batch < 0 || heads < 0 || seq < 0 || head_dim < 1)
        return fail(SGLD_ERR_INVALID, "sgld_attention_merge: bad sizes");
    if (batch == 0 || heads == 0 || seq == 0) return SGLD_OK;
    SGLD_CHECK_PTR(out_acc); SGLD_CHECK_PTR(acc_strides); SGLD_CHECK_PTR(lse_acc);
    SGLD_CHECK_PTR(out_part); SGLD_CHECK_PTR(part_strides); SGLD_CHECK_PTR(lse_part);
    float *acc = static_cast<float *>(out_acc);
    const float *part = static_cast<const float *>(out_part);
    const int64_t rows = batch * heads * seq;  // index (b, h, s) as lse is laid out
    parallel_for(ctx, rows, 256, [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t b = r / (heads * seq), h = (r / seq) % heads, s = r % seq;
            const float la = lse_acc[r], lp = lse_part[r], mx = std::max(la, lp);
            if (mx == kNegInf) continue;  // both empty: the accumulator stays as it is (zero by contract)
            const float wa = std::exp(la - mx), wp = std::exp(lp - mx), sum = wa + wp;
            const float fa = wa / sum, fp = wp / sum;
            float *o = acc + b * acc_strides[0] + s * acc_strides[1] + h * acc_strides[2];
            const float *p = part + b * part_strides[0] + s * part_strides[1] + h * part_strides[2];
            for (int64_t d = 0; d < head_dim; ++d) o[d] = o[d] * fa + p[d] * fp;
            lse_acc[r] = mx + std::log(sum);
        }
    });
    return SGLD_OK;
}
