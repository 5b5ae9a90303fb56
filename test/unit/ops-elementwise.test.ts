// Elementwise ops and RoPE on the CPU backend against float64 references written here: sgld_binary (broadcast
// strides, aliasing, 6-D, strided output), sgld_activation, sgld_affine, sgld_gated_activation (separate and
// fused halves), sgld_softmax, sgld_modulate, sgld_gated_residual and sgld_rope (interleaved and rotate-half,
// strided layouts, in place), on 1 and 2 threads, with sizes that are not multiples of the vector width.
//
// Tolerances, as max |got - want| / max(1, |want|):
//   binary: 0. fp32 +,-,*,/ are correctly rounded, and so is fround() of the float64 result of two floats.
//   activations: 2e-6 (the vector exp/erfc approximations are within a few ulp; measured <= 1.6e-7).
//   affine, modulate, gated residual, rope: 1e-6 (one or two roundings, fused or not; measured <= 1.6e-7).
//   softmax: 1e-6 (probabilities <= 1; measured <= 1.6e-7).
// A wrong stride, broadcast, half, pair layout or formula gives errors of 1e-2 or more.
import t from 'tap';
import { Activation, BinaryOp, NativeDType, Status, type Ptr } from '../../src/runtime/native.js';
import { NativeHarness, i64, maxRelError, randomFloats } from '../helpers/native-harness.js';
import { activate64 } from '../helpers/reference-activations.js';

const ACT_TOL = 2e-6;
const TOL = 1e-6;

const h1 = new NativeHarness({ threads: 1 });
const h2 = new NativeHarness({ threads: 2 });
t.teardown(() => { h1.close(); h2.close(); });
const HARNESSES: [string, NativeHarness][] = [['1 thread', h1], ['2 threads', h2]];

const ACTIVATIONS: [string, number][] = [
  ['none', Activation.NONE], ['gelu-tanh', Activation.GELU_TANH], ['gelu-erf', Activation.GELU_ERF],
  ['silu', Activation.SILU], ['relu', Activation.RELU],
];

/** Values spanning the activations' interesting ranges: mostly [-6, 6], some tails out to +-100, exact zeros. */
function activationInputs(n: number, seed: number): Float32Array {
  const x = randomFloats(n, seed, 6);
  const tails = randomFloats(n, seed + 1, 100);
  for (let i = 0; i < n; i += 7) x[i] = tails[i]!;
  for (let i = 3; i < n; i += 101) x[i] = 0;
  return x;
}

// ---- binary -----------------------------------------------------------------------------------------------------

interface BinaryCase {
  name: string; shape: number[];
  a: { len: number; st: number[] }; b: { len: number; st: number[] }; y: { len: number; st: number[] };
  alias?: 'a' | 'b';
}

const dense = (shape: number[]): number[] => {
  const st = new Array(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1]!;
  return st;
};
const numel = (shape: number[]): number => shape.reduce((p, s) => p * s, 1);
const full = (shape: number[]) => ({ len: numel(shape), st: dense(shape) });

const BINARY_CASES: BinaryCase[] = [
  { name: 'same shape [1001]', shape: [1001], a: full([1001]), b: full([1001]), y: full([1001]) },
  { name: '[37,45] OP [45] (row broadcast)', shape: [37, 45], a: full([37, 45]), b: { len: 45, st: [0, 1] }, y: full([37, 45]) },
  { name: '[37,45] OP [37,1] (column broadcast)', shape: [37, 45], a: full([37, 45]), b: { len: 37, st: [1, 0] }, y: full([37, 45]) },
  { name: 'scalar OP [7,9] (a all stride 0)', shape: [7, 9], a: { len: 1, st: [0, 0] }, b: full([7, 9]), y: full([7, 9]) },
  {
    name: '6-D [2,3,1,5,4,3] with b [1,3,1,1,4,1]', shape: [2, 3, 1, 5, 4, 3], a: full([2, 3, 1, 5, 4, 3]),
    b: { len: 12, st: [0, 4, 0, 0, 1, 0] }, y: full([2, 3, 1, 5, 4, 3]),
  },
  { name: 'transposed output: y[j,i] = a[i,j] OP b[i,j], [33, 17]', shape: [33, 17], a: full([33, 17]), b: full([33, 17]), y: { len: 33 * 17, st: [1, 33] } },
  { name: 'in place y == a: [300,257] OP= [257]', shape: [300, 257], a: full([300, 257]), b: { len: 257, st: [0, 1] }, y: full([300, 257]), alias: 'a' },
  { name: 'in place y == b: [41, 43]', shape: [41, 43], a: { len: 43, st: [0, 1] }, b: full([41, 43]), y: full([41, 43]), alias: 'b' },
  { name: 'one long row of 100003', shape: [100003], a: full([100003]), b: full([100003]), y: full([100003]) },
  { name: 'ndim 0', shape: [], a: { len: 1, st: [] }, b: { len: 1, st: [] }, y: { len: 1, st: [] } },
];

