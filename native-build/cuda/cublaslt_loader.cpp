// Loads cuBLASLt once per process and resolves the entry points declared in cublaslt_loader.h.
#include "cublaslt_loader.h"

#include <dlfcn.h>

#include <mutex>

#include "dynlib.h"

namespace sgld {
namespace lt {

static std::once_flag g_once;
static Api g_api;
static bool g_ok = false;
static std::string g_error;

template <class Fn>
static bool resolve(void *handle, const char *name, Fn *out, std::string *missing) {
    void *p = ::dlsym(handle, name);
    if (!p) {
        *missing += (missing->empty() ? "" : ", ") + std::string(name);
        return false;
    }
    *out = reinterpret_cast<Fn>(p);
    return true;
}

static void load_once() {
    LibrarySearch search;
    search.names = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    search.wheel_subdirs = {"nvidia/cu13/lib", "nvidia/cublas/lib"};  // CUDA 13 wheels, then CUDA 12 wheels
    LoadedLibrary lib = open_cuda_library(search);
    if (!lib.handle) {
        g_error = "cuBLASLt: " + lib.searched + ". Set SGLD_CUDA_LIB_DIRS to the folder that holds libcublasLt.so.*";
        return;
    }
    std::string missing;
    void *h = lib.handle;
    resolve(h, "cublasLtGetVersion", &g_api.GetVersion, &missing);
    resolve(h, "cublasLtCreate", &g_api.Create, &missing);
    resolve(h, "cublasLtDestroy", &g_api.Destroy, &missing);
    resolve(h, "cublasLtMatmulDescCreate", &g_api.MatmulDescCreate, &missing);
    resolve(h, "cublasLtMatmulDescDestroy", &g_api.MatmulDescDestroy, &missing);
    resolve(h, "cublasLtMatmulDescSetAttribute", &g_api.MatmulDescSetAttribute, &missing);
    resolve(h, "cublasLtMatrixLayoutCreate", &g_api.MatrixLayoutCreate, &missing);
    resolve(h, "cublasLtMatrixLayoutDestroy", &g_api.MatrixLayoutDestroy, &missing);
    resolve(h, "cublasLtMatrixLayoutSetAttribute", &g_api.MatrixLayoutSetAttribute, &missing);
    resolve(h, "cublasLtMatmulPreferenceCreate", &g_api.MatmulPreferenceCreate, &missing);
    resolve(h, "cublasLtMatmulPreferenceDestroy", &g_api.MatmulPreferenceDestroy, &missing);
    resolve(h, "cublasLtMatmulPreferenceSetAttribute", &g_api.MatmulPreferenceSetAttribute, &missing);
    resolve(h, "cublasLtMatmulAlgoGetHeuristic", &g_api.MatmulAlgoGetHeuristic, &missing);
    resolve(h, "cublasLtMatmul", &g_api.Matmul, &missing);
    if (!missing.empty()) {
        g_error = "cuBLASLt: " + lib.path + " lacks " + missing;
        ::dlclose(h);
        return;
    }
    g_api.path = lib.path;
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

}  // namespace lt
}  // namespace sgld
