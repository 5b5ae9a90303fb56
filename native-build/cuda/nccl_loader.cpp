// Loads NCCL once per process and resolves the entry points declared in nccl_loader.h.
#include "nccl_loader.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

#include "dynlib.h"

namespace sgld {
namespace nccl {

static std::once_flag g_once;
static Api g_api;
static bool g_ok = false;
static std::string g_error;

template <class Fn>
static void resolve(void *handle, const char *name, Fn *out, std::string *missing) {
    void *p = ::dlsym(handle, name);
    if (!p && missing) *missing += (missing->empty() ? "" : ", ") + std::string(name);
    *out = reinterpret_cast<Fn>(p);
}

// $SGLD_NCCL_LIB names the library file itself; when set it is the only candidate, so a wrong value is an
// error rather than a silent fall back to some other NCCL.
static void *open_explicit(const char *path, std::string *opened) {
    struct stat st;
    if (::stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        g_error = std::string("NCCL: $SGLD_NCCL_LIB is ") + path + ", which is not a file";
        return nullptr;
    }
    void *h = ::dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *e = ::dlerror();
        g_error = std::string("NCCL: $SGLD_NCCL_LIB ") + path + " failed to load (" + (e ? e : "unknown error") + ")";
        return nullptr;
    }
    *opened = path;
    return h;
}

static void load_once() {
    void *h = nullptr;
    std::string path;
    const char *explicit_path = std::getenv("SGLD_NCCL_LIB");
    if (explicit_path && *explicit_path) {
        h = open_explicit(explicit_path, &path);
        if (!h) return;
    } else {
        LibrarySearch search;
        search.names = {"libnccl.so.2", "libnccl.so"};
        // nvidia-nccl-cu12/cu13 wheels put it in nvidia/nccl/lib; CUDA 13 wheels may group libraries in cu13/lib.
        search.wheel_subdirs = {"nvidia/nccl/lib", "nvidia/cu13/lib"};
        LoadedLibrary lib = open_cuda_library(search);
        if (!lib.handle) {
            g_error = "NCCL: $SGLD_NCCL_LIB (unset), then " + lib.searched +
                      ". Set SGLD_NCCL_LIB to libnccl.so.2 or SGLD_CUDA_LIB_DIRS to its folder";
            return;
        }
        h = lib.handle;
        path = lib.path;
    }
    std::string missing;
    resolve(h, "ncclGetVersion", &g_api.GetVersion, &missing);
    resolve(h, "ncclGetUniqueId", &g_api.GetUniqueId, &missing);
    resolve(h, "ncclCommInitRank", &g_api.CommInitRank, &missing);
    resolve(h, "ncclCommDestroy", &g_api.CommDestroy, &missing);
    resolve(h, "ncclCommAbort", &g_api.CommAbort, &missing);
    resolve(h, "ncclGetErrorString", &g_api.GetErrorString, &missing);
    resolve(h, "ncclGetLastError", &g_api.GetLastError, nullptr);  // optional
    resolve(h, "ncclGroupStart", &g_api.GroupStart, &missing);
    resolve(h, "ncclGroupEnd", &g_api.GroupEnd, &missing);
    resolve(h, "ncclSend", &g_api.Send, &missing);
    resolve(h, "ncclRecv", &g_api.Recv, &missing);
    resolve(h, "ncclAllGather", &g_api.AllGather, &missing);
    resolve(h, "ncclBroadcast", &g_api.Broadcast, &missing);
    if (!missing.empty()) {
        g_error = "NCCL: " + path + " lacks " + missing + " (sgld needs NCCL 2.7 or newer)";
        ::dlclose(h);
        return;
    }
    g_api.path = path;
    g_ok = true;  // the handle stays open for the life of the process
}

const Api *load(std::string *error) {
    std::call_once(g_once, load_once);
    if (!g_ok) {
        if (error) *error = g_error;
        return nullptr;
    }
    return &g_api;
}

}  // namespace nccl
}  // namespace sgld
