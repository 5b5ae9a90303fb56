// Op throughput of the CPU backend: SGEMM (beside OpenBLAS when libopenblas is installed), flash attention and
// the Wan VAE decoder's conv3d shapes, each with 1 and 2 threads. Run: `npm run bench:ops` (about 50 s on 2 idle
// cores).
// Each figure is the best of a few timed calls after one warm-up call.
import koffi from 'koffi';
import { availableParallelism, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { Device } from '../src/runtime/device.js';
import { NativeDType, type Ptr } from '../src/runtime/native.js';

const THREADS = [1, 2];
const GEMM_SHAPES: GemmShape[] = [[1024, 1024, 1024], [4096, 1536, 1536], [4096, 8960, 1536]];

// Attention, [B, S, H, D] layout, 4 * q_len * kv_len * head_dim * heads FLOP: seq 4096 at head_dim 128, and the
// mid-size Wan transformer's self-attention (1280 tokens, 12 heads of 64) and text cross-attention (128 keys).
const ATTENTION_SHAPES = [
  { label: 'seq 4096, 12 heads, dim 128', S: 4096, L: 4096, H: 12, D: 128 },
  { label: 'Wan self: seq 1280, 12 heads, dim 64', S: 1280, L: 1280, H: 12, D: 64 },
  { label: 'Wan cross: 1280 x 128 keys, 12 heads, dim 64', S: 1280, L: 128, H: 12, D: 64 },
];

// conv3d as in Wan's VAE decoder (sgld_conv3d picks the path: Winograd for stride-1 3x3, implicit GEMM for the
// 2x2 upsampling phases). GFLOP/s count every tap, taps in the causal time padding included, as torch does.
interface ConvShape { label: string; cin: number; t: number; h: number; w: number; cout: number; kernel: [number, number, number]; pads: number[] }
const CONV_SHAPES: ConvShape[] = [
  { label: '3x3x3 causal', cin: 96, t: 4, h: 64, w: 64, cout: 96, kernel: [3, 3, 3], pads: [2, 0, 1, 1, 1, 1] },
  { label: '3x3x3, 2 cached frames (Winograd)', cin: 96, t: 6, h: 256, w: 256, cout: 96, kernel: [3, 3, 3], pads: [0, 0, 1, 1, 1, 1] },
  { label: '3x3x3, 2 cached frames (Winograd)', cin: 384, t: 4, h: 64, w: 64, cout: 384, kernel: [3, 3, 3], pads: [0, 0, 1, 1, 1, 1] },
  { label: '1x2x2 upsampling phase (implicit GEMM)', cin: 192, t: 4, h: 128, w: 128, cout: 96, kernel: [1, 2, 2], pads: [0, 0, 1, 0, 1, 0] },
];

/** Best wall time (seconds) of up to `reps` calls after one warm-up, stopping once `budget` seconds are spent. */
function bestTime(fn: () => void, reps = 3, budget = 2): number {
  fn();
  let best = Infinity, spent = 0;
  for (let r = 0; r < reps && spent < budget; r++) {
    const t0 = performance.now();
    fn();
    const s = (performance.now() - t0) / 1000;
    best = Math.min(best, s);
    spent += s;
  }
  return best;
}

function fillRandom(device: Device, ptr: Ptr, count: number, seed: number): void {
  const host = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; host[i] = s / 2 ** 31 - 1; }
  device.upload(ptr, host);
}

// ---- OpenBLAS through koffi (benchmark only; never a dependency) ----------------------------------------------
interface OpenBlas {
  sgemm(order: number, ta: number, tb: number, m: number, n: number, k: number, alpha: number, a: Ptr, lda: number,
    b: Ptr, ldb: number, beta: number, c: Ptr, ldc: number): void;
  setThreads(n: number): void;
}

function loadOpenBlas(): OpenBlas | null {
  try {
    const lib = koffi.load('libopenblas.so.0');
    const sgemm = lib.func('void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const void *a, int lda, const void *b, int ldb, float beta, void *c, int ldc)');
    const setThreads = lib.func('void openblas_set_num_threads(int n)');
    return { sgemm: sgemm as OpenBlas['sgemm'], setThreads: setThreads as OpenBlas['setThreads'] };
  } catch {
    return null;
  }
}
const CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112;

