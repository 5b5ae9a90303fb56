// Job parameters with the request-level defaults the HTTP layer would fill in (spec 3.1, 4.2, 5.2), for callers
// that submit jobs in-process: only `prompt` is required; the model's own defaults apply to whatever stays absent.
import { DEFAULT_IMAGE_LEVEL, DEFAULT_VIDEO_LEVEL } from '../media/quality.js';
import type { GenerationParams, ImageJobParams, VideoJobParams } from './api.js';

/** SGLang's default seed for every request, so identical requests are deterministic (spec 3.1). */
export const DEFAULT_REQUEST_SEED = 1024;
/** Output frame rate of a video request that names none (spec 5.2). */
export const DEFAULT_REQUEST_FPS = 24;

type Optional<T, K extends keyof T> = Omit<T, K> & Partial<Pick<T, K>>;
type Shared = 'n' | 'seed' | 'generatorDevice' | 'enableTeacache';

const shared = (p: Partial<GenerationParams>) => ({
  n: p.n ?? 1, seed: p.seed ?? DEFAULT_REQUEST_SEED, generatorDevice: p.generatorDevice ?? 'cpu', enableTeacache: p.enableTeacache ?? false,
});

/** An image job: one PNG at the model's default size unless said otherwise. */
export function imageJob(p: Optional<ImageJobParams, Shared | 'format' | 'level' | 'inputs'>): ImageJobParams {
  return { ...p, ...shared(p), format: p.format ?? 'png', level: p.level ?? DEFAULT_IMAGE_LEVEL, inputs: p.inputs ?? [] };
}

/** A video job: `numFrames` defaults to the model's frame count (the HTTP API instead asks fps x seconds). */
export function videoJob(p: Optional<VideoJobParams, Shared | 'fps' | 'level' | 'numFrames'>, modelFrames: number): VideoJobParams {
  return { ...p, ...shared(p), fps: p.fps ?? DEFAULT_REQUEST_FPS, numFrames: p.numFrames ?? modelFrames, level: p.level ?? DEFAULT_VIDEO_LEVEL };
}
