// From validated HTTP parameters to what the device runs: the model-dependent rules the engine owns (api.ts):
// sizes the model can produce, frame rounding, model defaults, per-output seeds, image-to-image strength, and the
// engine's limits. Everything a caller got wrong is an ApiError 400 naming the field, raised before a job exists.
import sharp from 'sharp';
import type { RgbImage } from '../media/image.js';
import { wanImageToImageStart } from '../pipelines/wan/strength-schedule.js';
import { img2imgStartIndex } from '../pipelines/zimage/image-latents.js';
import { ApiError, type GenerationParams, type ImageJobParams, type VideoJobParams } from './api.js';
import type { GenerationRun } from './device-protocol.js';
import type { ModelProfile } from './model-profile.js';

/** Bounds on one request, so a typo cannot ask the device for terabytes. */
export interface EngineLimits {
  /** Largest width x height (default 4096 x 4096). */
  maxPixels: number;
  /** Largest frame count of a video (default 1025: 64 s at 16 fps). */
  maxFrames: number;
  /** Largest num_inference_steps (default 1000). */
  maxSteps: number;
}

export const DEFAULT_LIMITS: EngineLimits = { maxPixels: 4096 * 4096, maxFrames: 1025, maxSteps: 1000 };

/** A job's resolved shape: what its record says and what its runs do. */
export interface JobPlan {
  width: number;
  height: number;
  /** Frames per output (after the model's rounding). */
  numFrames: number;
  n: number;
  runs: GenerationRun[];
}

const limitError = (param: string, message: string): ApiError => ApiError.badRequest(message, param, 'limit_exceeded');

/** Per-output seeds: a list as given, else seed, seed + 1, ... (so the n outputs differ and output 0 keeps `seed`). */
export function outputSeeds(seed: number | number[], n: number): number[] {
  if (Array.isArray(seed)) {
    if (seed.length !== n) throw ApiError.badRequest(`seed has ${seed.length} entries for n = ${n} outputs`, 'seed', 'invalid_seed');
    return seed;
  }
  return Array.from({ length: n }, (_, i) => seed + i);
}

/** Checks a size against the model's rules (spec 3.4: alignment, fixed lists) and the pixel limit. */
export function checkSize(profile: ModelProfile, width: number, height: number, limits: EngineLimits): void {
  const size = `${width}x${height}`;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width <= 0 || height <= 0) {
    throw ApiError.badRequest(`size ${size} is not a positive WIDTHxHEIGHT`, 'size', 'invalid_size');
  }
  if (profile.allowedSizes && !profile.allowedSizes.some(([w, h]) => w === width && h === height)) {
    const allowed = profile.allowedSizes.map(([w, h]) => `${w}x${h}`).join(', ');
    throw ApiError.badRequest(`size ${size} is not supported by this model; allowed sizes: ${allowed}`, 'size', 'unsupported_size');
  }
  const a = profile.alignment;
  if (width % a !== 0 || height % a !== 0) {
    throw ApiError.badRequest(`size ${size} is not supported: width and height must be multiples of ${a} (e.g. ${Math.max(a, Math.round(width / a) * a)}x${Math.max(a, Math.round(height / a) * a)})`,
      'size', 'unsupported_size');
  }
  if (width * height > limits.maxPixels) {
    throw limitError('size', `size ${size} has ${width * height} pixels; this server allows at most ${limits.maxPixels}`);
  }
}

/** Frame count the model produces for a request: Wan's 4k+1 rule (diffusers' WanPipeline rounding). */
export function modelFrames(profile: ModelProfile, requested: number): number {
  const t = profile.temporal;
  if (!profile.video) return 1;
  return requested % t === 1 ? requested : Math.max(1, Math.floor(requested / t) * t + 1);
}

function commonRun(profile: ModelProfile, p: GenerationParams, limits: EngineLimits) {
  const d = profile.defaults;
  const steps = p.numInferenceSteps ?? d.numInferenceSteps;
  if (!Number.isInteger(steps) || steps < 1) throw ApiError.badRequest(`num_inference_steps must be a positive integer, got ${steps}`, 'num_inference_steps');
  if (steps > limits.maxSteps) throw limitError('num_inference_steps', `num_inference_steps ${steps} is above this server's limit of ${limits.maxSteps}`);
  const guidanceScale = p.guidanceScale ?? d.guidanceScale;
  if (!Number.isFinite(guidanceScale)) throw ApiError.badRequest('guidance_scale must be a finite number', 'guidance_scale');
  // undefined: the model's negative prompt; null: explicitly none (the pipelines then use "").
  const negativePrompt = (p.negativePrompt === undefined ? d.negativePrompt : p.negativePrompt) ?? '';
  return {
    prompt: p.prompt, negativePrompt, numInferenceSteps: steps, guidanceScale,
    ...(p.maxSequenceLength !== undefined ? { maxSequenceLength: p.maxSequenceLength } : {}),
  };
}

