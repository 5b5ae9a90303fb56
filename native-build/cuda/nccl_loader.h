// The part of NCCL that sgld uses, declared here because no nccl.h exists on the build machines, and loaded
// with dlopen at run time (libnccl.so.2 usually lives only in Python's nvidia-nccl wheel). Types and values
// follow NVIDIA's public nccl.h; NCCL 2.x keeps them stable.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include <cuda_runtime.h>

namespace sgld {
namespace nccl {

using Result = int;  // ncclResult_t
constexpr Result kSuccess = 0;
constexpr Result kUnhandledCudaError = 1;
constexpr Result kInvalidArgument = 4;
constexpr Result kInvalidUsage = 5;

// ncclDataType_t: sgld moves bytes, so only ncclUint8 is needed.
constexpr int kUint8 = 1;

constexpr size_t kUniqueIdBytes = 128;          // NCCL_UNIQUE_ID_BYTES
struct UniqueId { char internal[kUniqueIdBytes]; };  // ncclUniqueId, passed BY VALUE to ncclCommInitRank
static_assert(sizeof(UniqueId) == 128, "ncclUniqueId is 128 bytes");

using Comm = void *;  // ncclComm_t

struct Api {
    Result (*GetVersion)(int *version);
    Result (*GetUniqueId)(UniqueId *id);
    Result (*CommInitRank)(Comm *comm, int nranks, UniqueId id, int rank);
    Result (*CommDestroy)(Comm comm);
    Result (*CommAbort)(Comm comm);
    const char *(*GetErrorString)(Result result);
    const char *(*GetLastError)(Comm comm);  // NCCL >= 2.13; nullptr on older libraries
    Result (*GroupStart)();
    Result (*GroupEnd)();
    Result (*Send)(const void *buf, size_t count, int datatype, int peer, Comm comm, cudaStream_t stream);
    Result (*Recv)(void *buf, size_t count, int datatype, int peer, Comm comm, cudaStream_t stream);
    Result (*AllGather)(const void *send, void *recv, size_t sendcount, int datatype, Comm comm,
                        cudaStream_t stream);
    Result (*Broadcast)(const void *send, void *recv, size_t count, int datatype, int root, Comm comm,
                        cudaStream_t stream);
    std::string path;  // the library that was opened
};

// The process-wide NCCL, loaded on first use: $SGLD_NCCL_LIB (a file) first, then the search of dynlib.h for
// libnccl.so.2 / libnccl.so with the wheel folders nvidia/nccl/lib and nvidia/cu13/lib. Returns nullptr and
// sets *error (naming every place searched, or the missing entry points) on failure; the answer is remembered.
const Api *load(std::string *error);

}  // namespace nccl
}  // namespace sgld
