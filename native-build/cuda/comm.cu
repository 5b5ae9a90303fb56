// CUDA backend: the collectives section of sgld.h over NCCL, which is opened with dlopen on first use
// (nccl_loader.cpp). A communicator remembers the device it was made on; transfers run on the stream of the
// context passed with them, which must belong to that device.
#include "common.cuh"

#include <cstring>
#include <string>

#include "nccl_loader.h"

struct sgld_comm {
    sgld::nccl::Comm nccl = nullptr;
    int32_t device = 0;
    int32_t nranks = 0;
    int32_t rank = 0;
};

namespace sgld {

// NCCL's own words for a failure: its error string plus, when the library has it, the last detailed message.
static sgld_status nccl_fail(const nccl::Api *api, nccl::Result r, const char *fn, const char *what) {
    const sgld_status code = (r == nccl::kInvalidArgument || r == nccl::kInvalidUsage) ? SGLD_ERR_INVALID
                                                                                        : SGLD_ERR_LIBRARY;
    const char *text = api->GetErrorString ? api->GetErrorString(r) : nullptr;
    const char *detail = api->GetLastError ? api->GetLastError(nullptr) : nullptr;
    return fail(code, "%s: %s failed: NCCL error %d (%s)%s%s", fn, what, r, text ? text : "no description",
                detail && *detail ? ": " : "", detail && *detail ? detail : "");
}

// The loaded NCCL, or nullptr with *status set to SGLD_ERR_LIBRARY and the search in the message.
static const nccl::Api *load_nccl(const char *fn, sgld_status *status) {
    std::string error;
    const nccl::Api *api = nccl::load(&error);
    if (!api) *status = fail(SGLD_ERR_LIBRARY, "%s: %s", fn, error.c_str());
    return api;
}

// Checks shared by the transfer functions: a live communicator, its device's context, a member as peer/root.
static sgld_status enter_transfer(sgld_comm_t comm, sgld_context_t ctx, const char *fn) {
    if (!comm) return fail(SGLD_ERR_INVALID, "%s: null communicator", fn);
    if (sgld_status s = enter(ctx, fn)) return s;
    if (ctx->device != comm->device)
        return fail(SGLD_ERR_INVALID, "%s: the communicator is on device %d but the context on device %d", fn,
                    comm->device, ctx->device);
    return SGLD_OK;
}

static sgld_status check_member(sgld_comm_t comm, int32_t who, const char *what, const char *fn) {
    if (who < 0 || who >= comm->nranks)
        return fail(SGLD_ERR_INVALID, "%s: %s %d is not a member of a communicator of %d", fn, what, who,
                    comm->nranks);
    return SGLD_OK;
}

}  // namespace sgld

using namespace sgld;

#define SGLD_NCCL_API(api) \
    sgld_status load_status_ = SGLD_OK; \
    const nccl::Api *api = load_nccl(sgld_fn_, &load_status_); \
    if (!api) return load_status_
#define SGLD_NCCL(api, call, what) \
    do { nccl::Result r_ = (call); if (r_ != nccl::kSuccess) return nccl_fail(api, r_, sgld_fn_, what); } while (0)
