// Panel packing and the 6x16 micro-kernel (AVX2/FMA, with a portable scalar fallback).
#include "gemm_kernel.h"
#include "gemm_kstep_asm.h"
#include "gemm_simd.h"

#include <cstdlib>
#include <cstring>

namespace sgld {

ScratchBuffer::~ScratchBuffer() { std::free(data_); }

float *ScratchBuffer::get(size_t floats) {
    if (floats > capacity_ || !data_) {
        std::free(data_);
        // 16 floats of slack: pack_a_panels may store 2 floats past its last panel.
        data_ = static_cast<float *>(std::aligned_alloc(64, size_t(round_up(int64_t(floats + 16) * 4, 64))));
        capacity_ = data_ ? floats : 0;
    }
    return data_;
}

#if SGLD_HAVE_AVX2

// In-register 8x8 transpose of r[0..7].
static inline void transpose8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20); r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20); r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31); r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31); r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

#endif

// ---- packing A --------------------------------------------------------------------------------------------------
void pack_a_panels(bool trans, int64_t mc, int64_t kc, const float *a, int64_t lda, float alpha, float *dst) {
    const int64_t MR = kGemmMR;
    for (int64_t i0 = 0; i0 < mc; i0 += MR, dst += kc * MR) {
        const int64_t rows = mc - i0 < MR ? mc - i0 : MR;
        if (trans) {
            // op(A)(i, p) = a[p*lda + i]: each k step is a short contiguous run of rows.
            const float *src = a + i0;
            for (int64_t p = 0; p < kc; ++p, src += lda) {
                float *d = dst + p * MR;
                int64_t i = 0;
                for (; i < rows; ++i) d[i] = alpha * src[i];
                for (; i < MR; ++i) d[i] = 0.0f;
            }
            continue;
        }
        // op(A)(i, p) = a[i*lda + p]: rows are contiguous in k; transpose 8 k-steps at a time.
        const float *row[MR];
        for (int64_t i = 0; i < MR; ++i) row[i] = a + (i0 + (i < rows ? i : 0)) * lda;
        int64_t p = 0;
#if SGLD_HAVE_AVX2
        if (rows == MR) {
            const __m256 va = _mm256_set1_ps(alpha);
            for (; p + 8 <= kc; p += 8) {
                __m256 r[8];
                for (int64_t i = 0; i < MR; ++i) r[i] = _mm256_mul_ps(va, _mm256_loadu_ps(row[i] + p));
                r[6] = r[7] = _mm256_setzero_ps();
                transpose8(r);
                // Eight overlapping 8-float stores 6 apart: each later store overwrites the previous one's two
                // padding lanes, the last spills 2 floats past this block (the caller's slack).
                float *d = dst + p * MR;
                for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + q * MR, r[q]);
            }
        }
#endif
        for (; p < kc; ++p) {
            float *d = dst + p * MR;
            int64_t i = 0;
            for (; i < rows; ++i) d[i] = alpha * row[i][p];
            for (; i < MR; ++i) d[i] = 0.0f;
        }
    }
}

// ---- packing B --------------------------------------------------------------------------------------------------
void pack_b_panels(bool trans, int64_t kc, int64_t nc, const float *b, int64_t ldb, float *dst) {
    const int64_t NR = kGemmNR;
    if (!trans) {
        // op(B)(p, j) = b[p*ldb + j]: walk 8 rows of B at a time left to right, writing each panel's 8 x 16
        // piece (512 contiguous bytes). Reading down one panel's column instead would touch a new page every
        // row when ldb is large (an im2col matrix) and miss the TLB each time.
        const int64_t full = nc / NR * NR;
        for (int64_t p0 = 0; p0 < kc; p0 += 8) {
            const int64_t rows = kc - p0 < 8 ? kc - p0 : 8;
            float *d = dst + p0 * NR;
            for (int64_t j0 = 0; j0 < full; j0 += NR, d += kc * NR)
                for (int64_t r = 0; r < rows; ++r) {
                    const float *src = b + (p0 + r) * ldb + j0;
#if SGLD_HAVE_AVX2
                    _mm256_store_ps(d + r * NR, _mm256_loadu_ps(src));
                    _mm256_store_ps(d + r * NR + 8, _mm256_loadu_ps(src + 8));
#else
                    std::memcpy(d + r * NR, src, NR * sizeof(float));
#endif
                }
            if (full < nc)
                for (int64_t r = 0; r < rows; ++r) {
                    int64_t j = 0;
                    for (; j < nc - full; ++j) d[r * NR + j] = b[(p0 + r) * ldb + full + j];
                    for (; j < NR; ++j) d[r * NR + j] = 0.0f;
                }
        }
        return;
    }
    for (int64_t j0 = 0; j0 < nc; j0 += NR, dst += kc * NR) {
        const int64_t cols = nc - j0 < NR ? nc - j0 : NR;
        // op(B)(p, j) = b[j*ldb + p] (a Linear weight): columns are contiguous in k; transpose 8x8 blocks.
        const float *col[NR];
        for (int64_t j = 0; j < NR; ++j) col[j] = b + (j0 + (j < cols ? j : 0)) * ldb;
        int64_t p = 0;
#if SGLD_HAVE_AVX2
        if (cols == NR) {
            for (; p + 8 <= kc; p += 8) {
                for (int half = 0; half < 2; ++half) {
                    __m256 r[8];
                    for (int q = 0; q < 8; ++q) r[q] = _mm256_loadu_ps(col[half * 8 + q] + p);
                    transpose8(r);
                    for (int q = 0; q < 8; ++q) _mm256_store_ps(dst + (p + q) * NR + half * 8, r[q]);
                }
            }
        }
#endif
        for (; p < kc; ++p) {
            float *d = dst + p * NR;
            int64_t j = 0;
            for (; j < cols; ++j) d[j] = col[j][p];
            for (; j < NR; ++j) d[j] = 0.0f;
        }
    }
}

