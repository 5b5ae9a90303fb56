// CUDA elementwise ops: broadcasting binary ops, activations, affine, gated activations, DiT modulation and the
// gated residual. One thread per element (grid-stride), fp32 arithmetic, one rounding on store.
#include "common.cuh"

namespace sgld {

template <class T>
__global__ void binary_kernel(StridedShape s, int64_t count, int32_t op, const T *a, const T *b, T *y) {
    SGLD_GRID_STRIDE(i, count) {
        int64_t off[3];
        strided_offsets<3>(s, i, off);
        const float x = load(a + off[0]), z = load(b + off[1]);
        float r;
        switch (op) {
            case SGLD_BIN_ADD: r = x + z; break;
            case SGLD_BIN_SUB: r = x - z; break;
            case SGLD_BIN_MUL: r = x * z; break;
            default: r = x / z; break;
        }
        store(y + off[2], r);
    }
}

template <class T>
__global__ void activation_kernel(int64_t n, int32_t act, const T *x, T *y) {
    SGLD_GRID_STRIDE(i, n) store(y + i, apply_activation(load(x + i), act));
}

template <class T>
__global__ void affine_kernel(int64_t n, const T *x, T *y, float alpha, float beta) {
    SGLD_GRID_STRIDE(i, n) store(y + i, alpha * load(x + i) + beta);
}

template <class T>
__global__ void gated_activation_kernel(int64_t rows, int64_t dim, int32_t act, const T *gate, const T *up,
                                        int64_t ld_in, T *y) {
    SGLD_GRID_STRIDE(e, rows * dim) {
        const int64_t r = e / dim, i = e % dim;
        store(y + e, apply_activation(load(gate + r * ld_in + i), act) * load(up + r * ld_in + i));
    }
}

// y = x * (1 + scale) + shift over [batch, seq, dim]; scale/shift at b*sb + s*ss + d.
template <class T>
__global__ void modulate_kernel(int64_t batch, int64_t seq, int64_t dim, const T *x, const T *scale, const T *shift,
                                int64_t sb, int64_t ss, T *y) {
    SGLD_GRID_STRIDE(e, batch * seq * dim) {
        const int64_t d = e % dim, t = e / dim, s = t % seq, b = t / seq;
        const int64_t m = b * sb + s * ss + d;
        store(y + e, load(x + e) * (1.0f + load(scale + m)) + load(shift + m));
    }
}

// residual += y * gate over [batch, seq, dim]; gate at b*sb + s*ss + d.
template <class T>
__global__ void gated_residual_kernel(int64_t batch, int64_t seq, int64_t dim, T *residual, const T *y,
                                      const T *gate, int64_t sb, int64_t ss) {
    SGLD_GRID_STRIDE(e, batch * seq * dim) {
        const int64_t d = e % dim, t = e / dim, s = t % seq, b = t / seq;
        store(residual + e, load(residual + e) + load(y + e) * load(gate + b * sb + s * ss + d));
    }
}

}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_binary(sgld_context_t ctx, int32_t dtype, int32_t op, int32_t ndim, const int64_t *shape,
                                   const void *a, const int64_t *a_strides, const void *b, const int64_t *b_strides,
                                   void *y, const int64_t *y_strides) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        if (op < SGLD_BIN_ADD || op > SGLD_BIN_DIV) return fail(SGLD_ERR_INVALID, "sgld_binary: unknown op %d", op);
        const int64_t *strides[3] = {a_strides, b_strides, y_strides};
        StridedShape s;
        int64_t count = 0;
        if (sgld_status st = pack_strided(sgld_fn_, ndim, shape, strides, 3, &s, &count)) return st;
        if (count == 0) return SGLD_OK;
        SGLD_CHECK_PTR(a);
        SGLD_CHECK_PTR(b);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            binary_kernel<T><<<grid_for(count), kThreads, 0, ctx->stream>>>(
                s, count, op, static_cast<const T *>(a), static_cast<const T *>(b), static_cast<T *>(y));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_activation(sgld_context_t ctx, int32_t dtype, int32_t activation, int64_t n,
                                       const void *x, void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(n);
        if (!valid_activation(activation)) return fail(SGLD_ERR_INVALID, "sgld_activation: unknown activation %d", activation);
        if (n == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            activation_kernel<T><<<grid_for(n), kThreads, 0, ctx->stream>>>(n, activation, static_cast<const T *>(x),
                                                                           static_cast<T *>(y));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_affine(sgld_context_t ctx, int32_t dtype, int64_t n, const void *x, void *y, float alpha,
                                   float beta) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(n);
        if (n == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            affine_kernel<T><<<grid_for(n), kThreads, 0, ctx->stream>>>(n, static_cast<const T *>(x),
                                                                       static_cast<T *>(y), alpha, beta);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_gated_activation(sgld_context_t ctx, int32_t dtype, int32_t activation, int64_t rows,
                                             int64_t dim, const void *gate, const void *up, int64_t ld_in, void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(rows);
        SGLD_CHECK_NONNEG(dim);
        if (!valid_activation(activation))
            return fail(SGLD_ERR_INVALID, "sgld_gated_activation: unknown activation %d", activation);
        if (rows == 0 || dim == 0) return SGLD_OK;
        SGLD_CHECK_PTR(gate);
        SGLD_CHECK_PTR(up);
        SGLD_CHECK_PTR(y);
        if (rows > 1 && ld_in < dim)
            return fail(SGLD_ERR_INVALID, "sgld_gated_activation: ld_in %lld is less than dim %lld", (long long)ld_in, (long long)dim);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            gated_activation_kernel<T><<<grid_for(rows * dim), kThreads, 0, ctx->stream>>>(
                rows, dim, activation, static_cast<const T *>(gate), static_cast<const T *>(up), ld_in, static_cast<T *>(y));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_modulate(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim,
                                     const void *x, const void *scale, const void *shift, int64_t mod_sb,
                                     int64_t mod_ss, void *y) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(batch);
        SGLD_CHECK_NONNEG(seq);
        SGLD_CHECK_NONNEG(dim);
        const int64_t total = batch * seq * dim;
        if (total == 0) return SGLD_OK;
        SGLD_CHECK_PTR(x);
        SGLD_CHECK_PTR(scale);
        SGLD_CHECK_PTR(shift);
        SGLD_CHECK_PTR(y);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            modulate_kernel<T><<<grid_for(total), kThreads, 0, ctx->stream>>>(
                batch, seq, dim, static_cast<const T *>(x), static_cast<const T *>(scale),
                static_cast<const T *>(shift), mod_sb, mod_ss, static_cast<T *>(y));
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}

extern "C" sgld_status sgld_gated_residual(sgld_context_t ctx, int32_t dtype, int64_t batch, int64_t seq, int64_t dim,
                                           void *residual, const void *y, const void *gate, int64_t gate_sb,
                                           int64_t gate_ss) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_NONNEG(batch);
        SGLD_CHECK_NONNEG(seq);
        SGLD_CHECK_NONNEG(dim);
        const int64_t total = batch * seq * dim;
        if (total == 0) return SGLD_OK;
        SGLD_CHECK_PTR(residual);
        SGLD_CHECK_PTR(y);
        SGLD_CHECK_PTR(gate);
        return dispatch_float(dtype, sgld_fn_, [&](auto tag) -> sgld_status {
            using T = typename decltype(tag)::type;
            gated_residual_kernel<T><<<grid_for(total), kThreads, 0, ctx->stream>>>(
                batch, seq, dim, static_cast<T *>(residual), static_cast<const T *>(y), static_cast<const T *>(gate),
                gate_sb, gate_ss);
            SGLD_LAUNCHED();
        });
    SGLD_API_END
}
