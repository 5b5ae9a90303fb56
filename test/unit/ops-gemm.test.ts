// sgld_gemm on the CPU backend against a float64 reference written here in plain TS: every transpose
// combination, odd sizes (edge tiles, several k blocks), alpha/beta, the bias + activation epilogue, batches
// with strides, padded leading dimensions, threading and argument errors.
//
// Tolerance: inputs are uniform in [-1, 1], so an fp32 dot product of length k is off by at most a few ulps
// per term; every check allows |got - want| <= 1e-7 * (k + 16) * (1 + |want|) (1.2e-5 at k = 100; measured
// errors are 4-20x smaller), while any wrong index, transpose or epilogue step shows up as an O(1) error.
import t from 'tap';
import { Activation, NativeDType, Status } from '../../src/runtime/native.js';
import { NativeHarness, randomFloats } from '../helpers/native-harness.js';
import { activate64 } from '../helpers/reference-activations.js';

// ---- float64 reference -----------------------------------------------------------------------------------------

interface GemmCase {
  m: number; n: number; k: number;
  transA?: boolean; transB?: boolean;
  alpha?: number; beta?: number;
  lda?: number; ldb?: number; ldc?: number;
  bias?: boolean; activation?: number;
  batch?: number; strideA?: number; strideB?: number; strideC?: number;
}

interface Resolved extends Required<GemmCase> {}

function resolve(c: GemmCase): Resolved {
  const transA = c.transA ?? false, transB = c.transB ?? false;
  const lda = c.lda ?? (transA ? c.m : c.k), ldb = c.ldb ?? (transB ? c.k : c.n), ldc = c.ldc ?? c.n;
  const aRows = transA ? c.k : c.m, bRows = transB ? c.n : c.k;
  return {
    ...c, transA, transB, alpha: c.alpha ?? 1, beta: c.beta ?? 0, lda, ldb, ldc, bias: c.bias ?? false,
    activation: c.activation ?? Activation.NONE, batch: c.batch ?? 1,
    strideA: c.strideA ?? aRows * lda, strideB: c.strideB ?? bRows * ldb, strideC: c.strideC ?? c.m * ldc,
  };
}

/** C_b = act(alpha op(A_b) op(B_b) + beta C_b + bias) in float64, written into a copy of c0. */
function referenceGemm(r: Resolved, a: Float32Array, b: Float32Array, c0: Float32Array, bias: Float32Array | null): Float64Array {
  const c = Float64Array.from(c0);
  for (let bt = 0; bt < r.batch; bt++) {
    const ao = bt * r.strideA, bo = bt * r.strideB, co = bt * r.strideC;
    for (let i = 0; i < r.m; i++) {
      for (let j = 0; j < r.n; j++) {
        let s = 0;
        for (let p = 0; p < r.k; p++) {
          const av = r.transA ? a[ao + p * r.lda + i]! : a[ao + i * r.lda + p]!;
          const bv = r.transB ? b[bo + j * r.ldb + p]! : b[bo + p * r.ldb + j]!;
          s += av * bv;
        }
        let v = r.alpha * s + (r.beta === 0 ? 0 : r.beta * c0[co + i * r.ldc + j]!) + (bias ? bias[j]! : 0);
        c[co + i * r.ldc + j] = activate64(v, r.activation);
      }
    }
  }
  return c;
}

/** Largest |got - want| / (1 + |want|) over all elements (NaN anywhere gives NaN). */
function worstError(got: Float32Array, want: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (Number.isNaN(e)) return NaN;
    if (e > worst) worst = e;
  }
  return worst;
}

const tolerance = (k: number): number => 1e-7 * (k + 16);

/** Runs one case through sgld_gemm and returns the native result, the float64 reference and the tolerance. */
function runCase(h: NativeHarness, c: GemmCase, seed: number, cFill?: number) {
  const r = resolve(c);
  const aLen = (r.batch - 1) * r.strideA + (r.transA ? r.k : r.m) * r.lda;
  const bLen = (r.batch - 1) * r.strideB + (r.transB ? r.n : r.k) * r.ldb;
  const cLen = (r.batch - 1) * r.strideC + r.m * r.ldc;
  const a = randomFloats(aLen, seed), b = randomFloats(bLen, seed + 1);
  const c0 = cFill === undefined ? randomFloats(cLen, seed + 2) : new Float32Array(cLen).fill(cFill);
  const bias = r.bias ? randomFloats(r.n, seed + 3) : null;
  const pa = h.upload(a), pb = h.upload(b), pc = h.upload(c0), pbias = bias ? h.upload(bias) : null;
  h.check(h.lib.fns.sgld_gemm(h.ctx, NativeDType.F32, r.transA ? 1 : 0, r.transB ? 1 : 0, r.m, r.n, r.k, r.alpha,
    pa, r.lda, r.strideA, pb, r.ldb, r.strideB, r.beta, pc, r.ldc, r.strideC, r.batch, pbias, r.activation), 'sgld_gemm');
  const got = h.download(pc, cLen);
  for (const p of [pa, pb, pc]) h.free(p);
  if (pbias) h.free(pbias);
  const want = referenceGemm(r, a, b, c0, bias);
  return { got, want, tol: tolerance(r.k), c0 };
}

