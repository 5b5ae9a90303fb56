// Loads NCCL once per process and resolves the entry points declared in nccl_loader.h.
#include "nccl_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>

#include "dynlib.h"

namespace sgld {
namespace nccl {

// $SGLD_NCCL_LIB names the library file itself; when set it is the only candidate, so a wrong value is an
// error rather than a silent fall back to some other NCCL.
static void *open_explicit(const char *path, std::string *opened, std::string *error) {
    struct stat st;
    if (::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        *error = std::string("NCCL: $SGLD_NCCL_LIB is ") + path + ", which is not a file";
        return nullptr;
    }
    void *h = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = ::dlerror();
        *error = std::string("NCCL: $SGLD_NCCL_LIB ") + path + " failed to load (" + (e ? e : "unknown error") + ")";
        return nullptr;
    }
    *opened = path;
    return h;
}

static bool load_once(Api *api, std::string *error) {
    void *h = nullptr;
    std::string path;
    const char *explicit_path = std::getenv("SGLD_NCCL_LIB");
    if (explicit_path && *explicit_path) {
        h = open_explicit(explicit_path, &path, error);
        if (!h) return false;
    } else {
        LibrarySearch search;
        search.names = {"libnccl.so.2", "libnccl.so"};
        // nvidia-nccl-cu12/cu13 wheels put it in nvidia/nccl/lib; CUDA 13 wheels may group libraries in cu13/lib.
        search.wheel_subdirs = {"nvidia/nccl/lib", "nvidia/cu13/lib"};
        LoadedLibrary lib = open_cuda_library(search);
        if (!lib.handle) {
            *error = "NCCL: $SGLD_NCCL_LIB (unset), then " + lib.searched +
                     ". Set SGLD_NCCL_LIB to libnccl.so.2 or SGLD_CUDA_LIB_DIRS to its folder";
            return false;
        }
        h = lib.handle;
        path = lib.path;
    }
    std::string missing;
    resolve_symbol(h, "ncclGetVersion", &api->GetVersion, &missing);
    resolve_symbol(h, "ncclGetUniqueId", &api->GetUniqueId, &missing);
    resolve_symbol(h, "ncclCommInitRank", &api->CommInitRank, &missing);
    resolve_symbol(h, "ncclCommDestroy", &api->CommDestroy, &missing);
    resolve_symbol(h, "ncclCommAbort", &api->CommAbort, &missing);
    resolve_symbol(h, "ncclGetErrorString", &api->GetErrorString, &missing);
    resolve_symbol(h, "ncclGetLastError", &api->GetLastError, nullptr);  // optional
    resolve_symbol(h, "ncclGroupStart", &api->GroupStart, &missing);
    resolve_symbol(h, "ncclGroupEnd", &api->GroupEnd, &missing);
    resolve_symbol(h, "ncclSend", &api->Send, &missing);
    resolve_symbol(h, "ncclRecv", &api->Recv, &missing);
    resolve_symbol(h, "ncclAllGather", &api->AllGather, &missing);
    resolve_symbol(h, "ncclBroadcast", &api->Broadcast, &missing);
    if (!missing.empty()) {
        *error = "NCCL: " + path + " lacks " + missing + " (sgld needs NCCL 2.7 or newer)";
        ::dlclose(h);
        return false;
    }
    api->path = path;
    return true;
}

static LazyLibrary<Api> g_library(load_once);

const Api *load(std::string *error) { return g_library.get(error); }

}  // namespace nccl
}  // namespace sgld
