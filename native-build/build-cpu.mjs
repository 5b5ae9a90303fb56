#!/usr/bin/env node
// Builds libs/libsgld_cpu.so from native-build/cpu/*.cpp with the system C++ compiler alone.
// Runs from `npm install`; objects are rebuilt only when a source or header is newer than its object,
// and translation units compile in parallel (one job per core).
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
const root = dirname(dirname(fileURLToPath(import.meta.url)));
const srcDir = join(root, 'native-build', 'cpu');
const incDir = join(root, 'native-build', 'include');
const objDir = join(root, 'native-build', 'obj', 'cpu');
const out = join(root, 'libs', 'libsgld_cpu.so');
const force = process.argv.includes('--force');
const cxx = process.env.CXX || 'g++';
// -march=native: the library is built on the machine that runs it (npm install); SGLD_CPU_ARCH overrides it
// for a portable build.
const arch = process.env.SGLD_CPU_ARCH || 'native';
const flags = ['-O3', `-march=${arch}`, '-std=c++17', '-fPIC', '-pthread', '-fno-math-errno', '-ffp-contract=fast',
  '-Wall', '-Wextra', '-Wno-unused-parameter', `-I${incDir}`, `-I${srcDir}`];

const mtime = (p) => (existsSync(p) ? statSync(p).mtimeMs : 0);
const headers = [...readdirSync(incDir).map((f) => join(incDir, f)),
  ...readdirSync(srcDir).filter((f) => f.endsWith('.h')).map((f) => join(srcDir, f))];
const newestHeader = Math.max(0, ...headers.map(mtime));
const sources = readdirSync(srcDir).filter((f) => f.endsWith('.cpp')).sort();

mkdirSync(objDir, { recursive: true });
mkdirSync(dirname(out), { recursive: true });

const jobs = sources.map((f) => ({ src: join(srcDir, f), obj: join(objDir, f.replace(/\.cpp$/, '.o')) }));
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
    await run(cxx, [...flags, '-c', j.src, '-o', j.obj], { maxBuffer: 1 << 24 });
  });
  if (stale.length || force || mtime(out) < Math.max(...jobs.map((j) => mtime(j.obj)))) {
    await run(cxx, ['-shared', '-pthread', '-o', out, ...jobs.map((j) => j.obj)], { maxBuffer: 1 << 24 });
  }
} catch (err) {
  process.stderr.write(`sgld: building the CPU library failed\n${err.stderr || err.message}\n`);
  process.exit(1);
}
console.log(`sgld: ${out} ready (${stale.length} of ${jobs.length} objects rebuilt, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
