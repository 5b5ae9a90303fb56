// Elementwise ops of the CPU backend (sgld.h): broadcasting binary ops, activations, affine, gated activations,
// softmax, DiT modulation and the gated residual. All fp32; the activations are gemm_simd.h's (the same math as
// the GEMM epilogue, so a fused and an unfused activation agree). Loops are explicit 8-lane AVX2 where an output
// may alias an input (the compiler's alias versioning would fall back to scalar code exactly then), with scalar
// tails for any length.
#include "gemm_simd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>
#include <limits>

namespace sgld {
namespace {

constexpr int kMaxDims = 6;
constexpr int64_t kGrain = 1 << 15;    // elements per parallel chunk
constexpr int64_t kSegment = 1 << 14;  // longest piece of one row a task walks

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, kGrain / std::max<int64_t>(1, dim)); }

// ---- broadcasting binary op ------------------------------------------------------------------------------------
// Operand 0 is y, 1 is a, 2 is b. Dims of size 1 are dropped, the rest ordered by |y stride| (writes sequential)
// and merged where contiguous in all three, so the common cases become one long row or rows x one broadcast.
struct BinaryDims {
    int ndim = 0;
    int64_t shape[kMaxDims];
    int64_t st[3][kMaxDims];
};

BinaryDims simplify(int ndim, const int64_t *shape, const int64_t *const strides[3]) {
    BinaryDims d;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] == 1) continue;
        d.shape[d.ndim] = shape[i];
        for (int k = 0; k < 3; ++k) d.st[k][d.ndim] = strides[k][i];
        ++d.ndim;
    }
    for (int i = 1; i < d.ndim; ++i) {
        for (int j = i; j > 0 && std::llabs(d.st[0][j - 1]) < std::llabs(d.st[0][j]); --j) {
            std::swap(d.shape[j], d.shape[j - 1]);
            for (int k = 0; k < 3; ++k) std::swap(d.st[k][j], d.st[k][j - 1]);
        }
    }
    int out = 0;
    for (int i = 0; i < d.ndim; ++i) {
        bool merge = out > 0;
        for (int k = 0; k < 3 && merge; ++k) merge = d.st[k][out - 1] == d.st[k][i] * d.shape[i];
        if (merge) d.shape[out - 1] *= d.shape[i];
        else d.shape[out] = d.shape[i];
        for (int k = 0; k < 3; ++k) d.st[k][merge ? out - 1 : out] = d.st[k][i];
        if (!merge) ++out;
    }
    d.ndim = out;
    if (d.ndim == 0) {
        d.ndim = 1;
        d.shape[0] = 1;
        for (int k = 0; k < 3; ++k) d.st[k][0] = 1;
    }
    return d;
}

template <int Op> inline float bin(float a, float b) {
    return Op == SGLD_BIN_ADD ? a + b : Op == SGLD_BIN_SUB ? a - b : Op == SGLD_BIN_MUL ? a * b : a / b;
}
#if SGLD_HAVE_AVX2
template <int Op> inline __m256 bin(__m256 a, __m256 b) {
    return Op == SGLD_BIN_ADD ? _mm256_add_ps(a, b) : Op == SGLD_BIN_SUB ? _mm256_sub_ps(a, b)
         : Op == SGLD_BIN_MUL ? _mm256_mul_ps(a, b) : _mm256_div_ps(a, b);
}
#endif

// y[i*sy] = a[i*sa] OP b[i*sb] for i < n.
template <int Op>
void binary_segment(const float *a, int64_t sa, const float *b, int64_t sb, float *y, int64_t sy, int64_t n) {
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    if (sy == 1 && (sa == 1 || sa == 0) && (sb == 1 || sb == 0)) {
        const __m256 a0 = _mm256_set1_ps(a[0]), b0 = _mm256_set1_ps(b[0]);
        for (; i + 8 <= n; i += 8) {
            const __m256 va = sa ? _mm256_loadu_ps(a + i) : a0, vb = sb ? _mm256_loadu_ps(b + i) : b0;
            _mm256_storeu_ps(y + i, bin<Op>(va, vb));
        }
    }
#endif
    for (; i < n; ++i) y[i * sy] = bin<Op>(a[i * sa], b[i * sb]);
}

