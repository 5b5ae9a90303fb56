// The per-step arithmetic of ZImagePipeline's denoising loop (diffusers v0.36.0 pipeline_z_image.py), on host
// float32 arrays with torch's float32 rounding: the transformer's timestep input, when CFG runs, and the guided,
// optionally renormalised prediction.

const f32 = Math.fround;

/** The transformer's time input: (1000 - t) / 1000 in float32 (0 at the first step, 1 at pure data). */
export function normalizedTimestep(t: number): number {
  return f32(f32(1000 - f32(t)) / 1000);
}

export interface GuidanceSettings {
  /** diffusers' do_classifier_free_guidance (guidance_scale > 1). */
  cfg: boolean;
  guidanceScale: number;
  /** null: CFG at every step; otherwise only while t_norm <= it (ignored above 1, as diffusers does). */
  cfgTruncation: number | null;
}

/** The guidance scale in effect at a step with normalised time `tNorm`; 0 means the step runs without CFG. */
export function guidanceAt(s: GuidanceSettings, tNorm: number): number {
  if (!s.cfg) return 0;
  if (s.cfgTruncation !== null && s.cfgTruncation <= 1 && tNorm > s.cfgTruncation) return 0;
  return s.guidanceScale > 0 ? s.guidanceScale : 0;
}

/**
 * sqrt(sum x^2) rounded to float32: torch.linalg.vector_norm of a float32 tensor. We accumulate in float64, torch
 * in float32 partial sums; the two differ by rounding only, far below the tolerances.
 */
function l2(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return f32(Math.sqrt(s));
}

/**
 * pred = pos + g * (pos - neg), then, when `normalization` > 0, scaled down to norm(pos) * normalization if its
 * L2 norm (over the whole item) is larger. Written into `out` (may alias pos).
 */
export function guidedPrediction(pos: Float32Array, neg: Float32Array, g: number, normalization: number, out = new Float32Array(pos.length)): Float32Array {
  const scale = f32(g);
  const posNorm = normalization > 0 ? l2(pos) : 0; // before `out` (which may be pos) is written
  for (let i = 0; i < pos.length; i++) out[i] = f32(pos[i]! + f32(scale * f32(pos[i]! - neg[i]!)));
  if (normalization > 0) {
    const maxNorm = f32(posNorm * f32(normalization));
    const norm = l2(out);
    if (norm > maxNorm) {
      const ratio = f32(maxNorm / norm);
      for (let i = 0; i < out.length; i++) out[i] = f32(out[i]! * ratio);
    }
  }
  return out;
}
