// Random weights for benchmarks and device checks at real model sizes: a WeightSource that has every tensor a
// model asks for, with the shape it asks for, filled deterministically (per tensor name) with values of a
// sensible scale: norms near 1, biases near 0, matrices ~ N(0, 1/fan_in). Timing does not depend on values,
// but finite, O(1) activations keep the arithmetic on its normal fast paths.
import type { WeightSource } from './weights.js';

/** FNV-1a of a string: a stable per-tensor seed. */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h;
}

export class RandomWeightSource implements WeightSource {
  readonly #shapes = new Map<string, number[]>();
  constructor(readonly seed = 0) {}

  has(): boolean { return true; }

  info(name: string, expectedShape?: readonly number[]): { dtype: string; shape: number[] } {
    const known = this.#shapes.get(name);
    if (known) return { dtype: 'F32', shape: known };
    if (!expectedShape) throw new Error(`RandomWeightSource: ${name} was requested without a shape`);
    const shape = [...expectedShape];
    this.#shapes.set(name, shape);
    return { dtype: 'F32', shape };
  }

  readRaw(name: string): Uint8Array {
    const shape = this.#shapes.get(name);
    if (!shape) throw new Error(`RandomWeightSource: ${name} read before info()`);
    const n = shape.reduce((a, b) => a * b, 1);
    const out = new Float32Array(n);
    const isNormWeight = /norm[^.]*\.(weight|gamma)$|\.gamma$|scale_shift_table$/.test(name) && !name.includes('scale_shift_table');
    if (/bias$|\.beta$/.test(name)) return new Uint8Array(out.buffer);
    if (isNormWeight) { out.fill(1); return new Uint8Array(out.buffer); }
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : Math.max(1, shape[0]!);
    const scale = Math.sqrt(3 / fanIn); // uniform(-a, a) with variance 1/fan_in
    let x = (hash32(name) ^ this.seed) >>> 0 || 1;
    for (let i = 0; i < n; i++) {
      // xorshift32: fast, deterministic, good enough for weights whose values do not matter
      x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
      out[i] = ((x / 4294967296) * 2 - 1) * scale;
    }
    return new Uint8Array(out.buffer);
  }
}
