// CUDA convolutions as an implicit GEMM on the tiled kernel (no im2col buffer): Y[co, position] =
// sum over (ci, kt, kh, kw) of W[co, (ci, kt, kh, kw)] * X[(ci, kt, kh, kw), position], the input column gathered
// on the fly with zero padding. Plus nearest-neighbour upsampling.
#include "common.cuh"
#include "tiled_gemm.cuh"

namespace sgld {

struct ConvShape {
    int64_t c_in, t, h, w, c_out;
    int64_t kt, kh, kw;
    int64_t st, sh, sw;     // strides
    int64_t pt, ph, pw;     // front / top / left pads (the back pads only shape the output)
    int64_t to, ho, wo;     // output extent
};

template <class T>
struct ConvWeightLoad {  // weight [c_out, c_in*kt*kh*kw] row-major: the GEMM's A (row = output channel)
    const T *w;
    int64_t k;
    __device__ float operator()(int64_t, int64_t co, int64_t p) const { return load(w + co * k + p); }
};

template <class T>
struct ConvInputLoad {  // the GEMM's B: row p = (ci, a, b, c) of the kernel window, column j = (n, to, ho, wo)
    const T *x;
    ConvShape s;
    __device__ float operator()(int64_t, int64_t p, int64_t j) const {
        const int64_t c = p % s.kw;
        int64_t r = p / s.kw;
        const int64_t b = r % s.kh;
        r /= s.kh;
        const int64_t a = r % s.kt, ci = r / s.kt;
        const int64_t wo = j % s.wo;
        r = j / s.wo;
        const int64_t ho = r % s.ho;
        r /= s.ho;
        const int64_t to = r % s.to, n = r / s.to;
        const int64_t ti = to * s.st - s.pt + a, hi = ho * s.sh - s.ph + b, wi = wo * s.sw - s.pw + c;
        if (ti < 0 || ti >= s.t || hi < 0 || hi >= s.h || wi < 0 || wi >= s.w) return 0.0f;
        return load(x + (((n * s.c_in + ci) * s.t + ti) * s.h + hi) * s.w + wi);
    }
};

template <class T>
struct ConvEpilogue {  // y[n, co, to, ho, wo] = acc + bias[co]
    T *y;
    const T *bias;
    int64_t c_out, positions;  // positions = to * ho * wo per image
    __device__ void operator()(int64_t, int64_t co, int64_t j, float acc) const {
        const int64_t n = j / positions, rest = j % positions;
        if (bias) acc += load(bias + co);
        store(y + (n * c_out + co) * positions + rest, acc);
    }
};

template <class T>
__global__ void upsample_nearest_kernel(int64_t nc, int64_t t, int64_t h, int64_t w, int32_t ft, int32_t fh,
                                        int32_t fw, const T *x, T *y) {
    const int64_t to = t * ft, ho = h * fh, wo = w * fw;
    SGLD_GRID_STRIDE(e, nc * to * ho * wo) {
        const int64_t ow = e % wo;
        int64_t r = e / wo;
        const int64_t oh = r % ho;
        r /= ho;
        const int64_t ot = r % to, plane = r / to;
        y[e] = x[((plane * t + ot / ft) * h + oh / fh) * w + ow / fw];
    }
}

static sgld_status conv(sgld_context_t ctx, const char *fn, int32_t dtype, int64_t n, int64_t c_in, int64_t t,
                        int64_t h, int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw,
                        const void *weight, const void *bias, const int64_t st[3], const int64_t pads[6], void *y) {
    const int64_t sizes[] = {n, c_in, t, h, w, c_out, kt, kh, kw};
    for (int64_t v : sizes)
        if (v < 0) return fail(SGLD_ERR_INVALID, "%s: negative size", fn);
    for (int i = 0; i < 3; ++i)
        if (st[i] < 1) return fail(SGLD_ERR_INVALID, "%s: stride %lld must be at least 1", fn, (long long)st[i]);
    for (int i = 0; i < 6; ++i)
        if (pads[i] < 0) return fail(SGLD_ERR_INVALID, "%s: negative padding", fn);
    if (kt < 1 || kh < 1 || kw < 1) return fail(SGLD_ERR_INVALID, "%s: empty kernel", fn);
    ConvShape s{c_in, t, h, w, c_out, kt, kh, kw, st[0], st[1], st[2], pads[0], pads[2], pads[4], 0, 0, 0};
    const int64_t et = t + pads[0] + pads[1] - kt, eh = h + pads[2] + pads[3] - kh, ew = w + pads[4] + pads[5] - kw;
    if (et < 0 || eh < 0 || ew < 0)
        return fail(SGLD_ERR_INVALID, "%s: the padded input is smaller than the kernel", fn);
    s.to = et / st[0] + 1;
    s.ho = eh / st[1] + 1;
    s.wo = ew / st[2] + 1;
    const int64_t positions = s.to * s.ho * s.wo;
    if (n == 0 || c_out == 0) return SGLD_OK;
    if (!x || !weight || !y) return fail(SGLD_ERR_INVALID, "%s: x, weight and y must not be null", fn);
    const int64_t k = c_in * kt * kh * kw;
    return dispatch_float(dtype, fn, [&](auto tag) -> sgld_status {
        using T = typename decltype(tag)::type;
        ConvWeightLoad<T> la{static_cast<const T *>(weight), k};
        ConvInputLoad<T> lb{static_cast<const T *>(x), s};
        ConvEpilogue<T> epi{static_cast<T *>(y), static_cast<const T *>(bias), c_out, positions};
        launch_tiled_gemm(ctx->stream, c_out, n * positions, k, 1, la, lb, epi);
        return launch_status(fn);
    });
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_conv3d(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t t, int64_t h,
                                   int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw,
                                   const void *weight, const void *bias, const int32_t *strides, const int32_t *pads,
                                   void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_PTR(strides);
        SGLD_CHECK_PTR(pads);
        const int64_t st[3] = {strides[0], strides[1], strides[2]};
        const int64_t pd[6] = {pads[0], pads[1], pads[2], pads[3], pads[4], pads[5]};
        return conv(ctx, sgld_fn_, dtype, n, c_in, t, h, w, x, c_out, kt, kh, kw, weight, bias, st, pd, y);
    SGLD_API_END
}

extern "C" sgld_status sgld_conv2d(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t h, int64_t w,
                                   const void *x, int64_t c_out, int64_t kh, int64_t kw, const void *weight,
                                   const void *bias, const int32_t *strides, const int32_t *pads, void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_PTR(strides);
        SGLD_CHECK_PTR(pads);
        const int64_t st[3] = {1, strides[0], strides[1]};
        const int64_t pd[6] = {0, 0, pads[0], pads[1], pads[2], pads[3]};
        return conv(ctx, sgld_fn_, dtype, n, c_in, 1, h, w, x, c_out, 1, kh, kw, weight, bias, st, pd, y);
    SGLD_API_END
}

extern "C" sgld_status sgld_upsample_nearest(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c, int64_t t,
                                             int64_t h, int64_t w, int32_t ft, int32_t fh, int32_t fw, const void *x,
                                             void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(n);
        SGLD_CHECK_NONNEG(c);
        SGLD_CHECK_NONNEG(t);
        SGLD_CHECK_NONNEG(h);
        SGLD_CHECK_NONNEG(w);
        if (ft < 1 || fh < 1 || fw < 1)
            return fail(SGLD_ERR_INVALID, "sgld_upsample_nearest: factors (%d, %d, %d) must be at least 1", ft, fh, fw);
        const int64_t total = n * c * t * ft * h * fh * w * fw;
        if (total == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        // A pure copy: move the bits at the dtype's width (any float dtype).
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            upsample_nearest_kernel<T><<<grid_for(total), kThreads, 0, ctx->stream>>>(
                n * c, t, h, w, ft, fh, fw, static_cast<const T *>(x), static_cast<T *>(y));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}
