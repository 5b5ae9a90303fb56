// sgld_copy_strided, sgld_convert and sgld_fill on the CPU backend.
//
// Copies are exact, so every comparison here is bit for bit (tolerance 0): permutes, slices through offset
// pointers, concatenation into offsets of dst, negative and zero strides, 6-D odd shapes, integer types.
// Conversions are checked against a reference written from the values (not from bit tricks): round to nearest,
// ties to even, subnormals, overflow to inf, signed zeros, NaN (sign kept, canonical quiet payload for F16).
// The contiguous path (F16C vectors + scalar tail) and the strided path (context.cpp's scalar f32_to_f16 /
// f32_to_bf16) are checked separately on the same values.
import t, { type Test } from 'tap';
import { NativeDType, Status, type Ptr } from '../../src/runtime/native.js';
import { NativeHarness, i64, randomFloats } from '../helpers/native-harness.js';

const h1 = new NativeHarness({ threads: 1 });
const h2 = new NativeHarness({ threads: 2 });
t.teardown(() => { h1.close(); h2.close(); });
const HARNESSES: [string, NativeHarness][] = [['1 thread', h1], ['2 threads', h2]];

// ---- reference conversions (from values, exact in float64) ----------------------------------------------------

const scratch = new DataView(new ArrayBuffer(4));
const f32FromBits = (u: number): number => { scratch.setUint32(0, u >>> 0); return scratch.getFloat32(0); };
const bitsOfF32 = (x: number): number => { scratch.setFloat32(0, x); return scratch.getUint32(0); };

function roundHalfEven(q: number): number {
  const f = Math.floor(q), d = q - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/** floor(log2(a)) exactly, for finite a > 0. */
function exponentOf(a: number): number {
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return e;
}

/** IEEE half bits of the fp32 value with bit pattern u. NaN: sign | 0x7e00 (torch's canonical NaN). */
function f16FromF32Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000, a = Math.abs(f32FromBits(u));
  if (Number.isNaN(a)) return sign | 0x7e00;
  if (a >= 65520) return sign | 0x7c00;                        // 65504 + half an ulp ties to even = inf
  if (a < 2 ** -14) return sign | roundHalfEven(a * 2 ** 24);   // subnormal; 1024 encodes the smallest normal
  const e = exponentOf(a);
  return sign | (((e + 15) << 10) + roundHalfEven((a / 2 ** e - 1) * 1024));
}

/** bfloat16 bits of the fp32 value with bit pattern u; NaN maps to some NaN of the same sign (checked apart). */
function bf16FromF32Bits(u: number): number {
  const sign = (u >>> 16) & 0x8000, a = Math.abs(f32FromBits(u));
  if (Number.isNaN(a)) return sign | 0x7fc0;
  if (a === Infinity) return sign | 0x7f80;
  if (a < 2 ** -126) return sign | roundHalfEven(a * 2 ** 133);
  const e = exponentOf(a);
  return sign | (((e + 127) << 7) + roundHalfEven((a / 2 ** e - 1) * 128));  // a carry into 255 is inf
}

function f16Value(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1, e = (bits >> 10) & 0x1f, m = bits & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}
const bf16Value = (bits: number): number => f32FromBits(bits << 16);

const isNaN16 = (bits: number, expBits: number, mantMask: number): boolean => (bits & expBits) === expBits && (bits & mantMask) !== 0;

/** The fp32 bit patterns where rounding is delicate, for both 16-bit formats. */
const TRICKY_F32: number[] = [
  0, -0, 1, -1, 0.1, 1 / 3, -2.5e-6, 65504, 65519, 65519.99609375, 65520, -65520, 65536, 1e10, Infinity, -Infinity, NaN,
  1 + 2 ** -11, 1 + 3 * 2 ** -11, -(1 + 2 ** -11), 2 + 2 ** -10, 1024 + 0.5, 2049, 2051,       // f16 ties
  2 ** -14, 2 ** -14 - 2 ** -25, 2 ** -14 - 2 ** -24, 2 ** -24, 2 ** -25, 2 ** -25 * (1 + 2 ** -23), 3 * 2 ** -25,
  5 * 2 ** -25, 7 * 2 ** -25, 2 ** -26, -(2 ** -25), 1e-45, -1e-45, 1.17549435e-38, 6e-8,              // subnormals
  1 + 2 ** -8, 1 + 3 * 2 ** -8, 256 + 1, 257 + 2, 3.4028235e38, 3.3895314e38, 3.3961775e38, -3.4e38,   // bf16 ties, overflow
  2 ** -134, 3 * 2 ** -134, 2 ** -126 - 2 ** -134, 2 ** -133, 5 * 2 ** -134,                              // bf16 subnormal ties
].map(bitsOfF32);
TRICKY_F32.push(0x7f800001, 0xffc00000, 0x7fbfffff, 0x80000001, 0x007fffff, 0x00800000, 0x477ff000, 0x477fefff);

