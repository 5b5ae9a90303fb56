#!/usr/bin/env node
// Builds libs/libsgld_cuda.so from native-build/cuda/*.{cu,cpp} with nvcc (`npm run build:cuda`).
// Objects are rebuilt only when a source or a header is newer than the object; translation units compile in
// parallel. The CUDA runtime is linked statically, so the library needs no libcudart.so at run time; cuBLASLt
// is opened with dlopen when the first GEMM runs. Exits non-zero when nvcc cannot be found.
//   --force        rebuild everything
//   NVCC=<path>    the compiler (default: nvcc on PATH, then /usr/local/cuda/bin/nvcc)
//   SGLD_CUDA_ARCH=<list of sm numbers, comma-separated>   default 90 (Hopper: H100/H200)
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = dirname(dirname(fileURLToPath(import.meta.url)));
const srcDir = join(root, 'native-build', 'cuda');
const incDir = join(root, 'native-build', 'include');
const objDir = join(root, 'native-build', 'obj', 'cuda');
const out = join(root, 'libs', 'libsgld_cuda.so');
const exportsMap = join(srcDir, 'exports.map');
const force = process.argv.includes('--force');

function findNvcc() {
  const candidates = [process.env.NVCC, 'nvcc', '/usr/local/cuda/bin/nvcc', '/usr/local/bin/nvcc'].filter(Boolean);
  for (const c of candidates) {
    try {
      execFileSync(c, ['--version'], { stdio: 'ignore' });
      return c;
    } catch {
      // not this one
    }
  }
  return null;
}

const nvcc = findNvcc();
if (!nvcc) {
  process.stderr.write('sgld: cannot build the CUDA library: nvcc was not found (looked for $NVCC, nvcc on PATH, '
    + '/usr/local/cuda/bin/nvcc, /usr/local/bin/nvcc). Install the CUDA toolkit or set NVCC.\n');
  process.exit(1);
}

// SASS for each listed architecture plus PTX for the newest, so newer GPUs can JIT it.
const archs = (process.env.SGLD_CUDA_ARCH || '90').split(',').map((s) => s.trim()).filter(Boolean);
const gencode = archs.flatMap((a) => ['-gencode', `arch=compute_${a},code=sm_${a}`]);
gencode.push('-gencode', `arch=compute_${archs[archs.length - 1]},code=compute_${archs[archs.length - 1]}`);
const flags = ['-O3', '-std=c++17', '-Xcompiler', '-fPIC',
  '-Xcompiler', '-Wall', `-I${incDir}`, `-I${srcDir}`, ...gencode];

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const files = readdirSync(srcDir).sort();
const headers = [...readdirSync(incDir).map((f) => join(incDir, f)),
  ...files.filter((f) => /\.(h|cuh)$/.test(f)).map((f) => join(srcDir, f))];
const newestHeader = Math.max(0, ...headers.map(mtime));
const sources = files.filter((f) => /\.(cu|cpp)$/.test(f));

mkdirSync(objDir, { recursive: true });
mkdirSync(dirname(out), { recursive: true });

const jobs = sources.map((f) => ({ src: join(srcDir, f), obj: join(objDir, f.replace(/\.(cu|cpp)$/, '.o')) }));
const stale = jobs.filter((j) => force || mtime(j.obj) < Math.max(mtime(j.src), newestHeader));

async function pool(items, width, fn) {
  const queue = [...items];
  await Promise.all(Array.from({ length: Math.max(1, width) }, async () => {
    for (let it = queue.shift(); it; it = queue.shift()) await fn(it);
  }));
}

const t0 = Date.now();
try {
  await pool(stale, availableParallelism(), async (j) => {
    const { stderr } = await run(nvcc, [...flags, '-c', j.src, '-o', j.obj], { maxBuffer: 1 << 24 });
    if (stderr.trim()) process.stderr.write(stderr);  // warnings
  });
  const newestInput = Math.max(mtime(exportsMap), ...jobs.map((j) => mtime(j.obj)));
  if (stale.length || force || mtime(out) < newestInput) {
    await run(nvcc, ['-shared', ...gencode, '-o', out, ...jobs.map((j) => j.obj),
      '-Xlinker', `--version-script=${exportsMap}`, '-ldl'], { maxBuffer: 1 << 24 });
  }
} catch (err) {
  process.stderr.write(`sgld: building the CUDA library failed\n${err.stderr || err.message}\n`);
  process.exit(1);
}
console.log(`sgld: ${out} ready (${stale.length} of ${jobs.length} objects rebuilt with ${nvcc}, `
  + `${((Date.now() - t0) / 1000).toFixed(1)} s)`);
