// The part of cuBLASLt that sgld uses, declared here because no cuBLAS headers exist on the build machines,
// and loaded with dlopen at run time. Values follow NVIDIA's public cublasLt.h / cuBLAS documentation (CUDA 12
// and 13 agree on all of them).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime.h>
#include <library_types.h>  // cudaDataType_t: CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14

namespace sgld {
namespace lt {

using Status = int;  // cublasStatus_t
constexpr Status kSuccess = 0;

// cublasComputeType_t
constexpr int kCompute32F = 68;  // CUBLAS_COMPUTE_32F: fp32 accumulation, no TF32 down-conversion

// cublasOperation_t
constexpr int32_t kOpN = 0;
constexpr int32_t kOpT = 1;

// cublasLtMatmulDescAttributes_t
constexpr int kDescTransA = 3;
constexpr int kDescTransB = 4;
constexpr int kDescEpilogue = 7;    // uint32_t cublasLtEpilogue_t
constexpr int kDescBiasPointer = 8; // const void *; bias type defaults to D's type (not fp8 here)

// cublasLtEpilogue_t. The bias is a vector over the rows of D, added before the activation; GELU is the
// tanh approximation.
constexpr uint32_t kEpilogueDefault = 1;
constexpr uint32_t kEpilogueRelu = 2;
constexpr uint32_t kEpilogueBias = 4;
constexpr uint32_t kEpilogueReluBias = 6;
constexpr uint32_t kEpilogueGelu = 32;
constexpr uint32_t kEpilogueGeluBias = 36;

// cublasLtMatrixLayoutAttribute_t
constexpr int kLayoutBatchCount = 5;          // int32_t
constexpr int kLayoutStridedBatchOffset = 6;  // int64_t, elements

// cublasLtMatmulPreferenceAttributes_t
constexpr int kPrefMaxWorkspaceBytes = 1;  // uint64_t
constexpr int kPrefMinAlignmentA = 5;      // uint32_t bytes, default 256
constexpr int kPrefMinAlignmentB = 6;
constexpr int kPrefMinAlignmentC = 7;
constexpr int kPrefMinAlignmentD = 8;

using Handle = void *;            // cublasLtHandle_t
using MatmulDesc = void *;        // cublasLtMatmulDesc_t
using MatrixLayout = void *;      // cublasLtMatrixLayout_t
using MatmulPreference = void *;  // cublasLtMatmulPreference_t

struct MatmulAlgo { uint64_t data[8]; };  // cublasLtMatmulAlgo_t
struct HeuristicResult {                  // cublasLtMatmulHeuristicResult_t
    MatmulAlgo algo;
    size_t workspaceSize;
    Status state;
    float wavesCount;
    int reserved[4];
};
static_assert(sizeof(HeuristicResult) == 96, "cublasLtMatmulHeuristicResult_t is 96 bytes");

struct Api {
    size_t (*GetVersion)();
    Status (*Create)(Handle *);
    Status (*Destroy)(Handle);
    Status (*MatmulDescCreate)(MatmulDesc *, int computeType, cudaDataType_t scaleType);
    Status (*MatmulDescDestroy)(MatmulDesc);
    Status (*MatmulDescSetAttribute)(MatmulDesc, int attr, const void *buf, size_t size);
    Status (*MatrixLayoutCreate)(MatrixLayout *, cudaDataType_t type, uint64_t rows, uint64_t cols, int64_t ld);
    Status (*MatrixLayoutDestroy)(MatrixLayout);
    Status (*MatrixLayoutSetAttribute)(MatrixLayout, int attr, const void *buf, size_t size);
    Status (*MatmulPreferenceCreate)(MatmulPreference *);
    Status (*MatmulPreferenceDestroy)(MatmulPreference);
    Status (*MatmulPreferenceSetAttribute)(MatmulPreference, int attr, const void *buf, size_t size);
    Status (*MatmulAlgoGetHeuristic)(Handle, MatmulDesc, MatrixLayout a, MatrixLayout b, MatrixLayout c,
                                     MatrixLayout d, MatmulPreference, int requested, HeuristicResult *results,
                                     int *returned);
    Status (*Matmul)(Handle, MatmulDesc, const void *alpha, const void *a, MatrixLayout, const void *b,
                     MatrixLayout, const void *beta, const void *c, MatrixLayout, void *d, MatrixLayout,
                     const MatmulAlgo *algo, void *workspace, size_t workspaceSize, cudaStream_t stream);
    std::string path;  // the library that was opened
};

// The process-wide cuBLASLt, loaded on first use. Returns nullptr and sets *error (which names every place
// searched) when it cannot be found or lacks a symbol; the answer is remembered.
const Api *load(std::string *error);

}  // namespace lt
}  // namespace sgld