function randomBits(count: number, seed: number): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    let x = s ^ (s >>> 13);
    x = Math.imul(x, 0x5bd1e995) >>> 0;
    out.push((x ^ (x >>> 15)) >>> 0);
  }
  return out;
}

/** Values in the half range with random low bits, so every rounding case is hit. */
function halfRangeBits(count: number, seed: number): number[] {
  return randomBits(count, seed).map((r) => (((r % 31) + 100) << 23 | (r >>> 5) & 0x7fffff | (r & 1) << 31) >>> 0);
}

// ---- device helpers ------------------------------------------------------------------------------------------

function uploadView(h: NativeHarness, view: ArrayBufferView): Ptr {
  const p = h.alloc(Math.ceil(view.byteLength / 4));
  if (view.byteLength) h.device.upload(p, view);
  return p;
}
function download<T extends ArrayBufferView>(h: NativeHarness, out: T, p: Ptr): T { h.device.download(out, p); return out; }

const u16Equal = (got: Uint16Array, want: number[], label: (i: number) => string): string | null => {
  for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) return `${label(i)}: got 0x${got[i]!.toString(16)}, want 0x${want[i]!.toString(16)}`;
  return null;
};

/** Converts f32 bit patterns to `dtype` through sgld_convert (contiguous) or sgld_copy_strided (src stride 3). */
function toHalf(h: NativeHarness, bits: number[], dtype: number, path: 'convert' | 'strided'): Uint16Array {
  const n = bits.length;
  const srcStride = path === 'strided' ? 3 : 1;
  const src = new Uint32Array(n * srcStride);
  bits.forEach((b, i) => { src[i * srcStride] = b; });
  const ps = uploadView(h, src), pd = h.alloc(Math.ceil(n / 2));
  if (path === 'convert') h.check(h.lib.fns.sgld_convert(h.ctx, n, NativeDType.F32, ps, dtype, pd), 'sgld_convert');
  else h.check(h.lib.fns.sgld_copy_strided(h.ctx, 1, i64(n), NativeDType.F32, ps, i64(srcStride), dtype, pd, i64(1)), 'sgld_copy_strided');
  const out = download(h, new Uint16Array(n), pd);
  h.free(ps); h.free(pd);
  return out;
}

function checkHalfConversion(t: Test, h: NativeHarness, bits: number[], dtype: number, what: string) {
  const isF16 = dtype === NativeDType.F16;
  const ref = bits.map(isF16 ? f16FromF32Bits : bf16FromF32Bits);
  for (const path of ['convert', 'strided'] as const) {
    const got = toHalf(h, bits, dtype, path);
    let bad: string | null = null;
    for (let i = 0; i < bits.length && !bad; i++) {
      const nanIn = Number.isNaN(f32FromBits(bits[i]!));
      if (nanIn) {
        const ok = isF16 ? got[i] === ref[i] : isNaN16(got[i]!, 0x7f80, 0x7f) && (got[i]! & 0x8000) === (ref[i]! & 0x8000);
        if (!ok) bad = `NaN 0x${bits[i]!.toString(16)} -> 0x${got[i]!.toString(16)}`;
      } else if (got[i] !== ref[i]) {
        bad = `0x${bits[i]!.toString(16)} (${f32FromBits(bits[i]!)}) -> 0x${got[i]!.toString(16)}, want 0x${ref[i]!.toString(16)}`;
      }
    }
    t.equal(bad, null, `${what} via ${path}: ${bits.length} values round to nearest even exactly`);
  }
}

// ---- conversions ---------------------------------------------------------------------------------------------

t.test('F32 -> F16 rounds to nearest even on ties, subnormals, overflow, zeros and NaN (exact)', async (t) => {
  checkHalfConversion(t, h1, TRICKY_F32, NativeDType.F16, 'tricky values');
  checkHalfConversion(t, h1, halfRangeBits(20011, 7), NativeDType.F16, 'random values in the half range');
  checkHalfConversion(t, h2, randomBits(50021, 8), NativeDType.F16, 'random bit patterns, 2 threads');
});