const h1 = new NativeHarness({ threads: 1 });
const h2 = new NativeHarness({ threads: 2 });
t.teardown(() => { h1.close(); h2.close(); });

const ODD_SIZES: [number, number, number][] = [
  [1, 1, 1], [7, 13, 5], [67, 33, 129], [6, 16, 256], [5, 17, 3], [23, 8, 300], [61, 47, 1100],
];

t.test('every transpose combination matches the fp64 reference on odd sizes (tol 1e-7*(k+16))', async (t) => {
  let seed = 10;
  for (const [m, n, k] of ODD_SIZES) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const { got, want, tol } = runCase(h1, { m, n, k, transA, transB, alpha: 1 }, seed += 7);
        const err = worstError(got, want);
        t.ok(err <= tol, `${m}x${n}x${k} ta=${+transA} tb=${+transB}: error ${err.toExponential(2)} <= ${tol.toExponential(1)}`);
      }
    }
  }
});

t.test('alpha scales the product and beta blends the previous C', async (t) => {
  for (const [m, n, k] of [[9, 21, 40], [31, 35, 700]] as const) {
    for (const [alpha, beta] of [[2.5, 0.5], [-0.75, 1], [0.5, -2]] as const) {
      const { got, want, tol } = runCase(h1, { m, n, k, alpha, beta, transB: true }, 100 + m + k);
      const err = worstError(got, want);
      t.ok(err <= tol, `${m}x${n}x${k} alpha=${alpha} beta=${beta}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('with beta = 0 the previous contents of C are never read (NaN-filled C gives finite output)', async (t) => {
  for (const [m, n, k] of [[7, 13, 5], [40, 50, 700]] as const) {
    const { got, want, tol } = runCase(h1, { m, n, k, beta: 0 }, 200 + k, NaN);
    t.ok(got.every(Number.isFinite), `${m}x${n}x${k}: all outputs finite`);
    t.ok(worstError(got, want) <= tol, `${m}x${n}x${k}: matches the reference`);
  }
});

const ACTIVATIONS: [string, number][] = [
  ['none', Activation.NONE], ['gelu-tanh', Activation.GELU_TANH], ['gelu-erf', Activation.GELU_ERF],
  ['silu', Activation.SILU], ['relu', Activation.RELU],
];

t.test('bias is added before each activation, once, after the last k block', async (t) => {
  for (const [name, activation] of ACTIVATIONS) {
    // k = 700 spans two k blocks (KC = 512); 19 x 37 has edge tiles on both sides; alpha 3 pushes values to
    // +-25 so the activations' tails are exercised too.
    for (const beta of [0, 0.5]) {
      const { got, want, tol } = runCase(h1, { m: 19, n: 37, k: 700, alpha: 3, beta, bias: true, activation, transB: true }, 300 + activation);
      const err = worstError(got, want);
      t.ok(err <= tol, `${name} beta=${beta}: error ${err.toExponential(2)} <= ${tol.toExponential(1)}`);
    }
  }
});

t.test('activations alone (k = 0: C = act(beta C + bias)) follow the fp64 formulas to 2e-6', async (t) => {
  for (const [name, activation] of ACTIVATIONS) {
    const { got, want } = runCase(h1, { m: 41, n: 29, k: 0, beta: 6, bias: true, activation }, 400 + activation);
    const err = worstError(got, want);
    t.ok(err <= 2e-6, `${name}: error ${err.toExponential(2)}`);
  }
});

t.test('a batch of GEMMs follows each operand stride, including stride 0 (shared weights)', async (t) => {
  const cases: GemmCase[] = [
    { m: 13, n: 22, k: 17, batch: 3, strideA: 13 * 17 + 5, strideB: 17 * 22 + 3, strideC: 13 * 22 + 11 },
    { m: 13, n: 22, k: 17, batch: 4, transB: true, strideB: 0, bias: true, activation: Activation.SILU },
    { m: 64, n: 64, k: 64, batch: 5, transA: true, beta: 0.5 },
  ];
  for (const [i, c] of cases.entries()) {
    for (const h of [h1, h2]) {
      const { got, want, tol } = runCase(h, c, 500 + i);
      const err = worstError(got, want);
      t.ok(err <= tol, `case ${i} (batch ${c.batch}) on ${h.device.lib.backend} x${h === h1 ? 1 : 2}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('leading dimensions wider than the rows are honoured and padding columns of C are left alone', async (t) => {
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      const c: GemmCase = { m: 11, n: 19, k: 23, transA, transB, beta: 0.25, lda: 40, ldb: 41, ldc: 30 };
      const { got, want, tol, c0 } = runCase(h1, c, 600 + (+transA) * 2 + (+transB));
      t.ok(worstError(got, want) <= tol, `ta=${+transA} tb=${+transB}: values match`);
      let padIntact = true;
      for (let i = 0; i < 11; i++) for (let j = 19; j < 30; j++) if (got[i * 30 + j] !== c0[i * 30 + j]) padIntact = false;
      t.ok(padIntact, `ta=${+transA} tb=${+transB}: C[:, n:ldc] untouched`);
    }
  }
});

t.test('two threads give the same bits as one thread, and both match the reference', async (t) => {
  // Large enough to be split across threads (more than 2^18 multiply-adds), odd so each part has edges.
  for (const [m, n, k] of [[130, 150, 70], [7, 700, 90], [500, 9, 80], [131, 67, 600]] as const) {
    const one = runCase(h1, { m, n, k, transB: true, bias: true, activation: Activation.GELU_TANH }, 700 + m);
    const two = runCase(h2, { m, n, k, transB: true, bias: true, activation: Activation.GELU_TANH }, 700 + m);
    t.ok(worstError(two.got, two.want) <= two.tol, `${m}x${n}x${k} on 2 threads matches the reference`);
    t.same(Array.from(two.got), Array.from(one.got), `${m}x${n}x${k}: 1 and 2 threads agree bit for bit`);
  }
});

t.test('products of at most 4 rows (streamed, unpacked B) match in every layout and epilogue', async (t) => {
  let seed = 900;
  for (const m of [1, 2, 3, 4]) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const c: GemmCase = { m, n: 75, k: 203, transA, transB, alpha: 1.5, beta: 0.5, bias: true, activation: Activation.GELU_ERF };
        const { got, want, tol } = runCase(h1, c, seed += 3);
        const err = worstError(got, want);
        t.ok(err <= tol, `m=${m} ta=${+transA} tb=${+transB}: error ${err.toExponential(2)}`);
      }
    }
  }
  // Split across threads by columns (n * k above the parallel threshold).
  for (const transB of [false, true]) {
    const c: GemmCase = { m: 3, n: 1000, k: 300, transB, lda: 310, bias: true, activation: Activation.SILU };
    const one = runCase(h1, c, 950), two = runCase(h2, c, 950);
    t.ok(worstError(two.got, two.want) <= two.tol, `3 x 1000 x 300 tb=${+transB} on 2 threads matches`);
    t.same(Array.from(two.got), Array.from(one.got), `3 x 1000 x 300 tb=${+transB}: 1 and 2 threads agree bit for bit`);
  }
});

