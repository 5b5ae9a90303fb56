// CUDA layout ops: strided copy (permute / slice / concat / dtype conversion), contiguous conversion and fill.
#include <type_traits>

#include "common.cuh"

namespace sgld {

// Float -> float goes through fp32 (exact for every source type, then one round to nearest even); same-type
// copies of any dtype move the bits unchanged.
template <class S, class D>
struct Convert {
    __device__ static void apply(const S *s, D *d) { store(d, load(s)); }
};
template <class T>
struct Convert<T, T> {
    __device__ static void apply(const T *s, T *d) { *d = *s; }
};

template <class S, class D>
__global__ void copy_strided_kernel(StridedShape shape, int64_t count, const S *src, D *dst) {
    SGLD_GRID_STRIDE(i, count) {
        int64_t off[2];
        strided_offsets<2>(shape, i, off);
        Convert<S, D>::apply(src + off[0], dst + off[1]);
    }
}

template <class S, class D>
__global__ void convert_kernel(int64_t n, const S *src, D *dst) {
    SGLD_GRID_STRIDE(i, n) Convert<S, D>::apply(src + i, dst + i);
}

template <class W>
__global__ void fill_kernel(int64_t n, W *dst, W pattern) {
    SGLD_GRID_STRIDE(i, n) dst[i] = pattern;
}

// Calls body(TypeTag<S>{}, TypeTag<D>{}) for a pair of float dtypes, or for an integer dtype copied to itself
// (as raw words of its width).
template <class F>
static sgld_status dispatch_pair(const char *fn, int32_t src_dtype, int32_t dst_dtype, bool allow_int, F &&body) {
    auto with_dst = [&](auto s) -> sgld_status {
        return dispatch_float(dst_dtype, fn, [&](auto d) { return body(s, d); });
    };
    if (is_float_dtype(src_dtype) && is_float_dtype(dst_dtype)) return dispatch_float(src_dtype, fn, with_dst);
    if (allow_int && src_dtype == dst_dtype) {
        switch (src_dtype) {
            case SGLD_I32: return body(TypeTag<uint32_t>{}, TypeTag<uint32_t>{});
            case SGLD_I64: return body(TypeTag<uint64_t>{}, TypeTag<uint64_t>{});
            case SGLD_U8: return body(TypeTag<uint8_t>{}, TypeTag<uint8_t>{});
            default: break;
        }
    }
    return fail(SGLD_ERR_UNSUPPORTED, "%s: cannot convert %s (%d) to %s (%d)%s", fn, dtype_name(src_dtype), src_dtype,
                dtype_name(dst_dtype), dst_dtype,
                allow_int ? " (float types convert among themselves; integer types copy only to themselves)"
                          : " (F32, F16 and BF16 only)");
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_copy_strided(sgld_context_t ctx, int32_t ndim, const int64_t *shape, int32_t src_dtype,
                                         const void *src, const int64_t *src_strides, int32_t dst_dtype, void *dst,
                                         const int64_t *dst_strides) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        const int64_t *strides[2] = {src_strides, dst_strides};
        StridedShape s;
        int64_t count = 0;
        if (sgld_status st = pack_strided(sgld_fn_, ndim, shape, strides, 2, &s, &count)) return st;
        return dispatch_pair(sgld_fn_, src_dtype, dst_dtype, true, [&](auto st, auto dt) -> sgld_status {
            using S = typename decltype(st)::type;
            using D = typename decltype(dt)::type;
            if (count == 0) return SGLD_OK;
            SGLD_CHECK_PTR(src);
            SGLD_CHECK_PTR(dst);
            copy_strided_kernel<S, D><<<grid_for(count), kThreads, 0, ctx->stream>>>(
                s, count, static_cast<const S *>(src), static_cast<D *>(dst));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_convert(sgld_context_t ctx, int64_t n, int32_t src_dtype, const void *src,
                                    int32_t dst_dtype, void *dst) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(n);
        return dispatch_pair(sgld_fn_, src_dtype, dst_dtype, false, [&](auto st, auto dt) -> sgld_status {
            using S = typename decltype(st)::type;
            using D = typename decltype(dt)::type;
            if (n == 0) return SGLD_OK;
            SGLD_CHECK_PTR(src);
            SGLD_CHECK_PTR(dst);
            if (std::is_same<S, D>::value) {  // same type: a plain copy
                if (src != dst) SGLD_CUDA(cudaMemcpyAsync(dst, src, size_t(n) * sizeof(S), cudaMemcpyDeviceToDevice, ctx->stream));
                return SGLD_OK;
            }
            convert_kernel<S, D><<<grid_for(n), kThreads, 0, ctx->stream>>>(n, static_cast<const S *>(src),
                                                                           static_cast<D *>(dst));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

// The value is converted once on the host (double -> the storage type, floats rounding to nearest even through
// fp32, integers truncating toward zero like a C cast), then its bit pattern is written n times.
extern "C" sgld_status sgld_fill(sgld_context_t ctx, int32_t dtype, int64_t n, void *dst, double value) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(n);
        if (dtype_size(dtype) == 0) return fail(SGLD_ERR_UNSUPPORTED, "sgld_fill: unknown dtype %d", dtype);
        if (n == 0) return SGLD_OK;
        SGLD_CHECK_PTR(dst);
        const unsigned grid = grid_for(n);
        switch (dtype) {
            case SGLD_F32: {
                float v = float(value);
                fill_kernel<float><<<grid, kThreads, 0, ctx->stream>>>(n, static_cast<float *>(dst), v);
                break;
            }
            case SGLD_F16: {
                __half h = __float2half_rn(float(value));
                fill_kernel<__half><<<grid, kThreads, 0, ctx->stream>>>(n, static_cast<__half *>(dst), h);
                break;
            }
            case SGLD_BF16: {
                __nv_bfloat16 h = __float2bfloat16_rn(float(value));
                fill_kernel<__nv_bfloat16><<<grid, kThreads, 0, ctx->stream>>>(n, static_cast<__nv_bfloat16 *>(dst), h);
                break;
            }
            case SGLD_I32:
                fill_kernel<int32_t><<<grid, kThreads, 0, ctx->stream>>>(n, static_cast<int32_t *>(dst), int32_t(value));
                break;
            case SGLD_I64:
                fill_kernel<int64_t><<<grid, kThreads, 0, ctx->stream>>>(n, static_cast<int64_t *>(dst), int64_t(value));
                break;
            default:
                fill_kernel<uint8_t><<<grid, kThreads, 0, ctx->stream>>>(n, static_cast<uint8_t *>(dst), uint8_t(value));
                break;
        }
        SGLD_LAUNCHED();
    SGLD_API_END
}
