// Qwen3's rotary position embedding (Su et al. 2021, "rotate half" layout as in Llama): pair (x[i], x[i + D/2])
// rotates by pos * inv_freq[i], inv_freq[i] = theta^(-2i/D). Positions are 0..L-1 for every prompt:
// transformers' Qwen3Model derives them from the cache position, not from the attention mask.
//
// transformers computes inv_freq in float32 (`1 / theta ** (arange(0, D, 2).float() / D)`), the angle as a float32
// product and cos/sin in float32. The angles reach hundreds of radians at 512 tokens, where one float32 ulp is
// 3e-5, so we repeat those roundings rather than computing in float64.
import type { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import { Scope, type Tensor } from '../../runtime/tensor.js';

const f32 = Math.fround;

/** Host tables cos/sin [length, headDim / 2] for positions 0..length-1 (column i rotates pair (i, i + D/2)). */
export function qwen3RopeTables(headDim: number, length: number, theta: number): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const invFreq = new Float32Array(half);
  for (let i = 0; i < half; i++) invFreq[i] = f32(1 / f32(Math.pow(f32(theta), f32(f32(2 * i) / headDim))));
  const cos = new Float32Array(length * half), sin = new Float32Array(length * half);
  for (let p = 0; p < length; p++) {
    for (let i = 0; i < half; i++) {
      const angle = f32(invFreq[i]! * p);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/**
 * Device tables for the longest sequence seen so far; shorter sequences use a prefix (rows are positions), so
 * one upload serves every prompt length. Lives until `free()`.
 */
export class Qwen3RopeCache {
  #length = 0;
  #tables: { cos: Tensor; sin: Tensor } | null = null;

  constructor(readonly device: Device, readonly headDim: number, readonly theta: number) {}

  /** Tables [length, headDim / 2] (views of the cached ones). */
  get(length: number): { cos: Tensor; sin: Tensor } {
    if (!this.#tables || length > this.#length) {
      this.free();
      const host = qwen3RopeTables(this.headDim, length, this.theta);
      const shape = [length, this.headDim / 2];
      this.#tables = {
        cos: Scope.detach(fromFloat32(this.device, host.cos, shape, 'f32')),
        sin: Scope.detach(fromFloat32(this.device, host.sin, shape, 'f32')),
      };
      this.#length = length;
    }
    return { cos: this.#tables.cos.slice(0, 0, length), sin: this.#tables.sin.slice(0, 0, length) };
  }

  free(): void {
    this.#tables?.cos.free();
    this.#tables?.sin.free();
    this.#tables = null;
    this.#length = 0;
  }
}
