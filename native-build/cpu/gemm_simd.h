// Eight-lane fp32 math shared by the GEMM epilogue and attention: exp and the SGLD_ACT_* activations.
// AVX2/FMA when the compiler targets it (SGLD_HAVE_AVX2); every function has the scalar equivalent in gemm.h
// (apply_activation) so code built without AVX2 stays correct.
#pragma once
#include "gemm.h"

#if defined(__AVX2__) && defined(__FMA__)
#define SGLD_HAVE_AVX2 1
#include <immintrin.h>
#else
#define SGLD_HAVE_AVX2 0
#endif

namespace sgld {

#if SGLD_HAVE_AVX2

// exp256 for x already clamped to [-88.38, 88.38] (or NaN); callers that know a bound skip a clamp.
static inline __m256 exp256_clamped(__m256 x) {
    __m256 fx = _mm256_fmadd_ps(x, _mm256_set1_ps(1.44269504088896341f), _mm256_set1_ps(0.5f));
    fx = _mm256_floor_ps(fx);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
    x = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), x);
    __m256 y = _mm256_set1_ps(1.9875691500e-4f);
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.3981999507e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(8.3334519073e-3f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(4.1665795894e-2f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(1.6666665459e-1f));
    y = _mm256_fmadd_ps(y, x, _mm256_set1_ps(5.0000001201e-1f));
    y = _mm256_fmadd_ps(y, _mm256_mul_ps(x, x), _mm256_add_ps(x, _mm256_set1_ps(1.0f)));
    // 2^n through the exponent field; n = -127 (the clamp's floor) yields +0.
    __m256i n = _mm256_add_epi32(_mm256_cvttps_epi32(fx), _mm256_set1_epi32(127));
    return _mm256_mul_ps(y, _mm256_castsi256_ps(_mm256_slli_epi32(n, 23)));
}

// exp(x) to ~1 ulp over the float range: Cephes' expf (range reduction by ln 2 in two parts, degree-5
// polynomial). Inputs below -88.38 give exactly 0 (so exp(-inf) == 0, which masked attention relies on);
// NaN stays NaN.
static inline __m256 exp256(__m256 x) {
    const __m256 hi = _mm256_set1_ps(88.3762626647949f), lo = _mm256_set1_ps(-88.3762626647949f);
    return exp256_clamped(_mm256_min_ps(hi, _mm256_max_ps(lo, x)));  // operand order keeps NaN
}

// x * sigmoid(s * x)-style helpers: x / (1 + exp(-t)).
static inline __m256 div_one_plus_exp_neg256(__m256 x, __m256 t) {
    return _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), exp256(_mm256_sub_ps(_mm256_setzero_ps(), t))));
}

// erfc(z) for z >= 0 with fractional error < 1.2e-7 (Numerical Recipes' erfcc, a Chebyshev fit).
static inline __m256 erfc_nonneg256(__m256 z) {
    const __m256 one = _mm256_set1_ps(1.0f);
    __m256 t = _mm256_div_ps(one, _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, one));
    __m256 p = _mm256_set1_ps(0.17087277f);
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
    p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
    p = _mm256_fnmadd_ps(z, z, p);
    return _mm256_mul_ps(t, exp256(p));
}

// The activations of gemm.h's apply_activation, same math, rewritten into forms that vectorise:
//   gelu-tanh: 0.5x(1 + tanh(u)) == x * sigmoid(2u), u = sqrt(2/pi)(x + 0.044715x^3)
//   gelu-erf:  0.5x(1 + erf(x/sqrt2)) == x(1 - erfc(x/sqrt2)/2), erfc(-z) = 2 - erfc(z)
static inline __m256 activation256(__m256 x, int32_t activation) {
    switch (activation) {
        case SGLD_ACT_GELU_TANH: {
            __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
            __m256 u = _mm256_mul_ps(_mm256_set1_ps(2.0f * 0.7978845608028654f),
                                     _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
            return div_one_plus_exp_neg256(x, u);
        }
        case SGLD_ACT_GELU_ERF: {
            const __m256 sign = _mm256_set1_ps(-0.0f);
            __m256 z = _mm256_mul_ps(_mm256_andnot_ps(sign, x), _mm256_set1_ps(0.7071067811865476f));
            __m256 half_erfc = _mm256_mul_ps(_mm256_set1_ps(0.5f), erfc_nonneg256(z));  // for |x|
            // x >= 0: 1 - erfc(z)/2; x < 0: erfc(z)/2.
            __m256 neg = _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_LT_OQ);
            __m256 factor = _mm256_blendv_ps(_mm256_sub_ps(_mm256_set1_ps(1.0f), half_erfc), half_erfc, neg);
            return _mm256_mul_ps(x, factor);
        }
        case SGLD_ACT_SILU: return div_one_plus_exp_neg256(x, x);
        case SGLD_ACT_RELU: return _mm256_max_ps(x, _mm256_setzero_ps());
        default: return x;
    }
}

// Horizontal max / sum of eight lanes.
static inline float hmax256(__m256 v) {
    __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    return _mm_cvtss_f32(m);
}
static inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

#endif  // SGLD_HAVE_AVX2

}  // namespace sgld
