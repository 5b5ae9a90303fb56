// Convolutions and nearest upsampling of the CPU backend (sgld.h).
//
// conv3d (and conv2d, its t = kt = 1 case) checks its arguments here and runs as an implicit GEMM
// (conv_gemm.cpp): the weight packed once per call, im2col panels packed straight from the input into the
// micro-kernel's layout, output tiles of pixels spread over the threads.
#include "conv_shape.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cstring>
#include <new>

namespace sgld {
namespace {

bool use_winograd(const ConvShape &s) {
#ifdef SGLD_CONV_NO_WINOGRAD
    return false;
#else
    return conv3d_winograd_applies(s);
#endif
}

sgld_status conv3d_checked(sgld_context_t ctx, const char *op, int32_t dtype, int64_t n, int64_t c_in, int64_t t,
                           int64_t h, int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw,
                           const void *weight, const void *bias, const int64_t stride[3], const int64_t pad[6],
                           void *y) {
    if (sgld_status s = require_f32(dtype, op)) return s;
    if (n < 0 || c_in < 0 || t < 0 || h < 0 || w < 0 || c_out < 0)
        return fail(SGLD_ERR_INVALID, "%s: negative size (n %lld, c_in %lld, t %lld, h %lld, w %lld, c_out %lld)", op,
                    (long long)n, (long long)c_in, (long long)t, (long long)h, (long long)w, (long long)c_out);
    if (kt < 1 || kh < 1 || kw < 1)
        return fail(SGLD_ERR_INVALID, "%s: kernel %lldx%lldx%lld must be at least 1 in every dim", op, (long long)kt, (long long)kh, (long long)kw);
    for (int i = 0; i < 3; ++i)
        if (stride[i] < 1) return fail(SGLD_ERR_INVALID, "%s: strides[%d] = %lld must be >= 1", op, i, (long long)stride[i]);
    for (int i = 0; i < 6; ++i)
        if (pad[i] < 0) return fail(SGLD_ERR_INVALID, "%s: pads[%d] = %lld is negative", op, i, (long long)pad[i]);
    ConvShape s{n, c_in, t, h, w, c_out, kt, kh, kw, stride[0], stride[1], stride[2], pad[0], pad[2], pad[4], 0, 0, 0};
    const int64_t tp = t + pad[0] + pad[1], hp = h + pad[2] + pad[3], wp = w + pad[4] + pad[5];
    if (tp < kt || hp < kh || wp < kw)
        return fail(SGLD_ERR_INVALID, "%s: padded input %lldx%lldx%lld is smaller than the kernel %lldx%lldx%lld", op,
                    (long long)tp, (long long)hp, (long long)wp, (long long)kt, (long long)kh, (long long)kw);
    s.to = (tp - kt) / s.st + 1;
    s.ho = (hp - kh) / s.sh + 1;
    s.wo = (wp - kw) / s.sw + 1;
    if (n == 0 || c_out == 0) return SGLD_OK;
    // (Checked by hand: SGLD_CHECK_PTR would name this helper instead of the op.)
    if (!y) return fail(SGLD_ERR_INVALID, "%s: y is null", op);
    if (c_in > 0 && t > 0 && h > 0 && w > 0) {
        if (!x) return fail(SGLD_ERR_INVALID, "%s: x is null", op);
        if (!weight) return fail(SGLD_ERR_INVALID, "%s: weight is null", op);
    }
    const float *X = static_cast<const float *>(x), *W = static_cast<const float *>(weight), *B = static_cast<const float *>(bias);
    float *Y = static_cast<float *>(y);
    try {
        // Winograd where it applies and wins; when its larger workspace cannot be allocated the implicit GEMM
        // still runs.
        const bool done = conv3d_direct_few_channels(ctx, s, X, W, B, Y) ||
                          (use_winograd(s) && conv3d_winograd(ctx, s, X, W, B, Y)) ||
                          conv3d_implicit_gemm(ctx, s, X, W, B, Y);
        if (!done) throw std::bad_alloc();
    } catch (const std::bad_alloc &) {
        return fail(SGLD_ERR_NO_MEMORY, "%s: out of memory for the packing workspace", op);
    }
    return SGLD_OK;
}

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_conv3d(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t t, int64_t h,
                                   int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw,
                                   const void *weight, const void *bias, const int32_t *strides, const int32_t *pads,
                                   void *y) {
    SGLD_CHECK_CTX(ctx);
    SGLD_CHECK_PTR(strides);
    SGLD_CHECK_PTR(pads);
    const int64_t stride[3] = {strides[0], strides[1], strides[2]};
    const int64_t pad[6] = {pads[0], pads[1], pads[2], pads[3], pads[4], pads[5]};
    return conv3d_checked(ctx, "sgld_conv3d", dtype, n, c_in, t, h, w, x, c_out, kt, kh, kw, weight, bias, stride, pad, y);
}

extern "C" sgld_status sgld_conv2d(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t h, int64_t w,
                                   const void *x, int64_t c_out, int64_t kh, int64_t kw, const void *weight,
                                   const void *bias, const int32_t *strides, const int32_t *pads, void *y) {
    SGLD_CHECK_CTX(ctx);
    SGLD_CHECK_PTR(strides);
    SGLD_CHECK_PTR(pads);
    const int64_t stride[3] = {1, strides[0], strides[1]};
    const int64_t pad[6] = {0, 0, pads[0], pads[1], pads[2], pads[3]};
    return conv3d_checked(ctx, "sgld_conv2d", dtype, n, c_in, 1, h, w, x, c_out, 1, kh, kw, weight, bias, stride, pad, y);
}

extern "C" sgld_status sgld_upsample_nearest(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c, int64_t t,
                                             int64_t h, int64_t w, int32_t ft, int32_t fh, int32_t fw, const void *x,
                                             void *y) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_upsample_nearest")) return s;
    if (n < 0 || c < 0 || t < 0 || h < 0 || w < 0)
        return fail(SGLD_ERR_INVALID, "sgld_upsample_nearest: negative size (n %lld, c %lld, t %lld, h %lld, w %lld)",
                    (long long)n, (long long)c, (long long)t, (long long)h, (long long)w);
    if (ft < 1 || fh < 1 || fw < 1)
        return fail(SGLD_ERR_INVALID, "sgld_upsample_nearest: factors %d, %d, %d must be >= 1", ft, fh, fw);
    if (n == 0 || c == 0 || t == 0 || h == 0 || w == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x);
    float *Y = static_cast<float *>(y);
    const int64_t wo = w * fw, ho = h * fh, to = t * ft;
    // One task per input row: expand it once into its first output row, then copy that row to the other
    // fh * ft - 1 output rows it feeds.
    const int64_t rows = n * c * t * h;
    parallel_for(ctx, rows, std::max<int64_t>(1, (int64_t(1) << 15) / (wo * fh * ft)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t iy = r % h, iz = r / h % t, nc = r / (h * t);
            const float *in = X + r * w;
            float *first = Y + ((nc * to + iz * ft) * ho + iy * fh) * wo;
            int64_t ix = 0;
#if SGLD_HAVE_AVX2
            if (fw == 2) {
                for (; ix + 8 <= w; ix += 8) {
                    const __m256 v = _mm256_loadu_ps(in + ix);
                    const __m256 lo = _mm256_unpacklo_ps(v, v), hi = _mm256_unpackhi_ps(v, v);
                    _mm256_storeu_ps(first + 2 * ix, _mm256_permute2f128_ps(lo, hi, 0x20));
                    _mm256_storeu_ps(first + 2 * ix + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
                }
            }
#endif
            for (; ix < w; ++ix) std::fill(first + ix * fw, first + (ix + 1) * fw, in[ix]);
            for (int64_t dz = 0; dz < ft; ++dz) {
                for (int64_t dy = 0; dy < fh; ++dy) {
                    if (dz == 0 && dy == 0) continue;
                    std::memcpy(first + (dz * ho + dy) * wo, first, size_t(wo) * 4);
                }
            }
        }
    });
    return SGLD_OK;
}
