// Convolution as an implicit GEMM: Y[cout, pixels] = W[cout, K] @ im2col(x)[K, pixels], without an im2col
// buffer. The weight is packed once per call into the micro-kernel's A panels (every output tile reuses it); the
// im2col matrix is never formed: each 16-pixel B micro-panel is packed straight from the input, right before the
// kernels that read it. Design notes and measurements: docs/cpu-backend.md, "Convolution".
//
// K runs in the order (dt, ci, dy, dx) rather than the weight's (ci, dt, dy, dx), so the taps of one time
// offset are one contiguous k range: for an output frame whose window reaches into the causal zero padding,
// the k blocks of the missing frames are skipped instead of multiplied by zeros (Wan's first chunk pads two
// of three frames). Spatial padding is written as zeros into the B panels.
#include "conv_shape.h"
#include "gemm_kernel.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

namespace sgld {
namespace {

// k blocks of at most kConvKC taps (never straddling two time offsets), MC rows of A per L2 block, and output
// tiles of up to kConvTilePanels 16-pixel panels. Same reasoning as the GEMM's KC / MC (gemm.cpp): a
// 512-deep B micro-panel is 32 KiB, a 144 x 512 A block 288 KiB.
constexpr int64_t kConvKC = 512;
constexpr int64_t kConvMC = 144;
constexpr int64_t kConvTilePanels = 32;
constexpr int64_t kConvMinTilePanels = 4;
constexpr int64_t NR = kGemmNR, MR = kGemmMR;
// The next panel of a row reads the 16 floats after this one: fetching the line of its last float now (one
// prefetch per tap) hides the miss behind this panel's kernels. Each tap reads a different input row (one per
// channel and dy), far too many streams for the hardware prefetcher.
#ifndef PF_AHEAD
#define PF_AHEAD 31
#endif
constexpr int64_t kPrefetchAhead = PF_AHEAD;

struct KBlock {
    int64_t k0, kc, dt;
    int64_t a_offset;  // packed A panels of this block (Mp x kc floats, with slack after each block)
};

// One tap of the packed K order: where it reads relative to a run's base, and its spatial offsets.
struct Tap {
    int64_t offset;  // ((ci * t + dt) * h + dy) * w + dx
    int32_t dy, dx;
};

struct ConvPlan {
    int64_t K = 0, k_per_dt = 0, mp = 0;
    std::vector<KBlock> blocks;
    std::vector<Tap> taps;
    int64_t a_floats = 0;
};

int64_t balanced_block(int64_t n, int64_t block, int64_t multiple) {
    const int64_t count = (n + block - 1) / block;
    return std::min(round_up(block, multiple), round_up((n + count - 1) / count, multiple));
}

ConvPlan make_plan(const ConvShape &s) {
    ConvPlan plan;
    plan.K = s.k();
    plan.k_per_dt = s.cin * s.kh * s.kw;
    plan.mp = round_up(s.cout, MR);
    plan.taps.resize(size_t(plan.K));
    for (int64_t dt = 0, k = 0; dt < s.kt; ++dt)
        for (int64_t ci = 0; ci < s.cin; ++ci)
            for (int64_t dy = 0; dy < s.kh; ++dy)
                for (int64_t dx = 0; dx < s.kw; ++dx, ++k)
                    plan.taps[size_t(k)] = Tap{((ci * s.t + dt) * s.h + dy) * s.w + dx, int32_t(dy), int32_t(dx)};
    if (plan.k_per_dt == 0) return plan;
    const int64_t kc_max = balanced_block(plan.k_per_dt, kConvKC, 4);
    for (int64_t dt = 0; dt < s.kt; ++dt)
        for (int64_t k = 0; k < plan.k_per_dt; k += kc_max) {
            const int64_t kc = std::min(kc_max, plan.k_per_dt - k);
            plan.blocks.push_back(KBlock{dt * plan.k_per_dt + k, kc, dt, plan.a_floats});
            plan.a_floats += plan.mp * kc + 16;  // pack_a_panels may store 2 floats past a block
        }
    return plan;
}

thread_local ScratchBuffer tls_packed_weight, tls_weight_rows, tls_b_panels, tls_c_tile;

// Packs the weight rows of every k block as A panels (one task per block).
bool pack_weight(sgld_context_t ctx, const ConvShape &s, const ConvPlan &plan, const float *weight, float *packed) {
    std::atomic<bool> ok{true};
    const int64_t taps = s.kh * s.kw, K = plan.K;
    ctx->pool.run(int64_t(plan.blocks.size()), [&](int64_t bi) {
        const KBlock &b = plan.blocks[size_t(bi)];
        if (s.kt == 1) {  // the packed order is the weight's own
            pack_a_panels(false, s.cout, b.kc, weight + b.k0, K, 1.0f, packed + b.a_offset);
            return;
        }
        // Gather this block's taps (time offset b.dt) into contiguous rows first.
        float *rows = tls_weight_rows.get(size_t(s.cout * b.kc));
        if (!rows) { ok.store(false); return; }
        const int64_t first = b.k0 - b.dt * plan.k_per_dt;  // (ci, dy, dx) index of the block's first tap
        for (int64_t co = 0; co < s.cout; ++co) {
            float *dst = rows + co * b.kc;
            for (int64_t j = 0; j < b.kc;) {
                const int64_t ci = (first + j) / taps, r = (first + j) % taps, run = std::min(taps - r, b.kc - j);
                std::memcpy(dst + j, weight + co * K + (ci * s.kt + b.dt) * taps + r, size_t(run) * 4);
                j += run;
            }
        }
        pack_a_panels(false, s.cout, b.kc, rows, b.kc, 1.0f, packed + b.a_offset);
    });
    return ok.load();
}

// A run: up to 16 consecutive output pixels of one output row, columns [j, j + len) of a B panel.
struct Run {
    int64_t base;  // input index of tap offset 0: (ni, ci 0, iz of dt 0, iy of dy 0, ix of dx 0)
    int64_t iy0, ix0, j, len;
};

// Packs rows [b.k0, b.k0 + b.kc) of the im2col matrix for the pixels of `runs` into one B micro-panel
// (panel[p * 16 + j]); columns no run covers are zero.
void pack_b_panel(const ConvShape &s, const ConvPlan &plan, const KBlock &b, const float *x, const Run *runs,
                  int nruns, float *panel) {
    const Tap *taps = plan.taps.data() + b.k0;
    const int64_t kc = b.kc;
    int64_t covered = 0;
    for (int r = 0; r < nruns; ++r) covered += runs[r].len;
    if (covered < NR) std::memset(panel, 0, size_t(kc * NR) * 4);
    for (int r = 0; r < nruns; ++r) {
        const Run &run = runs[r];
        const float *src = x + run.base;
        const bool rows_inside = run.iy0 >= 0 && run.iy0 + s.kh <= s.h;
        const bool cols_inside = run.ix0 >= 0 && run.ix0 + (s.kw - 1) + (run.len - 1) * s.sw < s.w;
#if SGLD_HAVE_AVX2
        if (run.len == NR && s.sw == 1) {
            float *d = panel;
            if (rows_inside && cols_inside) {
                for (int64_t p = 0; p < kc; ++p, d += NR) {
                    const float *q = src + taps[p].offset;
                    _mm_prefetch(reinterpret_cast<const char *>(q + kPrefetchAhead), _MM_HINT_T0);
                    _mm256_store_ps(d, _mm256_loadu_ps(q));
                    _mm256_store_ps(d + 8, _mm256_loadu_ps(q + 8));
                }
                continue;
            }
            if (s.kw <= 16) {
                // Lane i reads input column ix0 + dx + i: a load mask per dx (masked lanes are not read).
                __m256i mask[16][2];
                for (int64_t dx = 0; dx < s.kw; ++dx)
                    for (int half = 0; half < 2; ++half) {
                        alignas(32) int32_t m[8];
                        for (int i = 0; i < 8; ++i) {
                            const int64_t ix = run.ix0 + dx + half * 8 + i;
                            m[i] = ix >= 0 && ix < s.w ? -1 : 0;
                        }
                        mask[dx][half] = _mm256_load_si256(reinterpret_cast<const __m256i *>(m));
                    }
                const __m256 zero = _mm256_setzero_ps();
                for (int64_t p = 0; p < kc; ++p, d += NR) {
                    const int64_t iy = run.iy0 + taps[p].dy;
                    if (iy < 0 || iy >= s.h) {
                        _mm256_store_ps(d, zero);
                        _mm256_store_ps(d + 8, zero);
                        continue;
                    }
                    const float *q = src + taps[p].offset;
                    _mm_prefetch(reinterpret_cast<const char *>(q + kPrefetchAhead), _MM_HINT_T0);
                    _mm256_store_ps(d, _mm256_maskload_ps(q, mask[taps[p].dx][0]));
                    _mm256_store_ps(d + 8, _mm256_maskload_ps(q + 8, mask[taps[p].dx][1]));
                }
                continue;
            }
        }
#endif
        // General case: strided columns, short runs, wide kernels.
        for (int64_t p = 0; p < kc; ++p) {
            float *d = panel + p * NR + run.j;
            const int64_t iy = run.iy0 + taps[p].dy;
            if (iy < 0 || iy >= s.h) { std::fill(d, d + run.len, 0.0f); continue; }
            const float *q = src + taps[p].offset;
            for (int64_t i = 0; i < run.len; ++i) {
                const int64_t ix = run.ix0 + taps[p].dx + i * s.sw;
                d[i] = ix >= 0 && ix < s.w ? q[i * s.sw] : 0.0f;
            }
        }
    }
}

struct ConvTile { int64_t ni, oz, p0, len; };

// Output pixels [p0, p0 + len) of frame (ni, oz), all output channels.
void conv_tile(const ConvShape &s, const ConvPlan &plan, const ConvTile &tile, const float *x, const float *packed_w,
               const float *bias, float *y, float *b_panels, float *c_tile) {
    const int64_t npanels = (tile.len + NR - 1) / NR, ldc = npanels * NR, mp = plan.mp;
    // Time offsets whose input frame exists; the other taps read zero padding and are skipped.
    const int64_t iz0 = tile.oz * s.st - s.pt;
    const int64_t dt_lo = std::max<int64_t>(0, -iz0), dt_hi = std::min(s.kt, s.t - iz0);
    // Each panel's runs (at most 16 of them, one per output row it touches).
    std::vector<Run> runs;
    std::vector<int> run_start(size_t(npanels + 1));
    for (int64_t jp = 0; jp < npanels; ++jp) {
        run_start[size_t(jp)] = int(runs.size());
        for (int64_t q = tile.p0 + jp * NR, end = std::min(tile.p0 + tile.len, q + NR); q < end;) {
            const int64_t oy = q / s.wo, ox = q % s.wo, len = std::min(s.wo - ox, end - q);
            const int64_t iy0 = oy * s.sh - s.ph, ix0 = ox * s.sw - s.pw;
            runs.push_back(Run{((tile.ni * s.cin * s.t) + iz0) * s.h * s.w + iy0 * s.w + ix0, iy0, ix0, q - (tile.p0 + jp * NR), len});
            q += len;
        }
    }
    run_start[size_t(npanels)] = int(runs.size());

    bool first = true;
    for (const KBlock &b : plan.blocks) {
        if (b.dt < dt_lo || b.dt >= dt_hi) continue;
        TileEpilogue e;
        e.load = first ? TileLoad::Overwrite : TileLoad::Accumulate;
        for (int64_t ic = 0; ic < mp; ic += kConvMC) {
            const int64_t mc = std::min(kConvMC, mp - ic);
            for (int64_t jp = 0; jp < npanels; ++jp) {
                float *bp = b_panels + jp * NR * b.kc;
                if (ic == 0)
                    pack_b_panel(s, plan, b, x, runs.data() + run_start[size_t(jp)],
                                 run_start[size_t(jp) + 1] - run_start[size_t(jp)], bp);
                for (int64_t ir = ic; ir < ic + mc; ir += MR)
                    gemm_micro_kernel(b.kc, packed_w + b.a_offset + ir * b.kc, bp, c_tile + ir * ldc + jp * NR, ldc, e);
            }
        }
        first = false;
    }
    // Out: C + bias into the NCTHW output (rows of one channel are frames * pixels apart).
    const int64_t P = s.pixels();
    for (int64_t co = 0; co < s.cout; ++co) {
        float *out = y + ((tile.ni * s.cout + co) * s.to + tile.oz) * P + tile.p0;
        const float bv = bias ? bias[co] : 0.0f;
        if (first) { std::fill(out, out + tile.len, bv); continue; }
        const float *c = c_tile + co * ldc;
        int64_t j = 0;
#if SGLD_HAVE_AVX2
        const __m256 vb = _mm256_set1_ps(bv);
        for (; j + 8 <= tile.len; j += 8) _mm256_storeu_ps(out + j, _mm256_add_ps(_mm256_load_ps(c + j), vb));
#endif
        for (; j < tile.len; ++j) out[j] = c[j] + bv;
    }
}

}  // namespace

bool conv3d_implicit_gemm(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight,
                          const float *bias, float *y) {
    const ConvPlan plan = make_plan(s);
    float *packed_w = tls_packed_weight.get(size_t(std::max<int64_t>(plan.a_floats, 1)));
    if (!packed_w) return false;
    if (!plan.blocks.empty() && !pack_weight(ctx, s, plan, weight, packed_w)) return false;

    // Tiles: runs of up to kConvTilePanels panels inside one output frame, enough of them to keep every
    // thread busy (handed out one at a time).
    const int threads = ctx->pool.size();
    const int64_t P = s.pixels(), frames = s.n * s.to, panels_per_frame = (P + NR - 1) / NR;
    int64_t tile_panels = std::min(kConvTilePanels, panels_per_frame);
    while (threads > 1 && tile_panels > kConvMinTilePanels &&
           frames * ((panels_per_frame + tile_panels - 1) / tile_panels) < 4 * threads)
        tile_panels = std::max(kConvMinTilePanels, tile_panels / 2);
    const int64_t tiles_per_frame = (panels_per_frame + tile_panels - 1) / tile_panels;
    tile_panels = (panels_per_frame + tiles_per_frame - 1) / tiles_per_frame;
    const int64_t tile_px = tile_panels * NR, tiles = frames * tiles_per_frame;
    const int64_t kc_max = plan.blocks.empty() ? 0 : std::max_element(plan.blocks.begin(), plan.blocks.end(),
        [](const KBlock &a, const KBlock &b) { return a.kc < b.kc; })->kc;

    std::atomic<bool> ok{true};
    ctx->pool.run(tiles, [&](int64_t ti) {
        const int64_t f = ti / tiles_per_frame, p0 = ti % tiles_per_frame * tile_px;
        const ConvTile tile{f / s.to, f % s.to, p0, std::min(tile_px, P - p0)};
        float *b_panels = tls_b_panels.get(size_t(std::max<int64_t>(1, kc_max * tile_px)));
        float *c_tile = tls_c_tile.get(size_t(plan.mp * tile_px));
        if (!b_panels || !c_tile) { ok.store(false); return; }
        try {
            conv_tile(s, plan, tile, x, packed_w, bias, y, b_panels, c_tile);
        } catch (const std::bad_alloc &) { ok.store(false); }
    });
    return ok.load();
}

}  // namespace sgld
