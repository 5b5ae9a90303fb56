// Image-to-image's starting latents (diffusers v0.36.0 ZImageImg2ImgPipeline.prepare_latents), on host float32
// arrays with torch's rounding: the uploaded pixels as the VAE's input, a sample of the encoded distribution,
// normalised into the transformer's latent space, then noised to the first timestep of the shortened schedule.

const f32 = Math.fround;

/**
 * 8-bit RGB [H, W, 3] -> [1, 3, H, W] in [-1, 1] as VaeImageProcessor.preprocess computes it: x / 255 in float32
 * (pil_to_numpy), then 2x - 1 (normalize).
 */
export function pixelsToVaeInput(data: Uint8Array, height: number, width: number): Float32Array {
  const plane = height * width;
  const out = new Float32Array(3 * plane);
  for (let p = 0; p < plane; p++) {
    for (let c = 0; c < 3; c++) out[c * plane + p] = f32(2 * f32(data[p * 3 + c]! / 255) - 1);
  }
  return out;
}

/** DiagonalGaussianDistribution.sample: mean + exp(0.5 * logvar) * eps, with eps drawn by the caller. */
export function sampleDistribution(mean: Float32Array, logvar: Float32Array, eps: Float32Array): Float32Array {
  const out = new Float32Array(mean.length);
  for (let i = 0; i < mean.length; i++) {
    const std = f32(Math.exp(f32(0.5 * logvar[i]!)));
    out[i] = f32(mean[i]! + f32(std * eps[i]!));
  }
  return out;
}

/** (z - shift_factor) * scaling_factor: VAE latents into the transformer's latent space. */
export function normalizeImageLatents(z: Float32Array, scalingFactor: number, shiftFactor: number): Float32Array {
  const scale = f32(scalingFactor), shift = f32(shiftFactor);
  return z.map((x) => f32(f32(x - shift) * scale));
}

/**
 * ZImageImg2ImgPipeline.get_timesteps: with strength s of n steps, skip the first int(n - min(n * s, n))
 * (never below 0); returns that start index.
 */
export function img2imgStartIndex(numInferenceSteps: number, strength: number): number {
  const init = Math.min(numInferenceSteps * strength, numInferenceSteps);
  return Math.trunc(Math.max(numInferenceSteps - init, 0));
}
