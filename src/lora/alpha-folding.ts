// diffusers' alpha folding (v0.36.0, lora_conversion_utils.py: the `get_alpha_scales` helpers of the Wan,
// musubi and Z-Image converters). When it converts a non-diffusers LoRA (lora_down / lora_up / alpha), diffusers
// does not keep alpha: it multiplies the matrices by alpha / rank, split between them so neither shrinks much,
// IN THE FILE'S DTYPE, and then loads the result with scale 1. For a bf16 file whose alpha / rank is not a power
// of two that rounding is visible (~1e-3 relative in the merged delta), so we reproduce it exactly:
//
//   scale = alpha / rank;  down_factor = scale;  up_factor = 1
//   while down_factor * 2 < up_factor: down_factor *= 2; up_factor /= 2      (only runs for scale < 1/2)
//   down' = dtype(down * down_factor);  up' = dtype(up * up_factor)
//
// torch computes `bf16_tensor * python_float` in float32 (the scalar as a float32) and rounds the product to
// bf16 (torch >= 2.1; older versions first rounded the scalar to bf16 — the same result whenever the factor is
// a bf16 value, e.g. 0.75, 1.5, any power of two). float16 likewise; float32 files round once in float32.
import { roundToBf16, roundToF16 } from './float-rounding.js';

export type FoldDType = 'F32' | 'F16' | 'BF16' | 'F64';

/** The (down, up) factors diffusers splits alpha / rank into. */
export function alphaFoldFactors(alpha: number, rank: number): { down: number; up: number } {
  let down = alpha / rank;
  let up = 1.0;
  while (down * 2 < up) {
    down *= 2;
    up /= 2;
  }
  return { down, up };
}

/**
 * `values` (exact values of a tensor stored as `dtype`) times `factor`, rounded as torch rounds the product into
 * that dtype. Returns a new array; a factor of 1 returns a copy (torch's multiply by 1.0 is exact).
 */
export function foldInDType(values: Float32Array, factor: number, dtype: FoldDType): Float32Array {
  const out = new Float32Array(values.length);
  if (factor === 1) {
    out.set(values);
    return out;
  }
  const f = Math.fround(factor);
  switch (dtype) {
    case 'BF16':
      for (let i = 0; i < values.length; i++) out[i] = roundToBf16(Math.fround(values[i]! * f));
      break;
    case 'F16':
      for (let i = 0; i < values.length; i++) out[i] = roundToF16(Math.fround(values[i]! * f));
      break;
    case 'F32':
      // Both operands are float32, so the double product is exact and fround is the float32 multiply.
      for (let i = 0; i < values.length; i++) out[i] = values[i]! * f;
      break;
    case 'F64':
      // float64 LoRA files are read as float32 (what the model holds); the product is then rounded once.
      for (let i = 0; i < values.length; i++) out[i] = values[i]! * factor;
      break;
  }
  return out;
}
