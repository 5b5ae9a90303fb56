// CUDA GEMM: cuBLASLt (loaded at run time) with fp32 accumulation for every float dtype, the bias and, where
// cuBLASLt has them, the activation fused as its epilogue; the tiled kernel of tiled_gemm.cuh for fp32 when
// cuBLASLt is absent, and for any dtype when cuBLASLt offers no algorithm for a call.
#include <array>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>

#include "common.cuh"
#include "cublaslt_loader.h"
#include "tiled_gemm.cuh"

// Per-context cuBLASLt state: the handle (tied to the context's device), a workspace (used by one matmul at a
// time: they all run in order on the context's stream) and the algorithms chosen so far, by problem.
struct GemmState {
    sgld::lt::Handle handle = nullptr;
    void *workspace = nullptr;
    size_t workspace_bytes = 0;
    std::mutex cache_mutex;
    // value: found + algo; a problem with no algorithm is remembered too (it goes to the tiled kernel)
    std::map<std::array<int64_t, 20>, std::pair<bool, sgld::lt::MatmulAlgo>> algos;
};

namespace sgld {

// 32 MiB: enough for cuBLASLt's split-K and stream-K kernels on Hopper (NVIDIA recommends 32 MiB there).
constexpr size_t kWorkspaceBytes = size_t(32) << 20;

void destroy_gemm_state(sgld_context_t ctx) {
    GemmState *s = ctx->gemm;
    if (!s) return;
    std::string ignored;
    if (const lt::Api *api = lt::load(&ignored)) {
        if (s->handle) api->Destroy(s->handle);
    }
    if (s->workspace) cudaFree(s->workspace);
    delete s;
    ctx->gemm = nullptr;
}

static sgld_status gemm_state(sgld_context_t ctx, const lt::Api *api, GemmState **out) {
    std::lock_guard<std::mutex> lock(ctx->gemm_mutex);
    if (!ctx->gemm) {
        auto *s = new GemmState();
        lt::Status st = api->Create(&s->handle);
        if (st != lt::kSuccess) {
            delete s;
            return fail(SGLD_ERR_LIBRARY, "sgld_gemm: cublasLtCreate failed with status %d (%s)", st, api->path.c_str());
        }
        cudaError_t err = cudaMalloc(&s->workspace, kWorkspaceBytes);
        if (err != cudaSuccess) {
            cudaGetLastError();
            api->Destroy(s->handle);
            delete s;
            return cuda_fail(err, "sgld_gemm: cuBLASLt workspace");
        }
        s->workspace_bytes = kWorkspaceBytes;
        ctx->gemm = s;
    }
    *out = ctx->gemm;
    return SGLD_OK;
}

// ---- operands and epilogues for the tiled kernel ----------------------------------------------------------------
template <class T>
struct MatrixLoad {  // element (r, c) of problem z at p + z*batch_stride + r*rs + c*cs
    const T *p;
    int64_t batch_stride, rs, cs;
    __device__ float operator()(int64_t z, int64_t r, int64_t c) const { return load(p + z * batch_stride + r * rs + c * cs); }
};

template <class T>
struct GemmEpilogue {  // C = act(alpha * acc + beta * C + bias), the CPU backend's order of operations
    T *c;
    int64_t ldc, stride_c;
    float alpha, beta;
    const T *bias;
    int32_t activation;
    __device__ void operator()(int64_t z, int64_t i, int64_t j, float acc) const {
        T *p = c + z * stride_c + i * ldc + j;
        float v = alpha * acc;
        if (beta != 0.0f) v += beta * load(p);
        if (bias) v += load(bias + j);
        store(p, apply_activation(v, activation));
    }
};

template <class T>
static void tiled_gemm(cudaStream_t stream, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                       const T *a, int64_t lda, int64_t sa, const T *b, int64_t ldb, int64_t sb, float beta, T *c,
                       int64_t ldc, int64_t sc, int64_t batch, const T *bias, int32_t act) {
    // op(A)(i, p) = ta ? a[p*lda + i] : a[i*lda + p];  op(B)(p, j) = tb ? b[j*ldb + p] : b[p*ldb + j]
    MatrixLoad<T> la{a, sa, ta ? 1 : lda, ta ? lda : 1};
    MatrixLoad<T> lb{b, sb, tb ? 1 : ldb, tb ? ldb : 1};
    GemmEpilogue<T> epi{c, ldc, sc, alpha, beta, bias, act};
    launch_tiled_gemm(stream, m, n, k, batch, la, lb, epi);
}

// Bias and activation that cuBLASLt did not apply: C = act(C + bias) over the batch.
template <class T>
__global__ void bias_activation_kernel(T *c, int64_t m, int64_t n, int64_t ldc, int64_t stride_c, int64_t total,
                                       const T *bias, int32_t act) {
    SGLD_GRID_STRIDE(e, total) {
        const int64_t j = e % n, rest = e / n, i = rest % m, z = rest / m;
        T *p = c + z * stride_c + i * ldc + j;
        float v = load(p);
        if (bias) v += load(bias + j);
        store(p, apply_activation(v, act));
    }
}

static cudaDataType_t cuda_type(int32_t dtype) {
    return dtype == SGLD_F32 ? CUDA_R_32F : dtype == SGLD_F16 ? CUDA_R_16F : CUDA_R_16BF;
}

// Largest power of two (<= 256) dividing the address of every batch item.
static uint32_t alignment_of(const void *p, int64_t batch_stride_bytes, int64_t batch) {
    uint64_t bits = uint64_t(reinterpret_cast<uintptr_t>(p));
    if (batch > 1) bits |= uint64_t(batch_stride_bytes);
    uint32_t align = 256;
    while (align > 1 && (bits & (align - 1))) align >>= 1;
    return align;
}

// RAII for the descriptors of one cuBLASLt call.
struct LtCall {
    const lt::Api *api;
    lt::MatmulDesc desc = nullptr;
    lt::MatrixLayout la = nullptr, lb = nullptr, lc = nullptr;
    lt::MatmulPreference pref = nullptr;
    explicit LtCall(const lt::Api *a) : api(a) {}
    ~LtCall() {
        if (pref) api->MatmulPreferenceDestroy(pref);
        if (lc) api->MatrixLayoutDestroy(lc);
        if (lb) api->MatrixLayoutDestroy(lb);
        if (la) api->MatrixLayoutDestroy(la);
        if (desc) api->MatmulDescDestroy(desc);
    }
};

enum class LtResult { Done, NoAlgorithm, Failed };

// Row-major C (m x n) is column-major C^T (n x m), and C^T = op(B)^T op(A)^T: cuBLASLt's "A" is our B and its
// "B" is our A, each with the same transpose flag as ours. Returns Failed with the message set, or NoAlgorithm
// when the caller should use the tiled kernel instead (nothing was enqueued then).
static LtResult lt_gemm(sgld_context_t ctx, const lt::Api *api, GemmState *state, int32_t dtype, bool ta, bool tb,
                        int64_t m, int64_t n, int64_t k, float alpha, const void *a, int64_t lda, int64_t sa,
                        const void *b, int64_t ldb, int64_t sb, float beta, void *c, int64_t ldc, int64_t sc,
                        int64_t batch, const void *bias, int32_t act, const void **pending_bias,
                        int32_t *pending_act, sgld_status *status) {
    const cudaDataType_t type = cuda_type(dtype);
    const int64_t es = int64_t(dtype_size(dtype));
    const uint32_t align_a = alignment_of(b, sb * es, batch), align_b = alignment_of(a, sa * es, batch);
    const uint32_t align_c = alignment_of(c, sc * es, batch);
    // The epilogue adds the bias, then applies the activation, to the whole result; to keep beta * C's place
    // exact (inside the activation) we fuse only when beta == 0, and only a bias with 16-byte alignment. What is
    // not fused is left to bias_activation_kernel (*pending_bias / *pending_act).
    const bool fuse_bias = bias && beta == 0.0f && (reinterpret_cast<uintptr_t>(bias) % 16) == 0;
    const bool bias_after = bias && !fuse_bias;  // then the activation must wait for it too
    uint32_t epilogue = fuse_bias ? lt::kEpilogueBias : lt::kEpilogueDefault;
    bool fuse_act = false;
    if (beta == 0.0f && !bias_after && act == SGLD_ACT_RELU) {
        epilogue = fuse_bias ? lt::kEpilogueReluBias : lt::kEpilogueRelu;
        fuse_act = true;
    } else if (beta == 0.0f && !bias_after && act == SGLD_ACT_GELU_TANH) {
        epilogue = fuse_bias ? lt::kEpilogueGeluBias : lt::kEpilogueGelu;
        fuse_act = true;
    }
    *pending_bias = bias_after ? bias : nullptr;
    *pending_act = fuse_act ? SGLD_ACT_NONE : act;

    auto fail_lt = [&](const char *what, lt::Status st) {
        *status = fail(SGLD_ERR_LIBRARY, "sgld_gemm: %s failed with cuBLAS status %d (%s)", what, st, api->path.c_str());
        return LtResult::Failed;
    };
    LtCall call(api);
    lt::Status st = api->MatmulDescCreate(&call.desc, lt::kCompute32F, CUDA_R_32F);
    if (st != lt::kSuccess) return fail_lt("cublasLtMatmulDescCreate", st);
    const int32_t op_a = tb ? lt::kOpT : lt::kOpN, op_b = ta ? lt::kOpT : lt::kOpN;
    api->MatmulDescSetAttribute(call.desc, lt::kDescTransA, &op_a, sizeof op_a);
    api->MatmulDescSetAttribute(call.desc, lt::kDescTransB, &op_b, sizeof op_b);
    st = api->MatmulDescSetAttribute(call.desc, lt::kDescEpilogue, &epilogue, sizeof epilogue);
    if (st != lt::kSuccess) return fail_lt("setting the epilogue", st);
    if (epilogue == lt::kEpilogueBias || epilogue == lt::kEpilogueReluBias || epilogue == lt::kEpilogueGeluBias) {
        st = api->MatmulDescSetAttribute(call.desc, lt::kDescBiasPointer, &bias, sizeof bias);
        if (st != lt::kSuccess) return fail_lt("setting the bias pointer", st);
    }
    // Layouts describe matrices as stored (column-major view of our row-major storage).
    st = api->MatrixLayoutCreate(&call.la, type, uint64_t(tb ? k : n), uint64_t(tb ? n : k), ldb);
    if (st == lt::kSuccess) st = api->MatrixLayoutCreate(&call.lb, type, uint64_t(ta ? m : k), uint64_t(ta ? k : m), lda);
    if (st == lt::kSuccess) st = api->MatrixLayoutCreate(&call.lc, type, uint64_t(n), uint64_t(m), ldc);
    if (st != lt::kSuccess) return fail_lt("cublasLtMatrixLayoutCreate", st);
    if (batch > 1) {
        const int32_t count = int32_t(batch);
        const lt::MatrixLayout layouts[3] = {call.la, call.lb, call.lc};
        const int64_t strides[3] = {sb, sa, sc};
        for (int i = 0; i < 3; ++i) {
            st = api->MatrixLayoutSetAttribute(layouts[i], lt::kLayoutBatchCount, &count, sizeof count);
            if (st == lt::kSuccess)
                st = api->MatrixLayoutSetAttribute(layouts[i], lt::kLayoutStridedBatchOffset, &strides[i], sizeof strides[i]);
            if (st != lt::kSuccess) return fail_lt("setting the batch layout", st);
        }
    }

    const std::array<int64_t, 20> key = {dtype, ta, tb, m, n, k, lda, ldb, ldc, sa, sb, sc, batch, int64_t(epilogue),
                                         align_a, align_b, align_c, 0, 0, 0};
    lt::MatmulAlgo algo{};
    bool found = false, cached = false;
    {
        std::lock_guard<std::mutex> lock(state->cache_mutex);
        auto it = state->algos.find(key);
        if (it != state->algos.end()) { cached = true; found = it->second.first; algo = it->second.second; }
    }
    if (!cached) {
        st = api->MatmulPreferenceCreate(&call.pref);
        if (st != lt::kSuccess) return fail_lt("cublasLtMatmulPreferenceCreate", st);
        const uint64_t ws = state->workspace_bytes;
        api->MatmulPreferenceSetAttribute(call.pref, lt::kPrefMaxWorkspaceBytes, &ws, sizeof ws);
        api->MatmulPreferenceSetAttribute(call.pref, lt::kPrefMinAlignmentA, &align_a, sizeof align_a);
        api->MatmulPreferenceSetAttribute(call.pref, lt::kPrefMinAlignmentB, &align_b, sizeof align_b);
        api->MatmulPreferenceSetAttribute(call.pref, lt::kPrefMinAlignmentC, &align_c, sizeof align_c);
        api->MatmulPreferenceSetAttribute(call.pref, lt::kPrefMinAlignmentD, &align_c, sizeof align_c);
        lt::HeuristicResult result{};
        int returned = 0;
        st = api->MatmulAlgoGetHeuristic(state->handle, call.desc, call.la, call.lb, call.lc, call.lc, call.pref, 1,
                                         &result, &returned);
        found = st == lt::kSuccess && returned > 0 && result.state == lt::kSuccess;
        if (found) algo = result.algo;
        std::lock_guard<std::mutex> lock(state->cache_mutex);
        state->algos[key] = {found, algo};
    }
    if (!found) return LtResult::NoAlgorithm;

    st = api->Matmul(state->handle, call.desc, &alpha, b, call.la, a, call.lb, &beta, c, call.lc, c, call.lc, &algo,
                     state->workspace, state->workspace_bytes, ctx->stream);
    if (st != lt::kSuccess) {
        // Not enqueued: forget the algorithm and let the tiled kernel do this problem.
        std::lock_guard<std::mutex> lock(state->cache_mutex);
        state->algos[key] = {false, algo};
        return LtResult::NoAlgorithm;
    }
    return LtResult::Done;
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_gemm(sgld_context_t ctx, int32_t dtype, int32_t trans_a, int32_t trans_b, int64_t m,
                                 int64_t n, int64_t k, float alpha, const void *a, int64_t lda, int64_t stride_a,
                                 const void *b, int64_t ldb, int64_t stride_b, float beta, void *c, int64_t ldc,
                                 int64_t stride_c, int64_t batch, const void *bias, int32_t activation) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        if (!is_float_dtype(dtype))
            return fail(SGLD_ERR_UNSUPPORTED, "sgld_gemm: dtype %s is not F32, F16 or BF16", dtype_name(dtype));
        if (m < 0 || n < 0 || k < 0 || batch < 0) return fail(SGLD_ERR_INVALID, "sgld_gemm: negative size");
        if (!valid_activation(activation)) return fail(SGLD_ERR_INVALID, "sgld_gemm: unknown activation %d", activation);
        if (m == 0 || n == 0 || batch == 0) return SGLD_OK;
        SGLD_CHECK_PTR(c);
        if (k > 0) { SGLD_CHECK_PTR(a); SGLD_CHECK_PTR(b); }
        const bool ta = trans_a != 0, tb = trans_b != 0;
        // Leading dimensions must cover a stored row (a single stored row may give any ld).
        auto check_ld = [&](const char *name, int64_t ld, int64_t rows, int64_t cols) -> sgld_status {
            if (rows > 1 && ld < cols)
                return fail(SGLD_ERR_INVALID, "sgld_gemm: %s = %lld is less than a stored row (%lld)", name, (long long)ld, (long long)cols);
            return SGLD_OK;
        };
        if (k > 0) {
            if (sgld_status s = check_ld("lda", lda, ta ? k : m, ta ? m : k)) return s;
            if (sgld_status s = check_ld("ldb", ldb, tb ? n : k, tb ? k : n)) return s;
        }
        if (sgld_status s = check_ld("ldc", ldc, m, n)) return s;
        // A single stored row: give cuBLASLt a legal leading dimension (it is never stepped over).
        if ((ta ? k : m) == 1 && lda < (ta ? m : k)) lda = ta ? m : k;
        if ((tb ? n : k) == 1 && ldb < (tb ? k : n)) ldb = tb ? k : n;
        if (m == 1 && ldc < n) ldc = n;

        // cuBLASLt for every dtype when it loads; without it only fp32 (the tiled kernel) works.
        std::string lt_error;
        const lt::Api *api = k > 0 && batch <= INT32_MAX && !std::getenv("SGLD_CUDA_TILED_GEMM") ? lt::load(&lt_error) : nullptr;
        if (!api && dtype != SGLD_F32 && !lt_error.empty())
            return fail(SGLD_ERR_LIBRARY, "sgld_gemm (%s): %s", dtype_name(dtype), lt_error.c_str());
        if (api) {
            GemmState *state = nullptr;
            if (sgld_status s = gemm_state(ctx, api, &state)) return s;
            const void *pending_bias = nullptr;
            int32_t pending_act = SGLD_ACT_NONE;
            sgld_status status = SGLD_OK;
            LtResult r = lt_gemm(ctx, api, state, dtype, ta, tb, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b,
                                 beta, c, ldc, stride_c, batch, bias, activation, &pending_bias, &pending_act, &status);
            if (r == LtResult::Failed) return status;
            if (r == LtResult::Done) {
                if (pending_bias || pending_act != SGLD_ACT_NONE) {
                    dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
                        using T = typename decltype(tag)::type;
                        const int64_t total = batch * m * n;
                        bias_activation_kernel<T><<<grid_for(total), kThreads, 0, ctx->stream>>>(
                            static_cast<T *>(c), m, n, ldc, stride_c, total, static_cast<const T *>(pending_bias), pending_act);
                        return SGLD_OK;
                    });
                }
                SGLD_LAUNCHED();
            }
        }
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            tiled_gemm<T>(ctx->stream, ta, tb, m, n, k, alpha, static_cast<const T *>(a), lda, stride_a,
                          static_cast<const T *>(b), ldb, stride_b, beta, static_cast<T *>(c), ldc, stride_c, batch,
                          static_cast<const T *>(bias), activation);
            return launch_status(sgld_fn_);
        });
    SGLD_API_END
}
