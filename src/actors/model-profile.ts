// What the engine knows about the served model before any weight is loaded: the pipeline family (from
// model_index.json), its task type, the size rules (spatial alignment, fixed resolution lists), the frame rule and
// the defaults of spec 5.2. Read from the configs only, so it is cheap and valid while the weights still load
// (ModelInfo is answered from construction on).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAutoencoderKLConfig } from '../models/autoencoder-kl/config.js';
import { parseWanTransformerConfig } from '../models/wan/transformer-config.js';
import { parseWanVAEConfig } from '../models/wan/vae-config.js';
import { parseZImageTransformerConfig } from '../models/zimage/transformer-config.js';
import { WAN_IMAGE_TO_IMAGE_STRENGTH } from '../pipelines/wan/strength-schedule.js';
import { ZIMAGE_DEFAULTS } from '../pipelines/zimage/request.js';
import type { ModelInfo, TaskType } from './api.js';

export type PipelineFamily = 'wan' | 'zimage';

type PublishedDefaults = ModelInfo['defaults'];

/** The defaults ModelInfo publishes, plus what only the engine uses. */
export interface ModelDefaults extends PublishedDefaults {
  /** Image-to-image strength when a request gives none. */
  strength: number;
}

export interface ModelProfile {
  family: PipelineFamily;
  /** model_index.json `_class_name` (`WanPipeline`, `ZImagePipeline`). */
  pipelineClass: string;
  /** SGLang's snake-case pipeline name (`wan_pipeline`). */
  pipelineName: string;
  taskType: TaskType;
  /** Output sides must be multiples of this (VAE spatial factor x transformer patch). */
  alignment: number;
  /** VAE temporal compression: frame counts are 1 + temporal * k (1 for image models). */
  temporal: number;
  /** Whether the model makes videos (more than one frame). */
  video: boolean;
  /** A fixed list of sizes the model accepts (SGLang's Wan2.1-1.3B rule), or null for any aligned size. */
  allowedSizes: readonly (readonly [number, number])[] | null;
  defaults: ModelDefaults;
  /** LoRA family name for src/lora (`wan`, `zimage`). */
  loraFamily: string;
}

/** Wan's default negative prompt, as the diffusers Wan examples and SGLang's Wan sampling config give it. */
export const WAN_NEGATIVE_PROMPT = 'Bright tones, overexposed, static, blurred details, subtitles, style, works, paintings, '
  + 'images, static, overall gray, worst quality, low quality, JPEG compression residue, ugly, incomplete, extra fingers, '
  + 'poorly drawn hands, poorly drawn faces, deformed, disfigured, misshapen limbs, fused fingers, still picture, '
  + 'messy background, three legs, many people in the background, walking backwards';

/** Below this model width (heads x head_dim) a checkpoint is a test-sized one: small, fast defaults. */
const TINY_WIDTH = 512;

/** Defaults for test-sized checkpoints (the embedded models/wan-tiny): a second or two per request on a CPU. */
const TINY_DEFAULTS = { width: 64, height: 64, numFrames: 9, fps: 16, numInferenceSteps: 8 } as const;

function readJson(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`sgld: cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new Error('not a JSON object');
    return value as Record<string, unknown>;
  } catch (e) {
    throw new Error(`sgld: ${path} is not valid JSON: ${(e as Error).message}`);
  }
}

/** Reads the pipeline folder's configs and derives the profile; throws a clear error for what sgld cannot serve. */
export function readModelProfile(modelDir: string): ModelProfile {
  const index = readJson(join(modelDir, 'model_index.json'));
  const pipelineClass = index._class_name;
  if (pipelineClass === 'WanPipeline') return wanProfile(modelDir, index);
  if (pipelineClass === 'ZImagePipeline' || pipelineClass === 'ZImageImg2ImgPipeline') return zImageProfile(modelDir, pipelineClass);
  throw new Error(`sgld: ${modelDir} holds a ${String(pipelineClass)}; sgld serves WanPipeline and ZImagePipeline folders`);
}

function wanProfile(dir: string, index: Record<string, unknown>): ModelProfile {
  const hasSecondStage = Array.isArray(index.transformer_2) && index.transformer_2[0] !== null;
  if (hasSecondStage || (index.boundary_ratio ?? null) !== null) {
    throw new Error(`sgld: ${dir} is a two-stage Wan2.2 pipeline (transformer_2 / boundary_ratio), which sgld does not serve yet`);
  }
  const tc = parseWanTransformerConfig(readJson(join(dir, 'transformer', 'config.json')));
  const vae = parseWanVAEConfig(readJson(join(dir, 'vae', 'config.json')));
  const alignment = vae.scaleFactorSpatial * tc.patchSize[1];
  const common = { guidanceScale: 5.0, negativePrompt: WAN_NEGATIVE_PROMPT, strength: WAN_IMAGE_TO_IMAGE_STRENGTH };
  let defaults: ModelDefaults;
  let allowedSizes: ModelProfile['allowedSizes'] = null;
  if (tc.innerDim < TINY_WIDTH) {
    defaults = { ...common, ...TINY_DEFAULTS };
  } else if (tc.numLayers === 30 && tc.innerDim === 1536) {
    // Wan2.1-T2V-1.3B (30 layers, width 1536): SGLang's sampling config, spec 5.2 and 11.11.
    defaults = { ...common, width: 832, height: 480, numFrames: 81, fps: 16, numInferenceSteps: 50, guidanceScale: 3.0 };
    allowedSizes = [[832, 480], [480, 832]];
  } else if (tc.numLayers === 40 && tc.innerDim === 5120) {
    // Wan2.1-T2V-14B (40 layers, width 5120): 720p, guidance 5.0 (spec 5.2).
    defaults = { ...common, width: 1280, height: 720, numFrames: 81, fps: 16, numInferenceSteps: 50 };
  } else {
    // Any other Wan2.1-architecture checkpoint: diffusers' WanPipeline defaults.
    defaults = { ...common, width: 832, height: 480, numFrames: 81, fps: 16, numInferenceSteps: 50 };
  }
  return {
    family: 'wan', pipelineClass: 'WanPipeline', pipelineName: 'wan_pipeline', taskType: 'T2V',
    alignment, temporal: vae.scaleFactorTemporal, video: true, allowedSizes, defaults, loraFamily: 'wan',
  };
}

function zImageProfile(dir: string, pipelineClass: string): ModelProfile {
  const tc = parseZImageTransformerConfig(readJson(join(dir, 'transformer', 'config.json')));
  const vae = parseAutoencoderKLConfig(readJson(join(dir, 'vae', 'config.json')));
  // ZImagePipeline's sizes are multiples of vae_scale_factor * 2 (the transformer's patch).
  const alignment = vae.scaleFactor * 2;
  const tiny = tc.dim < TINY_WIDTH;
  // Z-Image-Turbo's published settings (the pipeline's defaults): 1024x1024, 9 steps, no CFG, strength 0.6.
  const z = ZIMAGE_DEFAULTS;
  const defaults: ModelDefaults = {
    width: tiny ? TINY_DEFAULTS.width : z.size, height: tiny ? TINY_DEFAULTS.height : z.size,
    numFrames: 1, fps: 24, numInferenceSteps: z.numInferenceSteps, guidanceScale: z.guidanceScale, negativePrompt: null, strength: z.strength,
  };
  return {
    family: 'zimage', pipelineClass, pipelineName: 'zimage_pipeline', taskType: 'T2I',
    alignment, temporal: 1, video: false, allowedSizes: null, defaults, loraFamily: 'zimage',
  };
}
