// sgld_layer_norm, sgld_rms_norm, sgld_group_norm and sgld_channel_norm on the CPU backend against float64
// references written here, on odd sizes, with and without affine parameters, on 1 and 2 threads.
//
// Tolerance: outputs are O(1) values; fp32 statistics and the final multiply-add leave them within a few ulps,
// so every check allows |got - want| <= 2e-6 * max(1, |want|) (measured at most 5e-7). Inputs offset by m add
// 1e-6 * |m|: the fp32 mean itself is off by up to half an ulp of m, which (x - mean) * rstd * w carries into
// every output (torch's fp32 kernels have the same; measured 3e-4 at m = 1000, 3e-5 at m = 100). A biased/
// unbiased variance mix-up, eps outside the sqrt (eps = 0.1 here), a wrong group or channel stride, or a
// one-pass fp32 variance that cancels (offset rows) all move outputs by 1e-2 or far more.
import t from 'tap';
import { NativeDType, Status, type Ptr } from '../../src/runtime/native.js';
import { NativeHarness, maxRelError, randomFloats } from '../helpers/native-harness.js';

const TOL = 2e-6;
/** Tolerance for inputs offset by m (see above). */
const offsetTol = (m: number): number => TOL + 1e-6 * Math.abs(m);

const h1 = new NativeHarness({ threads: 1 });
const h2 = new NativeHarness({ threads: 2 });
t.teardown(() => { h1.close(); h2.close(); });
const HARNESSES: [string, NativeHarness][] = [['1 thread', h1], ['2 threads', h2]];

/** Random values around `offset` (spread 2). */
const inputs = (n: number, seed: number, offset = 0): Float32Array => randomFloats(n, seed).map((v) => v + offset);

// ---- float64 references ----------------------------------------------------------------------------------------

function meanVar(x: Float32Array, start: number, count: number, stride = 1): [number, number] {
  let s = 0;
  for (let i = 0; i < count; i++) s += x[start + i * stride]!;
  const mean = s / count;
  let v = 0;
  for (let i = 0; i < count; i++) v += (x[start + i * stride]! - mean) ** 2;
  return [mean, v / count];
}

function refLayerNorm(x: Float32Array, rows: number, dim: number, w: Float32Array | null, b: Float32Array | null, eps: number) {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    const [mean, v] = meanVar(x, r * dim, dim);
    const rstd = 1 / Math.sqrt(v + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = (x[r * dim + i]! - mean) * rstd * (w ? w[i]! : 1) + (b ? b[i]! : 0);
  }
  return y;
}

function refRmsNorm(x: Float32Array, rows: number, dim: number, w: Float32Array | null, eps: number) {
  const y = new Float64Array(rows * dim);
  for (let r = 0; r < rows; r++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[r * dim + i]! ** 2;
    const inv = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[r * dim + i] = x[r * dim + i]! * inv * (w ? w[i]! : 1);
  }
  return y;
}

function refGroupNorm(x: Float32Array, n: number, c: number, s: number, g: number, w: Float32Array | null, b: Float32Array | null, eps: number) {
  const y = new Float64Array(n * c * s), cpg = c / g;
  for (let ni = 0; ni < n; ni++) {
    for (let gi = 0; gi < g; gi++) {
      const start = (ni * c + gi * cpg) * s;
      const [mean, v] = meanVar(x, start, cpg * s);
      const rstd = 1 / Math.sqrt(v + eps);
      for (let ci = gi * cpg; ci < (gi + 1) * cpg; ci++) {
        for (let i = 0; i < s; i++) {
          const k = (ni * c + ci) * s + i;
          y[k] = (x[k]! - mean) * rstd * (w ? w[ci]! : 1) + (b ? b[ci]! : 0);
        }
      }
    }
  }
  return y;
}

function refChannelNorm(x: Float32Array, outer: number, c: number, inner: number, gamma: Float32Array | null, beta: Float32Array | null, scale: number, eps: number) {
  const y = new Float64Array(outer * c * inner);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      let ss = 0;
      for (let ci = 0; ci < c; ci++) ss += x[(o * c + ci) * inner + i]! ** 2;
      const denom = Math.max(Math.sqrt(ss), eps);
      for (let ci = 0; ci < c; ci++) {
        const k = (o * c + ci) * inner + i;
        y[k] = x[k]! / denom * scale * (gamma ? gamma[ci]! : 1) + (beta ? beta[ci]! : 0);
      }
    }
  }
  return y;
}

