// Layout ops of the CPU backend (sgld.h): the strided copy that is every permute, slice, concat and dtype
// conversion; contiguous conversion; fill.
//
// Float conversions round to nearest even through context.cpp's scalar converters; contiguous F32 <-> F16 runs
// use F16C when the compiler targets it (same rounding, NaN canonicalised to the scalar path's 0x7e00 | sign).
// Same-dtype copies move bits, so NaN payloads and integer values pass through untouched.
#include "internal.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#if defined(__F16C__) && defined(__AVX2__)
#define SGLD_HAVE_F16C 1
#include <immintrin.h>
#else
#define SGLD_HAVE_F16C 0
#endif

namespace sgld {
namespace {

constexpr int kMaxDims = 6;
constexpr int64_t kCopyGrain = 1 << 15;  // elements per parallel chunk: large enough to hide the pool's wake-up
constexpr int64_t kSegment = 1 << 14;    // longest piece of one row a task copies

// ---- element converters ----------------------------------------------------------------------------------------
struct AsF32 {
    using T = float;
    static float load(T v) { return v; }
    static T store(float f) { return f; }
};
struct AsF16 {
    using T = uint16_t;
    static float load(T v) { return f16_to_f32(v); }
    static T store(float f) { return f32_to_f16(f); }
};
struct AsBF16 {
    using T = uint16_t;
    static float load(T v) { return bf16_to_f32(v); }
    static T store(float f) { return f32_to_bf16(f); }
};

// Vector prefix of a contiguous run; returns how many elements it converted (the scalar loop does the rest).
template <class S, class D>
int64_t convert_prefix(const typename S::T *, typename D::T *, int64_t) { return 0; }

#if SGLD_HAVE_F16C
template <>
int64_t convert_prefix<AsF32, AsF16>(const float *s, uint16_t *d, int64_t n) {
    const __m128i nan16 = _mm_set1_epi16(0x7e00);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 x = _mm256_loadu_ps(s + i);
        __m128i h = _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        // NaN: keep the sign, canonical quiet payload (what f32_to_f16 and torch produce).
        __m256 is_nan = _mm256_cmp_ps(x, x, _CMP_UNORD_Q);
        __m128i nan_mask = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(is_nan)),
                                           _mm256_extractf128_si256(_mm256_castps_si256(is_nan), 1));
        __m128i canon = _mm_or_si128(_mm_and_si128(h, _mm_set1_epi16(int16_t(0x8000))), nan16);
        h = _mm_blendv_epi8(h, canon, nan_mask);
        _mm_storeu_si128(reinterpret_cast<__m128i *>(d + i), h);
    }
    return i;
}
template <>
int64_t convert_prefix<AsF16, AsF32>(const uint16_t *s, float *d, int64_t n) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i *>(s + i));
        // F16C quiets signalling NaNs; the scalar path keeps the payload as is. Only NaN bits can differ.
        _mm256_storeu_ps(d + i, _mm256_cvtph_ps(h));
    }
    return i;
}
#endif

// One row of n elements from src (element stride ss) to dst (stride ds), converting S -> D.
using RowFn = void (*)(const void *src, int64_t ss, void *dst, int64_t ds, int64_t n);

template <class S, class D>
void convert_row(const void *src, int64_t ss, void *dst, int64_t ds, int64_t n) {
    const auto *s = static_cast<const typename S::T *>(src);
    auto *d = static_cast<typename D::T *>(dst);
    if (ss == 1 && ds == 1) {
        int64_t i = convert_prefix<S, D>(s, d, n);
        for (; i < n; ++i) d[i] = D::store(S::load(s[i]));
    } else {
        for (int64_t i = 0; i < n; ++i) d[i * ds] = D::store(S::load(s[i * ss]));
    }
}

