// Timestep shifting of flow-matching schedules: a constant shift (SD3 / Wan / Z-Image), the resolution-dependent
// one (Flux-style `mu`), and the pipeline formula that turns an image's token count into `mu`.
import { f32 } from './float32-linalg.js';

/**
 * sigma -> shift * sigma / (1 + (shift - 1) * sigma) in float64 (numpy on float64 arrays). It maps [0, 1] onto
 * itself and spends more steps at high noise for shift > 1 (SD3 paper, eq. 23, with shift = sqrt(m / n)).
 */
export function shiftSigma(sigma: number, shift: number): number {
  return (shift * sigma) / (1 + (shift - 1) * sigma);
}

/** The same shift on a float32 numpy array: the Python scalars become float32 and every operation rounds. */
export function shiftSigmaFloat32(sigma: number, shift: number): number {
  return f32(f32(f32(shift) * sigma) / f32(1 + f32(f32(shift - 1) * sigma)));
}

export type TimeShiftType = 'exponential' | 'linear';

/**
 * diffusers' `time_shift(mu, 1.0, t)`: exp(mu) / (exp(mu) + (1/t - 1)) for "exponential", mu / (mu + (1/t - 1))
 * for "linear" (the exponent sigma is always 1.0 there, and x ** 1.0 is x). float64, or float32 rounding
 * of every numpy operation when the sigmas came in as a float32 array.
 */
export function timeShift(type: TimeShiftType, mu: number, t: number, float32: boolean): number {
  const m = type === 'exponential' ? Math.exp(mu) : mu;
  if (!float32) return m / (m + (1 / t - 1));
  const m32 = f32(m);
  return f32(m32 / f32(m32 + f32(f32(1 / t) - 1)));
}

/** Defaults of calculate_shift, which are also FlowMatchEuler's config defaults (Flux: 256 -> 0.5, 4096 -> 1.15). */
export interface ShiftLine {
  baseImageSeqLen: number;
  maxImageSeqLen: number;
  baseShift: number;
  maxShift: number;
}

export const DEFAULT_SHIFT_LINE: ShiftLine = { baseImageSeqLen: 256, maxImageSeqLen: 4096, baseShift: 0.5, maxShift: 1.15 };

/**
 * The pipelines' `calculate_shift` (Flux, Z-Image): mu on the straight line through (base_seq_len, base_shift)
 * and (max_seq_len, max_shift), evaluated at the image's token count, in the same float64 operation order.
 */
export function calculateShift(imageSeqLen: number, line: ShiftLine = DEFAULT_SHIFT_LINE): number {
  const m = (line.maxShift - line.baseShift) / (line.maxImageSeqLen - line.baseImageSeqLen);
  const b = line.baseShift - m * line.baseImageSeqLen;
  return imageSeqLen * m + b;
}
