// The flow-matching forward process x_t = (1 - sigma) x_0 + sigma noise, used to start image-to-image and
// video-to-video from an encoded input. Rounded like diffusers: alpha = 1 - sigma in float32, then two products
// and a sum, each in float32 (addition commutes, so UniPC's `add_noise` and FlowMatch's `scale_noise` agree).
import { SchedulerUsageError } from './types.js';

export function timestepList(timestep: number | ArrayLike<number>): number[] {
  return typeof timestep === 'number' ? [timestep] : Array.from(timestep);
}

/**
 * Writes (1 - sigma_b) * sample + sigma_b * noise into `out`, batch item b being the b-th of `sigmasPerItem.length`
 * equal contiguous parts of the flat arrays.
 */
export function flowNoise(sample: Float32Array, noise: Float32Array, sigmasPerItem: readonly number[],
  out: Float32Array | undefined): Float32Array {
  const n = sample.length;
  if (noise.length !== n) throw new SchedulerUsageError(`noise has ${noise.length} elements, the sample ${n}`);
  const batch = sigmasPerItem.length;
  if (batch === 0 || n % batch !== 0) {
    throw new SchedulerUsageError(`${n} sample elements do not split into ${batch} batch items`);
  }
  const result = out ?? new Float32Array(n);
  if (result.length !== n) throw new SchedulerUsageError(`out has ${result.length} elements, the sample ${n}`);
  const perItem = n / batch;
  for (let b = 0; b < batch; b++) {
    const sigma = Math.fround(sigmasPerItem[b]!);
    const alpha = Math.fround(1 - sigma);
    const end = (b + 1) * perItem;
    for (let i = b * perItem; i < end; i++) {
      result[i] = Math.fround(alpha * sample[i]!) + Math.fround(sigma * noise[i]!);
    }
  }
  return result;
}
