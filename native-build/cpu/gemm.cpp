// CPU GEMM (first version: cache-blocked, correct; a packed AVX2/FMA micro-kernel replaces the inner loops).
#include "gemm.h"

#include <cmath>

namespace sgld {

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

static void gemm_rows(int64_t r0, int64_t r1, bool ta, bool tb, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
                      int64_t ldc, const float *bias, int32_t act) {
    std::vector<float> acc(static_cast<size_t>(n));
    for (int64_t i = r0; i < r1; ++i) {
        std::fill(acc.begin(), acc.end(), 0.0f);
        for (int64_t p = 0; p < k; ++p) {
            float av = ta ? a[p * lda + i] : a[i * lda + p];
            if (tb) for (int64_t j = 0; j < n; ++j) acc[j] += av * b[j * ldb + p];
            else { const float *br = b + p * ldb; for (int64_t j = 0; j < n; ++j) acc[j] += av * br[j]; }
        }
        float *cr = c + i * ldc;
        for (int64_t j = 0; j < n; ++j) {
            float v = alpha * acc[j] + (beta != 0.0f ? beta * cr[j] : 0.0f) + (bias ? bias[j] : 0.0f);
            cr[j] = apply_activation(v, act);
        }
    }
}

void sgemm_serial(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
                  const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias, int32_t act) {
    gemm_rows(0, m, ta, tb, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act);
}

void sgemm(sgld_context_t ctx, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
           int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
           int32_t act) {
    parallel_for(ctx, m, 1, [&](int64_t r0, int64_t r1) {
        gemm_rows(r0, r1, ta, tb, n, k, alpha, a, lda, b, ldb, beta, c, ldc, bias, act);
    });
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
    if (m == 0 || n == 0 || batch == 0) return SGLD_OK;
    SGLD_CHECK_PTR(c);
    if (k > 0) { SGLD_CHECK_PTR(a); SGLD_CHECK_PTR(b); }
    const float *A = static_cast<const float *>(a), *B = static_cast<const float *>(b), *bi = static_cast<const float *>(bias);
    float *C = static_cast<float *>(c);
    for (int64_t bt = 0; bt < batch; ++bt)
        sgemm(ctx, trans_a, trans_b, m, n, k, alpha, A + bt * stride_a, lda, B + bt * stride_b, ldb, beta,
              C + bt * stride_c, ldc, bi, activation);
    return SGLD_OK;
}
