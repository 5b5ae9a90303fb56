// CUDA row reductions: LayerNorm, RMSNorm, GroupNorm, channel L2 norm and softmax. Statistics are fp32 and
// two-pass (mean, then the mean of squared deviations), as accurate as the CPU backend's. Every element is read
// and written by the same thread in every pass, so y may alias x.
#include "common.cuh"

namespace sgld {

constexpr int kRowThreads = 256;
constexpr int kGroupThreads = 1024;  // a GroupNorm group is large (channels/groups x spatial) and has one block

template <class T>
__global__ void layer_norm_kernel(int64_t rows, int64_t dim, const T *x, T *y, const T *weight, const T *bias, float eps) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * dim;
        T *yr = y + r * dim;
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += load(xr + i);
        const float mean = block_sum(s, scratch) / float(dim);
        float v = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            const float d = load(xr + i) - mean;
            v += d * d;
        }
        const float inv = 1.0f / sqrtf(block_sum(v, scratch) / float(dim) + eps);
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            float o = (load(xr + i) - mean) * inv;
            if (weight) o *= load(weight + i);
            if (bias) o += load(bias + i);
            store(yr + i, o);
        }
    }
}

template <class T>
__global__ void rms_norm_kernel(int64_t rows, int64_t dim, const T *x, T *y, const T *weight, float eps) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * dim;
        T *yr = y + r * dim;
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            const float v = load(xr + i);
            s += v * v;
        }
        const float inv = 1.0f / sqrtf(block_sum(s, scratch) / float(dim) + eps);
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) {
            float o = load(xr + i) * inv;
            if (weight) o *= load(weight + i);
            store(yr + i, o);
        }
    }
}

// One block per (n, group); the group's channels are contiguous: (channels/groups) x spatial values.
template <class T>
__global__ void group_norm_kernel(int64_t n, int64_t channels, int64_t spatial, int64_t groups, const T *x, T *y,
                                  const T *weight, const T *bias, float eps) {
    __shared__ float scratch[32];
    const int64_t cpg = channels / groups, size = cpg * spatial;
    for (int64_t ng = blockIdx.x; ng < n * groups; ng += gridDim.x) {
        const int64_t g = ng % groups;
        const T *xg = x + ng * size;  // (b * channels + g * cpg) * spatial
        T *yg = y + ng * size;
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < size; i += blockDim.x) s += load(xg + i);
        const float mean = block_sum(s, scratch) / float(size);
        float v = 0.0f;
        for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
            const float d = load(xg + i) - mean;
            v += d * d;
        }
        const float inv = 1.0f / sqrtf(block_sum(v, scratch) / float(size) + eps);
        for (int64_t i = threadIdx.x; i < size; i += blockDim.x) {
            const int64_t c = g * cpg + i / spatial;
            float o = (load(xg + i) - mean) * inv;
            if (weight) o *= load(weight + c);
            if (bias) o += load(bias + c);
            store(yg + i, o);
        }
    }
}

// One thread per (outer, inner) position, looping over channels (inner apart): neighbouring threads read
// neighbouring addresses.
template <class T>
__global__ void channel_norm_kernel(int64_t outer, int64_t channels, int64_t inner, const T *x, T *y,
                                    const T *gamma, const T *beta, float scale, float eps) {
    SGLD_GRID_STRIDE(e, outer * inner) {
        const int64_t o = e / inner, i = e % inner;
        const T *xp = x + o * channels * inner + i;
        T *yp = y + o * channels * inner + i;
        float s = 0.0f;
        for (int64_t c = 0; c < channels; ++c) {
            const float v = load(xp + c * inner);
            s += v * v;
        }
        const float denom = fmaxf(sqrtf(s), eps);
        for (int64_t c = 0; c < channels; ++c) {
            float v = load(xp + c * inner) / denom * scale;
            if (gamma) v *= load(gamma + c);
            if (beta) v += load(beta + c);
            store(yp + c * inner, v);
        }
    }
}

template <class T>
__global__ void softmax_kernel(int64_t rows, int64_t dim, const T *x, T *y) {
    __shared__ float scratch[32];
    for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
        const T *xr = x + r * dim;
        T *yr = y + r * dim;
        float m = -INFINITY;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) m = fmaxf(m, load(xr + i));
        m = block_max(m, scratch);
        float s = 0.0f;
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) s += expf(load(xr + i) - m);
        s = block_sum(s, scratch);
        for (int64_t i = threadIdx.x; i < dim; i += blockDim.x) store(yr + i, expf(load(xr + i) - m) / s);
    }
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_layer_norm(sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                       void *y, const void *weight, const void *bias, float eps) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(rows);
        SGLD_CHECK_NONNEG(dim);
        if (rows == 0 || dim == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            layer_norm_kernel<T><<<grid_rows(rows), kRowThreads, 0, ctx->stream>>>(
                rows, dim, static_cast<const T *>(x), static_cast<T *>(y), static_cast<const T *>(weight),
                static_cast<const T *>(bias), eps);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_rms_norm(sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x,
                                     void *y, const void *weight, float eps) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(rows);
        SGLD_CHECK_NONNEG(dim);
        if (rows == 0 || dim == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            rms_norm_kernel<T><<<grid_rows(rows), kRowThreads, 0, ctx->stream>>>(
                rows, dim, static_cast<const T *>(x), static_cast<T *>(y), static_cast<const T *>(weight), eps);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_group_norm(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t channels, int64_t spatial,
                                       int64_t groups, const void *x, void *y, const void *weight, const void *bias,
                                       float eps) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(n);
        SGLD_CHECK_NONNEG(channels);
        SGLD_CHECK_NONNEG(spatial);
        if (groups <= 0 || channels % groups != 0)
            return fail(SGLD_ERR_INVALID, "sgld_group_norm: %lld channels do not split into %lld groups",
                        (long long)channels, (long long)groups);
        if (n == 0 || channels == 0 || spatial == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            group_norm_kernel<T><<<grid_rows(n * groups), kGroupThreads, 0, ctx->stream>>>(
                n, channels, spatial, groups, static_cast<const T *>(x), static_cast<T *>(y),
                static_cast<const T *>(weight), static_cast<const T *>(bias), eps);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_channel_norm(sgld_context_t ctx, int32_t dtype, int64_t outer, int64_t channels,
                                         int64_t inner, const void *x, void *y, const void *gamma, const void *beta,
                                         float scale, float eps) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(outer);
        SGLD_CHECK_NONNEG(channels);
        SGLD_CHECK_NONNEG(inner);
        if (outer == 0 || channels == 0 || inner == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            channel_norm_kernel<T><<<grid_for(outer * inner), kThreads, 0, ctx->stream>>>(
                outer, channels, inner, static_cast<const T *>(x), static_cast<T *>(y), static_cast<const T *>(gamma),
                static_cast<const T *>(beta), scale, eps);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_softmax(sgld_context_t ctx, int32_t dtype, int64_t rows, int64_t dim, const void *x, void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(rows);
        SGLD_CHECK_NONNEG(dim);
        if (rows == 0 || dim == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            softmax_kernel<T><<<grid_rows(rows), kRowThreads, 0, ctx->stream>>>(rows, dim, static_cast<const T *>(x),
                                                                              static_cast<T *>(y));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}
