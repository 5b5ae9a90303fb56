// PyTorch's CPU random generator, reproduced bit for bit so that a seed gives the same initial noise as
// `torch.randn(shape, generator=torch.Generator('cpu').manual_seed(seed), dtype=torch.float32)`.
//
// What torch does (ATen: CPUGeneratorImpl, core/MT19937RNGEngine.h, core/DistributionsHelper.h,
// core/TransformationHelper.h, native/cpu/DistributionTemplates.h, native/cpu/avx_mathfun.h):
// - The engine is the standard 32-bit Mersenne Twister, seeded with init_genrand on the LOW 32 bits of the
//   uint64 seed (so 4294967301 seeds like 5). random() is one draw; random64() is two, the first as high word.
// - randn of float32 with >= 16 contiguous elements: every element first gets a uniform float
//   (draw & 0xFFFFFF) / 2^24; then each block of 16 becomes 8 Box-Muller pairs: u1 = 1 - d[j], u2 = d[j + 8],
//   d[j] = sqrt(-2 ln u1) cos(2 pi u2), d[j + 8] = sqrt(-2 ln u1) sin(2 pi u2). If the count is not a multiple
//   of 16, the LAST 16 elements are drawn afresh (16 more uniforms) and transformed again, overwriting the
//   overlap. On x86 builds with AVX2 the math is float32 Cephes polynomials (avx_mathfun.h), emulated below.
// - Fewer than 16 elements: one double normal per element from at::normal_distribution<double>: two 53-bit
//   uniforms from random64(), r = sqrt(-2 log1p(-u2)), theta = 2 pi u1, returns r cos(theta) and caches
//   r sin(theta) in the generator for the next scalar draw (the cache survives across calls until reseeded;
//   the vectorised path neither reads nor clears it).

const N = 624;
const M = 397;
const MATRIX_A = 0x9908b0df;
const UPPER = 0x80000000;
const LOWER = 0x7fffffff;

/** torch.Generator()'s seed when none is given (c10 default_rng_seed_val). */
export const TORCH_DEFAULT_SEED = 67280421310721n;

/** The float32 Box-Muller of the >= 16 path: AVX2 builds (the x86 wheels) or the portable scalar loop. */
export type NormalMath = 'avx2' | 'scalar';

export class TorchGenerator {
  private readonly state = new Uint32Array(N);
  private next = 0;
  private left = 1;
  private seed = 0n;
  /** at::normal_distribution<double>'s cached second Box-Muller value. */
  private cachedNormal: number | null = null;

  constructor(seed: number | bigint = TORCH_DEFAULT_SEED, readonly normalMath: NormalMath = 'avx2') {
    this.manualSeed(seed);
  }

  /** Like Generator.manual_seed: resets the engine and drops any cached normal. */
  manualSeed(seed: number | bigint): this {
    const s = BigInt.asUintN(64, BigInt(seed)); // torch takes the seed as uint64 (negatives wrap)
    this.seed = s;
    const st = this.state;
    st[0] = Number(s & 0xffffffffn);
    for (let j = 1; j < N; j++) {
      const prev = st[j - 1]!;
      st[j] = (Math.imul(1812433253, prev ^ (prev >>> 30)) + j) >>> 0;
    }
    this.left = 1;
    this.next = 0;
    this.cachedNormal = null;
    return this;
  }

  /** The seed last given (Generator.initial_seed). */
  initialSeed(): bigint {
    return this.seed;
  }

