// Run-time search for CUDA libraries; see dynlib.h for the order.
#include "dynlib.h"

#include <dlfcn.h>
#include <glob.h>
#include <sys/stat.h>

#include <cstdlib>

namespace sgld {

static bool is_file(const std::string &path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

static std::vector<std::string> split_dirs(const char *list) {
    std::vector<std::string> dirs;
    if (!list) return dirs;
    std::string s(list);
    size_t start = 0;
    while (start <= s.size()) {
        size_t end = s.find(':', start);
        if (end == std::string::npos) end = s.size();
        if (end > start) dirs.push_back(s.substr(start, end - start));
        start = end + 1;
    }
    return dirs;
}

static void glob_into(const std::string &pattern, std::vector<std::string> *out) {
    glob_t g{};
    if (::glob(pattern.c_str(), GLOB_ONLYDIR | GLOB_NOSORT, nullptr, &g) == 0) {
        for (size_t i = 0; i < g.gl_pathc; ++i) {
            std::string d = g.gl_pathv[i];
            bool seen = false;
            for (const auto &x : *out) seen = seen || x == d;
            if (!seen) out->push_back(d);
        }
    }
    ::globfree(&g);
}

// Python site-packages (and Debian dist-packages) folders that may hold nvidia-* wheels.
static std::vector<std::string> site_package_patterns() {
    std::vector<std::string> roots;
    for (const char *var : {"VIRTUAL_ENV", "CONDA_PREFIX"}) {
        const char *v = std::getenv(var);
        if (v && *v) roots.push_back(v);
    }
    const char *home = std::getenv("HOME");
    if (home && *home) roots.push_back(std::string(home) + "/.local");
    roots.push_back("/usr/local");
    roots.push_back("/usr");
    roots.push_back("/opt/*");
    roots.push_back("/opt/*/*");
    // Virtual environments are hidden folders (/opt/torch/.venv) that glob's * does not match.
    roots.push_back("/opt/*/.venv");
    roots.push_back("/opt/.venv");
    std::vector<std::string> patterns;
    for (const auto &r : roots) {
        patterns.push_back(r + "/lib/python3*/site-packages");
        patterns.push_back(r + "/lib/python3*/dist-packages");
    }
    patterns.push_back("/usr/lib/python3/dist-packages");
    return patterns;
}

LoadedLibrary open_cuda_library(const LibrarySearch &search) {
    LoadedLibrary lib;
    std::string tried;
    auto try_path = [&](const std::string &path) -> bool {
        if (!is_file(path)) return false;
        void *h = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (h) {
            lib.handle = h;
            lib.path = path;
            return true;
        }
        const char *e = ::dlerror();
        tried += "; " + path + " exists but failed to load (" + (e ? e : "unknown error") + ")";
        return false;
    };

    // 1. Explicit directories.
    const char *env = std::getenv("SGLD_CUDA_LIB_DIRS");
    for (const auto &dir : split_dirs(env))
        for (const auto &name : search.names)
            if (try_path(dir + "/" + name)) return lib;
    std::string searched = std::string("$SGLD_CUDA_LIB_DIRS (") + (env && *env ? env : "unset") + ")";

    // 2. The dynamic loader's own search (LD_LIBRARY_PATH, rpath, ld.so.cache).
    for (const auto &name : search.names) {
        void *h = ::dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (h) {
            lib.handle = h;
            lib.path = name;
            return lib;
        }
    }
    searched += ", the default library path (LD_LIBRARY_PATH, ld.so cache)";

    // 3. A CUDA toolkit that the loader was not told about.
    const char *toolkit[] = {"/usr/local/cuda/lib64", "/usr/local/cuda/targets/x86_64-linux/lib"};
    for (const char *dir : toolkit)
        for (const auto &name : search.names)
            if (try_path(std::string(dir) + "/" + name)) return lib;
    searched += ", /usr/local/cuda/lib64, /usr/local/cuda/targets/x86_64-linux/lib";

    // 4. Python wheels.
    std::vector<std::string> sites;
    for (const auto &p : site_package_patterns()) glob_into(p, &sites);
    for (const auto &site : sites)
        for (const auto &sub : search.wheel_subdirs)
            for (const auto &name : search.names)
                if (try_path(site + "/" + sub + "/" + name)) return lib;
    searched += ", <site-packages>/{";
    for (size_t i = 0; i < search.wheel_subdirs.size(); ++i) searched += (i ? "," : "") + search.wheel_subdirs[i];
    searched += "} in ";
    if (sites.empty()) searched += "(no Python site-packages folder found)";
    for (size_t i = 0; i < sites.size(); ++i) searched += (i ? ", " : "") + sites[i];

    std::string names;
    for (size_t i = 0; i < search.names.size(); ++i) names += (i ? " / " : "") + search.names[i];
    lib.searched = names + " not found; searched " + searched + tried;
    return lib;
}

}  // namespace sgld
