// Fields every generation request shares (images and videos, spec 3.1 / 5.1), the `size` grammar (3.4) and the
// output quality rules (section 4).
import type { GenerationParams, ImageFormat, ModelInfo } from '../actors/api.js';
import { QUALITY_PRESETS, resolveQualityLevel } from '../media/quality.js';
import { invalidField } from './errors.js';
import { Field, type Parsed, checkListLength, field } from './schema.js';

/** SGLang's default seed for every request: identical requests are deterministic (spec 3.1, 11.5). */
export const DEFAULT_SEED = 1024;
/** n is 1..10 in SGLang (clamped there, rejected here: spec 12). */
export const MAX_OUTPUTS = 10;

/**
 * Longest text-encoder window a request may ask for: twice the 512 tokens the served families' encoders use
 * (Wan's UMT5, Z-Image's Qwen3); prompts are padded to it, so a huge value would allocate without bound.
 */
export const MAX_SEQUENCE_LENGTH = 1024;

export const QUALITY_WORDS = [...Object.keys(QUALITY_PRESETS), 'default'] as const;

export const GENERATION_FIELDS = {
  model: field.string(),
  size: field.string(),
  width: field.integer({ min: 1, code: 'invalid_size' }),
  height: field.integer({ min: 1, code: 'invalid_size' }),
  negative_prompt: field.string(),
  num_inference_steps: field.integer({ min: 1 }),
  guidance_scale: field.number(),
  true_cfg_scale: field.number(),
  seed: field.integerOrList(),
  generator_device: field.oneOf(['cuda', 'cpu'] as const, { caseInsensitive: true }).default('cuda'),
  max_sequence_length: field.integer({ min: 1, max: MAX_SEQUENCE_LENGTH, code: 'limit_exceeded' }),
  flow_shift: field.number(),
  enable_teacache: field.boolean().default(false),
  output_quality: field.oneOf(QUALITY_WORDS, { code: 'invalid_output_quality', caseInsensitive: true }).default('default'),
  // Spec 4.2: anything but an integer in 0..100 is a 400 here, wrong type included.
  output_compression: Field.of<number>((v, p, source) => {
    try {
      return field.integer({ min: 0, max: 100 }).parseValue(v, p, source);
    } catch {
      throw invalidField(p, `${p} must be an integer between 0 and 100; got ${JSON.stringify(v)}`, 'invalid_output_compression');
    }
  }),
};

/**
 * `size` (spec 3.4): lower-cased, spaces removed, `WIDTHxHEIGHT` with positive integers; "auto" and "" mean the
 * model default (undefined). Anything else is a 400 (SGLang ignores it silently).
 */
export function parseSize(size: string | undefined): { width: number; height: number } | undefined {
  if (size === undefined) return undefined;
  const s = size.toLowerCase().replace(/\s+/g, '');
  if (s === '' || s === 'auto') return undefined;
  const m = /^(\d+)x(\d+)$/.exec(s);
  const width = m ? Number(m[1]) : NaN, height = m ? Number(m[2]) : NaN;
  if (!m || !(width > 0) || !(height > 0) || !Number.isSafeInteger(width) || !Number.isSafeInteger(height)) {
    throw invalidField('size', `size must look like WIDTHxHEIGHT, e.g. 1024x1024; got '${size}'`, 'invalid_size');
  }
  return { width, height };
}

/** The normalised shared parameters; `width`/`height` fields override the halves of `size`. */
export function generationParams(p: Parsed<typeof GENERATION_FIELDS> & { prompt: string }, n: number): GenerationParams {
  const size = parseSize(p.size);
  const width = p.width ?? size?.width, height = p.height ?? size?.height;
  if (Array.isArray(p.seed)) checkListLength(p.seed, 'seed', n);
  return {
    prompt: p.prompt,
    negativePrompt: p.negative_prompt,
    model: p.model,
    n,
    // Either half may be absent: the model's default fills it.
    ...(width !== undefined ? { width } : {}),
    ...(height !== undefined ? { height } : {}),
    seed: p.seed ?? DEFAULT_SEED,
    generatorDevice: p.generator_device,
    numInferenceSteps: p.num_inference_steps,
    guidanceScale: p.guidance_scale,
    trueCfgScale: p.true_cfg_scale,
    maxSequenceLength: p.max_sequence_length,
    flowShift: p.flow_shift,
    enableTeacache: p.enable_teacache,
  };
}

/** The 0..100 level (spec 4.2): output_compression wins, then the preset, then the media's default. */
export const qualityLevel = (kind: 'image' | 'video', p: Parsed<typeof GENERATION_FIELDS>): number =>
  resolveQualityLevel(kind, p.output_quality, p.output_compression);

export const IMAGE_FORMAT_FIELDS = {
  output_format: field.oneOf(['png', 'jpeg', 'jpg', 'webp'] as const, { code: 'invalid_output_format', caseInsensitive: true }),
  background: field.oneOf(['transparent', 'opaque', 'auto'] as const, { caseInsensitive: true }).default('auto'),
};

/** Spec 4.1: output_format, else the model's default, else PNG for a transparent background, else JPEG. */
export function imageFormat(p: Parsed<typeof IMAGE_FORMAT_FIELDS>, model: ModelInfo): ImageFormat {
  if (p.output_format !== undefined) return p.output_format === 'jpg' ? 'jpeg' : p.output_format;
  if (model.defaults.imageFormat) return model.defaults.imageFormat;
  if (p.background === 'transparent') return 'png';
  return 'jpeg';
}
