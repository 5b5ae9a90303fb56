// What every pipeline shares: progress reporting, cancellation, and the generated frames.

/** Phases a job goes through inside a pipeline, in order. */
export type PipelinePhase = 'encoding_prompt' | 'denoising' | 'decoding';

export interface StepProgress {
  phase: PipelinePhase;
  /** 1-based step within the phase (denoising: the step just finished). */
  step: number;
  total: number;
  /** Seconds since the phase began. */
  elapsed: number;
  /** Estimated seconds left in the phase (denoising only). */
  eta?: number;
}

export type ProgressCallback = (p: StepProgress) => void;

/** Thrown between steps when a job's AbortSignal fires. */
export class CancelledError extends Error {
  constructor(message = 'generation cancelled') { super(message); this.name = 'CancelledError'; }
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError(typeof signal.reason === 'string' ? signal.reason : undefined);
}

/** Frames as float RGB in [0, 1], [frames, height, width, 3] row-major (diffusers' output_type "np"). */
export interface FloatFrames { frames: number; height: number; width: number; data: Float32Array }

/** numpy's round(): halves go to the even neighbour. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Quantises [0,1] floats to uint8 the way diffusers' numpy_to_pil does: (x * 255).round() (half to even). */
export function toUint8Frames(f: FloatFrames): Uint8Array[] {
  const per = f.height * f.width * 3;
  const out: Uint8Array[] = [];
  for (let i = 0; i < f.frames; i++) {
    const src = f.data.subarray(i * per, (i + 1) * per);
    const dst = new Uint8Array(per);
    for (let j = 0; j < per; j++) dst[j] = roundHalfEven(Math.fround(src[j]! * 255));
    out.push(dst);
  }
  return out;
}