using BinarySegmentFn = void (*)(const float *, int64_t, const float *, int64_t, float *, int64_t, int64_t);

void run_binary(sgld_context_t ctx, const BinaryDims &d, BinarySegmentFn seg_fn, const float *a, const float *b, float *y) {
    const int od = d.ndim - 1;
    const int64_t inner = d.shape[od], seg = std::min(inner, kSegment), per_row = (inner + seg - 1) / seg;
    int64_t rows = 1;
    for (int i = 0; i < od; ++i) rows *= d.shape[i];
    // Tasks are (row, segment) pairs, so one long row still spreads over the threads.
    parallel_for(ctx, rows * per_row, std::max<int64_t>(1, kGrain / seg), [&](int64_t t0, int64_t t1) {
        int64_t idx[kMaxDims] = {0}, off[3] = {0, 0, 0}, rem = t0 / per_row, part = t0 % per_row;
        for (int i = od - 1; i >= 0; --i) {
            idx[i] = rem % d.shape[i];
            rem /= d.shape[i];
            for (int k = 0; k < 3; ++k) off[k] += idx[i] * d.st[k][i];
        }
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t i0 = part * seg, len = std::min(seg, inner - i0);
            seg_fn(a + off[1] + i0 * d.st[1][od], d.st[1][od], b + off[2] + i0 * d.st[2][od], d.st[2][od],
                   y + off[0] + i0 * d.st[0][od], d.st[0][od], len);
            if (++part < per_row) continue;
            part = 0;
            for (int i = od - 1; i >= 0; --i) {  // next row: odometer over the outer dims
                for (int k = 0; k < 3; ++k) off[k] += d.st[k][i];
                if (++idx[i] < d.shape[i]) break;
                for (int k = 0; k < 3; ++k) off[k] -= d.st[k][i] * d.shape[i];
                idx[i] = 0;
            }
        }
    });
}

// ---- activations -----------------------------------------------------------------------------------------------
// y[i] = act(x[i]) (* up[i] when Gated) over n contiguous values; y may alias x.
template <bool Gated>
void activation_run(const float *x, const float *up, float *y, int64_t n, int32_t act) {
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    for (; i + 8 <= n; i += 8) {
        __m256 v = activation256(_mm256_loadu_ps(x + i), act);
        if (Gated) v = _mm256_mul_ps(v, _mm256_loadu_ps(up + i));
        _mm256_storeu_ps(y + i, v);
    }
#endif
    for (; i < n; ++i) y[i] = Gated ? apply_activation(x[i], act) * up[i] : apply_activation(x[i], act);
}

sgld_status check_activation(const char *op, int32_t act) {
    if (act < SGLD_ACT_NONE || act > SGLD_ACT_RELU) return fail(SGLD_ERR_INVALID, "%s: unknown activation %d", op, act);
    return SGLD_OK;
}

// ---- softmax ---------------------------------------------------------------------------------------------------
// Max-subtracted, as torch: y = exp(x - max) / sum exp(x - max). A row of -inf gives NaN, as torch does.
void softmax_row(const float *x, float *y, int64_t n) {
    float mx = -std::numeric_limits<float>::infinity();
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    __m256 vmax = _mm256_set1_ps(mx);
    for (; i + 8 <= n; i += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(x + i));
    mx = hmax256(vmax);
#endif
    for (; i < n; ++i) mx = std::max(mx, x[i]);
    // A NaN input may be skipped by the max but reaches the sum through exp, so its whole row is NaN (torch too).
    float sum = 0;
    i = 0;
#if SGLD_HAVE_AVX2
    const __m256 m = _mm256_set1_ps(mx);
    __m256 vsum = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        vsum = _mm256_add_ps(vsum, e);
        _mm256_storeu_ps(y + i, e);
    }
    sum = hsum256(vsum);
