// Internals shared by the CUDA backend's translation units: the context, error reporting, the guard every
// exported function runs inside, dtype load/store helpers, dtype dispatch, launch helpers and block reductions.
#pragma once
#include "sgld.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <exception>
#include <mutex>
#include <new>

#include "allocator.h"

struct GemmState;  // gemm.cu: cuBLASLt handle, workspace and algorithm cache of one context

struct sgld_context {
    int32_t device = 0;
    cudaStream_t stream = nullptr;
    sgld::DeviceAllocator allocator;
    std::mutex gemm_mutex;  // guards the lazy creation of `gemm`
    GemmState *gemm = nullptr;
};

namespace sgld {

// ---- errors: each op returns a status and leaves its message in a thread-local string ---------------------------
sgld_status fail(sgld_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// Turns a CUDA runtime error into SGLD_ERR_DEVICE (or NO_MEMORY) with the runtime's name and text for it.
sgld_status cuda_fail(cudaError_t err, const char *what);

// Runs an exported function's body; nothing may throw across the C boundary.
template <class F>
inline sgld_status guarded(const char *fn, F &&body) noexcept {
    try {
        return body();
    } catch (const std::bad_alloc &) {
        return fail(SGLD_ERR_NO_MEMORY, "%s: out of host memory", fn);
    } catch (const std::exception &e) {
        return fail(SGLD_ERR_INTERNAL, "%s: %s", fn, e.what());
    } catch (...) {
        return fail(SGLD_ERR_INTERNAL, "%s: unknown exception", fn);
    }
}

// Every op starts here: checks the context and makes its device current on the calling thread (koffi may call
// from any thread, and CUDA's current device is per thread).
sgld_status enter(sgld_context_t ctx, const char *fn);

// Releases a context's cuBLASLt handle and workspace (gemm.cu); the context's device is current.
void destroy_gemm_state(sgld_context_t ctx);

// Status after enqueueing kernels: a bad launch configuration (or an earlier asynchronous fault) surfaces here.
sgld_status launch_status(const char *fn);

// An exported function's body: SGLD_API_BEGIN ... SGLD_API_END runs it inside guarded(); the macros below name the
// function in their messages through sgld_fn_.
#define SGLD_API_BEGIN const char *const sgld_fn_ = __func__; return ::sgld::guarded(sgld_fn_, [&]() -> sgld_status {
#define SGLD_API_END });
#define SGLD_ENTER(ctx) do { if (sgld_status s_ = ::sgld::enter((ctx), sgld_fn_)) return s_; } while (0)
#define SGLD_CHECK_PTR(p) do { if (!(p)) return ::sgld::fail(SGLD_ERR_INVALID, "%s: %s is null", sgld_fn_, #p); } while (0)
#define SGLD_CHECK_NONNEG(v) do { if ((v) < 0) return ::sgld::fail(SGLD_ERR_INVALID, "%s: %s is negative (%lld)", sgld_fn_, #v, (long long)(v)); } while (0)
#define SGLD_CUDA(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) return ::sgld::cuda_fail(e_, sgld_fn_); } while (0)
#define SGLD_LAUNCHED() return ::sgld::launch_status(sgld_fn_)

// ---- dtypes ---------------------------------------------------------------------------------------------------
inline size_t dtype_size(int32_t dtype) {
    switch (dtype) {
        case SGLD_F32: case SGLD_I32: return 4;
        case SGLD_F16: case SGLD_BF16: return 2;
        case SGLD_I64: return 8;
        case SGLD_U8: return 1;
        default: return 0;
    }
}
inline bool is_float_dtype(int32_t d) { return d == SGLD_F32 || d == SGLD_F16 || d == SGLD_BF16; }
const char *dtype_name(int32_t dtype);

// Storage <-> fp32. Stores round to nearest even, like the CPU backend's conversions.
__device__ __forceinline__ float load(const float *p) { return *p; }
__device__ __forceinline__ float load(const __half *p) { return __half2float(*p); }
__device__ __forceinline__ float load(const __nv_bfloat16 *p) { return __bfloat162float(*p); }
__device__ __forceinline__ void store(float *p, float v) { *p = v; }
__device__ __forceinline__ void store(__half *p, float v) { *p = __float2half_rn(v); }
__device__ __forceinline__ void store(__nv_bfloat16 *p, float v) { *p = __float2bfloat16_rn(v); }

template <class T> struct TypeTag { using type = T; };

// Calls body(TypeTag<T>{}) with T the storage type of a float dtype; other dtypes are SGLD_ERR_UNSUPPORTED.
template <class F>
inline sgld_status dispatch_float(int32_t dtype, const char *fn, F &&body) {
    switch (dtype) {
        case SGLD_F32: return body(TypeTag<float>{});
        case SGLD_F16: return body(TypeTag<__half>{});
        case SGLD_BF16: return body(TypeTag<__nv_bfloat16>{});
        default:
            return fail(SGLD_ERR_UNSUPPORTED, "%s: dtype %s (%d) is not a float storage type (F32, F16, BF16)", fn,
                        dtype_name(dtype), dtype);
    }
}

// ---- activations (SGLD_ACT_*), the same formulas as the CPU backend's apply_activation -------------------------
__device__ __forceinline__ float apply_activation(float x, int32_t activation) {
    switch (activation) {
        case SGLD_ACT_GELU_TANH: {
            const float c = 0.7978845608028654f;  // sqrt(2/pi)
            return 0.5f * x * (1.0f + tanhf(c * (x + 0.044715f * x * x * x)));
        }
        case SGLD_ACT_GELU_ERF: return 0.5f * x * (1.0f + erff(x * 0.7071067811865476f));
        case SGLD_ACT_SILU: return x / (1.0f + expf(-x));
        case SGLD_ACT_RELU: return x > 0.0f ? x : 0.0f;
        default: return x;
    }
}
inline bool valid_activation(int32_t a) { return a >= SGLD_ACT_NONE && a <= SGLD_ACT_RELU; }

// ---- launch helpers -------------------------------------------------------------------------------------------
constexpr int kThreads = 256;
// Blocks for a grid-stride loop over n items; capped so huge tensors loop instead of overflowing the grid.
inline unsigned grid_for(int64_t n, int threads = kThreads) {
    int64_t blocks = (n + threads - 1) / threads;
    if (blocks < 1) blocks = 1;
    if (blocks > (int64_t(1) << 20)) blocks = int64_t(1) << 20;
    return unsigned(blocks);
}
// Blocks for one-block-per-row kernels that loop over rows past the grid (gridDim.x is limited to 2^31-1).
inline unsigned grid_rows(int64_t rows) {
    return unsigned(rows < 1 ? 1 : rows > (int64_t(1) << 30) ? (int64_t(1) << 30) : rows);
}

#define SGLD_GRID_STRIDE(i, n) \
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < (n); i += int64_t(gridDim.x) * blockDim.x)

// ---- reductions -----------------------------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// Block-wide reductions returning the result to every thread. Every thread of the block must call them
// (blockDim.x a multiple of 32); `scratch` is 32 floats of shared memory, reusable from one call to the next.
__device__ __forceinline__ float block_sum(float v, float *scratch) {
    v = warp_sum(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();  // the previous call's readers are done with scratch
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float total = 0.0f;
    for (int w = 0; w < warps; ++w) total += scratch[w];  // same order in every thread: same result everywhere
    return total;
}
__device__ __forceinline__ float block_max(float v, float *scratch) {
    v = warp_max(v);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < warps; ++w) m = fmaxf(m, scratch[w]);
    return m;
}

// ---- strided indexing (ndim <= 6) -----------------------------------------------------------------------------
constexpr int kMaxDims = 6;
// A shape with up to three operands' strides, passed to kernels by value.
struct StridedShape {
    int32_t ndim;
    int64_t shape[kMaxDims];
    int64_t stride[3][kMaxDims];
};
// Offsets of linear element `i` (row-major over shape) in each of `operands` strided operands.
template <int Operands>
__device__ __forceinline__ void strided_offsets(const StridedShape &s, int64_t i, int64_t (&off)[Operands]) {
#pragma unroll
    for (int o = 0; o < Operands; ++o) off[o] = 0;
    for (int d = s.ndim - 1; d >= 0; --d) {
        const int64_t extent = s.shape[d];
        const int64_t c = i % extent;
        i /= extent;
#pragma unroll
        for (int o = 0; o < Operands; ++o) off[o] += c * s.stride[o][d];
    }
}
// Validates and packs shape + strides; *count receives the element count (0 means nothing to do).
sgld_status pack_strided(const char *fn, int32_t ndim, const int64_t *shape, const int64_t *const *strides,
                         int operands, StridedShape *out, int64_t *count);

}  // namespace sgld