const orNull = (h: NativeHarness, a: Float32Array | null): Ptr | null => (a ? h.upload(a) : null);

// ---- tests ---------------------------------------------------------------------------------------------------

t.test('layer_norm matches torch semantics (biased variance, eps inside the sqrt, optional affine)', async (t) => {
  const cases: [number, number, number, boolean, boolean, number][] = [
    // rows, dim, offset, weight, bias, eps
    [37, 7, 0, true, true, 0.1], [5, 1, 0, false, false, 1e-5], [9, 33, 1000, true, false, 1e-6],
    [3, 1537, -3, false, true, 1e-6], [300, 257, 0.5, true, true, 1e-6],
  ];
  for (const [label, h] of HARNESSES) {
    for (const [i, [rows, dim, offset, hasW, hasB, eps]] of cases.entries()) {
      const x = inputs(rows * dim, 10 + i, offset);
      const w = hasW ? randomFloats(dim, 20 + i, 2) : null, b = hasB ? randomFloats(dim, 30 + i) : null;
      const px = h.upload(x), py = h.alloc(rows * dim);
      h.check(h.lib.fns.sgld_layer_norm(h.ctx, NativeDType.F32, rows, dim, px, py, orNull(h, w), orNull(h, b), eps), 'sgld_layer_norm');
      const err = maxRelError(h.download(py, rows * dim), refLayerNorm(x, rows, dim, w, b, eps));
      t.ok(err <= offsetTol(offset), `[${rows}, ${dim}] offset ${offset} w=${hasW} b=${hasB} eps=${eps}, ${label}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('rms_norm is x * rsqrt(mean(x^2) + eps) * weight', async (t) => {
  const cases: [number, number, boolean, number][] = [[37, 7, true, 0.1], [4, 1, false, 1e-6], [11, 1536 + 13, true, 1e-6], [250, 129, false, 1e-5]];
  for (const [label, h] of HARNESSES) {
    for (const [i, [rows, dim, hasW, eps]] of cases.entries()) {
      const x = inputs(rows * dim, 40 + i), w = hasW ? randomFloats(dim, 50 + i, 2) : null;
      const px = h.upload(x), py = h.alloc(rows * dim);
      h.check(h.lib.fns.sgld_rms_norm(h.ctx, NativeDType.F32, rows, dim, px, py, orNull(h, w), eps), 'sgld_rms_norm');
      const err = maxRelError(h.download(py, rows * dim), refRmsNorm(x, rows, dim, w, eps));
      t.ok(err <= TOL, `[${rows}, ${dim}] w=${hasW} eps=${eps}, ${label}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('layer_norm and rms_norm may write in place (y == x)', async (t) => {
  const rows = 13, dim = 45, x = inputs(rows * dim, 60, 2);
  const px = h2.upload(x);
  h2.check(h2.lib.fns.sgld_layer_norm(h2.ctx, NativeDType.F32, rows, dim, px, px, null, null, 1e-5), 'sgld_layer_norm');
  const ln = h2.download(px, rows * dim);
  t.ok(maxRelError(ln, refLayerNorm(x, rows, dim, null, null, 1e-5)) <= offsetTol(2), 'layer_norm in place');
  h2.check(h2.lib.fns.sgld_rms_norm(h2.ctx, NativeDType.F32, rows, dim, px, px, null, 1e-5), 'sgld_rms_norm');
  t.ok(maxRelError(h2.download(px, rows * dim), refRmsNorm(ln, rows, dim, null, 1e-5)) <= TOL, 'rms_norm in place');
});

t.test('group_norm takes statistics per (n, group) over channels/groups x spatial values', async (t) => {
  const cases: [number, number, number, number, boolean, number][] = [
    // n, channels, spatial, groups, affine, offset
    [2, 12, 37, 3, true, 0], [2, 12, 37, 1, false, 5], [3, 12, 5, 12, true, 0], [1, 6, 1, 2, true, 0],
    [2, 32, 1001, 8, true, 100], [1, 4, 70001, 2, false, 0],
  ];
  for (const [label, h] of HARNESSES) {
    for (const [i, [n, c, s, g, affine, offset]] of cases.entries()) {
      const x = inputs(n * c * s, 70 + i, offset);
      const w = affine ? randomFloats(c, 80 + i, 2) : null, b = affine ? randomFloats(c, 90 + i) : null;
      const px = h.upload(x), py = h.alloc(x.length);
      h.check(h.lib.fns.sgld_group_norm(h.ctx, NativeDType.F32, n, c, s, g, px, py, orNull(h, w), orNull(h, b), 1e-6), 'sgld_group_norm');
      const err = maxRelError(h.download(py, x.length), refGroupNorm(x, n, c, s, g, w, b, 1e-6));
      t.ok(err <= offsetTol(offset), `n=${n} C=${c} S=${s} G=${g} affine=${affine} offset ${offset}, ${label}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('channel_norm is F.normalize over channels times scale * gamma plus beta (Wan VAE RMS_norm)', async (t) => {
  const cases: [number, number, number, boolean, boolean][] = [
    // outer, channels, inner, gamma, beta; inner 1 is channels-last, 700 spans two position blocks
    [2, 13, 5, true, true], [3, 13, 1, true, false], [2, 96, 700, true, false], [1, 7, 33, false, false], [5, 384, 1, true, true],
    [2, 16, 9001, true, true],
  ];
  for (const [label, h] of HARNESSES) {
    for (const [i, [outer, c, inner, hasG, hasB]] of cases.entries()) {
      const x = inputs(outer * c * inner, 100 + i);
      const g = hasG ? randomFloats(c, 110 + i, 2) : null, b = hasB ? randomFloats(c, 120 + i) : null;
      const scale = Math.sqrt(c);  // Wan's RMS_norm: scale = dim ** 0.5
      const px = h.upload(x), py = h.alloc(x.length);
      h.check(h.lib.fns.sgld_channel_norm(h.ctx, NativeDType.F32, outer, c, inner, px, py, orNull(h, g), orNull(h, b), scale, 1e-12), 'sgld_channel_norm');
      const err = maxRelError(h.download(py, x.length), refChannelNorm(x, outer, c, inner, g, b, Math.fround(scale), 1e-12));
      t.ok(err <= TOL, `[${outer}, ${c}, ${inner}] gamma=${hasG} beta=${hasB}, ${label}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('channel_norm clamps the norm at eps: an all-zero vector gives beta, not NaN', async (t) => {
  const outer = 1, c = 5, inner = 3;
  const x = inputs(c * inner, 130);
  for (let ci = 0; ci < c; ci++) x[ci * inner + 1] = 0;  // position 1 is the zero vector
  const beta = randomFloats(c, 131);
  const px = h1.upload(x), py = h1.alloc(x.length);
  h1.check(h1.lib.fns.sgld_channel_norm(h1.ctx, NativeDType.F32, outer, c, inner, px, py, null, h1.upload(beta), 2, 1e-12), 'sgld_channel_norm');
  const y = h1.download(py, x.length);
  t.same(Array.from({ length: c }, (_, ci) => y[ci * inner + 1]), Array.from(beta), 'zero vector -> beta exactly');
  t.ok(maxRelError(y, refChannelNorm(x, outer, c, inner, null, beta, 2, 1e-12)) <= TOL, 'other positions normalised');
});

t.test('norms reject bad arguments with a message naming op and argument', async (t) => {
  const p = h1.alloc(64), f = h1.lib.fns;
  t.equal(f.sgld_layer_norm(h1.ctx, NativeDType.F32, -1, 4, p, p, null, null, 1e-5), Status.INVALID, 'negative rows');
  t.match(f.sgld_last_error(), /sgld_layer_norm: rows/);
  t.equal(f.sgld_rms_norm(h1.ctx, NativeDType.F32, 2, 4, 0n, p, null, 1e-5), Status.INVALID, 'null x');
  t.match(f.sgld_last_error(), /sgld_rms_norm: x is null/);
  t.equal(f.sgld_group_norm(h1.ctx, NativeDType.F32, 1, 6, 4, 4, p, p, null, null, 1e-5), Status.INVALID, 'channels not divisible by groups');
  t.match(f.sgld_last_error(), /sgld_group_norm: 6 channels do not split into 4 groups/);
  t.equal(f.sgld_group_norm(h1.ctx, NativeDType.F32, 1, 6, 4, 0, p, p, null, null, 1e-5), Status.INVALID, 'zero groups');
  t.equal(f.sgld_channel_norm(h1.ctx, NativeDType.BF16, 1, 4, 4, p, p, null, null, 1, 1e-12), Status.UNSUPPORTED, 'BF16');
  t.match(f.sgld_last_error(), /sgld_channel_norm/);
  t.equal(f.sgld_channel_norm(h1.ctx, NativeDType.F32, 1, 4, -2, p, p, null, null, 1, 1e-12), Status.INVALID, 'negative inner');
  t.match(f.sgld_last_error(), /inner/);
});
