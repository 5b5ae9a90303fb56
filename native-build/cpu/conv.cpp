// Convolutions and nearest upsampling of the CPU backend (sgld.h).
//
// conv3d is im2col + GEMM, tiled so the workspace stays bounded whatever the video size: a tile is a range of
// output pixels of one output frame, and Y[c_out, pixels] = W[c_out, K] @ col[K, pixels] (K = c_in*kt*kh*kw,
// row k of col following the weight layout (ci, dt, dy, dx)) is accumulated chunk by chunk of K rows, each
// chunk's im2col block built just before sgemm packs it, written straight into the NCTHW output (ldc = frames
// * pixels per frame). Bias is pre-filled into the output tile and accumulated with beta = 1 (sgemm's own bias
// runs along columns). Zero padding is written into the im2col block, never into a padded copy of the input.
// With enough tiles each thread builds and multiplies its own (sgemm_serial; the block stays in that core's
// L2); with few, tiles run one after another with the chunk's im2col and GEMM split over all threads.
// A 1x1x1 convolution with stride 1 and no padding needs no im2col: its tiles multiply the input directly.
#include "gemm_kernel.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cstring>

namespace sgld {
namespace {

// A tile's im2col is built kChunkRows rows of K at a time and multiplied in at once (sgemm with beta = 1 after
// the first chunk), so the block sgemm packs from is still in L2 (256 x 256 floats = 256 KiB): measured 15-25%
// faster per core than building all K rows of a 4 MiB tile first. Tiles are at least kMinTileColumns
// output pixels wide so sgemm's repacking of the weights stays small against the multiply-adds; small K gets
// wider tiles within the same block budget.
constexpr int64_t kChunkRows = 256;
constexpr int64_t kChunkFloats = int64_t(1) << 16;
constexpr int64_t kMinTileColumns = 256;

struct ConvShape {
    int64_t n, cin, t, h, w;       // input
    int64_t cout, kt, kh, kw;      // weight
    int64_t st, sh, sw;            // strides
    int64_t pt, ph, pw;            // leading pads (front, top, left); trailing pads only shape the output
    int64_t to, ho, wo;            // output
    bool pointwise;                // 1x1x1, stride 1, no pads: the input planes are the im2col rows
    int64_t k() const { return cin * kt * kh * kw; }
    int64_t pixels() const { return ho * wo; }
};

// floor(a / b) for b > 0 and any sign of a.
inline int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// Fills rows [k0, k1) of the im2col block of output frame (ni, oz), pixels [p0, p0 + len): row k goes to
// col + (k - k0) * len.
void im2col_rows(const ConvShape &s, const float *x, int64_t ni, int64_t oz, int64_t p0, int64_t len, int64_t k0,
                 int64_t k1, float *col) {
    const int64_t taps = s.kh * s.kw;
    for (int64_t k = k0; k < k1; ++k) {
        float *row = col + (k - k0) * len;
        const int64_t ci = k / (s.kt * taps), dt = k / taps % s.kt, dy = k % taps / s.kw, dx = k % s.kw;
        const int64_t iz = oz * s.st - s.pt + dt;
        if (iz < 0 || iz >= s.t) { std::fill(row, row + len, 0.0f); continue; }
        const float *plane = x + ((ni * s.cin + ci) * s.t + iz) * s.h * s.w;
        // Output columns ox whose input column ix = ox*sw - pw + dx lies inside [0, w).
        const int64_t ox_lo = std::min(s.wo, std::max<int64_t>(0, -floor_div(dx - s.pw, s.sw)));
        const int64_t ox_hi = std::max(ox_lo, std::min(s.wo, floor_div(s.w - 1 + s.pw - dx, s.sw) + 1));
        int64_t j = 0;
        for (int64_t p = p0; p < p0 + len;) {
            const int64_t oy = p / s.wo, ox0 = p % s.wo, ox1 = std::min(s.wo, ox0 + (p0 + len - p));
            float *out = row + j;
            const int64_t iy = oy * s.sh - s.ph + dy;
            if (iy < 0 || iy >= s.h) {
                std::fill(out, out + (ox1 - ox0), 0.0f);
            } else {
                const float *in = plane + iy * s.w - s.pw + dx;  // in[ox * sw] is input column ox*sw - pw + dx
                const int64_t a = std::max(ox0, ox_lo), b = std::max(a, std::min(ox1, ox_hi));
                std::fill(out, out + (a - ox0), 0.0f);
                if (s.sw == 1) std::memcpy(out + (a - ox0), in + a, size_t(b - a) * 4);
                else for (int64_t ox = a; ox < b; ++ox) out[ox - ox0] = in[ox * s.sw];
                std::fill(out + (b - ox0), out + (ox1 - ox0), 0.0f);
            }
            j += ox1 - ox0;
            p += ox1 - ox0;
        }
    }
}

// Output rows (one per c_out) of a tile start with the bias, or nothing is read (beta = 0) without one.
void prefill_bias(const float *bias, int64_t cout, float *c, int64_t ldc, int64_t len) {
    for (int64_t co = 0; co < cout; ++co) std::fill(c + co * ldc, c + co * ldc + len, bias[co]);
}

thread_local ScratchBuffer tls_im2col;

struct ConvTile { int64_t ni, oz, p0, len; };

// Y[:, p0 : p0+len] of output frame (ni, oz) = W @ im2col (+ bias), K in chunks of kChunkRows rows. With `pool`
// the chunk's im2col and its GEMM are split over the context's threads; without, this thread does it all.
void conv_tile(sgld_context_t pool, const ConvShape &s, const ConvTile &tile, const float *x, const float *weight,
               const float *bias, float *y, float *col) {
    const int64_t K = s.k(), P = s.pixels(), ldc = s.to * P;
    float *c = y + (tile.ni * s.cout * s.to + tile.oz) * P + tile.p0;
    if (bias) prefill_bias(bias, s.cout, c, ldc, tile.len);
    if (K == 0 && !bias) {  // no input channels: the output is zero
        for (int64_t co = 0; co < s.cout; ++co) std::fill(c + co * ldc, c + co * ldc + tile.len, 0.0f);
        return;
    }
    if (s.pointwise) {  // B is the input itself: row ci of frame oz is plane (ni, ci, oz), rows t*h*w apart
        const float *b = x + (tile.ni * s.cin * s.t + tile.oz) * P + tile.p0;
        if (pool) sgemm(pool, false, false, s.cout, tile.len, K, 1.0f, weight, K, b, s.t * P, bias ? 1.0f : 0.0f, c, ldc, nullptr, SGLD_ACT_NONE);
        else sgemm_serial(false, false, s.cout, tile.len, K, 1.0f, weight, K, b, s.t * P, bias ? 1.0f : 0.0f, c, ldc, nullptr, SGLD_ACT_NONE);
        return;
    }
    for (int64_t k0 = 0; k0 < K; k0 += kChunkRows) {
        const int64_t kc = std::min(kChunkRows, K - k0);
        const float beta = k0 > 0 || bias ? 1.0f : 0.0f;
        if (pool) {
            parallel_for(pool, kc, std::max<int64_t>(1, (int64_t(1) << 14) / tile.len), [&](int64_t r0, int64_t r1) {
                im2col_rows(s, x, tile.ni, tile.oz, tile.p0, tile.len, k0 + r0, k0 + r1, col + r0 * tile.len);
            });
            sgemm(pool, false, false, s.cout, tile.len, kc, 1.0f, weight + k0, K, col, tile.len, beta, c, ldc, nullptr, SGLD_ACT_NONE);
        } else {
            im2col_rows(s, x, tile.ni, tile.oz, tile.p0, tile.len, k0, k0 + kc, col);
            sgemm_serial(false, false, s.cout, tile.len, kc, 1.0f, weight + k0, K, col, tile.len, beta, c, ldc, nullptr, SGLD_ACT_NONE);
        }
    }
}

bool conv3d_tiled(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight, const float *bias,
                   float *y) {
    const int64_t K = s.k(), P = s.pixels();
    const int64_t rows = std::max<int64_t>(1, std::min(K, kChunkRows));
    const int64_t width = std::min(P, std::max(kMinTileColumns, round_up(kChunkFloats / rows, 16)));
    const int64_t tiles_per_frame = (P + width - 1) / width, tiles = s.n * s.to * tiles_per_frame;
    auto tile_at = [&](int64_t ti) {
        const int64_t f = ti / tiles_per_frame, p0 = ti % tiles_per_frame * width;
        return ConvTile{f / s.to, f % s.to, p0, std::min(width, P - p0)};
    };
    const int threads = ctx->pool.size();
    // Whole tiles per thread when they balance (a multiple of the thread count, or enough that the last round
    // matters little), handed out one at a time; otherwise one tile at a time on all threads.
    if (tiles % threads == 0 || tiles >= 4 * threads) {
        std::atomic<bool> ok{true};
        ctx->pool.run(tiles, [&](int64_t ti) {
            float *col = s.pointwise ? nullptr : tls_im2col.get(size_t(rows * width));
            if (!s.pointwise && !col) { ok.store(false); return; }
            try {
                conv_tile(nullptr, s, tile_at(ti), x, weight, bias, y, col);
            } catch (const std::bad_alloc &) { ok.store(false); }
        });
        return ok.load();
    }
    float *col = s.pointwise ? nullptr : tls_im2col.get(size_t(rows * width));
    if (!s.pointwise && !col) return false;
    for (int64_t ti = 0; ti < tiles; ++ti) conv_tile(ctx, s, tile_at(ti), x, weight, bias, y, col);
    return true;
}

sgld_status conv3d_checked(sgld_context_t ctx, const char *op, int32_t dtype, int64_t n, int64_t c_in, int64_t t,
                           int64_t h, int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw,
                           const void *weight, const void *bias, const int64_t stride[3], const int64_t pad[6],
                           void *y) {
    if (sgld_status s = require_f32(dtype, op)) return s;
    if (n < 0 || c_in < 0 || t < 0 || h < 0 || w < 0 || c_out < 0)
        return fail(SGLD_ERR_INVALID, "%s: negative size (n %lld, c_in %lld, t %lld, h %lld, w %lld, c_out %lld)", op,
                    (long long)n, (long long)c_in, (long long)t, (long long)h, (long long)w, (long long)c_out);
    if (kt < 1 || kh < 1 || kw < 1)
        return fail(SGLD_ERR_INVALID, "%s: kernel %lldx%lldx%lld must be at least 1 in every dim", op, (long long)kt, (long long)kh, (long long)kw);
    for (int i = 0; i < 3; ++i)
        if (stride[i] < 1) return fail(SGLD_ERR_INVALID, "%s: strides[%d] = %lld must be >= 1", op, i, (long long)stride[i]);
    for (int i = 0; i < 6; ++i)
        if (pad[i] < 0) return fail(SGLD_ERR_INVALID, "%s: pads[%d] = %lld is negative", op, i, (long long)pad[i]);
    const bool pointwise = kt == 1 && kh == 1 && kw == 1 && stride[0] == 1 && stride[1] == 1 && stride[2] == 1 &&
                           std::all_of(pad, pad + 6, [](int64_t p) { return p == 0; });
    ConvShape s{n, c_in, t, h, w, c_out, kt, kh, kw, stride[0], stride[1], stride[2], pad[0], pad[2], pad[4], 0, 0, 0, pointwise};
    const int64_t tp = t + pad[0] + pad[1], hp = h + pad[2] + pad[3], wp = w + pad[4] + pad[5];
    if (tp < kt || hp < kh || wp < kw)
        return fail(SGLD_ERR_INVALID, "%s: padded input %lldx%lldx%lld is smaller than the kernel %lldx%lldx%lld", op,
                    (long long)tp, (long long)hp, (long long)wp, (long long)kt, (long long)kh, (long long)kw);
    s.to = (tp - kt) / s.st + 1;
    s.ho = (hp - kh) / s.sh + 1;
    s.wo = (wp - kw) / s.sw + 1;
    if (n == 0 || c_out == 0) return SGLD_OK;
    // (Checked by hand: SGLD_CHECK_PTR would name this helper instead of the op.)
    if (!y) return fail(SGLD_ERR_INVALID, "%s: y is null", op);
    if (c_in > 0 && t > 0 && h > 0 && w > 0) {
        if (!x) return fail(SGLD_ERR_INVALID, "%s: x is null", op);
        if (!weight) return fail(SGLD_ERR_INVALID, "%s: weight is null", op);
    }
    const float *X = static_cast<const float *>(x), *W = static_cast<const float *>(weight), *B = static_cast<const float *>(bias);
    float *Y = static_cast<float *>(y);
    try {
        if (!conv3d_tiled(ctx, s, X, W, B, Y)) throw std::bad_alloc();
    } catch (const std::bad_alloc &) {
        return fail(SGLD_ERR_NO_MEMORY, "%s: out of memory for the im2col workspace", op);
    }
    return SGLD_OK;
}

}  // namespace
}  // namespace sgld