#define SGLD_CHECK_BUF(p, bytes) \
    do { if (!(p) && (bytes) > 0) return fail(SGLD_ERR_INVALID, "%s: %s is null", sgld_fn_, #p); } while (0)

extern "C" sgld_status sgld_comm_version(int32_t *version) {
    SGLD_API_BEGIN
        SGLD_CHECK_PTR(version);
        *version = 0;
        SGLD_NCCL_API(api);
        int v = 0;
        SGLD_NCCL(api, api->GetVersion(&v), "ncclGetVersion");
        *version = v;
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_unique_id(uint8_t *out) {
    SGLD_API_BEGIN
        SGLD_CHECK_PTR(out);
        SGLD_NCCL_API(api);
        nccl::UniqueId id;
        std::memset(&id, 0, sizeof id);
        SGLD_NCCL(api, api->GetUniqueId(&id), "ncclGetUniqueId");
        std::memcpy(out, id.internal, nccl::kUniqueIdBytes);
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_init(sgld_context_t ctx, const uint8_t *id, int32_t nranks, int32_t rank,
                                      sgld_comm_t *out) {
    SGLD_API_BEGIN
        SGLD_CHECK_PTR(out);
        *out = nullptr;
        SGLD_CHECK_PTR(id);
        if (nranks < 1) return fail(SGLD_ERR_INVALID, "sgld_comm_init: nranks is %d", nranks);
        if (rank < 0 || rank >= nranks)
            return fail(SGLD_ERR_INVALID, "sgld_comm_init: rank %d is outside [0, %d)", rank, nranks);
        SGLD_ENTER(ctx);  // NCCL binds the communicator to the current device
        SGLD_NCCL_API(api);
        nccl::UniqueId uid;
        std::memcpy(uid.internal, id, nccl::kUniqueIdBytes);
        auto *comm = new (std::nothrow) sgld_comm();
        if (!comm) return fail(SGLD_ERR_NO_MEMORY, "sgld_comm_init: out of host memory");
        nccl::Result r = api->CommInitRank(&comm->nccl, nranks, uid, rank);
        if (r != nccl::kSuccess) {
            delete comm;
            return nccl_fail(api, r, sgld_fn_, "ncclCommInitRank");
        }
        comm->device = ctx->device;
        comm->nranks = nranks;
        comm->rank = rank;
        *out = comm;
        return SGLD_OK;
    SGLD_API_END
}

// Destroy and abort free the handle whatever NCCL answers: there is nothing left to retry with.
static sgld_status release_comm(sgld_comm_t comm, bool abort, const char *fn) {
    sgld_status load_status = SGLD_OK;
    const nccl::Api *api = load_nccl(fn, &load_status);
    if (!api) return load_status;  // unreachable in practice: a communicator exists only once NCCL loaded
    cudaError_t err = cudaSetDevice(comm->device);
    nccl::Result r = abort ? api->CommAbort(comm->nccl) : api->CommDestroy(comm->nccl);
    delete comm;
    if (r != nccl::kSuccess) return nccl_fail(api, r, fn, abort ? "ncclCommAbort" : "ncclCommDestroy");
    if (err != cudaSuccess) return cuda_fail(err, fn);
    return SGLD_OK;
}

extern "C" sgld_status sgld_comm_destroy(sgld_comm_t comm) {
    SGLD_API_BEGIN
        if (!comm) return SGLD_OK;
        return release_comm(comm, false, sgld_fn_);
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_abort(sgld_comm_t comm) {
    SGLD_API_BEGIN
        if (!comm) return SGLD_OK;
        return release_comm(comm, true, sgld_fn_);
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_group_start(void) {
    SGLD_API_BEGIN
        SGLD_NCCL_API(api);
        SGLD_NCCL(api, api->GroupStart(), "ncclGroupStart");
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_group_end(void) {
    SGLD_API_BEGIN
        SGLD_NCCL_API(api);
        SGLD_NCCL(api, api->GroupEnd(), "ncclGroupEnd");
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_send(sgld_comm_t comm, sgld_context_t ctx, const void *buf, size_t bytes,
                                      int32_t peer) {
    SGLD_API_BEGIN
        if (sgld_status s = enter_transfer(comm, ctx, sgld_fn_)) return s;
        if (sgld_status s = check_member(comm, peer, "peer", sgld_fn_)) return s;
        SGLD_CHECK_BUF(buf, bytes);
        SGLD_NCCL_API(api);
        SGLD_NCCL(api, api->Send(buf, bytes, nccl::kUint8, peer, comm->nccl, ctx->stream), "ncclSend");
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_recv(sgld_comm_t comm, sgld_context_t ctx, void *buf, size_t bytes, int32_t peer) {
    SGLD_API_BEGIN
        if (sgld_status s = enter_transfer(comm, ctx, sgld_fn_)) return s;
        if (sgld_status s = check_member(comm, peer, "peer", sgld_fn_)) return s;
        SGLD_CHECK_BUF(buf, bytes);
        SGLD_NCCL_API(api);
        SGLD_NCCL(api, api->Recv(buf, bytes, nccl::kUint8, peer, comm->nccl, ctx->stream), "ncclRecv");
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_all_gather(sgld_comm_t comm, sgld_context_t ctx, const void *send, void *recv,
                                            size_t bytes) {
    SGLD_API_BEGIN
        if (sgld_status s = enter_transfer(comm, ctx, sgld_fn_)) return s;
        SGLD_CHECK_BUF(send, bytes);
        SGLD_CHECK_BUF(recv, bytes);
        SGLD_NCCL_API(api);
        SGLD_NCCL(api, api->AllGather(send, recv, bytes, nccl::kUint8, comm->nccl, ctx->stream), "ncclAllGather");
        return SGLD_OK;
    SGLD_API_END
}

extern "C" sgld_status sgld_comm_broadcast(sgld_comm_t comm, sgld_context_t ctx, const void *send, void *recv,
                                           size_t bytes, int32_t root) {
    SGLD_API_BEGIN
        if (sgld_status s = enter_transfer(comm, ctx, sgld_fn_)) return s;
        if (sgld_status s = check_member(comm, root, "root", sgld_fn_)) return s;
        if (comm->rank == root) SGLD_CHECK_BUF(send, bytes);
        SGLD_CHECK_BUF(recv, bytes);
        if (!send) send = recv;  // read on the root only
        SGLD_NCCL_API(api);
        SGLD_NCCL(api, api->Broadcast(send, recv, bytes, nccl::kUint8, root, comm->nccl, ctx->stream),
                  "ncclBroadcast");
        return SGLD_OK;
    SGLD_API_END
}