t.test('F32 -> BF16 rounds to nearest even on ties, subnormals, overflow, zeros and NaN (exact)', async (t) => {
  checkHalfConversion(t, h1, TRICKY_F32, NativeDType.BF16, 'tricky values');
  checkHalfConversion(t, h2, randomBits(50021, 9), NativeDType.BF16, 'random bit patterns, 2 threads');
});

t.test('every F16 and BF16 bit pattern widens to F32 exactly and narrows back to itself', async (t) => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const [dtype, name, value, nanTest] of [
    [NativeDType.F16, 'F16', f16Value, (b: number) => isNaN16(b, 0x7c00, 0x3ff)],
    [NativeDType.BF16, 'BF16', bf16Value, (b: number) => isNaN16(b, 0x7f80, 0x7f)],
  ] as const) {
    for (const [label, h] of HARNESSES) {
      const ps = uploadView(h, all), pf = h.alloc(65536), pw = h.alloc(2 * 65536), pb = h.alloc(65536 / 2);
      h.check(h.lib.fns.sgld_convert(h.ctx, 65536, dtype, ps, NativeDType.F32, pf), 'sgld_convert');
      h.check(h.lib.fns.sgld_convert(h.ctx, 65536, NativeDType.F32, pf, dtype, pb), 'sgld_convert');
      // Destination stride 2 takes the scalar converters of context.cpp instead of the vector path.
      h.check(h.lib.fns.sgld_copy_strided(h.ctx, 1, i64(65536), dtype, ps, i64(1), NativeDType.F32, pw, i64(2)), 'sgld_copy_strided');
      const wide = download(h, new Float32Array(65536), pf), back = download(h, new Uint16Array(65536), pb);
      const wide2 = download(h, new Float32Array(2 * 65536), pw).filter((_, i) => i % 2 === 0);
      let bad: string | null = null;
      for (let i = 0; i < 65536 && !bad; i++) {
        if (nanTest(i)) {
          if (!Number.isNaN(wide[i]) || !Number.isNaN(wide2[i]) || !nanTest(back[i]!)) bad = `NaN 0x${i.toString(16)}`;
          continue;
        }
        if (!Object.is(wide[i], value(i))) bad = `0x${i.toString(16)} widened to ${wide[i]}, want ${value(i)}`;
        else if (!Object.is(wide2[i], value(i))) bad = `0x${i.toString(16)} widened (strided) to ${wide2[i]}, want ${value(i)}`;
        else if (back[i] !== i) bad = `0x${i.toString(16)} came back as 0x${back[i]!.toString(16)}`;
      }
      t.equal(bad, null, `${name}, ${label}: all 65536 patterns, contiguous and strided`);
      h.free(ps); h.free(pf); h.free(pw); h.free(pb);
    }
  }
});

t.test('F16 <-> BF16 conversions round once, through the exact fp32 value', async (t) => {
  const halves = new Uint16Array(randomBits(4099, 11).map((r) => r & 0xffff).filter((b) => !isNaN16(b, 0x7c00, 0x3ff)));
  const n = halves.length;
  const ps = uploadView(h1, halves), pd = h1.alloc(n);
  h1.check(h1.lib.fns.sgld_convert(h1.ctx, n, NativeDType.F16, ps, NativeDType.BF16, pd), 'sgld_convert');
  const got = download(h1, new Uint16Array(n), pd);
  const want = Array.from(halves, (b) => bf16FromF32Bits(bitsOfF32(f16Value(b))));
  t.equal(u16Equal(got, want, (i) => `f16 0x${halves[i]!.toString(16)}`), null, `${n} F16 values -> BF16`);
  const bfs = new Uint16Array(randomBits(4099, 12).map((r) => r & 0xffff).filter((b) => !isNaN16(b, 0x7f80, 0x7f)));
  const pb = uploadView(h1, bfs), ph = h1.alloc(bfs.length);
  h1.check(h1.lib.fns.sgld_copy_strided(h1.ctx, 1, i64(bfs.length), NativeDType.BF16, pb, i64(1), NativeDType.F16, ph, i64(1)), 'sgld_copy_strided');
  const got2 = download(h1, new Uint16Array(bfs.length), ph);
  const want2 = Array.from(bfs, (b) => f16FromF32Bits(bitsOfF32(bf16Value(b))));
  t.equal(u16Equal(got2, want2, (i) => `bf16 0x${bfs[i]!.toString(16)}`), null, `${bfs.length} BF16 values -> F16`);
});