const binaryOp = (op: number, a: number, b: number): number =>
  op === BinaryOp.ADD ? a + b : op === BinaryOp.SUB ? a - b : op === BinaryOp.MUL ? a * b : a / b;

function refBinary(c: BinaryCase, op: number, a: Float32Array, b: Float32Array, y0: Float32Array): Float32Array {
  const y = Float32Array.from(y0), idx = new Array(c.shape.length).fill(0);
  for (let e = 0; e < numel(c.shape); e++) {
    let ia = 0, ib = 0, iy = 0;
    for (let d = 0; d < c.shape.length; d++) { ia += idx[d] * c.a.st[d]!; ib += idx[d] * c.b.st[d]!; iy += idx[d] * c.y.st[d]!; }
    y[iy] = binaryOp(op, a[ia]!, b[ib]!);
    for (let d = c.shape.length - 1; d >= 0; d--) { if (++idx[d] < c.shape[d]!) break; idx[d] = 0; }
  }
  return y;
}

t.test('binary ops follow every operand stride exactly: broadcasts, 6-D, strided and aliased outputs', async (t) => {
  const ops: [string, number][] = [['add', BinaryOp.ADD], ['sub', BinaryOp.SUB], ['mul', BinaryOp.MUL], ['div', BinaryOp.DIV]];
  for (const [label, h] of HARNESSES) {
    for (const [ci, c] of BINARY_CASES.entries()) {
      for (const [opName, op] of ops) {
        const a = randomFloats(c.a.len, 1000 + ci, 3), b = randomFloats(c.b.len, 2000 + ci, 3);
        const y0 = c.alias === 'a' ? a : c.alias === 'b' ? b : randomFloats(c.y.len, 3000 + ci);
        const want = refBinary(c, op, a, b, y0);
        const pa = h.upload(a), pb = h.upload(b);
        const py = c.alias === 'a' ? pa : c.alias === 'b' ? pb : h.upload(y0);
        h.check(h.lib.fns.sgld_binary(h.ctx, NativeDType.F32, op, c.shape.length, i64(...c.shape), pa, i64(...c.a.st),
          pb, i64(...c.b.st), py, i64(...c.y.st)), 'sgld_binary');
        const got = h.download(py, c.y.len);
        let bad = -1;
        for (let i = 0; i < got.length && bad < 0; i++) if (!Object.is(got[i], want[i])) bad = i;
        t.equal(bad, -1, `${c.name} ${opName}, ${label}`);
        h.free(pa); h.free(pb); if (!c.alias) h.free(py);
      }
    }
  }
});

