// Loads cuBLASLt once per process and resolves the entry points declared in cublaslt_loader.h.
#include "cublaslt_loader.h"

#include "dynlib.h"

namespace sgld {
namespace lt {

static bool load_once(Api *api, std::string *error) {
    LibrarySearch search;
    search.names = {"libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"};
    search.wheel_subdirs = {"nvidia/cu13/lib", "nvidia/cublas/lib"};  // CUDA 13 wheels, then CUDA 12 wheels
    LoadedLibrary lib = open_cuda_library(search);
    if (!lib.handle) {
        *error = "cuBLASLt: " + lib.searched + ". Set SGLD_CUDA_LIB_DIRS to the folder that holds libcublasLt.so.*";
        return false;
    }
    std::string missing;
    void *h = lib.handle;
    resolve_symbol(h, "cublasLtGetVersion", &api->GetVersion, &missing);
    resolve_symbol(h, "cublasLtCreate", &api->Create, &missing);
    resolve_symbol(h, "cublasLtDestroy", &api->Destroy, &missing);
    resolve_symbol(h, "cublasLtMatmulDescCreate", &api->MatmulDescCreate, &missing);
    resolve_symbol(h, "cublasLtMatmulDescDestroy", &api->MatmulDescDestroy, &missing);
    resolve_symbol(h, "cublasLtMatmulDescSetAttribute", &api->MatmulDescSetAttribute, &missing);
    resolve_symbol(h, "cublasLtMatrixLayoutCreate", &api->MatrixLayoutCreate, &missing);
    resolve_symbol(h, "cublasLtMatrixLayoutDestroy", &api->MatrixLayoutDestroy, &missing);
    resolve_symbol(h, "cublasLtMatrixLayoutSetAttribute", &api->MatrixLayoutSetAttribute, &missing);
    resolve_symbol(h, "cublasLtMatmulPreferenceCreate", &api->MatmulPreferenceCreate, &missing);
    resolve_symbol(h, "cublasLtMatmulPreferenceDestroy", &api->MatmulPreferenceDestroy, &missing);
    resolve_symbol(h, "cublasLtMatmulPreferenceSetAttribute", &api->MatmulPreferenceSetAttribute, &missing);
    resolve_symbol(h, "cublasLtMatmulAlgoGetHeuristic", &api->MatmulAlgoGetHeuristic, &missing);
    resolve_symbol(h, "cublasLtMatmul", &api->Matmul, &missing);
    if (!missing.empty()) {
        *error = "cuBLASLt: " + lib.path + " lacks " + missing;
        ::dlclose(h);
        return false;
    }
    api->path = lib.path;
    return true;
}

static LazyLibrary<Api> g_library(load_once);

const Api *load(std::string *error) { return g_library.get(error); }

}  // namespace lt
}  // namespace sgld
