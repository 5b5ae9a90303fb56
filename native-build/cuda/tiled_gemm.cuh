// A plain shared-memory tiled GEMM with fp32 accumulation, parameterised by how operands are read and how
// results are written: sgld_gemm uses it for fp32 (and whenever cuBLASLt has no algorithm), the convolutions use
// it as an implicit GEMM (the B loader gathers im2col columns on the fly). Correct first; not tuned.
#pragma once
#include "common.cuh"

namespace sgld {

constexpr int kTileM = 64, kTileN = 64, kTileK = 16;
constexpr int kTileThreads = 256;  // 16 x 16 threads, each owning a 4 x 4 block of outputs

// C[z](i, j) = sum_p A[z](i, p) * B[z](p, j) for i < M, j < N, p < K, with
//   a(z, i, p), b(z, p, j): the operands as fp32 (called only inside the bounds),
//   epilogue(z, i, j, acc): writes one result.
// Grid: x over N tiles, y over M tiles (looping past gridDim.y), z over the batch (offset by z0).
template <class ALoad, class BLoad, class Epilogue>
__global__ void __launch_bounds__(kTileThreads)
tiled_gemm_kernel(int64_t M, int64_t N, int64_t K, int64_t z0, ALoad a, BLoad b, Epilogue epilogue) {
    // +1 column of padding: the loaders write along k, which would otherwise hit one bank 16 times.
    __shared__ float As[kTileK][kTileM + 1];
    __shared__ float Bs[kTileK][kTileN + 1];
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t z = z0 + blockIdx.z;
    const int64_t n0 = int64_t(blockIdx.x) * kTileN;
    const int64_t tiles_m = (M + kTileM - 1) / kTileM;
    for (int64_t tm = blockIdx.y; tm < tiles_m; tm += gridDim.y) {
        const int64_t m0 = tm * kTileM;
        float acc[4][4];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
            for (int c = 0; c < 4; ++c) acc[r][c] = 0.0f;

        for (int64_t k0 = 0; k0 < K; k0 += kTileK) {
            // Each thread loads 4 elements of each tile; k varies fastest (coalesced for row-major A and for a
            // B stored n x k, the linear-layer case).
#pragma unroll
            for (int l = 0; l < 4; ++l) {
                const int e = tid + l * kTileThreads;
                const int kk = e % kTileK, row = e / kTileK;
                const int64_t i = m0 + row, p = k0 + kk;
                As[kk][row] = (i < M && p < K) ? a(z, i, p) : 0.0f;
                const int64_t j = n0 + row;
                Bs[kk][row] = (j < N && p < K) ? b(z, p, j) : 0.0f;
            }
            __syncthreads();
#pragma unroll
            for (int kk = 0; kk < kTileK; ++kk) {
                float av[4], bv[4];
#pragma unroll
                for (int r = 0; r < 4; ++r) av[r] = As[kk][ty + 16 * r];
#pragma unroll
                for (int c = 0; c < 4; ++c) bv[c] = Bs[kk][tx + 16 * c];
#pragma unroll
                for (int r = 0; r < 4; ++r)
#pragma unroll
                    for (int c = 0; c < 4; ++c) acc[r][c] = fmaf(av[r], bv[c], acc[r][c]);
            }
            __syncthreads();
        }
#pragma unroll
        for (int r = 0; r < 4; ++r) {
            const int64_t i = m0 + ty + 16 * r;
            if (i >= M) continue;
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                const int64_t j = n0 + tx + 16 * c;
                if (j < N) epilogue(z, i, j, acc[r][c]);
            }
        }
    }
}

// Enqueues tiled_gemm_kernel over `batch` problems on `stream` (the caller checks the launch).
template <class ALoad, class BLoad, class Epilogue>
void launch_tiled_gemm(cudaStream_t stream, int64_t M, int64_t N, int64_t K, int64_t batch, const ALoad &a,
                       const BLoad &b, const Epilogue &epilogue) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    const int64_t tiles_m = (M + kTileM - 1) / kTileM, tiles_n = (N + kTileN - 1) / kTileN;
    const unsigned gy = unsigned(tiles_m < 65535 ? tiles_m : 65535);
    for (int64_t z0 = 0; z0 < batch; z0 += 65535) {
        const unsigned gz = unsigned(batch - z0 < 65535 ? batch - z0 : 65535);
        tiled_gemm_kernel<<<dim3(unsigned(tiles_n), gy, gz), kTileThreads, 0, stream>>>(M, N, K, z0, a, b, epilogue);
    }
}

}  // namespace sgld
