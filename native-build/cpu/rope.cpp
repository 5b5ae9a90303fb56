// Rotary position embedding of the CPU backend (sgld.h), both pair layouts:
//   interleaved  (Wan, Z-Image): (x[2i], x[2i+1]) is the complex number rotated by angle i;
//   rotate-half  (Llama, Qwen):  (x[i], x[i+half]) is the pair, as x*cos + rotate_half(x)*sin.
// One task is a range of (batch, position) rows; every head of a row shares that position's cos/sin.
// y may alias x: each pair is loaded before its results are stored.
#include "gemm_simd.h"

#include <algorithm>
#include <vector>

namespace sgld {
namespace {

struct RopeArgs {
    int64_t seq, heads, head_dim;
    const float *x;
    const int64_t *xs;  // [3]: batch, seq, head
    float *y;
    const int64_t *ys;
    const float *cos, *sin;
};

// Interleaved pairs of one head. cd[j] = cos[j/2]; sd[j] = -sin[j/2] for even j, +sin[j/2] for odd j, so
// y[j] = x[j] * cd[j] + x[j^1] * sd[j].
void rotate_interleaved(const float *x, float *y, int64_t d, const float *cd, const float *sd) {
    int64_t j = 0;
#if SGLD_HAVE_AVX2
    for (; j + 8 <= d; j += 8) {
        const __m256 v = _mm256_loadu_ps(x + j);
        const __m256 swapped = _mm256_permute_ps(v, 0xB1);  // (x1, x0, x3, x2, ...)
        _mm256_storeu_ps(y + j, _mm256_fmadd_ps(v, _mm256_loadu_ps(cd + j), _mm256_mul_ps(swapped, _mm256_loadu_ps(sd + j))));
    }
#endif
    for (; j < d; j += 2) {
        const float x0 = x[j], x1 = x[j + 1];
        y[j] = x0 * cd[j] + x1 * sd[j];
        y[j + 1] = x1 * cd[j + 1] + x0 * sd[j + 1];
    }
}

// Rotate-half pairs of one head: y[i] = x[i] c[i] - x[i+h] s[i]; y[i+h] = x[i+h] c[i] + x[i] s[i].
void rotate_half(const float *x, float *y, int64_t half, const float *c, const float *s) {
    int64_t i = 0;
#if SGLD_HAVE_AVX2
    for (; i + 8 <= half; i += 8) {
        const __m256 x1 = _mm256_loadu_ps(x + i), x2 = _mm256_loadu_ps(x + half + i);
        const __m256 vc = _mm256_loadu_ps(c + i), vs = _mm256_loadu_ps(s + i);
        const __m256 lo = _mm256_fnmadd_ps(x2, vs, _mm256_mul_ps(x1, vc));
        const __m256 hi = _mm256_fmadd_ps(x1, vs, _mm256_mul_ps(x2, vc));
        _mm256_storeu_ps(y + i, lo);
        _mm256_storeu_ps(y + half + i, hi);
    }
#endif
    for (; i < half; ++i) {
        const float x1 = x[i], x2 = x[half + i];
        y[i] = x1 * c[i] - x2 * s[i];
        y[half + i] = x2 * c[i] + x1 * s[i];
    }
}

void rope_rows(const RopeArgs &g, bool interleaved, int64_t r0, int64_t r1) {
    const int64_t half = g.head_dim / 2;
    std::vector<float> cd, sd;
    if (interleaved) { cd.resize(size_t(g.head_dim)); sd.resize(size_t(g.head_dim)); }
    for (int64_t r = r0; r < r1; ++r) {
        const int64_t b = r / g.seq, s = r % g.seq;
        const float *c = g.cos + s * half, *sn = g.sin + s * half;
        if (interleaved) {
            for (int64_t i = 0; i < half; ++i) {
                cd[size_t(2 * i)] = cd[size_t(2 * i + 1)] = c[i];
                sd[size_t(2 * i)] = -sn[i];
                sd[size_t(2 * i + 1)] = sn[i];
            }
        }
        const float *xr = g.x + b * g.xs[0] + s * g.xs[1];
        float *yr = g.y + b * g.ys[0] + s * g.ys[1];
        for (int64_t h = 0; h < g.heads; ++h) {
            if (interleaved) rotate_interleaved(xr + h * g.xs[2], yr + h * g.ys[2], g.head_dim, cd.data(), sd.data());
            else rotate_half(xr + h * g.xs[2], yr + h * g.ys[2], half, c, sn);
        }
    }
}

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_rope(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t heads,
                                 int64_t head_dim, const void *x, const int64_t *x_strides, void *y,
                                 const int64_t *y_strides, const float *cos, const float *sin, int32_t interleaved) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_rope")) return s;
    if (batch < 0 || seq < 0 || heads < 0 || head_dim < 0)
        return fail(SGLD_ERR_INVALID, "sgld_rope: negative size (batch %lld, seq %lld, heads %lld, head_dim %lld)",
                    (long long)batch, (long long)seq, (long long)heads, (long long)head_dim);
    if (head_dim % 2) return fail(SGLD_ERR_INVALID, "sgld_rope: head_dim %lld is odd", (long long)head_dim);
    if (interleaved != 0 && interleaved != 1) return fail(SGLD_ERR_INVALID, "sgld_rope: interleaved must be 0 or 1, got %d", interleaved);
    if (batch == 0 || seq == 0 || heads == 0 || head_dim == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x); SGLD_CHECK_PTR(x_strides); SGLD_CHECK_PTR(y); SGLD_CHECK_PTR(y_strides);
    SGLD_CHECK_PTR(cos); SGLD_CHECK_PTR(sin);
    const RopeArgs g{seq, heads, head_dim, static_cast<const float *>(x), x_strides, static_cast<float *>(y), y_strides, cos, sin};
    const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 14) / (heads * head_dim));
    parallel_for(ctx, batch * seq, grain, [&](int64_t r0, int64_t r1) { rope_rows(g, interleaved == 1, r0, r1); });
    return SGLD_OK;
}