// ---- micro-kernel -----------------------------------------------------------------------------------------------
#if SGLD_HAVE_AVX2

static inline void store_row(float *c, __m256 p0, __m256 p1, const TileEpilogue &e, __m256 bias0, __m256 bias1,
                             bool has_bias) {
    if (e.load == TileLoad::Beta) {
        const __m256 vb = _mm256_set1_ps(e.beta);
        p0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c), p0);
        p1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(c + 8), p1);
    } else if (e.load == TileLoad::Accumulate) {
        p0 = _mm256_add_ps(_mm256_loadu_ps(c), p0);
        p1 = _mm256_add_ps(_mm256_loadu_ps(c + 8), p1);
    }
    if (has_bias) { p0 = _mm256_add_ps(p0, bias0); p1 = _mm256_add_ps(p1, bias1); }
    if (e.activation != SGLD_ACT_NONE) { p0 = activation256(p0, e.activation); p1 = activation256(p1, e.activation); }
    _mm256_storeu_ps(c, p0);
    _mm256_storeu_ps(c + 8, p1);
}


void gemm_micro_kernel(int64_t kc, const float *__restrict a, const float *__restrict b, float *c, int64_t ldc,
                       const TileEpilogue &e) {
    // C is read only after the k loop: start fetching its rows now (both lines when a row straddles two).
    if (e.load != TileLoad::Overwrite)
        for (int r = 0; r < 6; ++r) {
            _mm_prefetch(reinterpret_cast<const char *>(c + r * ldc), _MM_HINT_T0);
            _mm_prefetch(reinterpret_cast<const char *>(c + r * ldc + 15), _MM_HINT_T0);
        }
    // The k loop is hand-scheduled assembly: compilers rotate the twelve accumulators through registers and
    // reload B from memory, which costs ~10% at this size. The product leaves through `acc`.
    alignas(32) float acc[kGemmMR * kGemmNR];
    int64_t k_iter = kc / 4, k_left = kc % 4;
    __asm__ volatile(
        SGLD_ZERO_ACC_ASM
        SGLD_PANEL_KLOOP_ASM("prefetcht0 384(%[a])\n\t")
        SGLD_STORE_ACC_ASM
        : [a] "+r"(a), [b] "+r"(b), [k_iter] "+r"(k_iter), [k_left] "+r"(k_left)
        : [acc] "r"(acc)
        : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11",
          "xmm12", "xmm13", "xmm14", "xmm15", "cc", "memory");
    const bool has_bias = e.bias != nullptr;
    const __m256 bias0 = has_bias ? _mm256_loadu_ps(e.bias) : _mm256_setzero_ps();
    const __m256 bias1 = has_bias ? _mm256_loadu_ps(e.bias + 8) : _mm256_setzero_ps();
    for (int r = 0; r < 6; ++r)
        store_row(c + r * ldc, _mm256_load_ps(acc + 16 * r), _mm256_load_ps(acc + 16 * r + 8), e, bias0, bias1, has_bias);
}

#else  // portable fallback: the same contract in plain loops (compilers vectorise the j loops)

void gemm_micro_kernel(int64_t kc, const float *a, const float *b, float *c, int64_t ldc, const TileEpilogue &e) {
    float acc[kGemmMR][kGemmNR] = {};
    for (int64_t p = 0; p < kc; ++p, a += kGemmMR, b += kGemmNR)
        for (int64_t i = 0; i < kGemmMR; ++i)
            for (int64_t j = 0; j < kGemmNR; ++j) acc[i][j] += a[i] * b[j];
    for (int64_t i = 0; i < kGemmMR; ++i) {
        float *row = c + i * ldc;
        for (int64_t j = 0; j < kGemmNR; ++j) {
            float v = acc[i][j];
            if (e.load == TileLoad::Beta) v += e.beta * row[j];
            else if (e.load == TileLoad::Accumulate) v += row[j];
            if (e.bias) v += e.bias[j];
            row[j] = apply_activation(v, e.activation);
        }
    }
}

#endif

}  // namespace sgld