  /** One 32-bit draw (CPUGeneratorImpl::random). */
  nextUint32(): number {
    if (--this.left === 0) this.twist();
    let y = this.state[this.next++]!;
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  /** Two draws as one 64-bit value, the first in the high word (CPUGeneratorImpl::random64). */
  nextUint64(): bigint {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /** Uniform float in [0, 1) with 24 random bits (at::uniform_real_distribution<float>(0, 1)). */
  nextFloat(): number {
    return (this.nextUint32() & 0xffffff) * 2 ** -24;
  }

  /** Uniform double in [0, 1) with 53 random bits (at::uniform_real_distribution<double>(0, 1)). */
  nextDouble(): number {
    const hi = this.nextUint32();
    const lo = this.nextUint32();
    return ((hi & 0x1fffff) * 4294967296 + lo) * 2 ** -53;
  }

  /** One standard normal double from at::normal_distribution<double>, using and refilling the cache. */
  nextNormalDouble(): number {
    if (this.cachedNormal !== null) {
      const v = this.cachedNormal;
      this.cachedNormal = null;
      return v;
    }
    const u1 = this.nextDouble();
    const u2 = this.nextDouble();
    const r = Math.sqrt(-2 * Math.log1p(-u2));
    const theta = 2 * Math.PI * u1;
    this.cachedNormal = r * Math.sin(theta);
    return r * Math.cos(theta);
  }

  /** torch.randn(shape, generator=this, dtype=torch.float32) on a fresh contiguous tensor. */
  randn(shape: readonly number[]): Float32Array {
    let n = 1;
    for (const d of shape) {
      if (!Number.isSafeInteger(d) || d < 0) throw new Error(`randn: bad shape [${shape.join(', ')}]`);
      n *= d;
    }
    const out = new Float32Array(n);
    this.fillNormal(out);
    return out;
  }

  /** Fills `out` as torch's normal_ fills a contiguous float32 tensor of out.length elements. */
  fillNormal(out: Float32Array): void {
    const n = out.length;
    if (n < 16) {
      for (let i = 0; i < n; i++) out[i] = this.nextNormalDouble();
      return;
    }
    for (let i = 0; i < n; i++) out[i] = this.nextFloat();
    const boxMuller = this.normalMath === 'avx2' ? boxMuller16Avx2 : boxMuller16Scalar;
    for (let i = 0; i + 16 <= n; i += 16) boxMuller(out, i);
    if (n % 16 !== 0) {
      const tail = n - 16;
      for (let i = 0; i < 16; i++) out[tail + i] = this.nextFloat();
      boxMuller(out, tail);
    }
  }

  private twist(): void {
    const st = this.state;
    let k = 0;
    for (; k < N - M; k++) st[k] = st[k + M]! ^ mixTwist(st[k]!, st[k + 1]!);
    for (; k < N - 1; k++) st[k] = st[k + M - N]! ^ mixTwist(st[k]!, st[k + 1]!);
    st[N - 1] = st[M - 1]! ^ mixTwist(st[N - 1]!, st[0]!);
    this.left = N;
    this.next = 0;
  }
}

function mixTwist(u: number, v: number): number {
  const y = (u & UPPER) | (v & LOWER);
  return ((y >>> 1) ^ (v & 1 ? MATRIX_A : 0)) >>> 0;
}

// ----------------------------------------------------------------------------- float32 Box-Muller blocks

const f = Math.fround;

/** Portable path (normal_fill_16): float logf/cosf/sinf; theta is 2 pi (double) x u2 rounded to float. */
function boxMuller16Scalar(d: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - d[at + j]!);
    const u2 = d[at + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * f(Math.log(u1)))));
    const theta = f(2 * Math.PI * u2);
    d[at + j] = f(radius * f(Math.cos(theta)));
    d[at + j + 8] = f(radius * f(Math.sin(theta)));
  }
}

/**
 * AVX2 path (normal_fill_16_AVX2): Cephes float32 log and sincos, step by step in float32. The x86 wheels are
 * built by GCC with FMA enabled, which contracts each multiply whose only use is an add into one fused
 * multiply-add (the earlier multiply when two feed the same add); emulating exactly those contractions is what
 * makes this bit-exact (0 differing bits over the 199680-element fixture; without them ~1% differ by 1 ulp).
 */
function boxMuller16Avx2(d: Float32Array, at: number): void {
  for (let j = 0; j < 8; j++) {
    const u1 = f(1 - d[at + j]!);
    const u2 = d[at + j + 8]!;
    const radius = f(Math.sqrt(f(-2 * cephesLogf(u1))));
    const theta = f(TWO_PI_F * u2);
    cephesSinCosf(theta);
    d[at + j] = f(radius * sincosOut[1]!);
    d[at + j + 8] = f(radius * sincosOut[0]!);
  }
}

const TWO_PI_F = f(2 * Math.PI);

const f32 = new Float32Array(1);
const f32Bits = new Uint32Array(f32.buffer);

