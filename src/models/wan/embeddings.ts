// Wan's timestep embedding input: diffusers' Timesteps(num_channels=freq_dim, flip_sin_to_cos=True,
// downscale_freq_shift=0), i.e. the DDPM/Transformer sinusoid [cos(t * f_i), sin(t * f_i)] with
// f_i = exp(-ln(10000) * i / half). diffusers computes it in float32; every step below rounds to float32 where
// torch does, so the embedding matches to the last bit or two (timesteps reach 999, which amplifies any
// difference in f_i).
const f32 = Math.fround;

export interface SinusoidOptions {
  flipSinToCos?: boolean;
  downscaleFreqShift?: number;
  maxPeriod?: number;
  scale?: number;
}

/** [timesteps.length, dim] row-major float32 sinusoidal embeddings (diffusers get_timestep_embedding). */
export function timestepSinusoid(timesteps: readonly number[], dim: number, opts: SinusoidOptions = {}): Float32Array {
  const flip = opts.flipSinToCos ?? true;
  const shift = opts.downscaleFreqShift ?? 0;
  const maxPeriod = opts.maxPeriod ?? 10000;
  const scale = opts.scale ?? 1;
  const half = Math.floor(dim / 2);
  const freqs = new Float32Array(half);
  const negLog = f32(-Math.log(maxPeriod));
  for (let i = 0; i < half; i++) freqs[i] = f32(Math.exp(f32(f32(negLog * i) / f32(half - shift))));
  const out = new Float32Array(timesteps.length * dim);
  timesteps.forEach((t, b) => {
    const row = b * dim;
    for (let i = 0; i < half; i++) {
      const arg = f32(f32(scale) * f32(f32(t) * freqs[i]!));
      const s = Math.sin(arg), c = Math.cos(arg);
      out[row + i] = flip ? c : s;
      out[row + half + i] = flip ? s : c;
    }
    // an odd dim leaves the last column zero (diffusers pads it)
  });
  return out;
}
