// CPU backend: the collectives section of sgld.h. CPU ranks are worker threads of one process and exchange
// through shared memory in TypeScript (src/parallel/shm-collectives.ts), so this library has no communicators:
// every function says so instead of failing obscurely. The symbols exist so that one binding serves both
// libraries.
#include "internal.h"

using namespace sgld;

static sgld_status no_communicators(const char *fn) {
    return fail(SGLD_ERR_UNSUPPORTED,
                "%s: the CPU backend has no NCCL communicators; CPU ranks exchange through the shm collectives "
                "backend (src/parallel/shm-collectives.ts), NCCL needs libsgld_cuda.so",
                fn);
}

extern "C" sgld_status sgld_comm_version(int32_t *version) {
    if (version) *version = 0;
    return no_communicators("sgld_comm_version");
}

extern "C" sgld_status sgld_comm_unique_id(uint8_t *) { return no_communicators("sgld_comm_unique_id"); }

extern "C" sgld_status sgld_comm_init(sgld_context_t, const uint8_t *, int32_t, int32_t, sgld_comm_t *out) {
    if (out) *out = nullptr;
    return no_communicators("sgld_comm_init");
}

// NULL is a no-op on both backends; anything else cannot have come from this library.
extern "C" sgld_status sgld_comm_destroy(sgld_comm_t comm) {
    return comm ? no_communicators("sgld_comm_destroy") : SGLD_OK;
}

extern "C" sgld_status sgld_comm_abort(sgld_comm_t comm) {
    return comm ? no_communicators("sgld_comm_abort") : SGLD_OK;
}

extern "C" sgld_status sgld_comm_group_start(void) { return no_communicators("sgld_comm_group_start"); }
extern "C" sgld_status sgld_comm_group_end(void) { return no_communicators("sgld_comm_group_end"); }

extern "C" sgld_status sgld_comm_send(sgld_comm_t, sgld_context_t, const void *, size_t, int32_t) {
    return no_communicators("sgld_comm_send");
}

extern "C" sgld_status sgld_comm_recv(sgld_comm_t, sgld_context_t, void *, size_t, int32_t) {
    return no_communicators("sgld_comm_recv");
}

extern "C" sgld_status sgld_comm_all_gather(sgld_comm_t, sgld_context_t, const void *, void *, size_t) {
    return no_communicators("sgld_comm_all_gather");
}

extern "C" sgld_status sgld_comm_broadcast(sgld_comm_t, sgld_context_t, const void *, void *, size_t, int32_t) {
    return no_communicators("sgld_comm_broadcast");
}
