// Direct convolution for very few output channels (the VAE decoders' last conv: 96 or 128 channels -> RGB).
// As a GEMM such a conv has 3 rows: half of every 6-row micro-tile would be padding, and packing each im2col
// element costs more than the 3 multiply-adds it feeds. Here 32 output pixels of one row x c_out channels
// stay in registers while the taps stream past: per tap, four 8-pixel loads straight from the input (masked
// only for the groups at the image edges), c_out weight broadcasts and 4 x c_out FMAs.
#include "conv_shape.h"
#include "gemm_kernel.h"
#include "gemm_simd.h"

#include <algorithm>

namespace sgld {
namespace {

constexpr int64_t kGroup = 32;  // output pixels per register block (four ymm per channel)
constexpr int64_t kDirectRows = 8;  // output rows per task (their sums: 8 x 3 x 512 floats = 48 KiB)
constexpr int64_t kDirectAccBytes = 128 << 10;  // the sums of a task's output frames (L2)

// Output rows [oy0, oy0 + nrows) of frames [oz0, oz0 + nz) of sample ni. Their sums live in `acc_rows`
// (nz x nrows x c_out x wo, in L2); the taps are walked channel by channel, each input row from left to right (a
// stream the hardware prefetcher follows), 32 pixels x c_out in registers across the kw taps of that row. The
// frames of a channel follow each other, so an input frame's rows are read from memory once for the up to kt
// output frames that read them. Every output sums its products in the weight's (ci, dt, dy, dx) order, whatever
// the thread count and task split.
template <int CO>
void direct_rows(const ConvShape &s, const float *x, const float *weight, const float *bias, float *y, int64_t ni,
                 int64_t oz0, int64_t nz, int64_t oy0, int64_t nrows, float *acc_rows, const void *masks_v) {
    const int64_t K = s.k(), P = s.pixels(), taps = s.kh * s.kw, wo = s.wo, ldacc = round_up(wo, kGroup);
    std::fill(acc_rows, acc_rows + nz * nrows * CO * ldacc, 0.0f);
    for (int64_t ci = 0; ci < s.cin; ++ci)
     for (int64_t oz = oz0; oz < oz0 + nz; ++oz)
      for (int64_t oy = oy0; oy < oy0 + nrows; ++oy) {
        const int64_t iz0 = oz * s.st - s.pt;
        float *acc = acc_rows + ((oz - oz0) * nrows + oy - oy0) * CO * ldacc;
        const int64_t iy0 = oy * s.sh - s.ph;
        for (int64_t dt = 0; dt < s.kt; ++dt) {
            const int64_t iz = iz0 + dt;
            if (iz < 0 || iz >= s.t) continue;
            for (int64_t dy = 0; dy < s.kh; ++dy) {
                const int64_t iy = iy0 + dy;
                if (iy < 0 || iy >= s.h) continue;
                const float *row = x + (((ni * s.cin + ci) * s.t + iz) * s.h + iy) * s.w - s.pw;
                const float *wk = weight + (ci * s.kt + dt) * taps + dy * s.kw;
#if SGLD_HAVE_AVX2
                const __m256i *masks = static_cast<const __m256i *>(masks_v);
                for (int64_t g = 0; g < ldacc; g += kGroup) {
                    __m256 a[CO][4];
                    for (int c = 0; c < CO; ++c)
                        for (int v = 0; v < 4; ++v) a[c][v] = _mm256_load_ps(acc + c * ldacc + g + v * 8);
                    const __m256i *m = masks + (g / kGroup) * s.kw * 4;
                    // Groups whose 32 + kw - 1 input columns all lie inside the row load without masks.
                    const bool inside = g - s.pw >= 0 && g - s.pw + kGroup + s.kw - 1 <= s.w && g + kGroup <= wo;
                    for (int64_t dx = 0; dx < s.kw; ++dx) {
                        __m256 in[4];
                        if (inside)
                            for (int v = 0; v < 4; ++v) in[v] = _mm256_loadu_ps(row + g + dx + v * 8);
                        else
                            for (int v = 0; v < 4; ++v) in[v] = _mm256_maskload_ps(row + g + dx + v * 8, m[dx * 4 + v]);
                        for (int c = 0; c < CO; ++c) {
                            const __m256 wv = _mm256_broadcast_ss(wk + c * K + dx);
                            for (int v = 0; v < 4; ++v) a[c][v] = _mm256_fmadd_ps(wv, in[v], a[c][v]);
                        }
                    }
                    for (int c = 0; c < CO; ++c)
                        for (int v = 0; v < 4; ++v) _mm256_store_ps(acc + c * ldacc + g + v * 8, a[c][v]);
                }
#else
                for (int64_t dx = 0; dx < s.kw; ++dx)
                    for (int64_t j = 0; j < wo; ++j) {
                        const int64_t ix = j - s.pw + dx;
                        if (ix < 0 || ix >= s.w) continue;
                        for (int c = 0; c < CO; ++c) acc[c * ldacc + j] += wk[c * K + dx] * row[j + dx];
                    }
#endif
            }
        }
      }
    for (int64_t oz = oz0; oz < oz0 + nz; ++oz)
      for (int64_t r = 0; r < nrows; ++r)
        for (int c = 0; c < CO; ++c) {
            float *dst = y + ((ni * s.cout + c) * s.to + oz) * P + (oy0 + r) * wo;
            const float *acc = acc_rows + (((oz - oz0) * nrows + r) * CO + c) * ldacc;
            const float b = bias ? bias[c] : 0.0f;
            for (int64_t j = 0; j < wo; ++j) dst[j] = acc[j] + b;
        }
}

thread_local ScratchBuffer tls_direct_rows;

template <int CO>
bool direct_conv(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight, const float *bias,
                 float *y) {
    const int64_t ldacc = round_up(s.wo, kGroup), groups = ldacc / kGroup;
#if SGLD_HAVE_AVX2
    // Lane masks per (group, dx, vector): the pixel exists and its input column is inside the image (masked
    // lanes are not read, so edge groups never touch memory outside the row).
    ScratchBuffer mask_buffer;  // 32-byte aligned
    float *mask_floats = mask_buffer.get(size_t(groups * s.kw * 4 * 8));
    if (!mask_floats) return false;
    __m256i *masks = reinterpret_cast<__m256i *>(mask_floats);
    for (int64_t g = 0; g < groups; ++g)
        for (int64_t dx = 0; dx < s.kw; ++dx)
            for (int v = 0; v < 4; ++v) {
                alignas(32) int32_t m[8];
                for (int i = 0; i < 8; ++i) {
                    const int64_t j = g * kGroup + v * 8 + i, ix = j - s.pw + dx;
                    m[i] = j < s.wo && ix >= 0 && ix < s.w ? -1 : 0;
                }
                _mm256_store_si256(masks + (g * s.kw + dx) * 4 + v, _mm256_load_si256(reinterpret_cast<const __m256i *>(m)));
            }
    const void *mask_data = masks;
#else
    const void *mask_data = nullptr;
#endif
    // Tasks are blocks of output rows of as many frames as kDirectAccBytes of sums allow: for each input
    // channel the block's input rows are read from memory once and reused from cache by the (up to kh x kt)
    // output rows that need them. (With one frame per task every input frame was read kt times: the Wan
    // decoder's 96 -> 3 conv of four 256x256 frames took 189-221 ms on one thread, 134-177 ms so.)
    std::atomic<bool> ok{true};
    const int64_t per_frame = (s.ho + kDirectRows - 1) / kDirectRows;
    const int64_t nz = std::max<int64_t>(1, std::min(s.to, kDirectAccBytes / int64_t(kDirectRows * CO * ldacc * sizeof(float))));
    const int64_t groups_t = (s.to + nz - 1) / nz, tasks = s.n * groups_t * per_frame;
    ctx->pool.run(tasks, [&](int64_t ti) {
        float *acc = tls_direct_rows.get(size_t(nz * kDirectRows * CO * ldacc));
        if (!acc) { ok.store(false); return; }
        const int64_t f = ti / per_frame, oy0 = ti % per_frame * kDirectRows, ni = f / groups_t, z0 = f % groups_t * nz;
        direct_rows<CO>(s, x, weight, bias, y, ni, z0, std::min(nz, s.to - z0), oy0, std::min(kDirectRows, s.ho - oy0), acc, mask_data);
    });
    return ok.load();
}

}  // namespace

bool conv3d_direct_few_channels(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight,
                                const float *bias, float *y) {
    if (s.sw != 1 || s.cout < 1 || s.cout > kDirectMaxChannels) return false;
    switch (s.cout) {
        case 1: return direct_conv<1>(ctx, s, x, weight, bias, y);
        case 2: return direct_conv<2>(ctx, s, x, weight, bias, y);
        default: return direct_conv<3>(ctx, s, x, weight, bias, y);
    }
}

}  // namespace sgld