using namespace sgld;

extern "C" sgld_status sgld_conv3d(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t t, int64_t h,
                                   int64_t w, const void *x, int64_t c_out, int64_t kt, int64_t kh, int64_t kw,
                                   const void *weight, const void *bias, const int32_t *strides, const int32_t *pads,
                                   void *y) {
    SGLD_CHECK_CTX(ctx);
    SGLD_CHECK_PTR(strides);
    SGLD_CHECK_PTR(pads);
    const int64_t stride[3] = {strides[0], strides[1], strides[2]};
    const int64_t pad[6] = {pads[0], pads[1], pads[2], pads[3], pads[4], pads[5]};
    return conv3d_checked(ctx, "sgld_conv3d", dtype, n, c_in, t, h, w, x, c_out, kt, kh, kw, weight, bias, stride, pad, y);
}

extern "C" sgld_status sgld_conv2d(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c_in, int64_t h, int64_t w,
                                   const void *x, int64_t c_out, int64_t kh, int64_t kw, const void *weight,
                                   const void *bias, const int32_t *strides, const int32_t *pads, void *y) {
    SGLD_CHECK_CTX(ctx);
    SGLD_CHECK_PTR(strides);
    SGLD_CHECK_PTR(pads);
    const int64_t stride[3] = {1, strides[0], strides[1]};
    const int64_t pad[6] = {0, 0, pads[0], pads[1], pads[2], pads[3]};
    return conv3d_checked(ctx, "sgld_conv2d", dtype, n, c_in, 1, h, w, x, c_out, 1, kh, kw, weight, bias, stride, pad, y);
}