// ---- strided copies ------------------------------------------------------------------------------------------

/** dst[idx] = src[idx] over `shape` with element strides and offsets, in plain TS (the reference). */
function refCopy(shape: number[], src: ArrayLike<number>, srcOff: number, ss: number[], dst: Float64Array | number[], dstOff: number, ds: number[]) {
  const total = shape.reduce((a, b) => a * b, 1);
  const idx = new Array(shape.length).fill(0);
  for (let e = 0; e < total; e++) {
    let so = srcOff, dof = dstOff;
    for (let d = 0; d < shape.length; d++) { so += idx[d] * ss[d]!; dof += idx[d] * ds[d]!; }
    dst[dof] = src[so]!;
    for (let d = shape.length - 1; d >= 0; d--) { if (++idx[d] < shape[d]!) break; idx[d] = 0; }
  }
}

const contiguous = (shape: number[]): number[] => {
  const st = new Array(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) st[d] = st[d + 1] * shape[d + 1]!;
  return st;
};

interface CopyCase {
  name: string; shape: number[];
  srcLen: number; srcOff: number; ss: number[];
  dstLen: number; dstOff: number; ds: number[];
}

/** Permutation of a contiguous tensor written contiguously in the permuted order. */
function permuteCase(name: string, shape: number[], perm: number[]): CopyCase {
  const cs = contiguous(shape), pshape = perm.map((p) => shape[p]!);
  const n = shape.reduce((a, b) => a * b, 1);
  return { name, shape: pshape, srcLen: n, srcOff: 0, ss: perm.map((p) => cs[p]!), dstLen: n, dstOff: 0, ds: contiguous(pshape) };
}

const COPY_CASES: CopyCase[] = [
  permuteCase('permute [3,5,7,9] -> (0,2,1,3)', [3, 5, 7, 9], [0, 2, 1, 3]),
  permuteCase('reverse the dims of [4,6,5,3]', [4, 6, 5, 3], [3, 2, 1, 0]),
  permuteCase('6-D odd shape [5,3,7,9,4,13], perm (4,0,5,2,1,3)', [5, 3, 7, 9, 4, 13], [4, 0, 5, 2, 1, 3]),
  permuteCase('2-D transpose [301, 257]', [301, 257], [1, 0]),
  // x[1:3, :, 2:7] of [4, 5, 8]: an offset pointer and the parent's strides.
  { name: 'slice [1:3, :, 2:7] of [4,5,8]', shape: [2, 5, 5], srcLen: 160, srcOff: 1 * 40 + 2, ss: [40, 8, 1], dstLen: 50, dstOff: 0, ds: [25, 5, 1] },
  // The second operand of a concat along dim 1: [2,4,5] into columns 3..7 of a [2,7,5].
  { name: 'concat: [2,4,5] into [2,7,5] at offset 3 of dim 1', shape: [2, 4, 5], srcLen: 40, srcOff: 0, ss: [20, 5, 1], dstLen: 70, dstOff: 15, ds: [35, 5, 1] },
  // Negative strides: flip dims 0 and 2 of a [6, 4, 11].
  { name: 'flip dims 0 and 2 of [6,4,11] (negative strides)', shape: [6, 4, 11], srcLen: 264, srcOff: 5 * 44 + 10, ss: [-44, 11, -1], dstLen: 264, dstOff: 0, ds: [44, 11, 1] },
  // Stride 0 reads: one row repeated (expand).
  { name: 'broadcast a [1, 37] row to [41, 37] (stride 0)', shape: [41, 37], srcLen: 37, srcOff: 0, ss: [0, 1], dstLen: 41 * 37, dstOff: 0, ds: [37, 1] },
  { name: 'one long contiguous row of 100003', shape: [100003], srcLen: 100003, srcOff: 0, ss: [1], dstLen: 100003, dstOff: 0, ds: [1] },
  { name: 'ndim 0: one element', shape: [], srcLen: 3, srcOff: 2, ss: [], dstLen: 2, dstOff: 1, ds: [] },
];