// ---- table -----------------------------------------------------------------------------------------------------
const rows: string[][] = [['op', 'shape', 'threads', 'sgld GFLOP/s', 'OpenBLAS GFLOP/s']];
const fmt = (gflops: number): string => gflops.toFixed(1);
function printTable(): void {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const [i, r] of rows.entries()) {
    console.log(r.map((cell, c) => (c >= 2 ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  '));
    if (i === 0) console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  }
}

const blas = loadOpenBlas();
const loadBefore = loadavg()[0]!;  // other work on the machine, measured before ours starts
// One context per thread count, created before its uploads (not resized between calls).
const results: { key: number; cells: string[] }[] = [];
const shapesSeen: string[] = GEMM_SHAPES.map(([m, n, k]) => `${m} x ${n} x ${k}`);  // GEMM rows first
for (const threads of THREADS) {
  const device = new Device({ backend: 'cpu', threads });
  // Ours first, OpenBLAS last: its idle threads keep spinning for a while after each call.
  const ours = GEMM_SHAPES.map((shape) => gemmRate(device, shape, (a, b, c, [m, n, k]) => device.lib.check(
    device.lib.fns.sgld_gemm(device.ctx, NativeDType.F32, 0, 1, m, n, k, 1, a, k, 0, b, k, 0, 0, c, n, 0, 1, null, 0), 'sgld_gemm')));
  benchAttention(device, threads);
  benchConv3d(device, threads);
  blas?.setThreads(threads);
  const theirs = GEMM_SHAPES.map((shape) => (blas ? fmt(gemmRate(device, shape, (a, b, c, [m, n, k]) =>
    blas.sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_TRANS, m, n, k, 1, a, k, b, k, 0, c, n))) : 'not installed'));
  GEMM_SHAPES.forEach(([m, n, k], i) => record('sgemm A.B^T (M x N x K)', `${m} x ${n} x ${k}`, threads, fmt(ours[i]!), theirs[i]!));
  device.close();
}
rows.push(...results.sort((x, y) => x.key - y.key).map((r) => r.cells));

/** Adds a table row; rows print grouped by op, then shape (in first-seen order), then thread count. */
function record(label: string, shape: string, threads: number, ours: string, theirs: string): void {
  if (!shapesSeen.includes(shape)) shapesSeen.push(shape);
  results.push({ key: shapesSeen.indexOf(shape) * 100 + threads, cells: [label, shape, `${threads}`, ours, theirs] });
}

// SGEMM C[M,N] = A[M,K] . B[N,K]^T: the Linear-layer layout (trans_b = 1), as the models call it.
type GemmShape = readonly [number, number, number];
/** GFLOP/s of `run` on fresh random operands of one shape. */
function gemmRate(device: Device, shape: GemmShape, run: (a: Ptr, b: Ptr, c: Ptr, shape: GemmShape) => void): number {
  const [m, n, k] = shape;
  const a = device.malloc(m * k * 4), b = device.malloc(n * k * 4), c = device.malloc(m * n * 4);
  fillRandom(device, a, m * k, 1);
  fillRandom(device, b, n * k, 2);
  const seconds = bestTime(() => run(a, b, c, shape));
  for (const p of [a, b, c]) device.free(p);
  return (2 * m * n * k) / seconds / 1e9;
}

function benchAttention(device: Device, threads: number): void {
  const { fns } = device.lib;
  for (const { label, S, L, H, D } of ATTENTION_SHAPES) {
    const q = device.malloc(S * H * D * 4), k = device.malloc(L * H * D * 4), v = device.malloc(L * H * D * 4);
    const out = device.malloc(S * H * D * 4), lse = device.malloc(H * S * 4);
    fillRandom(device, q, S * H * D, 10);
    fillRandom(device, k, L * H * D, 11);
    fillRandom(device, v, L * H * D, 12);
    const qs = BigInt64Array.from([S * H * D, H * D, D].map(BigInt)), ks = BigInt64Array.from([L * H * D, H * D, D].map(BigInt));
    const flops = 4 * S * L * D * H;
    const s = bestTime(() => device.lib.check(fns.sgld_attention(device.ctx, NativeDType.F32, 1, H, S, L, D, q, qs, k,
      ks, v, ks, out, qs, lse, 1 / Math.sqrt(D), null, null, null, 0), 'sgld_attention'), S === 4096 ? 3 : 8);
    record('attention', label, threads, fmt(flops / s / 1e9), '');
    for (const p of [q, k, v, out, lse]) device.free(p);
  }
}

function benchConv3d(device: Device, threads: number): void {
  const { fns } = device.lib;
  for (const [i, c] of CONV_SHAPES.entries()) {
    const [kt, kh, kw] = c.kernel;
    const to = c.t + c.pads[0]! + c.pads[1]! - kt + 1, ho = c.h + c.pads[2]! + c.pads[3]! - kh + 1, wo = c.w + c.pads[4]! + c.pads[5]! - kw + 1;
    const taps = kt * kh * kw;
    const x = device.malloc(c.cin * c.t * c.h * c.w * 4), wt = device.malloc(c.cout * c.cin * taps * 4);
    const bias = device.malloc(c.cout * 4), y = device.malloc(c.cout * to * ho * wo * 4);
    fillRandom(device, x, c.cin * c.t * c.h * c.w, 20 + 3 * i);
    fillRandom(device, wt, c.cout * c.cin * taps, 21 + 3 * i);
    fillRandom(device, bias, c.cout, 22 + 3 * i);
    const strides = Int32Array.from([1, 1, 1]), pads = Int32Array.from(c.pads);
    const flops = 2 * c.cout * c.cin * taps * to * ho * wo;
    const call = () => fns.sgld_conv3d(device.ctx, NativeDType.F32, 1, c.cin, c.t, c.h, c.w, x, c.cout, kt, kh, kw, wt, bias, strides, pads, y);
    let cell: string;
    if (call() !== 0) cell = `n/a (${fns.sgld_last_error() || 'error'})`;
    else cell = fmt(flops / bestTime(() => { call(); }) / 1e9);
    record('conv3d', `[1,${c.cin},${c.t},${c.h},${c.w}] -> ${c.cout}, ${c.label}`, threads, cell, '');
    for (const p of [x, wt, bias, y]) device.free(p);
  }
}

printTable();
if (loadBefore > 0.5)
  console.log(`note: load average ${loadBefore.toFixed(1)} on ${availableParallelism()} cores before starting: other processes share the cores, so these figures are low`);
if (!blas) console.log('OpenBLAS: not installed (apt-get install libopenblas-dev to compare)');
else console.log(`OpenBLAS: libopenblas.so.0, OPENBLAS_CORETYPE=${process.env.OPENBLAS_CORETYPE ?? '(unset)'}`);
