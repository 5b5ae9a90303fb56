// Winograd convolution F(4x4, 3x3) (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural Networks") for
// stride-1 3x3 spatial kernels with any temporal kernel: per time offset dt a 2-D Winograd convolution, summed
// over dt and the input channels in the transformed domain. A 4x4 output tile costs 36 multiply-adds per
// (input, output) channel pair instead of 144: the 36 products are 36 independent GEMMs
//   M[p][cout, tiles] = U[p][cout, (dt, ci)] . V[p][(dt, ci), tiles],  p = one of the 6x6 transform points,
// run with the GEMM micro-kernel. Design notes and measurements: docs/cpu-backend.md, "Convolution".
//
// Structure of a call:
// - U = G g G^T for every (cout, ci, dt) filter, once per call, stored as the micro-kernel's A panels per
//   (input channel block, 6 output channels, point) with the time offsets of each point consecutive; time
//   offsets no output frame reads outside the causal padding are not transformed (Wan's first chunk: 1 of 3).
// - Tasks are blocks of up to kWinoTiles tiles of one or more output frames (and a share of the output channels
//   when tiles are few). Per input channel block a task transforms every input frame it reads once (V = B^T d B,
//   written straight into 16-tile B panels per point, consecutive frames contiguous), then per point runs the
//   GEMMs of all its frames: an output frame's time offsets are consecutive input frames, so they make one
//   micro-kernel pass over n_dt * kc steps (taps in the time padding have no input frame and cost nothing).
//   At the end Y = A^T M A + bias into the output. Scratch per thread: at most kWinoTaskBytes of V and M,
//   whatever the frame size.
//
// Transform points 0, 1, -1, 1/2, -2 and infinity rather than Lavin's 0, +-1, +-2: in float32 they halve the
// transform's rounding error (measured on 384-channel 3x3x3 convs against float64: max error 1.4e-5 of the
// output's RMS against 3.2e-5; the direct sum's is 1.5e-6). The matrices follow from the points by the
// Toom-Cook construction: A^T[i][j] = a_j^i, G[j][k] = a_j^k / prod_{l != j}(a_j - a_l), B^T solving
// A^T ((G g) * (B^T d)) = the correlation of d and g.
#include "conv_shape.h"
#include "gemm_kernel.h"
#include "gemm_simd.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

