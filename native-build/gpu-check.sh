#!/usr/bin/env bash
# The GPU check of the nccl collectives backend, for ONE call to a device machine with one CUDA GPU (an H200:
# no Node.js, no network, NCCL and cuBLASLt only inside Python's nvidia-* wheels). Two steps:
#
#   bash native-build/gpu-check.sh prepare
#       here, on a machine with this checkout's node_modules: fills .device/gpu-check/ (ignored by git) with what
#       the device machine lacks: the node binary (xz, about 24 MB), the check compiled to JS with the modules it
#       imports, and the three packages it loads (koffi + its linux-x64 binary, @msgpack/msgpack).
#
#   bash native-build/gpu-check.sh            (on the device machine; carry: [".device/gpu-check"])
#       builds libs/libsgld_cpu.so and libs/libsgld_cuda.so there, points the native loaders at the nvidia-*
#       wheels, and runs native-build/gpu-check.ts: a 'cuda' Device against the CPU backend on a few ops, then
#       NCCL with a world of one rank (raw sgld_comm_* calls, NcclCollectives, RankParallel.join). One PASS or
#       FAIL line per step; the exit status is 0 only when all passed. The log goes to $OUT/gpu-check.log.
#       A fresh machine spends about 1-2 minutes building; give the call a timeout of 8 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=.device/gpu-check

prepare() {
  set -e
  mkdir -p "$CARRY"
  local node_bin
  node_bin=$(readlink -f "$(command -v node)")
  if [ ! -f "$CARRY/node.xz" ] || [ "$node_bin" -nt "$CARRY/node.xz" ]; then
    echo "compressing $node_bin ($("$node_bin" --version))"
    xz -T0 -6 -c "$node_bin" > "$CARRY/node.xz.part"
    mv "$CARRY/node.xz.part" "$CARRY/node.xz"
  fi
  rm -rf "$CARRY/app"
  # Compiled without the project's tsconfig (its rootDir is src/); the same strict options otherwise.
  node_modules/.bin/tsc --outDir "$CARRY/app" --rootDir . --target ES2022 --module NodeNext \
    --moduleResolution NodeNext --lib ES2023 --types node --strict --skipLibCheck --verbatimModuleSyntax \
    native-build/gpu-check.ts
  echo '{ "type": "module" }' > "$CARRY/app/package.json"
  mkdir -p "$CARRY/app/node_modules/@koromix" "$CARRY/app/node_modules/@msgpack"
  cp -r node_modules/koffi "$CARRY/app/node_modules/"
  cp -r node_modules/@koromix/koffi-linux-x64 "$CARRY/app/node_modules/@koromix/"
  cp -r node_modules/@msgpack/msgpack "$CARRY/app/node_modules/@msgpack/"
  du -sh "$CARRY"
  echo "ready: call the device with command 'bash native-build/gpu-check.sh', carry [\"$CARRY\"], timeout 480 s"
}

# Directories of the nvidia-* wheels' libraries (cuBLASLt, NCCL) of the Python that holds PyTorch.
wheel_library_dirs() {
  command -v python3 > /dev/null || return 0
  python3 - <<'PY' 2>/dev/null || true
import os
try:
    import nvidia
except ImportError:
    raise SystemExit
dirs = []
for root in nvidia.__path__:
    for name in sorted(os.listdir(root)):
        lib = os.path.join(root, name, 'lib')
        if os.path.isdir(lib):
            dirs.append(lib)
print(':'.join(dirs))
PY
}

run_check() {
  local out=${OUT:-$PWD/$CARRY/out}
  mkdir -p "$out"
  exec > >(tee "$out/gpu-check.log") 2>&1
  local failed=0 node=node
  echo "== $(date -u +%FT%TZ) $(uname -m)"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || echo "(nvidia-smi failed)"

  if [ -f "$CARRY/node.xz" ]; then
    xz -dc "$CARRY/node.xz" > /tmp/sgld-node && chmod +x /tmp/sgld-node && node=/tmp/sgld-node
  fi
  if ! "$node" --version > /dev/null 2>&1; then
    echo "FAIL node: neither $CARRY/node.xz nor a node on PATH (run 'bash native-build/gpu-check.sh prepare' first)"
    exit 1
  fi
  if [ ! -f "$CARRY/app/native-build/gpu-check.js" ]; then
    echo "FAIL the compiled check is missing: run 'bash native-build/gpu-check.sh prepare' here and carry $CARRY"
    exit 1
  fi
  echo "node $("$node" --version)"

  local wheels
  wheels=$(wheel_library_dirs)
  export SGLD_CUDA_LIB_DIRS="${SGLD_CUDA_LIB_DIRS:+$SGLD_CUDA_LIB_DIRS:}$wheels"
  echo "SGLD_CUDA_LIB_DIRS=$SGLD_CUDA_LIB_DIRS"
  export NCCL_DEBUG=${NCCL_DEBUG:-WARN}  # NCCL says why when init or a transfer fails

  local t0=$SECONDS
  if "$node" native-build/build-cpu.mjs; then echo "PASS build libsgld_cpu.so ($((SECONDS - t0)) s)"
  else echo "FAIL build libsgld_cpu.so"; failed=1; fi
  t0=$SECONDS
  if "$node" native-build/build-cuda.mjs; then echo "PASS build libsgld_cuda.so ($((SECONDS - t0)) s)"
  else echo "FAIL build libsgld_cuda.so"; exit 1; fi

  SGLD_LIB_DIR="$PWD/libs" "$node" "$CARRY/app/native-build/gpu-check.js" || failed=1
  echo "gpu-check.sh: $([ "$failed" = 0 ] && echo 'all passed' || echo 'FAILED')"
  exit "$failed"
}

case "${1:-run}" in
  prepare) prepare ;;
  run) run_check ;;
  *) echo "usage: bash native-build/gpu-check.sh [prepare|run]" >&2; exit 2 ;;
esac
