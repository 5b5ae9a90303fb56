// Finding and opening a CUDA library at run time (cuBLASLt now, NCCL later). None of them is linked: a machine
// without them still loads libsgld_cuda.so, and on the GPU machines they often live only inside a Python
// virtual environment (the nvidia-* wheels put them under site-packages/nvidia/<name>/lib).
#pragma once
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

}  // namespace sgld
