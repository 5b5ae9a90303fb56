// CUDA backend: the caching device allocator, pinned host memory and host<->device copies.
#include "common.cuh"

namespace sgld {

size_t DeviceAllocator::round_size(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes <= (size_t(1) << 20)) return (bytes + 255) & ~size_t(255);
    size_t p = size_t(1) << (64 - __builtin_clzll(bytes - 1));
    size_t step = p / 8;
    return (bytes + step - 1) / step * step;
}

cudaError_t DeviceAllocator::allocate(size_t bytes, void **out) {
    const size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void *p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
        cached_ -= size;
    } else {
        cudaError_t err = cudaMalloc(&p, size);
        if (err == cudaErrorMemoryAllocation && !free_.empty()) {
            cudaGetLastError();  // clear the (non-sticky) allocation failure before retrying
            free_cached_locked();
            err = cudaMalloc(&p, size);
        }
        if (err != cudaSuccess) {
            cudaGetLastError();
            return err;
        }
    }
    live_[p] = size;
    in_use_ += size;
    if (in_use_ > peak_) peak_ = in_use_;
    *out = p;
    return cudaSuccess;
}

bool DeviceAllocator::release(void *ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return false;
    const size_t size = it->second;
    live_.erase(it);
    in_use_ -= size;
    free_.emplace(size, ptr);
    cached_ += size;
    return true;
}

cudaError_t DeviceAllocator::free_cached_locked() {
    cudaError_t first = cudaSuccess;
    for (auto &kv : free_) {
        cudaError_t err = cudaFree(kv.second);  // synchronises the device: blocks still in use by queued work finish first
        if (err != cudaSuccess && first == cudaSuccess) first = err;
    }
    free_.clear();
    cached_ = 0;
    return first;
}

cudaError_t DeviceAllocator::release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    return free_cached_locked();
}

cudaError_t DeviceAllocator::release_all() {
    std::lock_guard<std::mutex> lock(mutex_);
    cudaError_t first = free_cached_locked();
    for (auto &kv : live_) {
        cudaError_t err = cudaFree(kv.first);
        if (err != cudaSuccess && first == cudaSuccess) first = err;
    }
    live_.clear();
    in_use_ = 0;
    return first;
}

}  // namespace sgld

using namespace sgld;

// ---- device memory ---------------------------------------------------------------------------------------------
extern "C" sgld_status sgld_malloc(sgld_context_t ctx, size_t bytes, void **out) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_PTR(out);
        void *p = nullptr;
        cudaError_t err = ctx->allocator.allocate(bytes, &p);
        if (err == cudaErrorMemoryAllocation)
            return fail(SGLD_ERR_NO_MEMORY, "sgld_malloc: out of device memory allocating %zu bytes on device %d "
                        "(%llu bytes in use, %llu cached)", bytes, ctx->device,
                        (unsigned long long)ctx->allocator.in_use(), (unsigned long long)ctx->allocator.cached());
        if (err != cudaSuccess) return cuda_fail(err, sgld_fn_);
        *out = p;
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_free(sgld_context_t ctx, void *ptr) {
    SGLD_API_BEGIN
        if (!ctx) return fail(SGLD_ERR_INVALID, "sgld_free: null context");
        if (!ptr) return SGLD_OK;
        if (!ctx->allocator.release(ptr))
            return fail(SGLD_ERR_INVALID, "sgld_free: %p was not allocated by this context", ptr);
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_memory_stats(sgld_context_t ctx, uint64_t *in_use, uint64_t *cached, uint64_t *peak) {
    if (!ctx) return fail(SGLD_ERR_INVALID, "sgld_memory_stats: null context");
    if (in_use) *in_use = ctx->allocator.in_use();
    if (cached) *cached = ctx->allocator.cached();
    if (peak) *peak = ctx->allocator.peak();
    return SGLD_OK;
}

extern "C" sgld_status sgld_memory_release_cached(sgld_context_t ctx) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        cudaError_t err = ctx->allocator.release_cached();
        if (err != cudaSuccess) return cuda_fail(err, sgld_fn_);
        return SGLD_OK;
    SGLD_API_END
}

// ---- pinned host memory ----------------------------------------------------------------------------------------
extern "C" sgld_status sgld_host_alloc(sgld_context_t ctx, size_t bytes, void **out) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        SGLD_CHECK_PTR(out);
        void *p = nullptr;
        // Portable: usable by the contexts of every device in the process, not only this one's.
        cudaError_t err = cudaHostAlloc(&p, bytes ? bytes : 1, cudaHostAllocPortable);
        if (err == cudaErrorMemoryAllocation) {
            cudaGetLastError();
            return fail(SGLD_ERR_NO_MEMORY, "sgld_host_alloc: cannot pin %zu bytes of host memory", bytes);
        }
        if (err != cudaSuccess) return cuda_fail(err, sgld_fn_);
        *out = p;
        return SGLD_OK;
    SGLD_API_END
}

// Pinned memory belongs to the process, not to a context (the CPU backend ignores ctx here too).
extern "C" sgld_status sgld_host_free(sgld_context_t, void *ptr) {
    SGLD_API_BEGIN
        if (!ptr) return SGLD_OK;
        SGLD_CUDA(cudaFreeHost(ptr));
        return SGLD_OK;
    SGLD_API_END
}

// ---- copies ----------------------------------------------------------------------------------------------------
// Uploads are asynchronous on the context's stream. From pageable memory (a JS typed array) the runtime stages the
// source before returning, so the caller may reuse it at once; from pinned memory (sgld_host_alloc) the transfer
// runs later, so the caller must not overwrite that buffer before sgld_synchronize.
extern "C" sgld_status sgld_copy_to_device(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        if (bytes == 0) return SGLD_OK;
        SGLD_CHECK_PTR(dst);
        SGLD_CHECK_PTR(src);
        SGLD_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, ctx->stream));
        return SGLD_OK;
    SGLD_API_END
}

// Downloads wait for everything queued before them, then for the copy itself.
extern "C" sgld_status sgld_copy_to_host(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        if (bytes == 0) return SGLD_OK;
        SGLD_CHECK_PTR(dst);
        SGLD_CHECK_PTR(src);
        SGLD_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, ctx->stream));
        SGLD_CUDA(cudaStreamSynchronize(ctx->stream));
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_copy_device(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    SGLD_API_BEGIN
        SGLD_ENTER(ctx);
        if (bytes == 0 || dst == src) return SGLD_OK;
        SGLD_CHECK_PTR(dst);
        SGLD_CHECK_PTR(src);
        SGLD_CUDA(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, ctx->stream));
        return SGLD_OK;
    SGLD_API_END
}