t.test('copy_strided reproduces permutes, slices, concat, flips and broadcasts bit for bit (1 and 2 threads)', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [ci, c] of COPY_CASES.entries()) {
      const src = randomFloats(c.srcLen, 100 + ci);
      const dst0 = randomFloats(c.dstLen, 200 + ci);  // untouched parts must survive
      const want = Array.from(dst0);
      refCopy(c.shape, src, c.srcOff, c.ss, want, c.dstOff, c.ds);
      const ps = h.upload(src), pd = h.upload(dst0);
      h.check(h.lib.fns.sgld_copy_strided(h.ctx, c.shape.length, i64(...c.shape), NativeDType.F32, ps + BigInt(c.srcOff * 4),
        i64(...c.ss), NativeDType.F32, pd + BigInt(c.dstOff * 4), i64(...c.ds)), 'sgld_copy_strided');
      const got = h.download(pd, c.dstLen);
      let bad = -1;
      for (let i = 0; i < c.dstLen && bad < 0; i++) if (!Object.is(got[i], Math.fround(want[i]!))) bad = i;
      t.equal(bad, -1, `${c.name}, ${label}`);
      h.free(ps); h.free(pd);
    }
  }
});

t.test('copy_strided converts while it permutes (F32 -> BF16 -> F32 of a transposed block)', async (t) => {
  const shape = [37, 53];
  const src = randomFloats(37 * 53, 31, 100);
  for (const [label, h] of HARNESSES) {
    const ps = h.upload(src), pb = h.alloc(37 * 53), pf = h.alloc(37 * 53);
    // Transpose while narrowing: bf16 [53, 37].
    h.check(h.lib.fns.sgld_copy_strided(h.ctx, 2, i64(53, 37), NativeDType.F32, ps, i64(1, 53), NativeDType.BF16, pb, i64(37, 1)), 'sgld_copy_strided');
    // Transpose back while widening.
    h.check(h.lib.fns.sgld_copy_strided(h.ctx, 2, i64(...shape), NativeDType.BF16, pb, i64(1, 37), NativeDType.F32, pf, i64(53, 1)), 'sgld_copy_strided');
    const got = h.download(pf, 37 * 53);
    let bad = -1;
    for (let i = 0; i < src.length && bad < 0; i++) if (got[i] !== bf16Value(bf16FromF32Bits(bitsOfF32(src[i]!)))) bad = i;
    t.equal(bad, -1, `round trip equals bf16 rounding of every element, ${label}`);
    h.free(ps); h.free(pb); h.free(pf);
  }
});

t.test('integer dtypes copy to themselves bit for bit; int <-> float conversion is unsupported', async (t) => {
  const shape = [7, 5, 3], perm = [2, 0, 1];
  const c = permuteCase('int permute', shape, perm);
  const cases: [string, number, ArrayBufferView & ArrayLike<number | bigint>, number][] = [
    ['I32', NativeDType.I32, Int32Array.from(randomBits(105, 41), (r) => r | 0), 4],
    ['I64', NativeDType.I64, BigInt64Array.from(randomBits(105, 42), (r) => BigInt(r) * 4294967311n - (1n << 62n)), 8],
    ['U8', NativeDType.U8, Uint8Array.from(randomBits(105, 43), (r) => r & 0xff), 1],
  ];
  for (const [name, dtype, data] of cases) {
    const ps = uploadView(h2, data), pd = h2.alloc(105 * 2);
    h2.check(h2.lib.fns.sgld_copy_strided(h2.ctx, 3, i64(...c.shape), dtype, ps, i64(...c.ss), dtype, pd, i64(...c.ds)), 'sgld_copy_strided');
    const got = download(h2, new (data.constructor as new (n: number) => typeof data)(105), pd);
    const want: (number | bigint)[] = new Array(105);
    refCopy(c.shape, data as ArrayLike<number>, 0, c.ss, want as number[], 0, c.ds);
    t.same(Array.from(got as ArrayLike<number>), want, `${name} permute`);
    h2.free(ps); h2.free(pd);
  }
  const p = h1.alloc(16);
  t.equal(h1.lib.fns.sgld_copy_strided(h1.ctx, 1, i64(4), NativeDType.I32, p, i64(1), NativeDType.F32, p, i64(1)), Status.UNSUPPORTED, 'I32 -> F32 is unsupported');
  t.match(h1.lib.fns.sgld_last_error(), /sgld_copy_strided/, 'the message names the op');
  t.equal(h1.lib.fns.sgld_convert(h1.ctx, 4, NativeDType.F32, p, NativeDType.I64, p), Status.INVALID, 'sgld_convert takes float types only');
});