t.test('binary rejects bad arguments', async (t) => {
  const p = h1.alloc(16), f = h1.lib.fns, one = i64(1, 1, 1, 1, 1, 1, 1);
  t.equal(f.sgld_binary(h1.ctx, NativeDType.F32, 4, 1, i64(4), p, i64(1), p, i64(1), p, i64(1)), Status.INVALID, 'op 4');
  t.match(f.sgld_last_error(), /sgld_binary: unknown op 4/);
  t.equal(f.sgld_binary(h1.ctx, NativeDType.F32, 0, 7, one, p, one, p, one, p, one), Status.INVALID, 'ndim 7');
  t.match(f.sgld_last_error(), /ndim/);
  t.equal(f.sgld_binary(h1.ctx, NativeDType.F32, 0, 1, i64(-2), p, i64(1), p, i64(1), p, i64(1)), Status.INVALID, 'negative shape');
  t.equal(f.sgld_binary(h1.ctx, NativeDType.F32, 0, 1, i64(4), p, i64(1), 0n, i64(1), p, i64(1)), Status.INVALID, 'null b');
  t.match(f.sgld_last_error(), /b is null/);
  t.equal(f.sgld_binary(h1.ctx, NativeDType.BF16, 0, 1, i64(4), p, i64(1), p, i64(1), p, i64(1)), Status.UNSUPPORTED, 'BF16');
});

// ---- activations, affine, gated activation ------------------------------------------------------------------

t.test('activation matches torch gelu (tanh and erf), silu and relu', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const n of [1, 13, 100003]) {
      const x = activationInputs(n, 40 + n);
      for (const [name, act] of ACTIVATIONS) {
        const px = h.upload(x), py = h.alloc(n);
        h.check(h.lib.fns.sgld_activation(h.ctx, NativeDType.F32, act, n, px, py), 'sgld_activation');
        const err = maxRelError(h.download(py, n), Array.from(x, (v) => activate64(v, act)));
        t.ok(err <= ACT_TOL, `${name} n=${n}, ${label}: error ${err.toExponential(2)}`);
        h.free(px); h.free(py);
      }
    }
  }
});

t.test('activation and affine work in place (y == x)', async (t) => {
  const n = 1029, x = activationInputs(n, 50);
  const px = h2.upload(x);
  h2.check(h2.lib.fns.sgld_activation(h2.ctx, NativeDType.F32, Activation.SILU, n, px, px), 'sgld_activation');
  const silu = h2.download(px, n);
  t.ok(maxRelError(silu, Array.from(x, (v) => activate64(v, Activation.SILU))) <= ACT_TOL, 'silu in place');
  h2.check(h2.lib.fns.sgld_affine(h2.ctx, NativeDType.F32, n, px, px, -1.5, 0.25), 'sgld_affine');
  t.ok(maxRelError(h2.download(px, n), Array.from(silu, (v) => -1.5 * v + 0.25)) <= TOL, 'affine in place');
});

t.test('affine is y = alpha * x + beta', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const n of [5, 77777]) {
      const x = randomFloats(n, 60 + n, 10), px = h.upload(x), py = h.alloc(n);
      h.check(h.lib.fns.sgld_affine(h.ctx, NativeDType.F32, n, px, py, 0.7, -3), 'sgld_affine');
      const err = maxRelError(h.download(py, n), Array.from(x, (v) => Math.fround(0.7) * v - 3));
      t.ok(err <= TOL, `n=${n}, ${label}: error ${err.toExponential(2)}`);
    }
  }
});

t.test('gated_activation is act(gate) * up, from separate tensors or the two halves of one (ld_in = 2 dim)', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [rows, dim] of [[37, 45], [3, 1], [600, 67]] as const) {
      for (const fused of [false, true]) {
        for (const [name, act] of ACTIVATIONS) {
          const ld = fused ? 2 * dim : dim;
          const g = activationInputs(rows * ld, rows + dim), u = randomFloats(rows * ld, 70 + dim, 2);
          // Fused: one [rows, 2*dim] buffer whose first half is the gate, second half up (T5's wi_0/wi_1, SwiGLU).
          if (fused) for (let r = 0; r < rows; r++) for (let i = 0; i < dim; i++) g[r * ld + dim + i] = u[r * ld + i]!;
          const pg = h.upload(g), pu = fused ? pg + BigInt(dim * 4) : h.upload(u), py = h.alloc(rows * dim);
          h.check(h.lib.fns.sgld_gated_activation(h.ctx, NativeDType.F32, act, rows, dim, pg, pu, ld, py), 'sgld_gated_activation');
          const want = new Float64Array(rows * dim);
          for (let r = 0; r < rows; r++) for (let i = 0; i < dim; i++) want[r * dim + i] = activate64(g[r * ld + i]!, act) * u[r * ld + i]!;
          const err = maxRelError(h.download(py, rows * dim), want);
          t.ok(err <= 2 * ACT_TOL, `[${rows}, ${dim}] ${fused ? 'fused' : 'separate'} ${name}, ${label}: error ${err.toExponential(2)}`);
          h.free(pg); if (!fused) h.free(pu); h.free(py);
        }
      }
    }
  }
});