// Same dtype: bits move unchanged.
template <class Word>
void copy_row(const void *src, int64_t ss, void *dst, int64_t ds, int64_t n) {
    const auto *s = static_cast<const Word *>(src);
    auto *d = static_cast<Word *>(dst);
    if (ss == 1 && ds == 1) { std::memcpy(d, s, size_t(n) * sizeof(Word)); return; }
    for (int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
}

template <class S>
RowFn convert_from(int32_t dst) {
    switch (dst) {
        case SGLD_F32: return convert_row<S, AsF32>;
        case SGLD_F16: return convert_row<S, AsF16>;
        case SGLD_BF16: return convert_row<S, AsBF16>;
        default: return nullptr;
    }
}

// The row function for a (src, dst) dtype pair, or null when this backend does not convert between them.
RowFn row_function(int32_t src, int32_t dst) {
    if (src == dst) {
        switch (dtype_size(src)) {
            case 1: return copy_row<uint8_t>;
            case 2: return copy_row<uint16_t>;
            case 4: return copy_row<uint32_t>;
            case 8: return copy_row<uint64_t>;
            default: return nullptr;
        }
    }
    switch (src) {
        case SGLD_F32: return convert_from<AsF32>(dst);
        case SGLD_F16: return convert_from<AsF16>(dst);
        case SGLD_BF16: return convert_from<AsBF16>(dst);
        default: return nullptr;
    }
}

sgld_status check_dtype_pair(const char *op, int32_t src, int32_t dst) {
    if (!dtype_size(src)) return fail(SGLD_ERR_INVALID, "%s: unknown src_dtype %d", op, src);
    if (!dtype_size(dst)) return fail(SGLD_ERR_INVALID, "%s: unknown dst_dtype %d", op, dst);
    if (src != dst && !(is_float_dtype(src) && is_float_dtype(dst)))
        return fail(SGLD_ERR_UNSUPPORTED, "%s: converts between F32/F16/BF16 only (src_dtype %d, dst_dtype %d); integer types copy to themselves",
                    op, src, dst);
    return SGLD_OK;
}

// ---- strided iteration -----------------------------------------------------------------------------------------
// A copy's dims after dropping size-1 dims, ordering by destination stride (writes become sequential) and merging
// dims that are contiguous on both sides. The last dim is the row the converters walk.
struct CopyDims {
    int ndim = 0;
    int64_t shape[kMaxDims], src[kMaxDims], dst[kMaxDims];
};

CopyDims simplify(int ndim, const int64_t *shape, const int64_t *ss, const int64_t *ds) {
    CopyDims c;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] == 1) continue;
        c.shape[c.ndim] = shape[i]; c.src[c.ndim] = ss[i]; c.dst[c.ndim] = ds[i]; ++c.ndim;
    }
    // Stable insertion sort by |dst stride|, largest first.
    for (int i = 1; i < c.ndim; ++i) {
        for (int j = i; j > 0 && std::llabs(c.dst[j - 1]) < std::llabs(c.dst[j]); --j) {
            std::swap(c.shape[j], c.shape[j - 1]); std::swap(c.src[j], c.src[j - 1]); std::swap(c.dst[j], c.dst[j - 1]);
        }
    }
    int out = 0;
    for (int i = 0; i < c.ndim; ++i) {
        if (out > 0 && c.src[out - 1] == c.src[i] * c.shape[i] && c.dst[out - 1] == c.dst[i] * c.shape[i]) {
            c.shape[out - 1] *= c.shape[i]; c.src[out - 1] = c.src[i]; c.dst[out - 1] = c.dst[i];
        } else {
            c.shape[out] = c.shape[i]; c.src[out] = c.src[i]; c.dst[out] = c.dst[i]; ++out;
        }
    }
    c.ndim = out;
    if (c.ndim == 0) { c.ndim = 1; c.shape[0] = 1; c.src[0] = 1; c.dst[0] = 1; }
    return c;
}

void copy_strided(sgld_context_t ctx, const CopyDims &c, RowFn row, const char *src, size_t src_size, char *dst,
                  size_t dst_size) {
    const int od = c.ndim - 1;
    const int64_t inner = c.shape[od], seg = std::min(inner, kSegment), per_row = (inner + seg - 1) / seg;
    const int64_t ss = c.src[od], ds = c.dst[od];
    int64_t rows = 1;
    for (int i = 0; i < od; ++i) rows *= c.shape[i];
    // Tasks are (row, segment) pairs, so one long row still spreads over the threads.
    parallel_for(ctx, rows * per_row, std::max<int64_t>(1, kCopyGrain / seg), [&](int64_t t0, int64_t t1) {
        int64_t idx[kMaxDims] = {0}, so = 0, dof = 0, rem = t0 / per_row, part = t0 % per_row;
        for (int i = od - 1; i >= 0; --i) {
            idx[i] = rem % c.shape[i];
            rem /= c.shape[i];
            so += idx[i] * c.src[i];
            dof += idx[i] * c.dst[i];
        }
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t i0 = part * seg, len = std::min(seg, inner - i0);
            row(src + (so + i0 * ss) * int64_t(src_size), ss, dst + (dof + i0 * ds) * int64_t(dst_size), ds, len);
            if (++part < per_row) continue;
            part = 0;
            for (int i = od - 1; i >= 0; --i) {  // next row: odometer over the outer dims
                so += c.src[i];
                dof += c.dst[i];
                if (++idx[i] < c.shape[i]) break;
                so -= c.src[i] * c.shape[i];
                dof -= c.dst[i] * c.shape[i];
                idx[i] = 0;
            }
        }
    });
}