t.test('copy_strided and convert reject bad arguments with a message naming the argument', async (t) => {
  const p = h1.alloc(64);
  const f = h1.lib.fns;
  t.equal(f.sgld_copy_strided(h1.ctx, 7, i64(1, 1, 1, 1, 1, 1, 1), 0, p, i64(1, 1, 1, 1, 1, 1, 1), 0, p, i64(1, 1, 1, 1, 1, 1, 1)), Status.INVALID, 'ndim 7');
  t.match(f.sgld_last_error(), /ndim/);
  t.equal(f.sgld_copy_strided(h1.ctx, 2, i64(2, -3), 0, p, i64(3, 1), 0, p, i64(3, 1)), Status.INVALID, 'negative shape');
  t.match(f.sgld_last_error(), /shape\[1\]/);
  t.equal(f.sgld_copy_strided(h1.ctx, 1, i64(4), 0, 0n, i64(1), 0, p, i64(1)), Status.INVALID, 'null src');
  t.match(f.sgld_last_error(), /src/);
  t.equal(f.sgld_copy_strided(h1.ctx, 1, i64(4), 9, p, i64(1), 0, p, i64(1)), Status.INVALID, 'unknown src dtype');
  t.match(f.sgld_last_error(), /src_dtype 9/);
  t.equal(f.sgld_copy_strided(h1.ctx, 2, i64(0, 5), 0, 0n, i64(5, 1), 0, 0n, i64(5, 1)), Status.OK, 'an empty copy touches nothing');
  t.equal(f.sgld_convert(h1.ctx, -1, 0, p, 1, p), Status.INVALID, 'negative n');
  t.match(f.sgld_last_error(), /sgld_convert: n/);
});

// ---- fill ----------------------------------------------------------------------------------------------------

t.test('fill writes the value rounded to the dtype (floats to nearest even, integers exactly)', async (t) => {
  const n = 100003;
  for (const [label, h] of HARNESSES) {
    const p = h.alloc(2 * n);
    const fill = (dtype: number, value: number) => h.check(h.lib.fns.sgld_fill(h.ctx, dtype, n, p, value), 'sgld_fill');
    fill(NativeDType.F32, 0.1);
    t.ok(h.download(p, n).every((v) => v === Math.fround(0.1)), `F32 0.1, ${label}`);
    fill(NativeDType.F16, 0.1);
    t.ok(download(h, new Uint16Array(n), p).every((v) => v === 0x2e66), `F16 0.1 is 0x2e66, ${label}`);
    fill(NativeDType.BF16, -0.1);
    t.ok(download(h, new Uint16Array(n), p).every((v) => v === 0xbdcd), `BF16 -0.1 is 0xbdcd, ${label}`);
    fill(NativeDType.F16, 70000);
    t.ok(download(h, new Uint16Array(n), p).every((v) => v === 0x7c00), `F16 70000 overflows to inf, ${label}`);
    fill(NativeDType.I32, -7.9);
    t.ok(download(h, new Int32Array(n), p).every((v) => v === -7), `I32 -7.9 truncates to -7, ${label}`);
    fill(NativeDType.I64, 2 ** 40 + 3);
    t.ok(download(h, new BigInt64Array(n), p).every((v) => v === 2n ** 40n + 3n), `I64 2^40 + 3, ${label}`);
    fill(NativeDType.U8, 200);
    t.ok(download(h, new Uint8Array(n), p).every((v) => v === 200), `U8 200, ${label}`);
    h.free(p);
  }
});

t.test('fill rejects unknown dtypes and integer values out of range', async (t) => {
  const p = h1.alloc(4);
  const f = h1.lib.fns;
  t.equal(f.sgld_fill(h1.ctx, 6, 4, p, 1), Status.INVALID, 'dtype 6');
  t.match(f.sgld_last_error(), /sgld_fill: unknown dtype 6/);
  t.equal(f.sgld_fill(h1.ctx, NativeDType.U8, 4, p, 256), Status.INVALID, 'U8 256');
  t.equal(f.sgld_fill(h1.ctx, NativeDType.I32, 4, p, NaN), Status.INVALID, 'I32 NaN');
  t.equal(f.sgld_fill(h1.ctx, NativeDType.F32, -1, p, 1), Status.INVALID, 'negative n');
  t.equal(f.sgld_fill(h1.ctx, NativeDType.F32, 0, 0n, 1), Status.OK, 'n = 0 with a null pointer is a no-op');
});