extern "C" sgld_status sgld_upsample_nearest(sgld_context_t ctx, int32_t dtype, int64_t n, int64_t c, int64_t t,
                                             int64_t h, int64_t w, int32_t ft, int32_t fh, int32_t fw, const void *x,
                                             void *y) {
    SGLD_CHECK_CTX(ctx);
    if (sgld_status s = require_f32(dtype, "sgld_upsample_nearest")) return s;
    if (n < 0 || c < 0 || t < 0 || h < 0 || w < 0)
        return fail(SGLD_ERR_INVALID, "sgld_upsample_nearest: negative size (n %lld, c %lld, t %lld, h %lld, w %lld)",
                    (long long)n, (long long)c, (long long)t, (long long)h, (long long)w);
    if (ft < 1 || fh < 1 || fw < 1)
        return fail(SGLD_ERR_INVALID, "sgld_upsample_nearest: factors %d, %d, %d must be >= 1", ft, fh, fw);
    if (n == 0 || c == 0 || t == 0 || h == 0 || w == 0) return SGLD_OK;
    SGLD_CHECK_PTR(x);
    SGLD_CHECK_PTR(y);
    const float *X = static_cast<const float *>(x);
    float *Y = static_cast<float *>(y);
    const int64_t wo = w * fw, ho = h * fh, to = t * ft;
    // One task per input row: expand it once into its first output row, then copy that row to the other
    // fh * ft - 1 output rows it feeds.
    const int64_t rows = n * c * t * h;
    parallel_for(ctx, rows, std::max<int64_t>(1, (int64_t(1) << 15) / (wo * fh * ft)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) {
            const int64_t iy = r % h, iz = r / h % t, nc = r / (h * t);
            const float *in = X + r * w;
            float *first = Y + ((nc * to + iz * ft) * ho + iy * fh) * wo;
            int64_t ix = 0;
#if SGLD_HAVE_AVX2
            if (fw == 2) {
                for (; ix + 8 <= w; ix += 8) {
                    const __m256 v = _mm256_loadu_ps(in + ix);
                    const __m256 lo = _mm256_unpacklo_ps(v, v), hi = _mm256_unpackhi_ps(v, v);
                    _mm256_storeu_ps(first + 2 * ix, _mm256_permute2f128_ps(lo, hi, 0x20));
                    _mm256_storeu_ps(first + 2 * ix + 8, _mm256_permute2f128_ps(lo, hi, 0x31));
                }
            }
#endif
            for (; ix < w; ++ix) std::fill(first + ix * fw, first + (ix + 1) * fw, in[ix]);
            for (int64_t dz = 0; dz < ft; ++dz) {
                for (int64_t dy = 0; dy < fh; ++dy) {
                    if (dz == 0 && dy == 0) continue;
                    std::memcpy(first + (dz * ho + dy) * wo, first, size_t(wo) * 4);
                }
            }
        }
    });
    return SGLD_OK;
}
