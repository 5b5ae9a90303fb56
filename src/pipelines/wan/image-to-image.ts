// Wan image-to-image (/v1/images/edits on a Wan model): diffusers v0.36.0 WanVideoToVideoPipeline with a one-frame
// video. The input image is VAE-encoded (the posterior mean: sample_mode "argmax"), normalised with the VAE's
// latents_mean / latents_std, noised to the first timestep of the schedule shortened by `strength`
// (get_timesteps: the last int(steps * strength) steps run), then denoised with CFG and decoded like WanPipeline.
// No begin index is set, as in diffusers: the scheduler finds its step from the timestep.
import { fromFloat32 } from '../../runtime/ops.js';
import { TorchGenerator } from '../../runtime/random.js';
import { scoped } from '../../runtime/tensor.js';
import { createScheduler } from '../../schedulers/index.js';
import { type FloatFrames, type ProgressCallback, throwIfAborted } from '../types.js';
import { pixelsToVaeInput } from '../zimage/image-latents.js';
import type { WanPipeline } from './pipeline.js';
import { type WanGenerateRequest, normaliseWanRequest } from './request.js';
import { WAN_IMAGE_TO_IMAGE_STRENGTH, wanImageToImageStart } from './strength-schedule.js';

export interface WanImageToImageRequest extends Omit<WanGenerateRequest, 'numFrames' | 'latents'> {
  /** 8-bit RGB pixels at exactly width x height. */
  image: { width: number; height: number; data: Uint8Array };
  /** Fraction of the schedule to run, in (0, 1]; default 0.8. */
  strength?: number;
}

export interface WanImageToImageOptions {
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

/** Runs image-to-image on a loaded Wan pipeline; returns the one frame in [0, 1] as [1, H, W, 3]. */
export async function wanImageToImage(pipe: WanPipeline, req: WanImageToImageRequest, opts: WanImageToImageOptions = {}): Promise<FloatFrames> {
  const r = normaliseWanRequest({ ...req, numFrames: 1 }, pipe.geometry);
  const { image } = req;
  if (image.width !== r.width || image.height !== r.height || image.data.length !== image.width * image.height * 3) {
    throw new Error(`sgld: the input image is ${image.width}x${image.height}; resize it to the output size ${r.width}x${r.height} first`);
  }
  const strength = req.strength ?? WAN_IMAGE_TO_IMAGE_STRENGTH;
  const scheduler = createScheduler(pipe.schedulerConfig);
  scheduler.setTimesteps(r.numInferenceSteps);
  const start = wanImageToImageStart(r.numInferenceSteps, strength);
  const timesteps = Array.from(scheduler.timesteps).slice(start * scheduler.order);
  if (timesteps.length === 0) throw new Error(`sgld: strength ${strength} leaves no denoising step of ${r.numInferenceSteps}`);

  const text = pipe.promptBatch(r, opts);
  try {
    const imageLatents = scoped(() => {
      const x = fromFloat32(pipe.device, pixelsToVaeInput(image.data, r.height, r.width), [1, 3, 1, r.height, r.width], pipe.vae.dtype);
      const { mean } = pipe.vae.encode(x);
      return pipe.vae.normalizeLatents(mean);
    });
    const numel = r.latentShape.reduce((a, b) => a * b, 1);
    let latents: Float32Array;
    try {
      if (imageLatents.numel !== numel) {
        throw new Error(`sgld: the VAE encoded the image to [${imageLatents.shape.join(', ')}], expected [${r.latentShape.join(', ')}]`);
      }
      const noise = new TorchGenerator(r.seed).randn(r.latentShape);
      latents = scheduler.scaleNoise(imageLatents.toFloat32Array(), [timesteps[0]!], noise);
    } finally {
      imageLatents.free();
    }
    latents = await pipe.denoise(r, scheduler, timesteps, latents, text, opts);
    throwIfAborted(opts.signal);
    return pipe.decodeOnLeader(latents, r, opts.onProgress);
  } finally {
    text.free();
  }
}
