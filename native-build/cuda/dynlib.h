// Finding and opening a CUDA library at run time (cuBLASLt and NCCL). None of them is linked: a machine
// without them still loads libsgld_cuda.so, and on the GPU machines they often live only inside a Python
// virtual environment (the nvidia-* wheels put them under site-packages/nvidia/<name>/lib).
#pragma once
#include <dlfcn.h>

#include <mutex>
#include <string>
#include <vector>

namespace sgld {

struct LibrarySearch {
    std::vector<std::string> names;  // file names in order of preference, e.g. libcublasLt.so.13, .so.12, .so
    // folders inside a site-packages folder, e.g. "nvidia/cu13/lib" (CUDA 13 wheels group their libraries
    // there) then "nvidia/cublas/lib" (CUDA 12 wheels)
    std::vector<std::string> wheel_subdirs;
};

struct LoadedLibrary {
    void *handle = nullptr;    // from dlopen; nullptr when nothing was found
    std::string path;          // what was opened
    std::string searched;      // on failure: every place tried, for the error message
};

// Search order: each directory of $SGLD_CUDA_LIB_DIRS (colon-separated), then the default dlopen search
// (LD_LIBRARY_PATH, the ld.so cache), then the CUDA toolkit (/usr/local/cuda/lib64, .../targets/x86_64-linux/lib),
// then <site-packages>/<wheel_subdir> under $VIRTUAL_ENV, $CONDA_PREFIX, ~/.local, /usr/local/lib/python3*,
// /usr/lib/python3*, /opt/*/lib/python3* and /opt/*/*/lib/python3*.
LoadedLibrary open_cuda_library(const LibrarySearch &search);

// Looks `name` up in `handle` into *out (null when absent). A missing name is appended to *missing, a
// comma-separated list for the error message; pass missing = nullptr for an optional entry point.
template <class Fn>
void resolve_symbol(void *handle, const char *name, Fn *out, std::string *missing) {
    void *p = ::dlsym(handle, name);
    if (!p && missing) *missing += (missing->empty() ? "" : ", ") + std::string(name);
    *out = reinterpret_cast<Fn>(p);
}

// A library's table of entry points, loaded on first use and kept for the life of the process (the handle is
// never closed). `load_once` fills `api` and returns true, or sets `error` and returns false; every later
// get() answers the same without trying again.
template <class Api>
class LazyLibrary {
public:
    explicit LazyLibrary(bool (*load_once)(Api *api, std::string *error)) : load_once_(load_once) {}

    const Api *get(std::string *error) {
        std::call_once(once_, [this] { ok_ = load_once_(&api_, &error_); });
        if (!ok_ && error) *error = error_;
        return ok_ ? &api_ : nullptr;
    }

private:
    bool (*load_once_)(Api *, std::string *);
    std::once_flag once_;
    Api api_{};
    bool ok_ = false;
    std::string error_;
};

}  // namespace sgld
