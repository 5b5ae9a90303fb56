// Wan generation parameters and how the pipeline normalises them (diffusers' WanPipeline rules).

export interface WanGenerateRequest {
  prompt: string;
  negativePrompt?: string;
  height: number;
  width: number;
  /** 1 gives an image. Rounded to 4k+1 as diffusers does. */
  numFrames: number;
  numInferenceSteps: number;
  guidanceScale: number;
  /** Seed of the CPU generator the initial noise is drawn from (torch.Generator('cpu').manual_seed(seed)). */
  seed?: number | bigint;
  /** Initial latents [1, 16, F', H/8, W/8] instead of drawing noise (parity tests). */
  latents?: Float32Array;
  maxSequenceLength?: number;
}

export interface NormalisedWanRequest extends Required<Omit<WanGenerateRequest, 'latents' | 'seed' | 'negativePrompt'>> {
  negativePrompt: string;
  seed: bigint;
  latents?: Float32Array;
  latentShape: [number, number, number, number, number];
  /** True when guidance_scale > 1 (diffusers' do_classifier_free_guidance). */
  cfg: boolean;
  /** What changed from the request, for logs. */
  adjustments: string[];
}

export interface WanGeometry {
  /** VAE temporal compression (4 for Wan2.1). */
  temporal: number;
  /** VAE spatial compression (8). */
  spatial: number;
  /** Transformer patch size (1, 2, 2). */
  patch: readonly [number, number, number];
  latentChannels: number;
}

/** diffusers' generic default seed when none is given (SGLang's sampling fallback is 1024 too). */
export const DEFAULT_SEED = 1024n;

export function normaliseWanRequest(req: WanGenerateRequest, g: WanGeometry): NormalisedWanRequest {
  const adjustments: string[] = [];
  let numFrames = req.numFrames;
  if (numFrames % g.temporal !== 1) {
    const rounded = Math.max(1, Math.floor(numFrames / g.temporal) * g.temporal + 1);
    adjustments.push(`num_frames ${numFrames} -> ${rounded} (must be ${g.temporal}k+1)`);
    numFrames = rounded;
  }
  const hm = g.spatial * g.patch[1], wm = g.spatial * g.patch[2];
  let { height, width } = req;
  if (height % hm || width % wm) {
    const h = Math.floor(height / hm) * hm, w = Math.floor(width / wm) * wm;
    adjustments.push(`size ${width}x${height} -> ${w}x${h} (multiples of ${wm}x${hm})`);
    height = h; width = w;
  }
  if (height <= 0 || width <= 0) throw new Error(`sgld: size ${req.width}x${req.height} is too small (minimum ${wm}x${hm})`);
  const latentFrames = Math.floor((numFrames - 1) / g.temporal) + 1;
  return {
    prompt: req.prompt,
    negativePrompt: req.negativePrompt ?? '',
    height, width, numFrames,
    numInferenceSteps: req.numInferenceSteps,
    guidanceScale: req.guidanceScale,
    seed: req.seed === undefined ? DEFAULT_SEED : BigInt(req.seed),
    latents: req.latents,
    maxSequenceLength: req.maxSequenceLength ?? 512,
    latentShape: [1, g.latentChannels, latentFrames, height / g.spatial, width / g.spatial],
    cfg: req.guidanceScale > 1,
    adjustments,
  };
}
