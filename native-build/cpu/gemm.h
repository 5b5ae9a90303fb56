// Internal single-precision GEMM of the CPU backend, shared by sgld_gemm and the convolutions (im2col).
#pragma once
#include "internal.h"

namespace sgld {

// Row-major C = act(alpha * op(A) @ op(B) + beta * C + bias[n]); op(A) is m x k, op(B) is k x n.
// Uses the context's thread pool: do not call it from inside a pool task (use sgemm_serial there).
// Both throw std::bad_alloc when their per-thread packing buffers cannot be allocated; with beta == 0, C is
// not read. Results do not depend on the thread count (each element sums its k products in the same order).
void sgemm(sgld_context_t ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
           const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc,
           const float *bias, int32_t activation);

// Same contract on the calling thread only.
void sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                  int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc, const float *bias,
                  int32_t activation);

// Scalar activation shared by every op that applies SGLD_ACT_* (fp32).
float apply_activation(float x, int32_t activation);

// y[i] = act(y[i]) over n contiguous values: AVX2 where built for it (same math as apply_activation, to
// ~1e-7 relative), apply_activation otherwise.
void apply_activation_inplace(float *y, int64_t n, int32_t activation);

}  // namespace sgld