#endif
    for (; i < n; ++i) {
        const float e = std::exp(x[i] - mx);
        sum += e;
        y[i] = e;
    }
    const float inv = 1.0f / sum;
    for (i = 0; i < n; ++i) y[i] *= inv;
}

// ---- modulation ------------------------------------------------------------------------------------------------
// y = x * (1 + scale) + shift over one row (y may alias x).
void modulate_row(const float *x, const float *scale, const float *shift, float *y, int64_t n) {
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    const __m256 one = _mm256_set1_ps(1.0f);
    for (; i + 8 <= n; i += 8) {
        const __m256 s = _mm256_add_ps(one, _mm256_loadu_ps(scale + i));
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), s, _mm256_loadu_ps(shift + i)));
    }
#endif
    for (; i < n; ++i) y[i] = x[i] * (1.0f + scale[i]) + shift[i];
}

// residual += y * gate over one row.
void gated_residual_row(float *residual, const float *y, const float *gate, int64_t n) {
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    for (; i + 8 <= n; i += 8) {
        const __m256 r = _mm256_fmadd_ps(_mm256_loadu_ps(y + i), _mm256_loadu_ps(gate + i), _mm256_loadu_ps(residual + i));
        _mm256_storeu_ps(residual + i, r);
    }
#endif
    for (; i < n; ++i) residual[i] += y[i] * gate[i];
}

sgld_status check_sizes(const char *op, std::initializer_list<std::pair<const char *, int64_t>> sizes) {
    for (const auto &s : sizes)
        if (s.second < 0) return fail(SGLD_ERR_INVALID, "%s: %s = %lld is negative", op, s.first, (long long)s.second);
    return SGLD_OK;
}

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_binary(sgld_context_t ctx, int32_t dtype, int32_t op, int32_t ndim, const int64_t *shape,
                                   const void *a, const int64_t *a_strides, const void *b, const int64_t *b_strides,
                                   void *y, const int64_t *y_strides) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_binary")) return s;
    if (op < SGLD_BIN_ADD || op > SGLD_BIN_DIV) return fail(SGLD_ERR_INVALID, "sgld_binary: unknown op %d", op);
    if (ndim < 0 || ndim > kMaxDims) return fail(SGLD_ERR_INVALID, "sgld_binary: ndim %d outside [0, 6]", ndim);
    if (ndim > 0) { SGLD_CHECK_PTR(shape); SGLD_CHECK_PTR(a_strides); SGLD_CHECK_PTR(b_strides); SGLD_CHECK_PTR(y_strides); }
    int64_t total = 1;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] < 0) return fail(SGLD_ERR_INVALID, "sgld_binary: shape[%d] = %lld is negative", i, (long long)shape[i]);
        total *= shape[i];
    }
    if (total == 0) return SGLD_OK;
    SGLD_CHECK_PTR(a);
    SGLD_CHECK_PTR(b);
    SGLD_CHECK_PTR(y);
    const int64_t *strides[3] = {y_strides, a_strides, b_strides};
    const BinaryDims d = simplify(ndim, shape, strides);
    static const BinarySegmentFn fns[4] = {binary_segment<SGLD_BIN_ADD>, binary_segment<SGLD_BIN_SUB>,
                                           binary_segment<SGLD_BIN_MUL>, binary_segment<SGLD_BIN_DIV>};
    run_binary(ctx, d, fns[op], static_cast<const float *>(a), static_cast<const float *>(b), static_cast<float *>(y));
    return SGLD_OK;
}

extern "C" sgld_status sgld_activation(sgld_context_t ctx, int32_t dtype, int32_t activation, int64_t n, const void *x,
                                       void *y) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_activation")) return s;
    if (sgld_status s = check_activation("sgld_activation", activation)) return s;
    if (n < 0) return fail(SGLD_ERR_INVALID, "sgld_activation: n = %lld is negative", (long long)n);
    if (n == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x);
    float *Y = static_cast<float *>(y);
    parallel_for(ctx, n, kGrain / 2, [&](int64_t b, int64_t e) { activation_run<false>(X + b, nullptr, Y + b, e - b, activation); });
    return SGLD_OK;
}

