// Z-Image generation parameters and how the pipeline normalises them (diffusers v0.36.0 ZImagePipeline /
// ZImageImg2ImgPipeline rules, with Z-Image-Turbo's published settings as defaults).

/** 8-bit RGB pixels, row-major, width * height * 3 bytes (what src/media decodes uploads to). */
export interface RgbPixels { width: number; height: number; data: Uint8Array }

export interface ZImageGenerateRequest {
  prompt: string;
  /** Used only when CFG runs (guidance_scale > 1); default "" as in diffusers. */
  negativePrompt?: string;
  /** Output size in pixels; default 1024 (text-to-image) or the input image's size (image-to-image). */
  height?: number;
  width?: number;
  /** Default 9: Z-Image-Turbo's setting (diffusers' __call__ signature says 50, its Turbo examples use 9). */
  numInferenceSteps?: number;
  /** Default 0 (Turbo is guidance-distilled; diffusers' signature says 5.0). CFG runs only above 1. */
  guidanceScale?: number;
  /** CFG runs only at steps whose t_norm = (1000 - t) / 1000 is <= this; values above 1 disable it. Default 1. */
  cfgTruncation?: number | null;
  /** > 0: rescale the guided prediction to at most this times the positive one's L2 norm. 0/false: off (default). */
  cfgNormalization?: number | boolean;
  /** Images per prompt (the API's `n`): one batch, noise drawn as one [n, 16, h, w] tensor as diffusers does. */
  numImagesPerPrompt?: number;
  /** Seed of the CPU generator the noise is drawn from (torch.Generator('cpu').manual_seed(seed)). */
  seed?: number | bigint;
  /** Initial latents [n, 16, H/8, W/8] instead of drawing noise (parity tests). */
  latents?: Float32Array;
  /** Custom sigmas (one per step) instead of the default schedule. */
  sigmas?: number[];
  maxSequenceLength?: number;
  /** Image-to-image (/v1/images/edits): the input image, already at the output size. */
  image?: RgbPixels;
  /** Image-to-image: how much of the schedule to run, in [0, 1]; default 0.6 as in ZImageImg2ImgPipeline. */
  strength?: number;
}

export interface NormalisedZImageRequest {
  prompt: string;
  negativePrompt: string;
  height: number;
  width: number;
  numInferenceSteps: number;
  guidanceScale: number;
  /** null: no truncation. */
  cfgTruncation: number | null;
  /** 0: off. */
  cfgNormalization: number;
  numImagesPerPrompt: number;
  seed: bigint;
  latents?: Float32Array;
  sigmas?: number[];
  maxSequenceLength: number;
  image?: RgbPixels;
  strength: number;
  /** [n, latent_channels, 2 * (H // 16), 2 * (W // 16)] (diffusers' prepare_latents). */
  latentShape: [number, number, number, number];
  /** diffusers' do_classifier_free_guidance: guidance_scale > 1. */
  cfg: boolean;
  /** What changed from the request, for logs. */
  adjustments: string[];
}

export interface ZImageGeometry {
  /** VAE spatial compression (8). */
  vaeScale: number;
  /** Transformer patch size (2): sizes are multiples of vaeScale * patch. */
  patch: number;
  latentChannels: number;
}

/** Z-Image-Turbo's published settings (diffusers docs / model card examples) and ZImagePipeline's size default. */
export const ZIMAGE_DEFAULTS = {
  size: 1024, numInferenceSteps: 9, guidanceScale: 0, strength: 0.6, maxSequenceLength: 512,
} as const;

/** diffusers' generic default seed when none is given (SGLang's sampling fallback is 1024 too). */
export const DEFAULT_SEED = 1024n;

export class ZImageRequestError extends Error {
  constructor(readonly param: string, message: string) {
    super(`sgld: ${message}`);
    this.name = 'ZImageRequestError';
  }
}

const positiveInt = (v: number, param: string): number => {
  if (!Number.isInteger(v) || v < 1) throw new ZImageRequestError(param, `${param} must be a positive integer, got ${v}`);
  return v;
};