t.test('activation ops reject unknown activations and a short ld_in', async (t) => {
  const p = h1.alloc(64), f = h1.lib.fns;
  t.equal(f.sgld_activation(h1.ctx, NativeDType.F32, 9, 4, p, p), Status.INVALID, 'activation 9');
  t.match(f.sgld_last_error(), /sgld_activation: unknown activation 9/);
  t.equal(f.sgld_gated_activation(h1.ctx, NativeDType.F32, Activation.SILU, 2, 8, p, p, 7, p), Status.INVALID, 'ld_in < dim');
  t.match(f.sgld_last_error(), /ld_in 7 < dim 8/);
  t.equal(f.sgld_affine(h1.ctx, NativeDType.F32, -3, p, p, 1, 0), Status.INVALID, 'negative n');
  t.equal(f.sgld_activation(h1.ctx, NativeDType.F32, Activation.RELU, 4, 0n, p), Status.INVALID, 'null x');
});

// ---- softmax --------------------------------------------------------------------------------------------------

t.test('softmax subtracts the row max (logits up to +-200 stay finite) and sums to one', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [rows, dim] of [[5, 1], [37, 7], [13, 1003], [700, 65]] as const) {
      const x = randomFloats(rows * dim, rows * dim, 200);
      const px = h.upload(x), py = h.alloc(rows * dim);
      h.check(h.lib.fns.sgld_softmax(h.ctx, NativeDType.F32, rows, dim, px, py), 'sgld_softmax');
      const got = h.download(py, rows * dim), want = new Float64Array(rows * dim);
      for (let r = 0; r < rows; r++) {
        let m = -Infinity, s = 0;
        for (let i = 0; i < dim; i++) m = Math.max(m, x[r * dim + i]!);
        for (let i = 0; i < dim; i++) s += Math.exp(x[r * dim + i]! - m);
        for (let i = 0; i < dim; i++) want[r * dim + i] = Math.exp(x[r * dim + i]! - m) / s;
      }
      const err = maxRelError(got, want);
      t.ok(err <= TOL, `[${rows}, ${dim}], ${label}: error ${err.toExponential(2)}`);
      // In place on the same input.
      h.check(h.lib.fns.sgld_softmax(h.ctx, NativeDType.F32, rows, dim, px, px), 'sgld_softmax');
      const again = h.download(px, rows * dim);
      t.ok(again.every((v, i) => Object.is(v, got[i])), `[${rows}, ${dim}] in place gives the same bits, ${label}`);
    }
  }
});

// ---- modulation and gated residual ----------------------------------------------------------------------------

/** Layouts of the modulation vectors for x [B, S, D]: per batch item, per token, one for all. */
const MOD_LAYOUTS = (B: number, S: number, D: number): [string, number, number, number][] => [
  ['per item (mod_ss = 0)', D, 0, B * D],
  ['per token (mod_ss = dim)', S * D, D, B * S * D],
  ['shared (mod_sb = mod_ss = 0)', 0, 0, D],
];

