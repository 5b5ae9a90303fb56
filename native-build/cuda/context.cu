// CUDA backend: library identity, errors, contexts (device + stream) and the helpers every op shares.
#include "common.cuh"

#include <cstdarg>
#include <cstdio>
#include <string>

namespace sgld {

static thread_local std::string g_last_error;

sgld_status fail(sgld_status code, const char *fmt, ...) {
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    try {
        g_last_error = buf;
    } catch (...) {  // no memory for the message: keep the status
    }
    return code;
}

sgld_status cuda_fail(cudaError_t err, const char *what) {
    const sgld_status code = err == cudaErrorMemoryAllocation ? SGLD_ERR_NO_MEMORY : SGLD_ERR_DEVICE;
    return fail(code, "%s: CUDA error %d (%s): %s", what, int(err), cudaGetErrorName(err), cudaGetErrorString(err));
}

const char *dtype_name(int32_t dtype) {
    switch (dtype) {
        case SGLD_F32: return "F32";
        case SGLD_F16: return "F16";
        case SGLD_BF16: return "BF16";
        case SGLD_I32: return "I32";
        case SGLD_I64: return "I64";
        case SGLD_U8: return "U8";
        default: return "unknown";
    }
}

sgld_status enter(sgld_context_t ctx, const char *fn) {
    if (!ctx) return fail(SGLD_ERR_INVALID, "%s: null context", fn);
    int current = -1;
    cudaError_t err = cudaGetDevice(&current);
    if (err == cudaSuccess && current != ctx->device) err = cudaSetDevice(ctx->device);
    if (err != cudaSuccess) return cuda_fail(err, fn);
    return SGLD_OK;
}

sgld_status launch_status(const char *fn) {
    cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return cuda_fail(err, fn);
    return SGLD_OK;
}

sgld_status pack_strided(const char *fn, int32_t ndim, const int64_t *shape, const int64_t *const *strides,
                         int operands, StridedShape *out, int64_t *count) {
    if (ndim < 0 || ndim > kMaxDims) return fail(SGLD_ERR_INVALID, "%s: ndim %d is outside [0, %d]", fn, ndim, kMaxDims);
    if (ndim > 0 && !shape) return fail(SGLD_ERR_INVALID, "%s: shape is null", fn);
    for (int o = 0; o < operands; ++o)
        if (ndim > 0 && !strides[o]) return fail(SGLD_ERR_INVALID, "%s: strides of operand %d are null", fn, o);
    *out = StridedShape{};
    out->ndim = ndim;
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) {
        if (shape[d] < 0) return fail(SGLD_ERR_INVALID, "%s: shape[%d] is negative (%lld)", fn, d, (long long)shape[d]);
        out->shape[d] = shape[d];
        n *= shape[d];
        for (int o = 0; o < operands; ++o) out->stride[o][d] = strides[o][d];
    }
    *count = n;
    return SGLD_OK;
}

}  // namespace sgld

using namespace sgld;

// ---- library ---------------------------------------------------------------------------------------------------
extern "C" int32_t sgld_abi_version(void) { return SGLD_ABI_VERSION; }
extern "C" const char *sgld_backend_name(void) { return "cuda"; }
extern "C" const char *sgld_last_error(void) { return g_last_error.c_str(); }

extern "C" sgld_status sgld_device_count(int32_t *count) {
    SGLD_API_BEGIN
        SGLD_CHECK_PTR(count);
        int n = 0;
        cudaError_t err = cudaGetDeviceCount(&n);
        if (err != cudaSuccess) {
            *count = 0;  // the runtime leaves or zeroes it depending on the failure; make it definite
            cudaGetLastError();
            return fail(SGLD_ERR_DEVICE, "sgld_device_count: no usable CUDA device: CUDA error %d (%s): %s", int(err),
                        cudaGetErrorName(err), cudaGetErrorString(err));
        }
        *count = n;
        return SGLD_OK;
    SGLD_API_END
}

// ---- contexts --------------------------------------------------------------------------------------------------
extern "C" sgld_status sgld_context_create(int32_t device, int32_t num_threads, sgld_context_t *out) {
    SGLD_API_BEGIN
        (void)num_threads;  // CUDA ops have no host worker threads
        SGLD_CHECK_PTR(out);
        *out = nullptr;
        int n = 0;
        cudaError_t err = cudaGetDeviceCount(&n);
        if (err != cudaSuccess) {
            cudaGetLastError();
            return fail(SGLD_ERR_DEVICE, "sgld_context_create: no usable CUDA device: CUDA error %d (%s): %s", int(err),
                        cudaGetErrorName(err), cudaGetErrorString(err));
        }
        if (device < 0 || device >= n)
            return fail(SGLD_ERR_DEVICE, "sgld_context_create: device %d requested, %d CUDA device(s) present", device, n);
        SGLD_CUDA(cudaSetDevice(device));
        cudaStream_t stream = nullptr;
        // Non-blocking: our stream never waits on work other libraries queue on the legacy default stream.
        SGLD_CUDA(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
        auto *ctx = new (std::nothrow) sgld_context();
        if (!ctx) {
            cudaStreamDestroy(stream);
            return fail(SGLD_ERR_NO_MEMORY, "sgld_context_create: out of host memory");
        }
        ctx->device = device;
        ctx->stream = stream;
        *out = ctx;
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_context_destroy(sgld_context_t ctx) {
    SGLD_API_BEGIN
        if (!ctx) return SGLD_OK;
        SGLD_ENTER(ctx);
        // Finish queued work before its memory goes; report the first failure but release everything regardless.
        cudaError_t first = cudaStreamSynchronize(ctx->stream);
        destroy_gemm_state(ctx);
        cudaError_t err = ctx->allocator.release_all();
        if (first == cudaSuccess) first = err;
        err = cudaStreamDestroy(ctx->stream);
        if (first == cudaSuccess) first = err;
        delete ctx;
        if (first != cudaSuccess) return cuda_fail(first, sgld_fn_);
        return SGLD_OK;
    SGLD_API_END
}

// The CUDA backend has no worker threads: the argument exists for the CPU backend.
extern "C" sgld_status sgld_context_set_threads(sgld_context_t ctx, int32_t) {
    if (!ctx) return fail(SGLD_ERR_INVALID, "sgld_context_set_threads: null context");
    return SGLD_OK;
}

extern "C" sgld_status sgld_synchronize(sgld_context_t ctx) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CUDA(cudaStreamSynchronize(ctx->stream));
        return SGLD_OK;
    SGLD_API_END
}
