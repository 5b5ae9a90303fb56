// Output quality resolution of spec section 4: presets -> a 0..100 level, and what the level means per
// encoder (JPEG/WebP quality, PNG zlib effort, H.264 CRF).
export const QUALITY_PRESETS = { maximum: 100, high: 90, medium: 55, low: 35 } as const;
export type QualityPreset = keyof typeof QUALITY_PRESETS | 'default';

/** Default levels when neither output_quality nor output_compression is given. */
export const DEFAULT_IMAGE_LEVEL = 75;
export const DEFAULT_VIDEO_LEVEL = 50;

/**
 * The 0..100 level of a request: `output_compression` wins when present, then the `output_quality` preset,
 * then the default for the media kind. Validation (unknown preset, out-of-range compression) happens in the
 * HTTP layer; this function assumes valid input.
 */
export function resolveQualityLevel(kind: 'image' | 'video', quality?: string | null, compression?: number | null): number {
  if (compression !== undefined && compression !== null) return compression;
  if (quality && quality !== 'default' && quality in QUALITY_PRESETS) return QUALITY_PRESETS[quality as keyof typeof QUALITY_PRESETS];
  return kind === 'image' ? DEFAULT_IMAGE_LEVEL : DEFAULT_VIDEO_LEVEL;
}

/** H.264 CRF for a level: floor((1 - L/100) * 51), so 50 -> 25 and 100 -> 0 (SGLang's mapping). */
export const crfForLevel = (level: number): number => Math.floor((1 - level / 100) * 51);

/** PNG zlib effort: 1 at the default level 75, else round(level/100*9) clamped to 0..9 (pixels never change). */
export function pngZlibLevel(level: number): number {
  if (level === DEFAULT_IMAGE_LEVEL) return 1;
  return Math.min(9, Math.max(0, Math.round((level / 100) * 9)));
}

/** JPEG quality on libjpeg's 1..100 scale (0 behaves like 1). */
export const jpegQuality = (level: number): number => Math.min(100, Math.max(1, Math.round(level)));