export function normaliseZImageRequest(req: ZImageGenerateRequest, g: ZImageGeometry): NormalisedZImageRequest {
  const adjustments: string[] = [];
  const multiple = g.vaeScale * g.patch;
  const image = req.image;
  if (image && (image.data.length !== image.width * image.height * 3)) {
    throw new ZImageRequestError('image', `image has ${image.data.length} bytes, expected ${image.width}x${image.height}x3`);
  }
  let height = req.height ?? image?.height ?? ZIMAGE_DEFAULTS.size;
  let width = req.width ?? image?.width ?? ZIMAGE_DEFAULTS.size;
  positiveInt(height, 'height');
  positiveInt(width, 'width');
  // diffusers raises for sizes that are not multiples of 16; a server rounds down and says so (as for Wan).
  if (height % multiple || width % multiple) {
    const h = Math.floor(height / multiple) * multiple, w = Math.floor(width / multiple) * multiple;
    if (h <= 0 || w <= 0) throw new ZImageRequestError('size', `size ${width}x${height} is too small (minimum ${multiple}x${multiple})`);
    adjustments.push(`size ${width}x${height} -> ${w}x${h} (multiples of ${multiple})`);
    height = h; width = w;
  }
  if (image && (image.width !== width || image.height !== height)) {
    throw new ZImageRequestError('image', `the input image is ${image.width}x${image.height}; resize it to the output size ${width}x${height} first`);
  }
  const strength = req.strength ?? ZIMAGE_DEFAULTS.strength;
  if (!(strength >= 0 && strength <= 1)) throw new ZImageRequestError('strength', `strength must be in [0, 1], got ${strength}`);
  const guidanceScale = req.guidanceScale ?? ZIMAGE_DEFAULTS.guidanceScale;
  if (!Number.isFinite(guidanceScale)) throw new ZImageRequestError('guidance_scale', `guidance_scale must be a number, got ${guidanceScale}`);
  const norm = req.cfgNormalization ?? 0;
  const cfgNormalization = typeof norm === 'boolean' ? Number(norm) : norm;
  if (!(cfgNormalization >= 0)) throw new ZImageRequestError('cfg_normalization', `cfg_normalization must be >= 0, got ${norm}`);
  const cfgTruncation = req.cfgTruncation === undefined ? 1 : req.cfgTruncation;
  if (cfgTruncation !== null && !Number.isFinite(cfgTruncation)) throw new ZImageRequestError('cfg_truncation', `cfg_truncation must be a number, got ${cfgTruncation}`);
  const numInferenceSteps = positiveInt(req.sigmas?.length ?? req.numInferenceSteps ?? ZIMAGE_DEFAULTS.numInferenceSteps, 'num_inference_steps');
  if (req.sigmas && req.numInferenceSteps !== undefined && req.numInferenceSteps !== req.sigmas.length) {
    throw new ZImageRequestError('sigmas', `${req.sigmas.length} sigmas given for ${req.numInferenceSteps} steps`);
  }
  const n = positiveInt(req.numImagesPerPrompt ?? 1, 'n');
  const latentShape: [number, number, number, number] = [n, g.latentChannels, 2 * Math.floor(height / multiple), 2 * Math.floor(width / multiple)];
  if (req.latents && req.latents.length !== latentShape.reduce((a, b) => a * b, 1)) {
    throw new ZImageRequestError('latents', `latents have ${req.latents.length} values, expected [${latentShape.join(', ')}]`);
  }
  return {
    prompt: req.prompt,
    negativePrompt: req.negativePrompt ?? '',
    height, width, numInferenceSteps, guidanceScale, cfgTruncation, cfgNormalization,
    numImagesPerPrompt: n,
    seed: req.seed === undefined ? DEFAULT_SEED : BigInt(req.seed),
    latents: req.latents,
    sigmas: req.sigmas,
    maxSequenceLength: positiveInt(req.maxSequenceLength ?? ZIMAGE_DEFAULTS.maxSequenceLength, 'max_sequence_length'),
    image,
    strength,
    latentShape,
    cfg: guidanceScale > 1,
    adjustments,
  };
}
