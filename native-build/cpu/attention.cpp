// Flash-style multi-head attention and the log-sum-exp merge of partial results (sgld.h), CPU backend.
//
// One task = one (batch, head) pair and a range of queries. The task packs K^T and V once into GEMM B panels
// (O(kv_len x head_dim) workspace), then walks query tiles of kQueryTile rows: S = (scale Q) K^T for one block
// of kKeyBlock keys at a time with the GEMM micro-kernel, online softmax on S's rows (running max m and sum l,
// earlier output rescaled by exp(m_old - m_new)), and O += P V with the same micro-kernel. No seq x seq
// buffer exists anywhere. Design notes and measurements: docs/cpu-backend.md.
#include "gemm_kernel.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace sgld {
namespace {

constexpr int64_t kQueryTile = 96;  // rows of Q per tile (16 micro-tiles of 6); O tile 96 x 128 = 48 KiB
constexpr int64_t kKeyBlock = 256;  // keys per block (multiple of NR); S tile 96 x 256 = 96 KiB; all in L2
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
    ScratchBuffer k_panels, v_panels, q_panels, scores, p_panels, out_tile, row_state;
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

// s[j] = exp(s[j] - m) in place; returns the sum. m is finite.
float exp_shift_and_sum(float *s, int64_t n, float m) {
    int64_t j = 0;
    float sum = 0.0f;
#if SGLD_HAVE_AVX2
    const __m256 vm = _mm256_set1_ps(m);
    __m256 vsum = _mm256_setzero_ps();
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
        _mm256_storeu_ps(s + j, e);
        vsum = _mm256_add_ps(vsum, e);
    }
    sum = hsum256(vsum);
#endif
    for (; j < n; ++j) { s[j] = std::exp(s[j] - m); sum += s[j]; }
    return sum;
}

void scale_row(float *x, int64_t n, float f) {
    int64_t j = 0;
#if SGLD_HAVE_AVX2
    const __m256 vf = _mm256_set1_ps(f);
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), vf));
#endif
    for (; j < n; ++j) x[j] *= f;
}

// Attention for queries [q0, q1) of one (b, h). Returns false when the workspace could not be allocated.
bool attend_range(const AttentionArgs &g, int64_t b, int64_t h, int64_t q0, int64_t q1) {
    const int64_t D = g.head_dim, Dp = round_up(D, kGemmNR), kv = g.kv_len;
    const int64_t MR = kGemmMR, NR = kGemmNR;
    const int64_t tile_rows = round_up(std::min(kQueryTile, q1 - q0), MR);
    AttentionScratch &ws = tls_scratch;
    float *k_panels = ws.k_panels.get(size_t(round_up(kv, NR) * D));
    float *v_panels = ws.v_panels.get(size_t(kv * Dp));
    float *q_panels = ws.q_panels.get(size_t(tile_rows * D));
    float *scores = ws.scores.get(size_t(tile_rows * kKeyBlock));
    float *p_panels = ws.p_panels.get(size_t(tile_rows * kKeyBlock));
    float *out_tile = ws.out_tile.get(size_t(tile_rows * Dp));
    float *row_state = ws.row_state.get(size_t(2 * tile_rows));
    if (!k_panels || !v_panels || !q_panels || !scores || !p_panels || !out_tile || !row_state) return false;
    float *row_max = row_state, *row_sum = row_state + tile_rows;

    const float *kb = g.k + b * g.ks[0] + h * g.ks[2];
    const float *vb = g.v + b * g.vs[0] + h * g.vs[2];
    // K^T as B panels (op(B)(d, j) = K[j, d]), V as B panels (op(B)(j, d) = V[j, d]).
    pack_b_panels(true, D, kv, kb, g.ks[1], k_panels);
    pack_b_panels(false, kv, D, vb, g.vs[1], v_panels);

    const float *key_bias = g.key_bias ? g.key_bias + b * g.key_bias_sb : nullptr;
    TileEpilogue overwrite, accumulate;
    accumulate.load = TileLoad::Accumulate;

    for (int64_t i0 = q0; i0 < q1; i0 += kQueryTile) {
        const int64_t rows = std::min(kQueryTile, q1 - i0), rows_p = round_up(rows, MR);
        pack_a_panels(false, rows, D, g.q + b * g.qs[0] + i0 * g.qs[1] + h * g.qs[2], g.qs[1], g.scale, q_panels);
        std::fill(out_tile, out_tile + rows_p * Dp, 0.0f);
        std::fill(row_max, row_max + rows_p, kNegInf);
        std::fill(row_sum, row_sum + rows_p, 0.0f);

        for (int64_t j0 = 0; j0 < kv; j0 += kKeyBlock) {
            const int64_t cols = std::min(kKeyBlock, kv - j0), cols_p = round_up(cols, NR);
            // S = (scale Q) K^T for this key block; padded key columns hold zeros and are never read.
            for (int64_t jr = 0; jr < cols_p; jr += NR) {
                const float *kp = k_panels + (j0 + jr) * D;  // panel (j0 + jr) / NR, each D x NR
                for (int64_t ir = 0; ir < rows_p; ir += MR)
                    gemm_micro_kernel(D, q_panels + ir * D, kp, scores + ir * kKeyBlock + jr, kKeyBlock, overwrite);
            }
            // Online softmax per row: P = exp(S - m_new), l = l * exp(m_old - m_new) + sum P, O *= exp(m_old - m_new).
            for (int64_t i = 0; i < rows; ++i) {
                float *s = scores + i * kKeyBlock;
                const float *bias_row = g.bias ? g.bias + b * g.bias_s[0] + h * g.bias_s[1] + (i0 + i) * g.bias_s[2] + j0 * g.bias_s[3] : nullptr;
                const float block_max = add_biases_and_max(s, cols, bias_row, g.bias ? g.bias_s[3] : 0, key_bias ? key_bias + j0 : nullptr);
                const float m_old = row_max[i], m_new = std::max(m_old, block_max);
                if (m_new == kNegInf) {  // every key so far is masked: contributes nothing
                    std::fill(s, s + cols, 0.0f);
                    continue;
                }
                row_sum[i] = row_sum[i] * std::exp(m_old - m_new) + exp_shift_and_sum(s, cols, m_new);
                if (m_old != m_new && m_old != kNegInf) scale_row(out_tile + i * Dp, Dp, std::exp(m_old - m_new));
                row_max[i] = m_new;
            }
            // O += P V over this key block (kc = the block's real key count: no padding needed).
            pack_a_panels(false, rows, cols, scores, kKeyBlock, 1.0f, p_panels);
            for (int64_t dr = 0; dr < Dp; dr += NR) {
                const float *vp = v_panels + dr * kv + j0 * NR;  // panel dr / NR, each kv x NR
                for (int64_t ir = 0; ir < rows_p; ir += MR)
                    gemm_micro_kernel(cols, p_panels + ir * cols, vp, out_tile + ir * Dp + dr, Dp, accumulate);
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