/**
 * Single-rounding float32 a*b+c (fmaf). a*b of two floats is exact in a double; the sum is split into its
 * double rounding s and the exact error (TwoSum). Rounding s to float is then right unless s lies exactly
 * halfway between two floats and the error is non-zero: then the error's sign picks the side. s - r is exact
 * and so is r + 2(s - r), which is a float exactly when s is such a midpoint (it is the other neighbour).
 */
export function fmaf(a: number, b: number, c: number): number {
  const p = a * b;
  const s = p + c;
  const sc = s - p;
  const err = (p - (s - sc)) + (c - sc);
  const r = f(s);
  if (err === 0 || r === s || !Number.isFinite(s)) return r;
  const other = r + 2 * (s - r);
  if (f(other) !== other) return r;
  return err > 0 ? Math.max(r, other) : Math.min(r, other);
}

// Cephes single-precision coefficients as avx_mathfun.h (after sse_mathfun / Cephes logf, sinf, cosf) uses them.
const SQRTHF = f(0.707106781186547524);
const LOG_P = [7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1, 1.4249322787e-1,
  -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1, 3.3333331174e-1].map(f);
const LOG_Q1 = f(-2.12194440e-4);
const LOG_Q2 = f(0.693359375);

/** Cephes logf for x in (0, 1] as log256_ps computes it: x = m 2^e, m in [sqrt(1/2), sqrt(2)), polynomial in m-1. */
function cephesLogf(xIn: number): number {
  f32[0] = xIn;
  const exponentField = f32Bits[0]! >>> 23;
  f32Bits[0] = (f32Bits[0]! & ~0x7f800000) | 0x3f000000; // the mantissa with the exponent of 0.5: [0.5, 1)
  let x = f32[0]!;
  let e = f(exponentField - 127 + 1);
  if (x < SQRTHF) {
    e = f(e - 1);
    x = f(f(x - 1) + x);
  } else {
    x = f(x - 1);
  }
  const z = f(x * x);
  let y = LOG_P[0]!;
  for (let i = 1; i < 9; i++) y = fmaf(y, x, LOG_P[i]!);
  y = f(y * x);
  y = fmaf(y, z, f(e * LOG_Q1));
  y = f(y - f(z * 0.5));
  return fmaf(e, LOG_Q2, f(x + y));
}

const FOPI = f(1.27323954473516); // 4 / pi
// pi/4 split in three parts (Cody-Waite) so that x - j pi/4 keeps its precision.
const MINUS_DP1 = f(-0.78515625);
const MINUS_DP2 = f(-2.4187564849853515625e-4);
const MINUS_DP3 = f(-3.77489497744594108e-8);
const SIN_P0 = f(-1.9515295891e-4);
const SIN_P1 = f(8.3321608736e-3);
const SIN_P2 = f(-1.6666654611e-1);
const COS_P0 = f(2.443315711809948e-5);
const COS_P1 = f(-1.388731625493765e-3);
const COS_P2 = f(4.166664568298827e-2);

/** [sin, cos] of the last cephesSinCosf call (avoids allocating a pair per element). */
const sincosOut = new Float64Array(2);

/** Cephes sinf/cosf pair for x >= 0 as sincos256_ps computes it: octant j, then one of two polynomials. */
function cephesSinCosf(xIn: number): void {
  let x = Math.abs(xIn);
  const signSin = xIn < 0 ? -1 : 1;
  let j = Math.trunc(f(x * FOPI)) | 0;
  j = (j + 1) & ~1;
  const y = f(j);
  const flipSin = (j & 4) !== 0 ? -1 : 1;
  const flipCos = (~(j - 2) & 4) !== 0 ? -1 : 1;
  const sinFromSinPoly = (j & 2) === 0;
  x = fmaf(y, MINUS_DP1, x);
  x = fmaf(y, MINUS_DP2, x);
  x = fmaf(y, MINUS_DP3, x);
  const z = f(x * x);
  let c = fmaf(COS_P0, z, COS_P1);
  c = fmaf(c, z, COS_P2);
  c = f(c * z);
  c = f(fmaf(c, z, -f(z * 0.5)) + 1);
  let s = fmaf(SIN_P0, z, SIN_P1);
  s = fmaf(s, z, SIN_P2);
  s = f(s * z);
  s = fmaf(s, x, x);
  sincosOut[0] = signSin * flipSin * (sinFromSinPoly ? s : c);
  sincosOut[1] = flipCos * (sinFromSinPoly ? c : s);
}