namespace sgld {
namespace {

constexpr int64_t kTileOut = 4;  // output tile edge (m)
constexpr int64_t kTileIn = 6;   // input tile edge (m + 3 - 1)
constexpr int64_t kPoints = kTileIn * kTileIn;
constexpr int64_t MR = kGemmMR, NR = kGemmNR;
// Input channels per block and tiles per task. Per point, a task's V (all its input frames) stays in L2 while the
// A panels of U stream past once for all its frames and tiles: 2 x tiles x frames FLOPs per U float (U of 384
// channels is 64 MiB and comes from memory). 32 tiles measured ~15% slower, 128 no faster.
#ifndef SGLD_WINO_KC
#define SGLD_WINO_KC 128
#endif
#ifndef SGLD_WINO_TILES
#define SGLD_WINO_TILES 64
#endif
#ifndef SGLD_WINO_TASK_MB
#define SGLD_WINO_TASK_MB 12
#endif
constexpr int64_t kWinoKC = SGLD_WINO_KC;
// Output frames per task: each input frame's transform serves every output frame of the task that reads it,
// while the task's V (36 x kc x tiles per input frame) and M (36 x c_out x tiles per output frame) stay within
// kWinoTaskBytes (L3, beside the other thread's; 4 MiB measured 10-20% slower on 192 and 384 channels).
constexpr int64_t kMaxTaskFrames = 8;
constexpr int64_t kWinoTaskBytes = int64_t(SGLD_WINO_TASK_MB) << 20;
constexpr int64_t kWinoTiles = SGLD_WINO_TILES;
constexpr int64_t kLanes = 8;  // tiles per transform vector
// Outputs at least this large are written with non-temporal stores: they leave the caches anyway, and plain
// stores would first read every line from memory.
constexpr int64_t kStreamOutputBytes = int64_t(16) << 20;

// Eight floats (GCC/Clang vector extension: AVX registers when built for them, plain code otherwise). Every
// function taking or returning one is internal, so the ABI note GCC gives for builds without AVX does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float F8 __attribute__((vector_size(32)));
// The same vector at any float address, for loads and stores: one unaligned vector move each. (Through memcpy
// GCC spilled the transforms' results to the stack and copied them out in 16-byte halves, which made the input
// transform a third slower.)
typedef float F8Unaligned __attribute__((vector_size(32), aligned(4), may_alias));
inline F8 load8(const float *p) { return *reinterpret_cast<const F8Unaligned *>(p); }
inline void store8(float *p, const F8 &v) { *reinterpret_cast<F8Unaligned *>(p) = v; }

// ---- the transforms (one dimension; the 2-D ones apply them to rows, then columns) ----------------------------
// B^T d for the input: rows of B^T are [1,-3/2,-2,3/2,1,0] [0,-1,1/2,5/2,1,0] [0,1,-5/2,1/2,1,0]
// [0,-2,-1,2,1,0] [0,1/2,-1,-1/2,1,0] [0,1,-3/2,-2,3/2,1].
template <class T>
inline void input_1d(const T d[6], T o[6]) {
    const T s = d[4] - d[2], q = d[3] - d[1];
    o[0] = d[0] + (s - d[2]) + q * 1.5f;
    o[1] = d[4] - d[1] + d[2] * 0.5f + d[3] * 2.5f;
    o[2] = d[4] + d[1] - d[2] * 2.5f + d[3] * 0.5f;
    o[3] = s + q * 2.0f;
    o[4] = s - q * 0.5f;
    o[5] = d[5] + d[1] - d[2] * 1.5f - d[3] * 2.0f + d[4] * 1.5f;
}

// G g for the weight: rows of G are [1,0,0] [1/3,1/3,1/3] [-1/3,1/3,-1/3] [-16/15,-8/15,-4/15]
// [1/15,-2/15,4/15] [0,0,1].
template <class T>
inline void weight_1d(const T &g0, const T &g1, const T &g2, T o[6]) {
    o[0] = g0;
    o[1] = (g0 + g1 + g2) * (1.0f / 3.0f);
    o[2] = (g1 - g0 - g2) * (1.0f / 3.0f);
    o[3] = (g0 * 16.0f + g1 * 8.0f + g2 * 4.0f) * (-1.0f / 15.0f);
    o[4] = (g0 - g1 * 2.0f + g2 * 4.0f) * (1.0f / 15.0f);
    o[5] = g2;
}

// A^T m for the output: rows of A^T are [1,1,1,1,1,0] [0,1,-1,1/2,-2,0] [0,1,1,1/4,4,0] [0,1,-1,1/8,-8,1].
template <class T>
inline void output_1d(const T m[6], T o[4]) {
    const T sum = m[1] + m[2], diff = m[1] - m[2];
    o[0] = m[0] + sum + m[3] + m[4];
    o[1] = diff + m[3] * 0.5f - m[4] * 2.0f;
    o[2] = sum + m[3] * 0.25f + m[4] * 4.0f;
    o[3] = diff + m[3] * 0.125f - m[4] * 8.0f + m[5];
}

// ---- eight tiles side by side ----------------------------------------------------------------------------------
// Eight horizontally adjacent tiles start 4 columns apart. A vector lane holds one tile, in the order kLaneTile
// (the order the AVX2 shuffles below produce; the output side undoes it the same way).
constexpr int kLaneTile[kLanes] = {0, 2, 4, 6, 1, 3, 5, 7};

// e[c] lane l = row[4 * kLaneTile[l] + c] for c < 6: the six input columns of each tile (reads row[0, 36)).
inline void tile_columns(const float *row, F8 e[6]) {
#if SGLD_HAVE_AVX2
    // A stride-4 de-interleave: 4-float groups are transposed by unpack + shuffle; columns 4 and 5 are
    // columns 0 and 1 of the group 4 floats further on.
    for (int half = 0; half < 2; ++half) {
        const float *p = row + 4 * half;
        const __m256 a = _mm256_loadu_ps(p), b = _mm256_loadu_ps(p + 8);
        const __m256 c = _mm256_loadu_ps(p + 16), d = _mm256_loadu_ps(p + 24);
        const __m256 ab_lo = _mm256_unpacklo_ps(a, b), cd_lo = _mm256_unpacklo_ps(c, d);
        e[4 * half + 0] = _mm256_shuffle_ps(ab_lo, cd_lo, 0x44);
        e[4 * half + 1] = _mm256_shuffle_ps(ab_lo, cd_lo, 0xEE);
        if (half == 0) {
            const __m256 ab_hi = _mm256_unpackhi_ps(a, b), cd_hi = _mm256_unpackhi_ps(c, d);
            e[2] = _mm256_shuffle_ps(ab_hi, cd_hi, 0x44);
            e[3] = _mm256_shuffle_ps(ab_hi, cd_hi, 0xEE);
        }
    }
#else
    for (int c = 0; c < 6; ++c)
        for (int l = 0; l < kLanes; ++l) e[c][l] = row[4 * kLaneTile[l] + c];
#endif
}

// The inverse for four output columns: out[4 * t + c] = o[c] lane of tile t, t < 8 (32 floats). `stream`: out is
// 32-byte aligned and written with non-temporal stores (a large output that will not stay in cache: no read of
// the lines before they are written).
inline void tile_rows_out(const F8 o[4], float *out, bool stream) {
#if SGLD_HAVE_AVX2
    const __m256 lo01 = _mm256_unpacklo_ps(o[0], o[1]), lo23 = _mm256_unpacklo_ps(o[2], o[3]);
    const __m256 hi01 = _mm256_unpackhi_ps(o[0], o[1]), hi23 = _mm256_unpackhi_ps(o[2], o[3]);
    const __m256 r0 = _mm256_shuffle_ps(lo01, lo23, 0x44), r1 = _mm256_shuffle_ps(lo01, lo23, 0xEE);
    const __m256 r2 = _mm256_shuffle_ps(hi01, hi23, 0x44), r3 = _mm256_shuffle_ps(hi01, hi23, 0xEE);
    if (stream) {
        _mm256_stream_ps(out, r0);
        _mm256_stream_ps(out + 8, r1);
        _mm256_stream_ps(out + 16, r2);
        _mm256_stream_ps(out + 24, r3);
        return;
    }
    _mm256_storeu_ps(out, r0);
    _mm256_storeu_ps(out + 8, r1);
    _mm256_storeu_ps(out + 16, r2);
    _mm256_storeu_ps(out + 24, r3);
#else
    (void)stream;
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < kLanes; ++l) out[4 * kLaneTile[l] + c] = o[c][l];
#endif
}

// Eight floats of one input row from column ix on, zero where the column is outside [0, w) (those are not read).
inline F8 load_row_masked(const float *row, int64_t ix, int64_t w) {
#if SGLD_HAVE_AVX2
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i col = _mm256_add_epi32(_mm256_set1_epi32(int32_t(ix)), lane);
    const __m256i inside = _mm256_andnot_si256(_mm256_cmpgt_epi32(_mm256_setzero_si256(), col),
                                               _mm256_cmpgt_epi32(_mm256_set1_epi32(int32_t(w)), col));
    return _mm256_maskload_ps(row + ix, inside);
#else
    F8 v = {};
    for (int l = 0; l < kLanes; ++l)
        if (ix + l >= 0 && ix + l < w) v[l] = row[ix + l];
    return v;
#endif
}

// The 36 points of a tile are written (input transform) and read (output transform) together: their arrays
// start an odd number of cache lines apart so they do not all fall into one cache set (with 4 KiB multiples
// as strides, 36 streams fought over the 8 ways of one L1 set; the transforms took twice as long).
int64_t point_stride(int64_t floats) {
    const int64_t lines = (floats + 15) / 16;
    return (lines | 1) * 16;
}

// ---- plan -------------------------------------------------------------------------------------------------------
struct WinoBlock {
    int64_t c0, kc;    // input channels [c0, c0 + kc)
    int64_t u_offset;  // its transformed weights (transform_weights)
};

struct WinoPlan {
    int64_t th = 0, tw = 0, tw8 = 0;  // tile rows, tiles per row, tiles per row rounded up to whole vectors
    int64_t mp = 0, kc_max = 0, u_floats = 0;
    std::vector<WinoBlock> blocks;    // input channel blocks
    int64_t tiles_per_frame() const { return th * tw8; }
};

// Floats from one point's A panels to the next (the kt time offsets of kc channels each, see transform_weights).
int64_t a_stride(const ConvShape &s, int64_t kc) { return point_stride(MR * s.kt * kc); }

WinoPlan make_plan(const ConvShape &s) {
    WinoPlan plan;
    plan.th = (s.ho + kTileOut - 1) / kTileOut;
    plan.tw = (s.wo + kTileOut - 1) / kTileOut;
    plan.tw8 = round_up(plan.tw, kLanes);
    plan.mp = round_up(s.cout, MR);
    const int64_t count = (s.cin + kWinoKC - 1) / kWinoKC;  // balanced: 384 channels are 3 x 128, 200 are 2 x 100
    plan.kc_max = (s.cin + count - 1) / count;
    for (int64_t c0 = 0; c0 < s.cin; c0 += plan.kc_max) {
        const int64_t kc = std::min(plan.kc_max, s.cin - c0);
        plan.blocks.push_back(WinoBlock{c0, kc, plan.u_floats});
        plan.u_floats += (plan.mp / MR) * kPoints * a_stride(s, kc);
    }
    return plan;
}

// ---- weight transform -------------------------------------------------------------------------------------------
// The nine taps of up to six filters as vectors, lane r = filter r (lanes 6 and 7 zero).
inline void gather_filters(const float *const src[MR], int64_t rows, F8 g[9]) {
#if SGLD_HAVE_AVX2
    if (rows == MR) {
        // Taps 0-7 by an 8x8 transpose of the filters' first eight floats (tap 8 follows, so the loads stay
        // inside the weight); tap 8 lane by lane.
        __m256 r[8];
        for (int i = 0; i < MR; ++i) r[i] = _mm256_loadu_ps(src[i]);
        r[6] = r[7] = _mm256_setzero_ps();
        const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
        const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
        const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
        const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
        const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
        const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
        g[0] = _mm256_permute2f128_ps(s0, s4, 0x20); g[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
        g[2] = _mm256_permute2f128_ps(s2, s6, 0x20); g[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
        g[4] = _mm256_permute2f128_ps(s0, s4, 0x31); g[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
        g[6] = _mm256_permute2f128_ps(s2, s6, 0x31); g[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
        g[8] = _mm256_setr_ps(src[0][8], src[1][8], src[2][8], src[3][8], src[4][8], src[5][8], 0.0f, 0.0f);
        return;
    }
#endif
    for (int tap = 0; tap < 9; ++tap) {
        F8 v = {};
        for (int64_t r = 0; r < rows; ++r) v[r] = src[r][tap];
        g[tap] = v;
    }
}

// U = G g G^T for output channels [6 * panel, 6 * panel + 6) and the input channels of block b, every used time
// offset (used[dt]), one vector lane per output channel. Lanes of missing channels (c_out not a multiple of 6)
// are zero, as the micro-kernel's A padding must be. The weight is read once, in order: per input channel the
// kt x 9 taps of each filter are contiguous.
// Layout: u[b.u_offset + (panel * 36 + p) * as + (dt * kc + k) * 6 + r], as = a_stride(kc): the time offsets of
// one point follow each other, so the taps of consecutive input frames are one contiguous A panel of
// n_dt * kc steps. A panel group's writes stay inside 36 x 6 x kt x kc floats and the 36 point streams do not
// share a cache set. Each step is written with 8-float stores whose last two lanes the next step overwrites (the
// last step of a time offset writes its 6 lanes only).
void transform_weights(const ConvShape &s, const WinoPlan &plan, const WinoBlock &b, int64_t panel,
                       const char *used, const float *weight, float *u) {
    const int64_t K = s.k(), rows = std::min(MR, s.cout - panel * MR), as = a_stride(s, b.kc);
    float *group = u + b.u_offset + panel * kPoints * as;
    for (int64_t k = 0; k < b.kc; ++k) {
        const bool last = k + 1 == b.kc;
        for (int64_t dt = 0; dt < s.kt; ++dt) {
            if (!used[dt]) continue;
            const float *src[MR];
            for (int64_t r = 0; r < MR; ++r)
                src[r] = weight + (panel * MR + std::min(r, rows - 1)) * K + ((b.c0 + k) * s.kt + dt) * 9;
            F8 g[9];
            gather_filters(src, rows, g);
            F8 cols[3][6];  // G applied down each kernel column dx
            for (int dx = 0; dx < 3; ++dx) weight_1d(g[dx], g[3 + dx], g[6 + dx], cols[dx]);
            float *dst = group + (dt * b.kc + k) * MR;
            for (int a = 0; a < 6; ++a) {
                F8 row[6];
                weight_1d(cols[0][a], cols[1][a], cols[2][a], row);
                for (int c = 0; c < 6; ++c) {
                    float *d = dst + (a * 6 + c) * as;
                    if (!last) {
                        store8(d, row[c]);
                    } else {
                        alignas(32) float lanes[kLanes];
                        store8(lanes, row[c]);
                        std::memcpy(d, lanes, MR * sizeof(float));
                    }
                }
            }
        }
    }
}

// ---- input transform --------------------------------------------------------------------------------------------
// The tiles of one task: `count` (a multiple of 8) consecutive tiles of tile row ty from column tx0 on.
// rows[i][q] = (B^T d) along y for input rows iy0..iy0+5 and columns ix0 + q, q < width (zero outside).
// `next` (may be null) is the plane the next call will read: its rows are prefetched along the way (six rows per
// channel, each a separate stream the hardware prefetcher does not follow across channels).
void vertical_transform(const ConvShape &s, const float *plane, const float *next, int64_t iy0, int64_t ix0,
                        int64_t width, float *rows) {
    const float *src[6];
    for (int j = 0; j < 6; ++j) {
        const int64_t iy = iy0 + j;
        src[j] = iy >= 0 && iy < s.h ? plane + iy * s.w : nullptr;
    }
    const F8 zero = {};
    for (int64_t q = 0; q < width; q += kLanes) {
        const int64_t ix = ix0 + q;
        if (next && q % 16 == 0 && ix >= 0 && ix < s.w)  // one line of each row ahead
            for (int j = 0; j < 6; ++j)
                if (src[j]) __builtin_prefetch(next + (src[j] - plane) + ix);
        const bool inside = ix >= 0 && ix + kLanes <= s.w;
        F8 d[6], o[6];
        for (int j = 0; j < 6; ++j)
            d[j] = !src[j] ? zero : inside ? load8(src[j] + ix) : load_row_masked(src[j], ix, s.w);
        input_1d(d, o);
        for (int i = 0; i < 6; ++i) store8(rows + i * width + q, o[i]);
    }
}

// The time offsets [lo, hi) of output frame oz whose input frame exists; the others fall in the zero padding.
struct TapRange {
    int64_t lo, hi;
    bool empty() const { return hi <= lo; }
};
inline TapRange taps_inside(const ConvShape &s, int64_t oz) {
    const int64_t iz0 = oz * s.st - s.pt;
    return {std::max<int64_t>(0, -iz0), std::min(s.kt, s.t - iz0)};
}

struct Task {
    int64_t ni, z0, nz;  // output frames [z0, z0 + nz) of sample ni
    int64_t t0, nt;      // tiles [t0, t0 + nt) of a frame's raster (tw8 per row), nt a multiple of 8
    int64_t co0, co1;    // output channels [co0, co1), co0 a multiple of 6
    int64_t iz_lo, iz_hi;  // the input frames they read
    int64_t panels() const { return (nt + NR - 1) / NR; }
};

// V of the task's tiles for input frame iz (slot iz - task.iz_lo) and input channels [c0, c0 + kc):
// v[p * vs + ((jp * n_in + slot) * kc + k) * 16 + lane], vs = point_stride(panels * n_in * kc * 16): per point
// and 16-tile panel the input frames follow each other, so consecutive frames are one contiguous B panel.
void transform_input(const ConvShape &s, const WinoPlan &plan, int64_t c0, int64_t kc, int64_t iz, const Task &task,
                     const float *x, float *v, float *rows) {
    const int64_t n_in = task.iz_hi - task.iz_lo, slot = iz - task.iz_lo;
    const int64_t vs = point_stride(task.panels() * n_in * kc * NR);
    for (int64_t k = 0; k < kc; ++k) {
        const float *plane = x + ((task.ni * s.cin + c0 + k) * s.t + iz) * s.h * s.w;
        const float *next = k + 1 < kc ? plane + s.t * s.h * s.w : nullptr;
        // The task's tiles as runs inside one tile row: one vertical pass per run, then 8 tiles at a time.
        for (int64_t j = 0; j < task.nt;) {
            const int64_t tile = task.t0 + j, ty = tile / plan.tw8, tx0 = tile % plan.tw8;
            const int64_t count = std::min(plan.tw8 - tx0, task.nt - j), width = 4 * count + kLanes;
            vertical_transform(s, plane, next, ty * kTileOut - s.ph, tx0 * kTileOut - s.pw, width, rows);
            for (int64_t g = 0; g < count; g += kLanes) {
                const int64_t jj = j + g;  // task-relative tile of lane group g
                float *dst = v + (((jj / NR) * n_in + slot) * kc + k) * NR + jj % NR;
                for (int i = 0; i < 6; ++i) {
                    F8 e[6], o[6];
                    tile_columns(rows + i * width + 4 * g, e);
                    input_1d(e, o);
                    for (int c = 0; c < 6; ++c) store8(dst + (i * 6 + c) * vs, o[c]);
                }
            }
            j += count;
        }
    }
}

// ---- output transform -------------------------------------------------------------------------------------------
// Y = A^T M A + bias for the task's tiles and output channels in output frame oz; m[p * ms + (co - co0) * ldm + tile].
void transform_output(const ConvShape &s, const WinoPlan &plan, const Task &task, int64_t oz, const float *m,
                      int64_t ms, int64_t ldm, const float *bias, float *y) {
    const int64_t P = s.pixels();
    const bool stream = s.n * s.cout * s.to * P * int64_t(sizeof(float)) >= kStreamOutputBytes;
    for (int64_t co = task.co0; co < std::min(task.co1, s.cout); ++co) {
        float *out = y + ((task.ni * s.cout + co) * s.to + oz) * P;
        const float bv = bias ? bias[co] : 0.0f;
        const float *mc = m + (co - task.co0) * ldm;
        for (int64_t j = 0; j < task.nt; j += kLanes) {
            const int64_t tile = task.t0 + j, ty = tile / plan.tw8, tx0 = tile % plan.tw8;
            if (tx0 >= plan.tw) continue;  // lanes padding the tile row to whole vectors
            F8 cols[6][4];                 // A^T along y, per point column
            for (int c = 0; c < 6; ++c) {
                F8 mv[6];
                for (int r = 0; r < 6; ++r) mv[r] = load8(mc + (r * 6 + c) * ms + j);
                output_1d(mv, cols[c]);
            }
            const int64_t ox0 = tx0 * kTileOut, nx = std::min<int64_t>(kLanes * kTileOut, s.wo - ox0);
            for (int r = 0; r < kTileOut; ++r) {
                const int64_t oy = ty * kTileOut + r;
                if (oy >= s.ho) break;
                const F8 row[6] = {cols[0][r], cols[1][r], cols[2][r], cols[3][r], cols[4][r], cols[5][r]};
                F8 o[4];
                output_1d(row, o);
                for (int c = 0; c < 4; ++c) o[c] += bv;
                float *dst = out + oy * s.wo + ox0;
                if (nx == kLanes * kTileOut) {
                    tile_rows_out(o, dst, stream && reinterpret_cast<uintptr_t>(dst) % 32 == 0);
                } else {
                    alignas(32) float tmp[kLanes * kTileOut];
                    tile_rows_out(o, tmp, false);
                    std::memcpy(dst, tmp, size_t(nx) * sizeof(float));
                }
            }
        }
    }
}

// ---- one task ---------------------------------------------------------------------------------------------------
// Per input channel block: V of every input frame the task reads (each transformed once), then per point the
// GEMMs of every output frame; an output frame's time offsets inside the input are consecutive input frames, so
// they are one micro-kernel pass of n_dt * kc steps (taps in the time padding have no input frame and cost
// nothing). The loop order keeps one point's V (all frames) in L2 while its A panels stream past once for all
// the task's frames and tiles. Every output sums its products in the order (channel block, time offset, input
// channel), whatever the task split.
void winograd_task(const ConvShape &s, const WinoPlan &plan, const Task &task, const float *x, const float *u,
                   const float *bias, float *y, float *v, float *m, float *rows) {
    const int64_t panels = task.panels(), ldm = panels * NR, mrows = task.co1 - task.co0;
    const int64_t ms = point_stride(mrows * ldm), frame_floats = kPoints * ms, n_in = task.iz_hi - task.iz_lo;
    for (size_t bi = 0; bi < plan.blocks.size(); ++bi) {
        const WinoBlock &b = plan.blocks[bi];
        const int64_t kc = b.kc, vs = point_stride(panels * n_in * kc * NR), as = a_stride(s, kc);
        if (task.nt % NR) {
            // The last panel's second half holds no tile: keep its lanes zero for the micro-kernel.
            for (int64_t p = 0; p < kPoints; ++p)
                for (int64_t k = 0; k < n_in * kc; ++k)
                    std::fill_n(v + p * vs + ((panels - 1) * n_in * kc + k) * NR + kLanes, kLanes, 0.0f);
        }
        for (int64_t iz = task.iz_lo; iz < task.iz_hi; ++iz)
            transform_input(s, plan, b.c0, kc, iz, task, x, v, rows);
        TileEpilogue e;
        e.load = bi == 0 ? TileLoad::Overwrite : TileLoad::Accumulate;
        for (int64_t p = 0; p < kPoints; ++p) {
            const float *ap = u + b.u_offset + p * as;
            const float *vp = v + p * vs;
            for (int64_t ir = task.co0; ir < task.co1; ir += MR) {
                const float *a = ap + ir / MR * kPoints * as;
                for (int64_t oz = task.z0; oz < task.z0 + task.nz; ++oz) {
                    // The time offsets whose input frame exists: consecutive input frames from `slot` on.
                    const TapRange taps = taps_inside(s, oz);
                    if (taps.empty()) continue;
                    const int64_t steps = (taps.hi - taps.lo) * kc, slot = oz * s.st - s.pt + taps.lo - task.iz_lo;
                    float *c = m + (oz - task.z0) * frame_floats + p * ms + (ir - task.co0) * ldm;
                    for (int64_t jp = 0; jp < panels; ++jp)
                        gemm_micro_kernel(steps, a + taps.lo * kc * MR, vp + (jp * n_in + slot) * kc * NR, c + jp * NR, ldm, e);
                }
            }
        }
    }
    for (int64_t oz = task.z0; oz < task.z0 + task.nz; ++oz) {
        float *mf = m + (oz - task.z0) * frame_floats;
        if (taps_inside(s, oz).empty()) std::fill_n(mf, frame_floats, 0.0f);  // every tap in the padding: the output is the bias
        transform_output(s, plan, task, oz, mf, ms, ldm, bias, y);
    }
#if SGLD_HAVE_AVX2
    _mm_sfence();  // non-temporal stores are weakly ordered: complete them before the task counts as done
#endif
}

thread_local ScratchBuffer tls_wino_u, tls_wino_v, tls_wino_m, tls_wino_rows;

}  // namespace

bool conv3d_winograd_applies(const ConvShape &s) {
    return s.kh == 3 && s.kw == 3 && s.sh == 1 && s.sw == 1 && s.cin > 0 && s.t > 0 && s.h > 0 && s.w > 0;
}

bool conv3d_winograd(sgld_context_t ctx, const ConvShape &s, const float *x, const float *weight, const float *bias,
                     float *y) {
    const WinoPlan plan = make_plan(s);
    float *u = tls_wino_u.get(size_t(plan.u_floats));
    if (!u) return false;
    // Only the time offsets some output frame reads outside the padding (Wan's first chunk: one of three).
    std::vector<char> used(size_t(s.kt), 0);
    for (int64_t oz = 0; oz < s.to; ++oz)
        for (TapRange taps = taps_inside(s, oz); taps.lo < taps.hi; ++taps.lo) used[size_t(taps.lo)] = 1;
    const int64_t weight_panels = plan.mp / MR;
    ctx->pool.run(int64_t(plan.blocks.size()) * weight_panels, [&](int64_t i) {
        transform_weights(s, plan, plan.blocks[size_t(i / weight_panels)], i % weight_panels, used.data(), weight, u);
    });

    // Tasks: up to kWinoTiles tiles (a multiple of 8) of up to kMaxTaskFrames output frames, as many frames as
    // keep the task's V and M within kWinoTaskBytes. With too few tasks to keep every thread busy the output
    // channels are split first (each part re-transforms the input, but no U is read twice), then the frames.
    const int threads = ctx->pool.size();
    const int64_t per_frame = plan.tiles_per_frame();
    int64_t nt = std::min(kWinoTiles, per_frame);
    {
        const int64_t balanced = (per_frame + nt - 1) / nt;
        nt = round_up((per_frame + balanced - 1) / balanced, kLanes);
    }
    const int64_t tile_blocks = (per_frame + nt - 1) / nt, panels = (nt + NR - 1) / NR;
    // A task's scratch: V of the input frames nz output frames read, M of those frames for mrows output channels.
    const auto v_floats_for = [&](int64_t nz) {
        return kPoints * point_stride(panels * std::min(s.t, (nz - 1) * s.st + s.kt) * plan.kc_max * NR);
    };
    const auto m_floats_for = [&](int64_t nz, int64_t mrows) { return nz * kPoints * point_stride(mrows * panels * NR); };
    int64_t nz = 1;
    while (nz < std::min(kMaxTaskFrames, s.to) &&
           (v_floats_for(nz + 1) + m_floats_for(nz + 1, plan.mp)) * int64_t(sizeof(float)) <= kWinoTaskBytes)
        ++nz;
    int64_t co_parts = 1;
    const auto task_count = [&] { return s.n * ((s.to + nz - 1) / nz) * tile_blocks * co_parts; };
    while (threads > 1 && task_count() < 2 * threads) {
        if (co_parts * MR * 2 <= plan.mp) co_parts *= 2;
        else if (nz > 1) nz = (nz + 1) / 2;
        else break;
    }
    const int64_t frame_groups = (s.to + nz - 1) / nz;
    nz = (s.to + frame_groups - 1) / frame_groups;
    const int64_t co_step = round_up((plan.mp + co_parts - 1) / co_parts, MR);
    const int64_t v_floats = v_floats_for(nz), m_floats = m_floats_for(nz, co_step);

    std::atomic<bool> ok{true};
    ctx->pool.run(s.n * frame_groups * tile_blocks * co_parts, [&](int64_t ti) {
        const int64_t cp = ti % co_parts, tb = ti / co_parts % tile_blocks, rest = ti / co_parts / tile_blocks;
        const int64_t fg = rest % frame_groups, ni = rest / frame_groups;
        Task task;
        task.ni = ni;
        task.z0 = fg * nz;
        task.nz = std::min(nz, s.to - task.z0);
        task.t0 = tb * nt;
        task.nt = std::min(nt, per_frame - task.t0);
        task.co0 = cp * co_step;
        task.co1 = std::min(plan.mp, task.co0 + co_step);
        task.iz_lo = std::max<int64_t>(0, task.z0 * s.st - s.pt);
        task.iz_hi = std::min(s.t, (task.z0 + task.nz - 1) * s.st - s.pt + s.kt);
        if (task.co0 >= task.co1) return;
        float *v = tls_wino_v.get(size_t(v_floats));
        float *m = tls_wino_m.get(size_t(m_floats));
        float *rows = tls_wino_rows.get(size_t(6 * (kTileOut * plan.tw8 + kLanes)));
        if (!v || !m || !rows) { ok.store(false); return; }
        winograd_task(s, plan, task, x, u, bias, y, v, m, rows);
    });
    return ok.load();
}

}  // namespace sgld