extern "C" sgld_status sgld_affine(sgld_context_t ctx, int32_t dtype, int64_t n, const void *x, void *y, float alpha,
                                   float beta) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_affine")) return s;
    if (n < 0) return fail(SGLD_ERR_INVALID, "sgld_affine: n = %lld is negative", (long long)n);
    if (n == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x);
    float *Y = static_cast<float *>(y);
    parallel_for(ctx, n, kGrain, [&](int64_t b, int64_t e) {
        int64_t i = b;
#if SGLD_HAVE_AVX2
        const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
        for (; i + 8 <= e; i += 8) _mm256_storeu_ps(Y + i, _mm256_fmadd_ps(_mm256_loadu_ps(X + i), va, vb));
#endif
        for (; i < e; ++i) Y[i] = alpha * X[i] + beta;
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_gated_activation(sgld_context_t ctx, int32_t dtype, int32_t activation, int64_t rows,
                                             int64_t dim, const void *gate, const void *up, int64_t ld_in, void *y) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_gated_activation")) return s;
    if (sgld_status s = check_activation("sgld_gated_activation", activation)) return s;
    if (sgld_status s = check_sizes("sgld_gated_activation", {{"rows", rows}, {"dim", dim}})) return s;
    if (rows == 0 || dim == 0) return SGLD_OK;
    if (ld_in < dim) return fail(SGLD_ERR_INVALID, "sgld_gated_activation: ld_in %lld < dim %lld", (long long)ld_in, (long long)dim);
    SGLD_CHECK_PTR(gate);
    SGLD_CHECK_PTR(up);
    SGLD_CHECK_PTR(y);
    const float *G = static_cast<const float *>(gate), *U = static_cast<const float *>(up);
    float *Y = static_cast<float *>(y);
    parallel_for(ctx, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) activation_run<true>(G + r * ld_in, U + r * ld_in, Y + r * dim, dim, activation);
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_softmax(sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x, void *y) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_softmax")) return s;
    if (sgld_status s = check_sizes("sgld_softmax", {{"rows", rows}, {"dim", dim}})) return s;
    if (rows == 0 || dim == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x);
    float *Y = static_cast<float *>(y);
    parallel_for(ctx, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) softmax_row(X + r * dim, Y + r * dim, dim);
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_modulate(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim,
                                     const void *x, const void *scale, const void *shift, int64_t mod_sb,
                                     int64_t mod_ss, void *y) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_modulate")) return s;
    if (sgld_status s = check_sizes("sgld_modulate", {{"batch", batch}, {"seq", seq}, {"dim", dim}})) return s;
    if (batch == 0 || seq == 0 || dim == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(scale);
    SGLD_CHECK_PTR(shift);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x), *SC = static_cast<const float *>(scale), *SH = static_cast<const float *>(shift);
    float *Y = static_cast<float *>(y);
    parallel_for(ctx, batch * seq, row_grain(dim), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t m = r / seq * mod_sb + r % seq * mod_ss;
            modulate_row(X + r * dim, SC + m, SH + m, Y + r * dim, dim);
        }
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_gated_residual(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim,
                                           void *residual, const void *y, const void *gate, int64_t gate_sb,
                                           int64_t gate_ss) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_gated_residual")) return s;
    if (sgld_status s = check_sizes("sgld_gated_residual", {{"batch", batch}, {"seq", seq}, {"dim", dim}})) return s;
    if (batch == 0 || seq == 0 || dim == 0) return SGLD_OK;
    SGLD_CHECK_PTR(residual);
    SGLD_CHECK_PTR(y);
    SGLD_CHECK_PTR(gate);
    float *R = static_cast<float *>(residual);
    const float *Yv = static_cast<const float *>(y), *G = static_cast<const float *>(gate);
    parallel_for(ctx, batch * seq, row_grain(dim), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) gated_residual_row(R + r * dim, Yv + r * dim, G + r / seq * gate_sb + r % seq * gate_ss, dim);
    });
    return SGLD_OK;
}
