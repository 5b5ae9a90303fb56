// The CUDA library builds with nvcc, exports exactly the C ABI of sgld.h, and loads on a machine without a GPU,
// where it reports the missing driver as an error instead of crashing. On a machine with a GPU the load test
// instead runs a few ops and checks their results. Its run-time loaders (cuBLASLt, NCCL) are tested with
// stand-in libraries.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';
import { COMM_ID_BYTES, NativeDType, Status, loadNativeLibrary, type Ptr } from '../../src/runtime/native.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const libPath = join(root, 'libs', 'libsgld_cuda.so');
const headerPath = join(root, 'native-build', 'include', 'sgld.h');

// The build script's own search order, so that we skip exactly when it would fail for want of nvcc.
function findNvcc(): string | null {
  for (const c of [process.env.NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc', '/usr/local/bin/nvcc']) {
    if (!c) continue;
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      return c;
    } catch {
      // try the next one
    }
  }
  return null;
}

/** Names of the functions sgld.h declares (comments stripped first: they mention type names too). */
function headerFunctions(): string[] {
  const code = readFileSync(headerPath, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  return [...new Set([...code.matchAll(/\b(sgld_\w+)\s*\(/g)].map((m) => m[1]!))].sort();
}

const nvcc = findNvcc();
const skip = nvcc ? false : 'nvcc not found ($NVCC, PATH, /usr/local/cuda/bin, /usr/local/bin): the CUDA library cannot be built here';

// A build from scratch compiles about ten translation units (about 10 s each on one core).
t.setTimeout(600_000);

t.test('build-cuda.mjs builds libs/libsgld_cuda.so', { skip }, async (t) => {
  const stdout = execFileSync(process.execPath, [join(root, 'native-build', 'build-cuda.mjs')], {
    cwd: root, encoding: 'utf8', timeout: 590_000, stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.match(stdout, libPath, 'it prints where the library went');
  t.ok(existsSync(libPath), 'the library exists');
});

t.test('the library exports exactly the functions declared in sgld.h', { skip }, async (t) => {
  const declared = headerFunctions();
  t.ok(declared.length >= 38, `the header declares ${declared.length} functions`);
  const nm = execFileSync('nm', ['-D', '--defined-only', libPath], { encoding: 'utf8' });
  const exported = nm.split('\n').map((l) => l.trim().split(/\s+/)[2]).filter((s): s is string => !!s).sort();
  t.same(exported, declared);
});

t.test('it loads without a GPU and reports a missing driver as an error', { skip }, async (t) => {
  const lib = loadNativeLibrary('cuda', libPath);  // binds every function of the header: all must resolve
  const f = lib.fns;
  t.equal(f.sgld_backend_name(), 'cuda');
  t.equal(f.sgld_abi_version(), 1);
  const count: [number | null] = [null];
  const status = f.sgld_device_count(count);
  if (status !== Status.OK) {
    t.equal(status, Status.DEVICE, 'no driver / no device is SGLD_ERR_DEVICE');
    t.match(f.sgld_last_error(), /^sgld_device_count: no usable CUDA device: CUDA error \d+ \(cuda\w+\)/);
    t.equal(count[0], 0, 'the count is zeroed, not left undefined');
    const ctx: [Ptr | null] = [null];
    t.equal(f.sgld_context_create(0, 0, ctx), Status.DEVICE, 'no context without a device');
    t.match(f.sgld_last_error(), /^sgld_context_create: /);
    t.equal(f.sgld_synchronize(0n), Status.INVALID, 'a null context is rejected, not dereferenced');
    t.match(f.sgld_last_error(), /sgld_synchronize: null context/);
    return;
  }

  // A GPU is present: a bf16 fill converted to f32, and an f32 GEMM against a JS reference (exact small ints).
  t.ok(count[0]! >= 1, `${count[0]} device(s)`);
  const ctxOut: [Ptr | null] = [null];
  lib.check(f.sgld_context_create(0, 0, ctxOut), 'sgld_context_create');
  const ctx = ctxOut[0]!;
  t.teardown(() => { f.sgld_context_destroy(ctx); });
  const alloc = (bytes: number): Ptr => {
    const out: [Ptr | null] = [null];
    lib.check(f.sgld_malloc(ctx, bytes, out), 'sgld_malloc');
    return out[0]!;
  };
  const n = 1000;
  const half = alloc(n * 2), full = alloc(n * 4);
  lib.check(f.sgld_fill(ctx, NativeDType.BF16, n, half, 1.5), 'sgld_fill');
  lib.check(f.sgld_convert(ctx, n, NativeDType.BF16, half, NativeDType.F32, full), 'sgld_convert');
  const back = new Float32Array(n);
  lib.check(f.sgld_copy_to_host(ctx, back, full, n * 4), 'sgld_copy_to_host');
  t.ok(back.every((v) => v === 1.5), 'bf16 fill of 1.5 reads back exactly');

  const [m, k, nn] = [3, 5, 4];
  const a = Float32Array.from({ length: m * k }, (_, i) => (i % 7) - 3);
  const b = Float32Array.from({ length: nn * k }, (_, i) => (i % 5) - 2);  // stored n x k (trans_b = 1)
  const bias = Float32Array.from({ length: nn }, (_, i) => i);
  const [da, db, dbias, dc] = [alloc(a.byteLength), alloc(b.byteLength), alloc(bias.byteLength), alloc(m * nn * 4)];
  lib.check(f.sgld_copy_to_device(ctx, da, a, a.byteLength), 'sgld_copy_to_device');
  lib.check(f.sgld_copy_to_device(ctx, db, b, b.byteLength), 'sgld_copy_to_device');
  lib.check(f.sgld_copy_to_device(ctx, dbias, bias, bias.byteLength), 'sgld_copy_to_device');
  lib.check(f.sgld_gemm(ctx, NativeDType.F32, 0, 1, m, nn, k, 1, da, k, 0, db, k, 0, 0, dc, nn, 0, 1, dbias, 0), 'sgld_gemm');
  const c = new Float32Array(m * nn);
  lib.check(f.sgld_copy_to_host(ctx, c, dc, c.byteLength), 'sgld_copy_to_host');
  const want = new Float32Array(m * nn);
  for (let i = 0; i < m; i++) for (let j = 0; j < nn; j++) {
    let s = bias[j]!;
    for (let p = 0; p < k; p++) s += a[i * k + p]! * b[j * k + p]!;
    want[i * nn + j] = s;
  }
  t.same([...c], [...want], 'x W^T + b, exact on small integers');
});

// The run-time search for cuBLASLt, exercised on the host with a stand-in library that exports the entry points
// sgld resolves (their bodies never run: only dlopen/dlsym are under test).
const LT_SYMBOLS = ['cublasLtGetVersion', 'cublasLtCreate', 'cublasLtDestroy', 'cublasLtMatmulDescCreate',
  'cublasLtMatmulDescDestroy', 'cublasLtMatmulDescSetAttribute', 'cublasLtMatrixLayoutCreate',
  'cublasLtMatrixLayoutDestroy', 'cublasLtMatrixLayoutSetAttribute', 'cublasLtMatmulPreferenceCreate',
  'cublasLtMatmulPreferenceDestroy', 'cublasLtMatmulPreferenceSetAttribute', 'cublasLtMatmulAlgoGetHeuristic',
  'cublasLtMatmul'];

t.test('the cuBLASLt loader searches $SGLD_CUDA_LIB_DIRS and Python wheels, and names what it searched',
  { skip }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sgld-lt-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const cudaInclude = join(dirname(dirname(execFileSync('bash', ['-c', `readlink -f "$(command -v ${nvcc})"`],
      { encoding: 'utf8' }).trim())), 'include');
    const src = join(root, 'native-build', 'cuda');
    const probe = join(dir, 'probe');
    writeFileSync(join(dir, 'probe.cpp'), [
      '#include "cublaslt_loader.h"',
      '#include <cstdio>',
      'int main() { std::string e; const sgld::lt::Api *a = sgld::lt::load(&e);',
      '  if (a) std::printf("OK %s\\n", a->path.c_str()); else std::printf("ERR %s\\n", e.c_str()); }',
    ].join('\n'));
    execFileSync('g++', ['-std=c++17', '-O0', `-I${src}`, `-I${cudaInclude}`, '-I/usr/local/cuda/include',
      join(dir, 'probe.cpp'), join(src, 'cublaslt_loader.cpp'), join(src, 'dynlib.cpp'), '-ldl', '-o', probe]);
    const fake = (path: string, symbols: string[]): void => {
      mkdirSync(dirname(path), { recursive: true });
      const c = join(dir, 'fake.c');
      writeFileSync(c, symbols.map((s) => `int ${s}(void) { return 0; }`).join('\n'));
      execFileSync('gcc', ['-shared', '-fPIC', c, '-o', path]);
    };
    const probeWith = (env: Record<string, string | undefined>): string => execFileSync(probe, {
      encoding: 'utf8', env: { PATH: process.env.PATH, HOME: join(dir, 'home'), ...env },
    }).trim();

    const nothing = probeWith({});
    if (nothing.startsWith('OK')) {
      t.comment(`skipped: this machine has a cuBLASLt on the default path (${nothing}); the search cannot be isolated`);
      return;
    }
    t.match(nothing, /^ERR cuBLASLt: libcublasLt\.so\.13 \/ libcublasLt\.so\.12 \/ libcublasLt\.so not found/);
    t.match(nothing, /\$SGLD_CUDA_LIB_DIRS \(unset\)/, 'names the variable');
    t.match(nothing, /nvidia\/cu13\/lib,nvidia\/cublas\/lib/, 'names the wheel folders');
    t.match(nothing, /Set SGLD_CUDA_LIB_DIRS/, 'says how to fix it');

    const venv = join(dir, 'venv');
    const site = join(venv, 'lib', 'python3.12', 'site-packages');
    fake(join(site, 'nvidia', 'cu13', 'lib', 'libcublasLt.so.13'), LT_SYMBOLS);
    t.equal(probeWith({ VIRTUAL_ENV: venv }), `OK ${join(site, 'nvidia', 'cu13', 'lib', 'libcublasLt.so.13')}`,
      'found in a virtual environment\'s CUDA 13 wheel folder');

    const explicit = join(dir, 'explicit');
    fake(join(explicit, 'libcublasLt.so.12'), LT_SYMBOLS);
    t.equal(probeWith({ VIRTUAL_ENV: venv, SGLD_CUDA_LIB_DIRS: `${join(dir, 'missing')}:${explicit}` }),
      `OK ${join(explicit, 'libcublasLt.so.12')}`, '$SGLD_CUDA_LIB_DIRS comes first');

    const partial = join(dir, 'partial');
    fake(join(partial, 'libcublasLt.so'), LT_SYMBOLS.filter((s) => s !== 'cublasLtMatmul'));
    t.match(probeWith({ SGLD_CUDA_LIB_DIRS: partial }), /^ERR cuBLASLt: .*libcublasLt\.so lacks cublasLtMatmul$/,
      'a library without an entry point is refused by name');

    const empty = probeWith({ VIRTUAL_ENV: join(dir, 'no-venv'), SGLD_CUDA_LIB_DIRS: join(dir, 'nowhere') });
    t.match(empty, new RegExp(`SGLD_CUDA_LIB_DIRS \\(${join(dir, 'nowhere')}\\)`), 'names the directories given');
  });

t.test('the communicator calls check their arguments and report a missing NCCL instead of crashing', { skip }, async (t) => {
  const lib = loadNativeLibrary('cuda', libPath);
  const f = lib.fns;
  t.equal(f.sgld_comm_destroy(null), Status.OK, 'destroying NULL is a no-op');
  t.equal(f.sgld_comm_abort(null), Status.OK, 'aborting NULL is a no-op');
  t.equal(f.sgld_comm_send(0n, 0n, 0n, 0, 0), Status.INVALID, 'a null communicator is rejected, not dereferenced');
  t.match(f.sgld_last_error(), /^sgld_comm_send: null communicator$/);
  const comm: [Ptr | null] = [null];
  t.equal(f.sgld_comm_init(0n, new Uint8Array(COMM_ID_BYTES), 2, 2, comm), Status.INVALID, 'a rank outside the group');
  t.match(f.sgld_last_error(), /^sgld_comm_init: rank 2 is outside \[0, 2\)$/);
  t.equal(f.sgld_comm_init(0n, new Uint8Array(COMM_ID_BYTES), 2, 0, comm), Status.INVALID, 'a null context');
  t.match(f.sgld_last_error(), /^sgld_comm_init: null context$/);
  t.equal(comm[0], null, 'no communicator comes back');
  const version: [number | null] = [null];
  const status = f.sgld_comm_version(version);
  if (status === Status.OK) {
    t.ok(version[0]! >= 20700, `an NCCL was found here (version code ${version[0]})`);
    return;
  }
  t.equal(status, Status.LIBRARY, 'no NCCL here: SGLD_ERR_LIBRARY');
  t.match(f.sgld_last_error(), /^sgld_comm_version: NCCL: .*libnccl\.so\.2 \/ libnccl\.so not found/, 'names the library');
  t.equal(version[0], 0, 'the version is zeroed');
  t.equal(f.sgld_comm_unique_id(new Uint8Array(COMM_ID_BYTES)), Status.LIBRARY, 'no unique id without NCCL either');
});

// The run-time search for NCCL, through the real libsgld_cuda.so in child processes (the loader remembers its
// answer per process) with stand-in libraries: the functions sgld calls to ask the version and make an id do
// what NCCL's do; the other entry points exist only to be found by dlsym.
const NCCL_STAND_IN = `
typedef struct { char internal[128]; } Id;
int ncclGetVersion(int *v) { *v = 22703; return 0; }
int ncclGetUniqueId(Id *id) {
#ifdef FAIL_ID
  return 5; /* ncclInvalidUsage */
#else
  for (int i = 0; i < 128; i++) id->internal[i] = (char)(i + 1);
  return 0;
#endif
}
const char *ncclGetErrorString(int r) { return "stand-in failure"; }
const char *ncclGetLastError(void *comm) { return "stand-in detail"; }
int ncclCommInitRank(void) { return 0; }
int ncclCommDestroy(void) { return 0; }
int ncclCommAbort(void) { return 0; }
int ncclGroupStart(void) { return 0; }
int ncclGroupEnd(void) { return 0; }
#ifndef NO_SEND
int ncclSend(void) { return 0; }
#endif
int ncclRecv(void) { return 0; }
int ncclAllGather(void) { return 0; }
int ncclBroadcast(void) { return 0; }
`;

t.test('the NCCL loader: $SGLD_NCCL_LIB first, then the wheel folders; missing entry points and NCCL errors by name',
  { skip }, async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'sgld-nccl-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'nccl.c'), NCCL_STAND_IN);
    const standIn = (path: string, ...defines: string[]): string => {
      mkdirSync(dirname(path), { recursive: true });
      execFileSync('gcc', ['-shared', '-fPIC', ...defines.map((d) => `-D${d}`), join(dir, 'nccl.c'), '-o', path]);
      return path;
    };
    writeFileSync(join(dir, 'probe.mjs'), [
      `import koffi from ${JSON.stringify(pathToFileURL(join(root, 'node_modules', 'koffi', 'index.js')).href)};`,
      'const lib = koffi.load(process.argv[2]);',
      "const last = lib.func('const char *sgld_last_error(void)');",
      "const version = lib.func('int32_t sgld_comm_version(_Out_ int32_t *v)');",
      "const uniqueId = lib.func('int32_t sgld_comm_unique_id(uint8_t *out)');",
      'const v = [null]; const vs = version(v); const ve = last();',
      'const id = new Uint8Array(128); const is = uniqueId(id); const ie = last();',
      'console.log(JSON.stringify({ version: [vs, v[0], ve], id: [is, [...id.subarray(0, 4)], id[127], ie] }));',
    ].join('\n'));
    type Probe = { version: [number, number, string]; id: [number, number[], number, string] };
    const probe = (env: Record<string, string>): Probe => JSON.parse(execFileSync(process.execPath,
      [join(dir, 'probe.mjs'), libPath], { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: join(dir, 'home'), ...env } }));

    const good = standIn(join(dir, 'explicit', 'libnccl-test.so'));
    const p = probe({ SGLD_NCCL_LIB: good });
    t.same(p.version.slice(0, 2), [Status.OK, 22703], '$SGLD_NCCL_LIB names the file: its version code comes back');
    t.same([p.id[0], p.id[1], p.id[2]], [Status.OK, [1, 2, 3, 4], 128], 'and its 128-byte unique id, every byte');

    const wrong = probe({ SGLD_NCCL_LIB: join(dir, 'nowhere.so'), SGLD_CUDA_LIB_DIRS: dirname(good) });
    t.equal(wrong.version[0], Status.LIBRARY, 'a $SGLD_NCCL_LIB that is not a file is an error');
    t.match(wrong.version[2], new RegExp(`^sgld_comm_version: NCCL: \\$SGLD_NCCL_LIB is ${join(dir, 'nowhere.so')}, which is not a file$`),
      '...with no silent fall back to another NCCL');

    const lacking = standIn(join(dir, 'lacking', 'libnccl.so.2'), 'NO_SEND');
    t.match(probe({ SGLD_NCCL_LIB: lacking }).version[2], /^sgld_comm_version: NCCL: .*libnccl\.so\.2 lacks ncclSend /,
      'a library without an entry point is refused by name');

    const failing = probe({ SGLD_NCCL_LIB: standIn(join(dir, 'failing', 'libnccl.so.2'), 'FAIL_ID') });
    t.equal(failing.id[0], Status.INVALID, 'ncclInvalidUsage is SGLD_ERR_INVALID');
    t.equal(failing.id[3], 'sgld_comm_unique_id: ncclGetUniqueId failed: NCCL error 5 (stand-in failure): stand-in detail',
      "the message is NCCL's error string and last error");

    const nothing = probe({});
    if (nothing.version[0] === Status.OK) {
      t.comment('an NCCL is on this machine\'s default path: the search cannot be isolated further');
      return;
    }
    t.equal(nothing.version[0], Status.LIBRARY);
    t.match(nothing.version[2], /^sgld_comm_version: NCCL: \$SGLD_NCCL_LIB \(unset\), then libnccl\.so\.2 \/ libnccl\.so not found/);
    t.match(nothing.version[2], /nvidia\/nccl\/lib,nvidia\/cu13\/lib/, 'names the wheel folders');
    t.match(nothing.version[2], /Set SGLD_NCCL_LIB to libnccl\.so\.2 or SGLD_CUDA_LIB_DIRS to its folder$/, 'says how to fix it');
    t.equal(nothing.id[0], Status.LIBRARY, 'and no unique id');

    const venv = join(dir, 'venv');
    const wheel = standIn(join(venv, 'lib', 'python3.12', 'site-packages', 'nvidia', 'nccl', 'lib', 'libnccl.so.2'));
    t.same(probe({ VIRTUAL_ENV: venv }).version.slice(0, 2), [Status.OK, 22703],
      `found in a virtual environment's nvidia-nccl wheel (${wheel.slice(dir.length)})`);
    t.match(probe({ SGLD_CUDA_LIB_DIRS: dirname(lacking) }).version[2], new RegExp(`NCCL: ${lacking} lacks ncclSend `),
      '$SGLD_CUDA_LIB_DIRS is searched too (the library it holds here lacks ncclSend)');
  });
