// CPU backend: library identity, errors, contexts (thread pool), the caching allocator and host<->device copies
// (on this backend "device" memory is host memory from the context's allocator).
#include "internal.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace sgld {

static thread_local std::string g_last_error;

sgld_status fail(sgld_status code, const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    std::vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    g_last_error = buf;
    return code;
}
void clear_error() { g_last_error.clear(); }

// ---- thread pool ---------------------------------------------------------------------------------------------
ThreadPool::ThreadPool(int threads) { start(threads); }
ThreadPool::~ThreadPool() { stop(); }

void ThreadPool::start(int threads) {
    if (threads < 1) threads = 1;
    quit_ = false;
    // Each worker starts from the generation current NOW: a worker whose thread is scheduled only after the
    // first run() has already bumped the generation must still see that job (else run() waits forever).
    const uint64_t start_generation = generation_.load();
    for (int i = 0; i < threads - 1; ++i)
        workers_.emplace_back([this, start_generation] { worker_loop(start_generation); });
}

void ThreadPool::stop() {
    {
        std::lock_guard<std::mutex> lock(mutex_);
        quit_ = true;
        generation_.fetch_add(1);
    }
    wake_.notify_all();
    for (auto &t : workers_) t.join();
    workers_.clear();
}

void ThreadPool::resize(int threads) {
    std::lock_guard<std::mutex> guard(run_mutex_);
    stop();
    start(threads);
}

void ThreadPool::worker_loop(uint64_t seen) {
    for (;;) {
        // Spin a little: ops arrive back to back during a forward pass.
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen && spins < 20000) { ++spins; __builtin_ia32_pause(); }
        if (generation_.load(std::memory_order_acquire) == seen) {
            std::unique_lock<std::mutex> lock(mutex_);
            wake_.wait(lock, [&] { return generation_.load() != seen; });
        }
        seen = generation_.load(std::memory_order_acquire);
        const std::function<void(int64_t)> *job;
        int64_t tasks;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (quit_) return;
            job = job_;
            tasks = job_tasks_;
        }
        if (job) {
            for (int64_t t = next_.fetch_add(1); t < tasks; t = next_.fetch_add(1)) (*job)(t);
        }
        if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> lock(mutex_);
            done_.notify_all();
        }
    }
}

void ThreadPool::run(int64_t tasks, const std::function<void(int64_t)> &fn) {
    if (tasks <= 0) return;
    if (workers_.empty() || tasks == 1) {
        for (int64_t t = 0; t < tasks; ++t) fn(t);
        return;
    }
    std::lock_guard<std::mutex> guard(run_mutex_);
    {
        std::lock_guard<std::mutex> lock(mutex_);
        job_ = &fn;
        job_tasks_ = tasks;
        next_.store(0);
        active_.store(static_cast<int>(workers_.size()));
        generation_.fetch_add(1, std::memory_order_release);
    }
    wake_.notify_all();
    for (int64_t t = next_.fetch_add(1); t < tasks; t = next_.fetch_add(1)) fn(t);
    int spins = 0;
    while (active_.load(std::memory_order_acquire) != 0 && spins < 200000) { ++spins; __builtin_ia32_pause(); }
    if (active_.load() != 0) {
        std::unique_lock<std::mutex> lock(mutex_);
        done_.wait(lock, [&] { return active_.load() == 0; });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    job_ = nullptr;
}

// ---- caching allocator ---------------------------------------------------------------------------------------
size_t CachingAllocator::round_size(size_t bytes) {
    if (bytes == 0) bytes = 1;
    if (bytes <= (1u << 20)) return (bytes + 255) & ~size_t(255);
    // Above 1 MiB round to 1/8 of the next power of two so near-equal sizes share blocks.
    size_t p = size_t(1) << (64 - __builtin_clzll(bytes - 1));
    size_t step = p / 8;
    return (bytes + step - 1) / step * step;
}

CachingAllocator::~CachingAllocator() {
    release_cached();
    for (auto &kv : live_) std::free(kv.first);
}

void *CachingAllocator::allocate(size_t bytes) {
    size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mutex_);
    void *p = nullptr;
    auto it = free_.find(size);
    if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
        cached_ -= size;
    } else {
        p = std::aligned_alloc(256, size);
        if (!p) {  // give the cache back and retry once before failing
            for (auto &kv : free_) std::free(kv.second);
            free_.clear();
            cached_ = 0;
            p = std::aligned_alloc(256, size);
            if (!p) return nullptr;
        }
    }
    live_[p] = size;
    in_use_ += size;
    if (in_use_ > peak_) peak_ = in_use_;
    return p;
}