/** Resolves and validates an image job (generations, or edits when it has inputs). Resizes the edit input. */
export async function planImageJob(profile: ModelProfile, p: ImageJobParams, limits: EngineLimits): Promise<JobPlan> {
  if (p.numFrames !== undefined && p.numFrames !== 1) {
    throw ApiError.badRequest(`image requests produce one frame; num_frames must be 1 (got ${p.numFrames}); use /v1/videos for videos`, 'num_frames', 'unsupported_num_frames');
  }
  const base = commonRun(profile, p, limits);
  const input = p.inputs[0]?.image;
  let width: number, height: number;
  if (input && p.width === undefined && p.height === undefined) {
    // Edits without a size: the input's size, snapped down to the model's alignment (or the closest allowed size).
    ({ width, height } = editSize(profile, input));
  } else {
    width = p.width ?? profile.defaults.width;
    height = p.height ?? profile.defaults.height;
  }
  checkSize(profile, width, height, limits);
  let image: RgbImage | undefined;
  let strength: number | undefined;
  if (input) {
    strength = p.strength ?? profile.defaults.strength;
    checkStrength(profile, base.numInferenceSteps, strength);
    image = await resizeRgb(input, width, height);
  }
  const runs = outputSeeds(p.seed, p.n).map((seed): GenerationRun => ({
    ...base, width, height, numFrames: 1, seed, ...(image ? { image, strength } : {}),
  }));
  return { width, height, numFrames: 1, n: p.n, runs };
}

/** Resolves and validates a video job. */
export function planVideoJob(profile: ModelProfile, p: VideoJobParams, limits: EngineLimits): JobPlan {
  if (!profile.video) {
    throw new ApiError(400, `The served model (${profile.taskType}) does not generate videos; use /v1/images/generations`, { code: 'unsupported_task' });
  }
  if (p.reference) {
    throw ApiError.badRequest(`The served model is text-to-video (${profile.taskType}); it takes no input_reference`, 'input_reference', 'unsupported_task');
  }
  const base = commonRun(profile, p, limits);
  const width = p.width ?? profile.defaults.width, height = p.height ?? profile.defaults.height;
  checkSize(profile, width, height, limits);
  if (!Number.isInteger(p.numFrames) || p.numFrames < 1) throw ApiError.badRequest(`num_frames must be a positive integer, got ${p.numFrames}`, 'num_frames');
  if (!Number.isInteger(p.fps) || p.fps < 1) throw ApiError.badRequest(`fps must be a positive integer, got ${p.fps}`, 'fps');
  const numFrames = modelFrames(profile, p.numFrames);
  if (numFrames > limits.maxFrames) throw limitError('num_frames', `${numFrames} frames is above this server's limit of ${limits.maxFrames}`);
  const runs = outputSeeds(p.seed, p.n).map((seed): GenerationRun => ({ ...base, width, height, numFrames, seed }));
  return { width, height, numFrames, n: p.n, runs };
}

function editSize(profile: ModelProfile, input: RgbImage): { width: number; height: number } {
  if (profile.allowedSizes) {
    const aspect = input.width / input.height;
    const [w, h] = [...profile.allowedSizes].sort((a, b) => Math.abs(Math.log(a[0] / a[1] / aspect)) - Math.abs(Math.log(b[0] / b[1] / aspect)))[0]!;
    return { width: w, height: h };
  }
  const a = profile.alignment;
  return { width: Math.max(a, Math.floor(input.width / a) * a), height: Math.max(a, Math.floor(input.height / a) * a) };
}

/** Image-to-image must run at least one step: the family's get_timesteps rule decides. */
function checkStrength(profile: ModelProfile, steps: number, strength: number): void {
  if (!(strength >= 0 && strength <= 1)) throw ApiError.badRequest(`strength must be in [0, 1], got ${strength}`, 'strength');
  const start = profile.family === 'wan' ? wanImageToImageStart(steps, strength) : img2imgStartIndex(steps, strength);
  if (start >= steps) {
    throw ApiError.badRequest(`strength ${strength} with ${steps} steps leaves no denoising step; raise strength or num_inference_steps`, 'strength', 'invalid_strength');
  }
}

/** The input resized to the output size (stretched, as diffusers' image processor resizes). */
async function resizeRgb(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill' }).raw().toBuffer();
  return { width, height, data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}
