// CUDA attention, flash style (online softmax over key tiles; no q_len x kv_len matrix), and the log-sum-exp
// merge of partial results used by ring attention. First version: simple and exact, not fast. A block holds
// kQueryWarps query rows of one (batch, head), one warp per row, and walks the keys in tiles of 32 staged in
// shared memory as fp32: each lane scores one key of the tile, then every lane accumulates its slice of head_dim.
#include "common.cuh"

namespace sgld {

constexpr int kQueryWarps = 8;     // query rows per block
constexpr int kKeyTile = 32;       // keys per tile: one per lane when scoring
constexpr int kMaxHeadDim = 256;
constexpr int kDimSlices = kMaxHeadDim / 32;  // accumulator registers per lane

struct AttentionArgs {
    int64_t heads, q_len, kv_len, head_dim;
    int64_t qs[3], ks[3], vs[3], os[3];  // batch, seq, head strides
    float scale;
    const float *bias;
    int64_t bs[4];  // b, h, i, j
    const float *key_bias;
    int64_t key_bias_sb;
    float *lse;
};

inline size_t attention_smem_bytes(int64_t head_dim) {
    return size_t(2 * kKeyTile * (head_dim + 1) + kQueryWarps * head_dim) * sizeof(float);
}

template <class T>
__global__ void __launch_bounds__(kQueryWarps * 32)
attention_kernel(AttentionArgs p, const T *q, const T *k, const T *v, T *out) {
    extern __shared__ float smem[];
    const int D = int(p.head_dim), ld = D + 1;  // +1: lanes reading different keys' rows hit different banks
    float *Ks = smem;                     // [kKeyTile][ld]
    float *Vs = Ks + kKeyTile * ld;       // [kKeyTile][ld]
    float *Qs = Vs + kKeyTile * ld;       // [kQueryWarps][D]
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t b = blockIdx.z, h = blockIdx.y;
    const int64_t i = int64_t(blockIdx.x) * kQueryWarps + warp;
    const bool active = i < p.q_len;  // uniform per warp; inactive warps still help load tiles

    float *qrow = Qs + warp * D;
    const float *bias_row = nullptr;
    if (active) {
        const T *qp = q + b * p.qs[0] + i * p.qs[1] + h * p.qs[2];
        for (int d = lane; d < D; d += 32) qrow[d] = load(qp + d);
        if (p.bias) bias_row = p.bias + b * p.bs[0] + h * p.bs[1] + i * p.bs[2];
    }
    const float *key_bias = p.key_bias ? p.key_bias + b * p.key_bias_sb : nullptr;
    const T *kbase = k + b * p.ks[0] + h * p.ks[2];
    const T *vbase = v + b * p.vs[0] + h * p.vs[2];

    float m = -INFINITY, l = 0.0f;  // running max and sum of exp(score - m), identical in every lane
    float o[kDimSlices];
#pragma unroll
    for (int t = 0; t < kDimSlices; ++t) o[t] = 0.0f;

    for (int64_t j0 = 0; j0 < p.kv_len; j0 += kKeyTile) {
        const int rows = int(p.kv_len - j0 < kKeyTile ? p.kv_len - j0 : kKeyTile);
        __syncthreads();  // the previous tile is consumed (and, the first time, every qrow is written)
        for (int e = threadIdx.x; e < kKeyTile * D; e += blockDim.x) {
            const int r = e / D, d = e % D;
            float kv = 0.0f, vv = 0.0f;
            if (r < rows) {
                kv = load(kbase + (j0 + r) * p.ks[1] + d);
                vv = load(vbase + (j0 + r) * p.vs[1] + d);
            }
            Ks[r * ld + d] = kv;
            Vs[r * ld + d] = vv;
        }
        __syncthreads();
        if (!active) continue;

        float s = -INFINITY;  // this lane's key score
        if (lane < rows) {
            const float *kr = Ks + lane * ld;
            float dot = 0.0f;
            for (int d = 0; d < D; ++d) dot = fmaf(qrow[d], kr[d], dot);
            const int64_t j = j0 + lane;
            s = dot * p.scale;
            if (bias_row) s += bias_row[j * p.bs[3]];
            if (key_bias) s += key_bias[j];
        }
        const float m_new = fmaxf(m, warp_max(s));
        if (m_new == -INFINITY) continue;  // every key so far is masked: nothing to accumulate
        const float correction = expf(m - m_new);  // 0 while m is still -inf
        const float pj = expf(s - m_new);          // 0 for masked keys
        l = l * correction + warp_sum(pj);
#pragma unroll
        for (int t = 0; t < kDimSlices; ++t) o[t] *= correction;
        for (int r = 0; r < rows; ++r) {
            const float pr = __shfl_sync(0xffffffffu, pj, r);
            const float *vr = Vs + r * ld;
#pragma unroll
            for (int t = 0; t < kDimSlices; ++t) {
                const int d = lane + 32 * t;
                if (d < D) o[t] = fmaf(pr, vr[d], o[t]);
            }
        }
        m = m_new;
    }

    if (!active) return;
    // A row whose keys are all masked: out = 0, lse = -inf.
    const float inv = l > 0.0f ? 1.0f / l : 0.0f;
    T *op = out + b * p.os[0] + i * p.os[1] + h * p.os[2];
#pragma unroll
    for (int t = 0; t < kDimSlices; ++t) {
        const int d = lane + 32 * t;
        if (d < D) store(op + d, o[t] * inv);
    }
    if (p.lse && lane == 0) p.lse[(b * p.heads + h) * p.q_len + i] = l > 0.0f ? m + logf(l) : -INFINITY;
}

// One warp per (b, s, h) row: new weights from the two lse values, then out_acc = out_acc*wa + out_part*wp.
template <class T>
__global__ void attention_merge_kernel(int64_t heads, int64_t seq, int64_t rows, int64_t head_dim, T *acc,
                                       int64_t a0, int64_t a1, int64_t a2, float *lse_acc, const T *part, int64_t p0,
                                       int64_t p1, int64_t p2, const float *lse_part) {
    const int lane = threadIdx.x & 31;
    const int64_t warps = int64_t(gridDim.x) * (blockDim.x >> 5);
    for (int64_t row = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) >> 5; row < rows; row += warps) {
        // row enumerates lse's [batch, heads, seq] layout
        const int64_t s = row % seq, h = (row / seq) % heads, b = row / (seq * heads);
        const float la = lse_acc[row], lp = lse_part[row];
        const float mx = fmaxf(la, lp);
        float wa = 0.0f, wp = 0.0f, merged = -INFINITY;  // both empty: out 0, lse -inf
        if (mx != -INFINITY) {
            const float ea = expf(la - mx), ep = expf(lp - mx), sum = ea + ep;
            merged = mx + logf(sum);
            wa = ea / sum;  // = exp(lse_acc - merged)
            wp = ep / sum;
        }
        T *ap = acc + b * a0 + s * a1 + h * a2;
        const T *pp = part + b * p0 + s * p1 + h * p2;
        for (int64_t d = lane; d < head_dim; d += 32) {
            const float x = wa == 0.0f ? 0.0f : load(ap + d) * wa;  // an empty accumulator may hold anything
            const float y = wp == 0.0f ? 0.0f : load(pp + d) * wp;
            store(ap + d, x + y);
        }
        __syncwarp();  // every lane has read lse_acc[row] before it changes
        if (lane == 0) lse_acc[row] = merged;
    }
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_attention(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t heads, int64_t q_len,
                                      int64_t kv_len, int64_t head_dim, const void *q, const int64_t *q_strides,
                                      const void *k, const int64_t *k_strides, const void *v, const int64_t *v_strides,
                                      void *out, const int64_t *out_strides, float *lse, float scale, const float *bias,
                                      const int64_t *bias_strides, const float *key_bias, int64_t key_bias_sb) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(batch);
        SGLD_CHECK_NONNEG(heads);
        SGLD_CHECK_NONNEG(q_len);
        SGLD_CHECK_NONNEG(kv_len);
        if (head_dim < 1) return fail(SGLD_ERR_INVALID, "sgld_attention: head_dim %lld", (long long)head_dim);
        if (head_dim > kMaxHeadDim)
            return fail(SGLD_ERR_UNSUPPORTED, "sgld_attention: head_dim %lld is above %d", (long long)head_dim, kMaxHeadDim);
        if (batch > 65535 || heads > 65535)
            return fail(SGLD_ERR_UNSUPPORTED, "sgld_attention: batch and heads must be at most 65535");
        if (batch == 0 || heads == 0 || q_len == 0) return SGLD_OK;
        SGLD_CHECK_PTR(q);
        SGLD_CHECK_PTR(q_strides);
        SGLD_CHECK_PTR(out);
        SGLD_CHECK_PTR(out_strides);
        if (kv_len > 0) {
            SGLD_CHECK_PTR(k);
            SGLD_CHECK_PTR(k_strides);
            SGLD_CHECK_PTR(v);
            SGLD_CHECK_PTR(v_strides);
        }
        if (bias && !bias_strides) return fail(SGLD_ERR_INVALID, "sgld_attention: bias given without bias_strides");
        AttentionArgs p{};
        p.heads = heads;
        p.q_len = q_len;
        p.kv_len = kv_len;
        p.head_dim = head_dim;
        for (int i = 0; i < 3; ++i) {
            p.qs[i] = q_strides[i];
            p.os[i] = out_strides[i];
            p.ks[i] = kv_len > 0 ? k_strides[i] : 0;
            p.vs[i] = kv_len > 0 ? v_strides[i] : 0;
        }
        p.scale = scale;
        p.bias = bias;
        for (int i = 0; i < 4; ++i) p.bs[i] = bias ? bias_strides[i] : 0;
        p.key_bias = key_bias;
        p.key_bias_sb = key_bias_sb;
        p.lse = lse;
        const size_t smem = attention_smem_bytes(head_dim);
        const dim3 grid(unsigned((q_len + kQueryWarps - 1) / kQueryWarps), unsigned(heads), unsigned(batch));
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            // Above 48 KiB (head_dim > 160) dynamic shared memory must be opted into.
            if (smem > 48 * 1024)
                SGLD_CUDA(cudaFuncSetAttribute(attention_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
            attention_kernel<T><<<grid, kQueryWarps * 32, smem, ctx->stream>>>(
                p, static_cast<const T *>(q), static_cast<const T *>(k), static_cast<const T *>(v), static_cast<T *>(out));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_attention_merge(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t heads,
                                            int64_t seq, int64_t head_dim, void *out_acc, const int64_t *acc_strides,
                                            float *lse_acc, const void *out_part, const int64_t *part_strides,
                                            const float *lse_part) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(batch);
        SGLD_CHECK_NONNEG(heads);
        SGLD_CHECK_NONNEG(seq);
        SGLD_CHECK_NONNEG(head_dim);
        const int64_t rows = batch * heads * seq;
        if (rows == 0) return SGLD_OK;
        SGLD_CHECK_PTR(out_acc);
        SGLD_CHECK_PTR(acc_strides);
        SGLD_CHECK_PTR(lse_acc);
        SGLD_CHECK_PTR(out_part);
        SGLD_CHECK_PTR(part_strides);
        SGLD_CHECK_PTR(lse_part);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            attention_merge_kernel<T><<<grid_for(rows * 32), kThreads, 0, ctx->stream>>>(
                heads, seq, rows, head_dim, static_cast<T *>(out_acc), acc_strides[0], acc_strides[1], acc_strides[2],
                lse_acc, static_cast<const T *>(out_part), part_strides[0], part_strides[1], part_strides[2], lse_part);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}
