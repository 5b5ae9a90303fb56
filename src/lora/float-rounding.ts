// Rounding of float values to the 16-bit float formats (round to nearest, ties to even), as torch does when it
// writes a float32 result into a bfloat16 / float16 tensor. Used to reproduce diffusers' alpha folding, which
// rescales LoRA matrices in the file's own dtype (alpha-folding.ts). Values stay JS numbers: only the rounding
// matters here, not the bit patterns.

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** `x` (first rounded to float32) rounded to the nearest bfloat16 value, ties to even; NaN stays NaN. */
export function roundToBf16(x: number): number {
  f32[0] = x;
  if (Number.isNaN(f32[0])) return NaN;
  // A bf16 is the top half of a float32: add just under half an ulp plus the kept lsb, then truncate.
  // Overflow carries into the exponent and gives +-inf, as the hardware conversion does.
  const u = u32[0]!;
  u32[0] = ((u + 0x7fff + ((u >>> 16) & 1)) & 0xffff0000) >>> 0;
  return f32[0];
}

/** Smallest float16 subnormal (2^-24) and the largest finite float16 (65504). */
const F16_MIN_SUBNORMAL = 2 ** -24;
const F16_MAX = 65504;

/** `x` (first rounded to float32) rounded to the nearest float16 value, ties to even; overflow gives +-inf. */
export function roundToF16(x: number): number {
  const v = Math.fround(x);
  if (!Number.isFinite(v) || v === 0) return v;
  const sign = v < 0 ? -1 : 1;
  const a = Math.abs(v);
  // Halfway between 65504 and the next step (65536) rounds to even, i.e. up to infinity.
  if (a >= F16_MAX + 16) return sign * Infinity;
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  else if (2 ** (e + 1) <= a) e++;
  // 10 fraction bits for normals (exponent >= -14); a fixed 2^-24 step for subnormals.
  const quantum = e < -14 ? F16_MIN_SUBNORMAL : 2 ** (e - 10);
  return sign * roundHalfEven(a / quantum) * quantum;
}

/** Nearest integer, ties to the even one (exact for the dyadic quotients above). */
function roundHalfEven(q: number): number {
  const floor = Math.floor(q);
  const frac = q - floor;
  if (frac > 0.5) return floor + 1;
  if (frac < 0.5) return floor;
  return floor % 2 === 0 ? floor : floor + 1;
}