// The bit pattern of `value` in `dtype` (floats rounded to nearest even through fp32, as torch's fill_ does).
sgld_status fill_pattern(int32_t dtype, double value, uint64_t *bits) {
    switch (dtype) {
        case SGLD_F32: { float f = float(value); uint32_t u; std::memcpy(&u, &f, 4); *bits = u; return SGLD_OK; }
        case SGLD_F16: *bits = f32_to_f16(float(value)); return SGLD_OK;
        case SGLD_BF16: *bits = f32_to_bf16(float(value)); return SGLD_OK;
        default: break;
    }
    // Integers: truncation toward zero of a value the type can hold (anything else would be undefined in C++).
    double lo = 0, hi = 0;
    if (dtype == SGLD_I32) { lo = -2147483648.0; hi = 2147483648.0; }
    else if (dtype == SGLD_I64) { lo = -9223372036854775808.0; hi = 9223372036854775808.0; }
    else if (dtype == SGLD_U8) { lo = 0; hi = 256.0; }
    else return fail(SGLD_ERR_INVALID, "sgld_fill: unknown dtype %d", dtype);
    const double v = std::trunc(value);
    if (!(v >= lo && v < hi)) return fail(SGLD_ERR_INVALID, "sgld_fill: value %g does not fit dtype %d", value, dtype);
    if (dtype == SGLD_I32) *bits = uint32_t(int32_t(v));
    else if (dtype == SGLD_I64) *bits = uint64_t(int64_t(v));
    else *bits = uint8_t(v);
    return SGLD_OK;
}

template <class Word>
void fill_words(sgld_context_t ctx, Word *dst, int64_t n, Word w) {
    parallel_for(ctx, n, kCopyGrain * 4, [&](int64_t b, int64_t e) { std::fill(dst + b, dst + e, w); });
}

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_copy_strided(sgld_context_t ctx, int32_t ndim, const int64_t *shape, int32_t src_dtype,
                                         const void *src, const int64_t *src_strides, int32_t dst_dtype, void *dst,
                                         const int64_t *dst_strides) {
    SGLD_CHECK_CTX(ctx);
    if (ndim < 0 || ndim > kMaxDims) return fail(SGLD_ERR_INVALID, "sgld_copy_strided: ndim %d outside [0, 6]", ndim);
    if (sgld_status s = check_dtype_pair("sgld_copy_strided", src_dtype, dst_dtype)) return s;
    if (ndim > 0) { SGLD_CHECK_PTR(shape); SGLD_CHECK_PTR(src_strides); SGLD_CHECK_PTR(dst_strides); }
    int64_t total = 1;
    for (int i = 0; i < ndim; ++i) {
        if (shape[i] < 0) return fail(SGLD_ERR_INVALID, "sgld_copy_strided: shape[%d] = %lld is negative", i, (long long)shape[i]);
        total *= shape[i];
    }
    if (total == 0) return SGLD_OK;
    SGLD_CHECK_PTR(src);
    SGLD_CHECK_PTR(dst);
    const CopyDims c = simplify(ndim, shape, src_strides, dst_strides);
    copy_strided(ctx, c, row_function(src_dtype, dst_dtype), static_cast<const char *>(src), dtype_size(src_dtype),
                 static_cast<char *>(dst), dtype_size(dst_dtype));
    return SGLD_OK;
}

extern "C" sgld_status sgld_convert(sgld_context_t ctx, int64_t n, int32_t src_dtype, const void *src, int32_t dst_dtype,
                                    void *dst) {
    SGLD_CHECK_CTX(ctx);
    if (n < 0) return fail(SGLD_ERR_INVALID, "sgld_convert: n = %lld is negative", (long long)n);
    if (!is_float_dtype(src_dtype)) return fail(SGLD_ERR_INVALID, "sgld_convert: src_dtype %d is not F32/F16/BF16", src_dtype);
    if (!is_float_dtype(dst_dtype)) return fail(SGLD_ERR_INVALID, "sgld_convert: dst_dtype %d is not F32/F16/BF16", dst_dtype);
    if (n == 0) return SGLD_OK;
    SGLD_CHECK_PTR(src);
    SGLD_CHECK_PTR(dst);
    const RowFn row = row_function(src_dtype, dst_dtype);
    const char *s = static_cast<const char *>(src);
    char *d = static_cast<char *>(dst);
    const size_t ssz = dtype_size(src_dtype), dsz = dtype_size(dst_dtype);
    parallel_for(ctx, n, kCopyGrain, [&](int64_t b, int64_t e) { row(s + b * ssz, 1, d + b * dsz, 1, e - b); });
    return SGLD_OK;
}

extern "C" sgld_status sgld_fill(sgld_context_t ctx, int32_t dtype, int64_t n, void *dst, double value) {
    SGLD_CHECK_CTX(ctx);
    if (n < 0) return fail(SGLD_ERR_INVALID, "sgld_fill: n = %lld is negative", (long long)n);
    uint64_t bits = 0;
    if (sgld_status s = fill_pattern(dtype, value, &bits)) return s;
    if (n == 0) return SGLD_OK;
    SGLD_CHECK_PTR(dst);
    switch (dtype_size(dtype)) {
        case 1: fill_words(ctx, static_cast<uint8_t *>(dst), n, uint8_t(bits)); break;
        case 2: fill_words(ctx, static_cast<uint16_t *>(dst), n, uint16_t(bits)); break;
        case 4: fill_words(ctx, static_cast<uint32_t *>(dst), n, uint32_t(bits)); break;
        default: fill_words(ctx, static_cast<uint64_t *>(dst), n, bits); break;
    }
    return SGLD_OK;
}
