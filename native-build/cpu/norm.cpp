// Normalisation ops of the CPU backend (sgld.h): LayerNorm, RMSNorm, GroupNorm and the channel L2 norm of
// Wan's VAE. Statistics are fp32 sums over 8-lane accumulators, folded into double every block so that long
// rows (a GroupNorm group of a video is millions of values) lose no precision; the variance is the biased one
// of two passes (mean first, then squared deviations), as torch's.
#include "gemm_simd.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <initializer_list>

namespace sgld {
namespace {

constexpr int64_t kReduceBlock = 1024;    // values summed in fp32 before folding into double
constexpr int64_t kRowGrain = 1 << 14;    // values per parallel chunk of row-wise ops

// sum(x) when Squares is false, sum((x - center)^2) when true.
template <bool Squares>
double reduce(const float *x, int64_t n, float center) {
    double total = 0;
    for (int64_t b = 0; b < n; b += kReduceBlock) {
        const int64_t e = std::min(n, b + kReduceBlock);
        int64_t i = b;
        float part = 0;
#if SGLD_HAVE_AVX2
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        const __m256 c = _mm256_set1_ps(center);
        for (; i + 16 <= e; i += 16) {
            __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
            if (Squares) {
                v0 = _mm256_sub_ps(v0, c); v1 = _mm256_sub_ps(v1, c);
                acc0 = _mm256_fmadd_ps(v0, v0, acc0); acc1 = _mm256_fmadd_ps(v1, v1, acc1);
            } else {
                acc0 = _mm256_add_ps(acc0, v0); acc1 = _mm256_add_ps(acc1, v1);
            }
        }
        part = hsum256(_mm256_add_ps(acc0, acc1));
#endif
        double tail = 0;  // the scalar remainder (all of it without AVX2) sums in double: no long fp32 chain
        for (; i < e; ++i) {
            const float v = Squares ? (x[i] - center) * (x[i] - center) : x[i];
            tail += v;
        }
        total += double(part) + tail;
    }
    return total;
}

struct Moments { float mean, rstd; };

// Mean and 1/sqrt(biased variance + eps) of n values.
Moments moments(const float *x, int64_t n, float eps) {
    const float mean = float(reduce<false>(x, n, 0.0f) / double(n));
    const float var = float(reduce<true>(x, n, mean) / double(n));
    return {mean, 1.0f / std::sqrt(var + eps)};
}

// y = (x - mean) * rstd * w + b over one row; w/b may be null.
template <bool HasW, bool HasB>
void layer_norm_row(const float *x, float *y, int64_t n, Moments m, const float *w, const float *b) {
    for (int64_t i = 0; i < n; ++i) {
        float v = (x[i] - m.mean) * m.rstd;
        if (HasW) v *= w[i];
        if (HasB) v += b[i];
        y[i] = v;
    }
}

// y = x * r * w over one row (w may be null).
template <bool HasW>
void rms_norm_row(const float *x, float *y, int64_t n, float r, const float *w) {
    for (int64_t i = 0; i < n; ++i) y[i] = HasW ? x[i] * r * w[i] : x[i] * r;
}

// y = x * a + c over n values.
void scale_shift(const float *x, float *y, int64_t n, float a, float c) {
    for (int64_t i = 0; i < n; ++i) y[i] = x[i] * a + c;
}

int64_t row_grain(int64_t dim) { return std::max<int64_t>(1, kRowGrain / std::max<int64_t>(1, dim)); }

sgld_status check_sizes(const char *op, std::initializer_list<std::pair<const char *, int64_t>> sizes) {
    for (const auto &s : sizes)
        if (s.second < 0) return fail(SGLD_ERR_INVALID, "%s: %s = %lld is negative", op, s.first, (long long)s.second);
    return SGLD_OK;
}

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_layer_norm(sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                       void *y, const void *weight, const void *bias, float eps) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_layer_norm")) return s;
    if (sgld_status s = check_sizes("sgld_layer_norm", {{"rows", rows}, {"dim", dim}})) return s;
    if (rows == 0 || dim == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x), *W = static_cast<const float *>(weight), *B = static_cast<const float *>(bias);
    float *Y = static_cast<float *>(y);
    auto row_fn = W ? (B ? layer_norm_row<true, true> : layer_norm_row<true, false>)
                    : (B ? layer_norm_row<false, true> : layer_norm_row<false, false>);
    parallel_for(ctx, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = X + r * dim;
            row_fn(xr, Y + r * dim, dim, moments(xr, dim, eps), W, B);
        }
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_rms_norm(sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                     void *y, const void *weight, float eps) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_rms_norm")) return s;
    if (sgld_status s = check_sizes("sgld_rms_norm", {{"rows", rows}, {"dim", dim}})) return s;
    if (rows == 0 || dim == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x), *W = static_cast<const float *>(weight);
    float *Y = static_cast<float *>(y);
    parallel_for(ctx, rows, row_grain(dim), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const float *xr = X + r * dim;
            const float ms = float(reduce<true>(xr, dim, 0.0f) / double(dim));
            const float inv = 1.0f / std::sqrt(ms + eps);
            if (W) rms_norm_row<true>(xr, Y + r * dim, dim, inv, W);
            else rms_norm_row<false>(xr, Y + r * dim, dim, inv, W);
        }
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_group_norm(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t channels, int64_t spatial,
                                       int64_t groups, const void *x, void *y, const void *weight, const void *bias,
                                       float eps) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_group_norm")) return s;
    if (sgld_status s = check_sizes("sgld_group_norm", {{"n", n}, {"channels", channels}, {"spatial", spatial}})) return s;
    if (groups < 1 || channels % groups != 0)
        return fail(SGLD_ERR_INVALID, "sgld_group_norm: %lld channels do not split into %lld groups", (long long)channels, (long long)groups);
    if (n == 0 || channels == 0 || spatial == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x), *W = static_cast<const float *>(weight), *B = static_cast<const float *>(bias);
    float *Y = static_cast<float *>(y);
    const int64_t per_group = channels / groups * spatial;
    // Pass 1: statistics per (n, group), each group contiguous. Pass 2: per (n, channel), y = x * a + c with
    // a = rstd * w and c = b - mean * a (torch's fused form), so every thread has work even with few groups.
    std::vector<Moments> stats(size_t(n * groups));
    parallel_for(ctx, n * groups, std::max<int64_t>(1, kRowGrain / per_group), [&](int64_t g0, int64_t g1) {
        for (int64_t g = g0; g < g1; ++g) stats[size_t(g)] = moments(X + g * per_group, per_group, eps);
    });
    const int64_t cpg = channels / groups;
    parallel_for(ctx, n * channels, row_grain(spatial), [&](int64_t c0, int64_t c1) {
        for (int64_t nc = c0; nc < c1; ++nc) {
            const int64_t c = nc % channels;
            const Moments m = stats[size_t(nc / channels * groups + c / cpg)];
            const float a = m.rstd * (W ? W[c] : 1.0f);
            const float shift = (B ? B[c] : 0.0f) - m.mean * a;
            scale_shift(X + nc * spatial, Y + nc * spatial, spatial, a, shift);
        }
    });
    return SGLD_OK;
}

extern "C" sgld_status sgld_channel_norm(sgld_context_t ctx, int32_t dtype, int64_t outer, int64_t channels,
                                         int64_t inner, const void *x, void *y, const void *gamma, const void *beta,
                                         float scale, float eps) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_channel_norm")) return s;
    if (sgld_status s = check_sizes("sgld_channel_norm", {{"outer", outer}, {"channels", channels}, {"inner", inner}})) return s;
    if (outer == 0 || channels == 0 || inner == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x), *G = static_cast<const float *>(gamma), *B = static_cast<const float *>(beta);
    float *Y = static_cast<float *>(y);
    // y = x / max(||x||, eps) * scale * gamma[c] + beta[c]: F.normalize's clamp, then the affine.
    if (inner == 1) {  // channels last: each row of `channels` values is one vector
        parallel_for(ctx, outer, row_grain(channels), [&](int64_t r0, int64_t r1) {
            for (int64_t r = r0; r < r1; ++r) {
                const float *xr = X + r * channels;
                float *yr = Y + r * channels;
                const float inv = 1.0f / std::max(float(std::sqrt(reduce<true>(xr, channels, 0.0f))), eps);
                for (int64_t c = 0; c < channels; ++c)
                    yr[c] = xr[c] * inv * (scale * (G ? G[c] : 1.0f)) + (B ? B[c] : 0.0f);
            }
        });
        return SGLD_OK;
    }
    // Channels first: a task is one outer index and a block of inner positions; the norms of the block are
    // accumulated channel by channel (contiguous rows, so the loops vectorise across positions).
    constexpr int64_t kBlock = 512;
    const int64_t blocks = (inner + kBlock - 1) / kBlock;
    parallel_for(ctx, outer * blocks, std::max<int64_t>(1, kRowGrain / (channels * kBlock)), [&](int64_t t0, int64_t t1) {
        float inv[kBlock];
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t o = t / blocks, i0 = t % blocks * kBlock, len = std::min(kBlock, inner - i0);
            const float *xo = X + o * channels * inner + i0;
            float *yo = Y + o * channels * inner + i0;
            std::fill(inv, inv + len, 0.0f);
            for (int64_t c = 0; c < channels; ++c) {
                const float *xc = xo + c * inner;
                for (int64_t i = 0; i < len; ++i) inv[i] += xc[i] * xc[i];
            }
            for (int64_t i = 0; i < len; ++i) inv[i] = 1.0f / std::max(std::sqrt(inv[i]), eps);
            for (int64_t c = 0; c < channels; ++c) {
                const float a = scale * (G ? G[c] : 1.0f), b = B ? B[c] : 0.0f;
                const float *xc = xo + c * inner;
                float *yc = yo + c * inner;
                for (int64_t i = 0; i < len; ++i) yc[i] = xc[i] * inv[i] * a + b;
            }
        }
    });
    return SGLD_OK;
}