t.test('modulate is x * (1 + scale) + shift with scale/shift read at b*mod_sb + s*mod_ss + d', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [B, S, D] of [[2, 37, 45], [1, 300, 129]] as const) {
      for (const [name, sb, ss, len] of MOD_LAYOUTS(B, S, D)) {
        for (const inPlace of [false, true]) {
          const x = randomFloats(B * S * D, 80 + S, 3), sc = randomFloats(len, 81 + S), sh = randomFloats(len, 82 + S);
          const px = h.upload(x), py = inPlace ? px : h.alloc(x.length);
          h.check(h.lib.fns.sgld_modulate(h.ctx, NativeDType.F32, B, S, D, px, h.upload(sc), h.upload(sh), sb, ss, py), 'sgld_modulate');
          const want = new Float64Array(x.length);
          for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) {
            const m = b * sb + s * ss + d, k = (b * S + s) * D + d;
            want[k] = x[k]! * (1 + sc[m]!) + sh[m]!;
          }
          const err = maxRelError(h.download(py, x.length), want);
          t.ok(err <= TOL, `[${B}, ${S}, ${D}] ${name}${inPlace ? ' in place' : ''}, ${label}: error ${err.toExponential(2)}`);
        }
      }
    }
  }
});

t.test('gated_residual adds y * gate into the residual in place', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [B, S, D] of [[2, 37, 45], [1, 300, 129]] as const) {
      for (const [name, sb, ss, len] of MOD_LAYOUTS(B, S, D)) {
        const r = randomFloats(B * S * D, 90 + S, 3), y = randomFloats(r.length, 91 + S, 2), g = randomFloats(len, 92 + S);
        const pr = h.upload(r);
        h.check(h.lib.fns.sgld_gated_residual(h.ctx, NativeDType.F32, B, S, D, pr, h.upload(y), h.upload(g), sb, ss), 'sgld_gated_residual');
        const want = new Float64Array(r.length);
        for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let d = 0; d < D; d++) {
          const k = (b * S + s) * D + d;
          want[k] = r[k]! + y[k]! * g[b * sb + s * ss + d]!;
        }
        const err = maxRelError(h.download(pr, r.length), want);
        t.ok(err <= TOL, `[${B}, ${S}, ${D}] ${name}, ${label}: error ${err.toExponential(2)}`);
      }
    }
  }
});

t.test('modulate and gated_residual reject negative sizes and null pointers', async (t) => {
  const p = h1.alloc(64), f = h1.lib.fns;
  t.equal(f.sgld_modulate(h1.ctx, NativeDType.F32, 1, -1, 4, p, p, p, 0, 0, p), Status.INVALID, 'negative seq');
  t.match(f.sgld_last_error(), /sgld_modulate: seq/);
  t.equal(f.sgld_modulate(h1.ctx, NativeDType.F32, 1, 2, 4, p, 0n, p, 0, 0, p), Status.INVALID, 'null scale');
  t.match(f.sgld_last_error(), /scale is null/);
  t.equal(f.sgld_gated_residual(h1.ctx, NativeDType.F32, 1, 2, 4, p, p, 0n, 0, 0), Status.INVALID, 'null gate');
  t.match(f.sgld_last_error(), /sgld_gated_residual: gate is null/);
});

// ---- rope -----------------------------------------------------------------------------------------------------

/** Where element (b, s, h, 0) of a [B, S, H, D] operand lives: offset + strides. */
interface RopeLayout { offset: number; st: [number, number, number]; len: number }
const bshd = (B: number, S: number, H: number, D: number): RopeLayout => ({ offset: 0, st: [S * H * D, H * D, D], len: B * S * H * D });
const bhsd = (B: number, S: number, H: number, D: number): RopeLayout => ({ offset: 0, st: [H * S * D, D, S * D], len: B * S * H * D });
/** The k slot of a fused [B, S, 3, H, D] qkv buffer. */
const fusedK = (B: number, S: number, H: number, D: number): RopeLayout => ({ offset: H * D, st: [S * 3 * H * D, 3 * H * D, D], len: B * S * 3 * H * D });

function refRope(x: Float32Array, xl: RopeLayout, y0: Float32Array, yl: RopeLayout, B: number, S: number, H: number, D: number,
  cos: Float32Array, sin: Float32Array, interleaved: boolean): Float64Array {
  const y = Float64Array.from(y0), half = D / 2;
  for (let b = 0; b < B; b++) for (let s = 0; s < S; s++) for (let hh = 0; hh < H; hh++) {
    const xo = xl.offset + b * xl.st[0] + s * xl.st[1] + hh * xl.st[2], yo = yl.offset + b * yl.st[0] + s * yl.st[1] + hh * yl.st[2];
    for (let i = 0; i < half; i++) {
      const c = cos[s * half + i]!, sn = sin[s * half + i]!;
      const [j0, j1] = interleaved ? [2 * i, 2 * i + 1] : [i, i + half];
      const x0 = x[xo + j0]!, x1 = x[xo + j1]!;
      y[yo + j0] = x0 * c - x1 * sn;
      y[yo + j1] = x0 * sn + x1 * c;
    }
  }
  return y;
}