bool CachingAllocator::release(void *ptr) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(ptr);
    if (it == live_.end()) return false;
    size_t size = it->second;
    live_.erase(it);
    in_use_ -= size;
    free_.emplace(size, ptr);
    cached_ += size;
    return true;
}

void CachingAllocator::release_cached() {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &kv : free_) std::free(kv.second);
    free_.clear();
    cached_ = 0;
}

// ---- half precision ------------------------------------------------------------------------------------------
float f16_to_f32(uint16_t h) {
    uint32_t sign = uint32_t(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, u;
    if (exp == 0) {
        if (mant == 0) u = sign;
        else {  // subnormal: normalise
            int e = -1;
            do { ++e; mant <<= 1; } while (!(mant & 0x400));
            u = sign | uint32_t(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
        }
    } else if (exp == 31) u = sign | 0x7f800000u | mant << 13;
    else u = sign | (exp + 127 - 15) << 23 | mant << 13;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t f32_to_f16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, abs = u & 0x7fffffffu;
    if (abs > 0x7f800000u) return uint16_t(sign | 0x7e00);        // NaN
    if (abs >= 0x477ff000u) return uint16_t(sign | 0x7c00);       // overflow -> inf (after rounding)
    if (abs < 0x38800000u) {                                      // subnormal or zero in half
        if (abs < 0x33000000u) return uint16_t(sign);
        uint32_t exp = abs >> 23, mant = (abs & 0x7fffff) | 0x800000;
        uint32_t shift = 126 - exp;                               // 14 - (exp - 112)
        uint32_t rem = mant & ((1u << shift) - 1), mid = 1u << (shift - 1);
        uint32_t r = mant >> shift;
        if (rem > mid || (rem == mid && (r & 1))) ++r;
        return uint16_t(sign | r);
    }
    uint32_t r = abs - 0x38000000u;                               // rebias exponent 127 -> 15
    r += 0xfffu + ((r >> 13) & 1u);                               // round to nearest even
    return uint16_t(sign | (r >> 13));
}

}  // namespace sgld

using namespace sgld;

// ---- library ---------------------------------------------------------------------------------------------------
extern "C" int32_t sgld_abi_version(void) { return SGLD_ABI_VERSION; }
extern "C" const char *sgld_backend_name(void) { return "cpu"; }
extern "C" const char *sgld_last_error(void) { return g_last_error.c_str(); }
extern "C" sgld_status sgld_device_count(int32_t *count) {
    SGLD_CHECK_PTR(count);
    *count = 1;
    return SGLD_OK;
}

// ---- contexts --------------------------------------------------------------------------------------------------
static int default_threads() {
    unsigned n = std::thread::hardware_concurrency();
    return n ? int(n) : 1;
}

extern "C" sgld_status sgld_context_create(int32_t device, int32_t num_threads, sgld_context_t *out) {
    SGLD_CHECK_PTR(out);
    if (device != 0) return fail(SGLD_ERR_DEVICE, "sgld_context_create: the CPU backend has one device (0), %d requested", device);
    try {
        auto *ctx = new sgld_context(num_threads > 0 ? num_threads : default_threads());
        ctx->device = device;
        *out = ctx;
        return SGLD_OK;
    } catch (const std::exception &e) {
        return fail(SGLD_ERR_NO_MEMORY, "sgld_context_create: %s", e.what());
    }
}

extern "C" sgld_status sgld_context_destroy(sgld_context_t ctx) {
    delete ctx;
    return SGLD_OK;
}

extern "C" sgld_status sgld_context_set_threads(sgld_context_t ctx, int32_t num_threads) {
    SGLD_CHECK_CTX(ctx);
    ctx->pool.resize(num_threads > 0 ? num_threads : default_threads());
    return SGLD_OK;
}

extern "C" sgld_status sgld_synchronize(sgld_context_t ctx) {
    SGLD_CHECK_CTX(ctx);
    return SGLD_OK;
}

// ---- memory ----------------------------------------------------------------------------------------------------
extern "C" sgld_status sgld_malloc(sgld_context_t ctx, size_t bytes, void **out) {
    SGLD_CHECK_CTX(ctx);
    SGLD_CHECK_PTR(out);
    void *p = ctx->allocator.allocate(bytes);
    if (!p) return fail(SGLD_ERR_NO_MEMORY, "sgld_malloc: out of host memory allocating %zu bytes", bytes);
    *out = p;
    return SGLD_OK;
}

extern "C" sgld_status sgld_free(sgld_context_t ctx, void *ptr) {
    SGLD_CHECK_CTX(ctx);
    if (!ptr) return SGLD_OK;
    if (!ctx->allocator.release(ptr)) return fail(SGLD_ERR_INVALID, "sgld_free: %p was not allocated by this context", ptr);
    return SGLD_OK;
}

extern "C" sgld_status sgld_memory_stats(sgld_context_t ctx, uint64_t *in_use, uint64_t *cached, uint64_t *peak) {
    SGLD_CHECK_CTX(ctx);
    if (in_use) *in_use = ctx->allocator.in_use();
    if (cached) *cached = ctx->allocator.cached();
    if (peak) *peak = ctx->allocator.peak();
    return SGLD_OK;
}

extern "C" sgld_status sgld_memory_release_cached(sgld_context_t ctx) {
    SGLD_CHECK_CTX(ctx);
    ctx->allocator.release_cached();
    return SGLD_OK;
}

extern "C" sgld_status sgld_host_alloc(sgld_context_t ctx, size_t bytes, void **out) {
    SGLD_CHECK_CTX(ctx);
    SGLD_CHECK_PTR(out);
    void *p = std::aligned_alloc(256, (bytes + 255) & ~size_t(255));
    if (!p) return fail(SGLD_ERR_NO_MEMORY, "sgld_host_alloc: out of host memory allocating %zu bytes", bytes);
    *out = p;
    return SGLD_OK;
}

extern "C" sgld_status sgld_host_free(sgld_context_t ctx, void *ptr) {
    std::free(ptr);
    return SGLD_OK;
}

// Large copies are split across the pool: a memcpy of a few hundred MB of weights is bandwidth-bound per core.
static void parallel_copy(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    const size_t grain = size_t(1) << 20;
    if (bytes < 4 * grain) { std::memcpy(dst, src, bytes); return; }
    parallel_for(ctx, int64_t((bytes + grain - 1) / grain), 1, [&](int64_t b, int64_t e) {
        size_t lo = size_t(b) * grain, hi = std::min(bytes, size_t(e) * grain);
        std::memcpy(static_cast<char *>(dst) + lo, static_cast<const char *>(src) + lo, hi - lo);
    });
}

extern "C" sgld_status sgld_copy_to_device(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    SGLD_CHECK_CTX(ctx);
    if (bytes == 0) return SGLD_OK;
    SGLD_CHECK_PTR(dst);
    SGLD_CHECK_PTR(src);
    parallel_copy(ctx, dst, src, bytes);
    return SGLD_OK;
}

extern "C" sgld_status sgld_copy_to_host(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    return sgld_copy_to_device(ctx, dst, src, bytes);
}

extern "C" sgld_status sgld_copy_device(sgld_context_t ctx, void *dst, const void *src, size_t bytes) {
    if (dst == src) return SGLD_OK;
    return sgld_copy_to_device(ctx, dst, src, bytes);
}