t.test('a 1024 x 1024 x 1024 product matches on sampled rows (multi-block in every dimension)', async (t) => {
  const m = 1024, n = 1024, k = 1024;
  const a = randomFloats(m * k, 801), b = randomFloats(k * n, 802);
  const pa = h2.upload(a), pb = h2.upload(b), pc = h2.alloc(m * n);
  h2.check(h2.lib.fns.sgld_gemm(h2.ctx, NativeDType.F32, 0, 1, m, n, k, 1, pa, k, 0, pb, k, 0, 0, pc, n, 0, 1, null, 0), 'sgld_gemm');
  const got = h2.download(pc, m * n);
  let worst = 0;
  for (const i of [0, 1, 5, 143, 144, 511, 512, 1000, 1023]) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let p = 0; p < k; p++) s += a[i * k + p]! * b[j * k + p]!;
      worst = Math.max(worst, Math.abs(got[i * n + j]! - s) / (1 + Math.abs(s)));
    }
  }
  t.ok(worst <= tolerance(k), `error ${worst.toExponential(2)} <= ${tolerance(k).toExponential(1)}`);
});

t.test('bad arguments are errors with a message, not crashes', async (t) => {
  const p = h1.alloc(64);
  const call = (dtype: number, m: number, lda: number) =>
    h1.lib.fns.sgld_gemm(h1.ctx, dtype, 0, 0, m, 4, 4, 1, p, lda, 0, p, 4, 0, 0, p, 4, 0, 1, null, 0);
  t.equal(call(NativeDType.F16, 4, 4), Status.UNSUPPORTED, 'F16 storage is unsupported on the CPU backend');
  t.match(h1.lib.fns.sgld_last_error(), /F32/, 'the message names the supported dtype');
  t.equal(call(NativeDType.F32, -1, 4), Status.INVALID, 'negative m is invalid');
  t.equal(call(NativeDType.F32, 4, 3), Status.INVALID, 'lda smaller than the row is invalid');
  t.equal(call(NativeDType.F32, 0, 4), Status.OK, 'an empty product is a no-op');
});
