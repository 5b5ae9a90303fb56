// CUDA rotary position embedding. One thread per rotated pair; it reads both values before writing either, so
// y may alias x.
#include "common.cuh"

namespace sgld {

// x/y address (b, s, h, d) at b*st[0] + s*st[1] + h*st[2] + d; cos/sin are [seq, half] fp32.
template <class T>
__global__ void rope_kernel(int64_t batch, int64_t seq, int64_t heads, int64_t half, const T *x, int64_t xs0,
                            int64_t xs1, int64_t xs2, T *y, int64_t ys0, int64_t ys1, int64_t ys2, const float *cos_t,
                            const float *sin_t, int32_t interleaved) {
    SGLD_GRID_STRIDE(e, batch * seq * heads * half) {
        const int64_t i = e % half;
        int64_t t = e / half;
        const int64_t h = t % heads;
        t /= heads;
        const int64_t s = t % seq, b = t / seq;
        const T *xp = x + b * xs0 + s * xs1 + h * xs2;
        T *yp = y + b * ys0 + s * ys1 + h * ys2;
        const float c = cos_t[s * half + i], sn = sin_t[s * half + i];
        // interleaved: (x[2i], x[2i+1]) as a complex number times (cos + i sin); otherwise rotate_half pairs.
        const int64_t i0 = interleaved ? 2 * i : i, i1 = interleaved ? 2 * i + 1 : i + half;
        const float x0 = load(xp + i0), x1 = load(xp + i1);
        store(yp + i0, x0 * c - x1 * sn);
        store(yp + i1, x1 * c + x0 * sn);
    }
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_rope(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t heads,
                                 int64_t head_dim, const void *x, const int64_t *x_strides, void *y,
                                 const int64_t *y_strides, const float *cos, const float *sin, int32_t interleaved) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(batch);
        SGLD_CHECK_NONNEG(seq);
        SGLD_CHECK_NONNEG(heads);
        SGLD_CHECK_NONNEG(head_dim);
        if (head_dim % 2 != 0) return fail(SGLD_ERR_INVALID, "sgld_rope: head_dim %lld is odd", (long long)head_dim);
        const int64_t half = head_dim / 2;
        if (batch * seq * heads * half == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(x_strides);
        SGLD_CHECK_PTR(y);
        SGLD_CHECK_PTR(y_strides);
        SGLD_CHECK_PTR(cos);
        SGLD_CHECK_PTR(sin);
        const int64_t total = batch * seq * heads * half;
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            rope_kernel<T><<<grid_for(total), kThreads, 0, ctx->stream>>>(
                batch, seq, heads, half, static_cast<const T *>(x), x_strides[0], x_strides[1], x_strides[2],
                static_cast<T *>(y), y_strides[0], y_strides[1], y_strides[2], cos, sin, interleaved);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}
