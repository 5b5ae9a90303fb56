// The contract every flow-matching scheduler keeps, so a pipeline's denoise loop does not care which one it has.
// Samples are flat host Float32Arrays (the latents in row-major order); the schedulers never see shapes except
// the batch size that `scaleNoise` infers from the number of timesteps.

/** What diffusers' `set_timesteps` takes beyond the step count. */
export interface SetTimestepsOptions {
  /** Resolution-dependent shift; used only when the config has `use_dynamic_shifting`. */
  mu?: number;
  /** Custom sigmas, one per step, before shifting (FlowMatchEuler only). */
  sigmas?: ArrayLike<number>;
  /** Custom timesteps, one per step (FlowMatchEuler only). */
  timesteps?: ArrayLike<number>;
}

export type SchedulerClassName = 'UniPCMultistepScheduler' | 'FlowMatchEulerDiscreteScheduler';

export interface FlowScheduler {
  readonly className: SchedulerClassName;
  /**
   * The denoising timesteps, largest first. Values are exact: integers for UniPC (int64 in diffusers), float32
   * values for FlowMatchEuler. The transformer needs them in `timestepDtype`.
   */
  readonly timesteps: Float64Array;
  /** How diffusers types `timesteps`: Wan's transformer gets int64, Z-Image's float32. */
  readonly timestepDtype: 'int64' | 'float32';
  /** One sigma per timestep plus the terminal one (0, or the schedule's minimum). */
  readonly sigmas: Float32Array;
  readonly numInferenceSteps: number | null;
  /** Index of the next step() into `timesteps`; null until the first step() after setTimesteps. */
  readonly stepIndex: number | null;
  readonly beginIndex: number | null;
  /** diffusers' `scheduler.order` (model calls per timestep): img2img pipelines slice timesteps with it. */
  readonly order: number;
  /** Config keys diffusers v0.36.0 does not know either; it ignores them with a warning, so do we. */
  readonly ignoredConfigKeys: readonly string[];

  /** Computes timesteps and sigmas for `numInferenceSteps` and resets the multistep state. */
  setTimesteps(numInferenceSteps: number | null, options?: SetTimestepsOptions): void;
  /** Where the first step() starts (img2img pipelines call this instead of looking the timestep up). */
  setBeginIndex(beginIndex?: number): void;
  /**
   * One denoising step from `timestep`: returns the sample at the next timestep, written into `out` (which may
   * be `sample` itself) or into a new array. The scheduler copies what it keeps, so callers may reuse buffers.
   */
  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, out?: Float32Array): Float32Array;
  /**
   * The flow-matching forward process for image-to-image: (1 - sigma) * sample + sigma * noise, sigma taken at
   * `timestep` (one per batch item; the batch splits `sample` into equal contiguous parts).
   */
  scaleNoise(sample: Float32Array, timestep: number | ArrayLike<number>, noise: Float32Array,
    out?: Float32Array): Float32Array;
}

/** A scheduler config that diffusers v0.36.0 would reject, or that sgld does not implement. */
export class SchedulerConfigError extends Error {
  override readonly name = 'SchedulerConfigError';
  constructor(readonly className: string, readonly key: string | null, message: string) {
    super(key === null ? `${className}: ${message}` : `${className}: config '${key}': ${message}`);
  }
}

/** A call that does not fit the scheduler's state (no setTimesteps yet, too many steps, wrong sizes). */
export class SchedulerUsageError extends Error {
  override readonly name = 'SchedulerUsageError';
}