t.test('rope rotates interleaved pairs (Wan) and rotate-half pairs (Qwen) through strided layouts', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [B, S, H, D] of [[2, 7, 3, 6], [1, 5, 2, 22], [2, 40, 12, 128]] as const) {
      const half = D / 2;
      const angles = randomFloats(S * half, S * D, 40);
      const cos = angles.map(Math.cos), sin = angles.map(Math.sin);
      const pc = h.upload(cos), ps = h.upload(sin);
      const layouts: [string, RopeLayout, RopeLayout][] = [
        ['[B,S,H,D] -> [B,S,H,D]', bshd(B, S, H, D), bshd(B, S, H, D)],
        ['fused qkv slot -> [B,H,S,D]', fusedK(B, S, H, D), bhsd(B, S, H, D)],
      ];
      for (const interleaved of [true, false]) {
        for (const [name, xl, yl] of layouts) {
          const x = randomFloats(xl.len, B + S + D, 2), y0 = randomFloats(yl.len, 7);
          const px = h.upload(x), py = h.upload(y0);
          h.check(h.lib.fns.sgld_rope(h.ctx, NativeDType.F32, B, S, H, D, px + BigInt(xl.offset * 4), i64(...xl.st),
            py + BigInt(yl.offset * 4), i64(...yl.st), pc, ps, interleaved ? 1 : 0), 'sgld_rope');
          const err = maxRelError(h.download(py, yl.len), refRope(x, xl, y0, yl, B, S, H, D, cos, sin, interleaved));
          t.ok(err <= TOL, `[${B},${S},${H},${D}] ${interleaved ? 'interleaved' : 'rotate-half'} ${name}, ${label}: error ${err.toExponential(2)}`);
          h.free(px); h.free(py);
        }
        // In place, inside the fused buffer (y == x, same strides): the other slots must stay as they were.
        const xl = fusedK(B, S, H, D), x = randomFloats(xl.len, 99 + D, 2), px = h.upload(x);
        const ptr = px + BigInt(xl.offset * 4), st = i64(...xl.st);
        h.check(h.lib.fns.sgld_rope(h.ctx, NativeDType.F32, B, S, H, D, ptr, st, ptr, st, pc, ps, interleaved ? 1 : 0), 'sgld_rope');
        const err = maxRelError(h.download(px, xl.len), refRope(x, xl, x, xl, B, S, H, D, cos, sin, interleaved));
        t.ok(err <= TOL, `[${B},${S},${H},${D}] ${interleaved ? 'interleaved' : 'rotate-half'} in place, ${label}: error ${err.toExponential(2)}`);
        h.free(px);
      }
    }
  }
});

t.test('rope rejects an odd head_dim and a bad interleaved flag', async (t) => {
  const p = h1.alloc(64), f = h1.lib.fns, st = i64(12, 4, 4);
  const tables: Ptr = h1.alloc(16);
  t.equal(f.sgld_rope(h1.ctx, NativeDType.F32, 1, 2, 1, 5, p, st, p, st, tables, tables, 1), Status.INVALID, 'head_dim 5');
  t.match(f.sgld_last_error(), /sgld_rope: head_dim 5 is odd/);
  t.equal(f.sgld_rope(h1.ctx, NativeDType.F32, 1, 2, 1, 4, p, st, p, st, tables, tables, 2), Status.INVALID, 'interleaved 2');
  t.equal(f.sgld_rope(h1.ctx, NativeDType.F32, 1, 2, 1, 4, p, st, p, st, 0n, tables, 1), Status.INVALID, 'null cos');
  t.match(f.sgld_last_error(), /cos is null/);
});
