// The caching device allocator of one context. A forward pass allocates the same sizes every step, and
// cudaMalloc/cudaFree are slow and synchronising, so freed blocks are kept per rounded size and handed out again.
// Reuse is safe without events because every op of a context runs in order on the context's one stream.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>

#include <cuda_runtime.h>

namespace sgld {

class DeviceAllocator {
public:
    // The caller makes the context's device current first.
    // Returns cudaSuccess and *out, or the error of the failed cudaMalloc (after one retry with the cache freed).
    cudaError_t allocate(size_t bytes, void **out);
    bool release(void *ptr);  // false when ptr is not a live block of this allocator
    cudaError_t release_cached();
    cudaError_t release_all();  // context destruction: cached and live blocks
    uint64_t in_use() const { return in_use_; }
    uint64_t cached() const { return cached_; }
    uint64_t peak() const { return peak_; }

    // Small sizes round to 256 bytes; above 1 MiB to 1/8 of the next power of two, so near-equal sizes share
    // blocks (the CPU backend's rule).
    static size_t round_size(size_t bytes);

private:
    cudaError_t free_cached_locked();
    std::mutex mutex_;
    std::unordered_map<void *, size_t> live_;
    std::multimap<size_t, void *> free_;
    uint64_t in_use_ = 0, cached_ = 0, peak_ = 0;
};

}  // namespace sgld
