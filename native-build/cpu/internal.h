// Internals shared by the CPU backend's translation units: the context (thread pool + caching allocator),
// error reporting, dtype helpers and the parallel loop every op uses.
#pragma once
#include "sgld.h"

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace sgld {

// ---- errors: each op returns a status and leaves its message in a thread-local string -----------------------
sgld_status fail(sgld_status code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void clear_error();

// ---- thread pool ---------------------------------------------------------------------------------------------
// A fixed set of workers owned by one context. run(n, fn) calls fn(i) for i in [0, n) across the caller and the
// workers and returns when all are done. Workers spin briefly before sleeping so back-to-back ops (the common
// case inside a forward pass) do not pay a futex wake-up each.
class ThreadPool {
public:
    explicit ThreadPool(int threads);
    ~ThreadPool();
    int size() const { return static_cast<int>(workers_.size()) + 1; }
    void resize(int threads);
    // Calls fn(task) for every task in [0, tasks); the calling thread takes part.
    void run(int64_t tasks, const std::function<void(int64_t)> &fn);

private:
    void start(int threads);
    void stop();
    void worker_loop(uint64_t start_generation);

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable done_;
    const std::function<void(int64_t)> *job_ = nullptr;
    int64_t job_tasks_ = 0;
    std::atomic<int64_t> next_{0};
    std::atomic<int> active_{0};
    std::atomic<uint64_t> generation_{0};
    bool quit_ = false;
    std::mutex run_mutex_;  // one job at a time per pool
};

// ---- caching allocator ---------------------------------------------------------------------------------------
// Freed blocks are kept per rounded size and reused: a forward pass allocates the same sizes every step, and
// returning large blocks to the OS makes the next step page-fault them back in (see docs/benchmarks.md).
class CachingAllocator {
public:
    ~CachingAllocator();
    void *allocate(size_t bytes);
    bool release(void *ptr);  // false when ptr is not ours
    void release_cached();
    uint64_t in_use() const { return in_use_; }
    uint64_t cached() const { return cached_; }
    uint64_t peak() const { return peak_; }

private:
    static size_t round_size(size_t bytes);
    std::mutex mutex_;
    std::unordered_map<void *, size_t> live_;
    std::multimap<size_t, void *> free_;
    uint64_t in_use_ = 0, cached_ = 0, peak_ = 0;
};

}  // namespace sgld

struct sgld_context {
    int32_t device = 0;
    sgld::ThreadPool pool;
    sgld::CachingAllocator allocator;
    explicit sgld_context(int threads) : pool(threads) {}
};

namespace sgld {

// Splits [0, total) into chunks of at least `grain` items and runs fn(begin, end) on the context's pool.
inline void parallel_for(sgld_context_t ctx, int64_t total, int64_t grain,
                         const std::function<void(int64_t, int64_t)> &fn) {
    if (total <= 0) return;
    if (grain < 1) grain = 1;
    int threads = ctx->pool.size();
    int64_t chunks = (total + grain - 1) / grain;
    if (chunks > int64_t(threads) * 4) chunks = int64_t(threads) * 4;
    if (chunks <= 1 || threads == 1) { fn(0, total); return; }
    int64_t per = (total + chunks - 1) / chunks;
    ctx->pool.run(chunks, [&](int64_t c) {
        int64_t b = c * per, e = b + per < total ? b + per : total;
        if (b < e) fn(b, e);
    });
}

// ---- dtype helpers -------------------------------------------------------------------------------------------
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

inline float bf16_to_f32(uint16_t h) { uint32_t u = uint32_t(h) << 16; float f; std::memcpy(&f, &u, 4); return f; }
inline uint16_t f32_to_bf16(float f) {
    uint32_t u; std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
    return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);

// Ops compute in fp32 on this backend; this check gives every op the same error for other dtypes.
inline sgld_status require_f32(int32_t dtype, const char *op) {
    if (dtype != SGLD_F32) return fail(SGLD_ERR_UNSUPPORTED, "%s: the CPU backend computes in F32 (dtype %d given)", op, dtype);
    return SGLD_OK;
}

#define SGLD_CHECK_CTX(ctx) do { if (!(ctx)) return ::sgld::fail(SGLD_ERR_INVALID, "%s: null context", __func__); } while (0)
#define SGLD_CHECK_PTR(p) do { if (!(p)) return ::sgld::fail(SGLD_ERR_INVALID, "%s: %s is null", __func__, #p); } while (0)

}  // namespace sgld
