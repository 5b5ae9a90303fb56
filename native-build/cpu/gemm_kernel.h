// The GEMM building blocks: panel packing and the 6x16 register-blocked micro-kernel. sgemm (gemm.cpp) drives
// them over cache blocks; attention (attention.cpp) calls them directly on its tiles.
//
// Packed layouts (all 32-byte aligned, zero-padded so the kernel never sees a partial panel):
//   A panel: MR rows of op(A) interleaved along k:  panel[p * MR + i]   (i < MR, p < kc)
//   B panel: NR columns of op(B) along k:           panel[p * NR + j]   (j < NR, p < kc)
#pragma once
#include "gemm.h"

namespace sgld {

constexpr int64_t kGemmMR = 6;   // rows per micro-tile: 6 x 2 ymm accumulators + 2 B loads + 1 broadcast = 15 of 16 ymm
constexpr int64_t kGemmNR = 16;  // columns per micro-tile: two 8-lane ymm vectors

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

// A 64-byte-aligned float buffer that grows on demand and is kept (one per thread and purpose: pool workers
// live as long as their context, and a forward pass repeats the same sizes). get() returns null when the
// allocation fails. Never the context allocator: these are the op's private workspace.
class ScratchBuffer {
public:
    ScratchBuffer() = default;
    ScratchBuffer(const ScratchBuffer &) = delete;
    ScratchBuffer &operator=(const ScratchBuffer &) = delete;
    ~ScratchBuffer();
    float *get(size_t floats);

private:
    float *data_ = nullptr;
    size_t capacity_ = 0;
};

// Packs op(A)[0:mc, 0:kc] into ceil(mc/MR) A panels, scaled by alpha. `a` addresses op(A)(0, 0): element (i, p)
// is a[i*lda + p], or a[p*lda + i] when trans. Writes up to 2 floats past the last panel (keep slack).
void pack_a_panels(bool trans, int64_t mc, int64_t kc, const float *a, int64_t lda, float alpha, float *dst);

// Packs op(B)[0:kc, 0:nc] into ceil(nc/NR) B panels. `b` addresses op(B)(0, 0): element (p, j) is
// b[p*ldb + j], or b[j*ldb + p] when trans.
void pack_b_panels(bool trans, int64_t kc, int64_t nc, const float *b, int64_t ldb, float *dst);

// What the micro-kernel does with its MR x NR product P before storing into C.
enum class TileLoad { Overwrite, Beta, Accumulate };  // C = P | C = beta*C + P | C += P
struct TileEpilogue {
    TileLoad load = TileLoad::Overwrite;
    float beta = 0.0f;
    const float *bias = nullptr;     // NR values added after the load step (last k block only), may be null
    int32_t activation = SGLD_ACT_NONE;
};

// C[0:MR, 0:NR] (row stride ldc) <- epilogue(A_panel . B_panel) over kc steps. C must hold a full tile: edge
// tiles go through a scratch tile (see gemm.cpp).
void gemm_micro_kernel(int64_t kc, const float *a_panel, const float *b_panel, float *c, int64_t ldc,
                       const TileEpilogue &epilogue);

}  // namespace sgld
