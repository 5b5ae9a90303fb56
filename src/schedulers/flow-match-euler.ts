// Euler for rectified flow (SD3, Flux, Z-Image): x_{next} = x + (sigma_next - sigma) * v. Mirrors diffusers
// v0.36.0 `FlowMatchEulerDiscreteScheduler` (deterministic sampling), including where its schedule is float64
// numpy and where it is float32 torch, which decides the last bits of the float timesteps.
import { ConfigReader, type RawSchedulerConfig } from './config-reader.js';
import { f32 } from './float32-linalg.js';
import { flowNoise, timestepList } from './flow-noise.js';
import { type ShiftLine, shiftSigma, shiftSigmaFloat32, timeShift, type TimeShiftType } from './flow-shift.js';
import { linspace } from './numpy-linspace.js';
import { indexForTimestep, noiseStepIndices } from './step-index.js';
import { type FlowScheduler, type SetTimestepsOptions, SchedulerUsageError } from './types.js';

const CLASS_NAME = 'FlowMatchEulerDiscreteScheduler';

export interface FlowMatchEulerConfig {
  numTrainTimesteps: number;
  shift: number;
  useDynamicShifting: boolean;
  /** The pipeline's calculate_shift line (read by pipelines, not by the scheduler). */
  shiftLine: ShiftLine;
  invertSigmas: boolean;
  shiftTerminal: number | null;
  timeShiftType: TimeShiftType;
}

/** Reads every key of diffusers v0.36.0's FlowMatchEuler config: honoured, or rejected when not implemented. */
export function parseFlowMatchEulerConfig(raw: RawSchedulerConfig): { config: FlowMatchEulerConfig; ignoredKeys: string[] } {
  const r = new ConfigReader(CLASS_NAME, raw);
  const numTrainTimesteps = r.number('num_train_timesteps', 1000, { integer: true, min: 1 });
  const shift = r.number('shift', 1.0);
  const useDynamicShifting = r.flag('use_dynamic_shifting', false);
  // Optional in diffusers; the pipelines fall back to these defaults when a value is missing.
  const shiftLine: ShiftLine = {
    baseShift: r.numberOrNull('base_shift', 0.5) ?? 0.5,
    maxShift: r.numberOrNull('max_shift', 1.15) ?? 1.15,
    baseImageSeqLen: r.numberOrNull('base_image_seq_len', 256) ?? 256,
    maxImageSeqLen: r.numberOrNull('max_image_seq_len', 4096) ?? 4096,
  };
  const invertSigmas = r.flag('invert_sigmas', false);
  const shiftTerminal = r.numberOrNull('shift_terminal', null);
  const karras = r.flag('use_karras_sigmas', false);
  const exponential = r.flag('use_exponential_sigmas', false);
  const beta = r.flag('use_beta_sigmas', false);
  if (Number(karras) + Number(exponential) + Number(beta) > 1) {
    r.fail('use_karras_sigmas', 'only one of use_beta_sigmas, use_exponential_sigmas, use_karras_sigmas can be used');
  }
  if (karras) r.fail('use_karras_sigmas', 'Karras sigmas are not supported');
  if (exponential) r.fail('use_exponential_sigmas', 'exponential sigmas are not supported');
  if (beta) r.fail('use_beta_sigmas', 'beta sigmas are not supported');
  const timeShiftType = r.choice<TimeShiftType>('time_shift_type', 'exponential', ['exponential', 'linear']);
  if (r.flag('stochastic_sampling', false)) {
    r.fail('stochastic_sampling', 'stochastic sampling (fresh noise every step) is not supported');
  }
  return {
    config: { numTrainTimesteps, shift, useDynamicShifting, shiftLine, invertSigmas, shiftTerminal, timeShiftType },
    ignoredKeys: r.unreadKeys(),
  };
}

export class FlowMatchEulerDiscreteScheduler implements FlowScheduler {
  readonly className = CLASS_NAME;
  readonly timestepDtype = 'float32';
  readonly order = 1;
  readonly config: FlowMatchEulerConfig;
  readonly ignoredConfigKeys: readonly string[];

  timesteps: Float64Array;
  sigmas: Float32Array;
  numInferenceSteps: number | null = null;
  /** The shift in use (diffusers' `set_shift` changes it without touching the config). */
  shift: number;
  /**
   * Ends of the default schedule, as sigmas. diffusers sets them from the training schedule; ZImagePipeline sets
   * `sigmaMin = 0` before setTimesteps so that the last step lands on pure data.
   */
  sigmaMin: number;
  sigmaMax: number;

  private stepIndexValue: number | null = null;
  private beginIndexValue: number | null = null;

  constructor(rawConfig: RawSchedulerConfig) {
    const { config, ignoredKeys } = parseFlowMatchEulerConfig(rawConfig);
    this.config = config;
    this.ignoredConfigKeys = ignoredKeys;
    this.shift = config.shift;
    // The training schedule in float32 torch: t = T..1, sigma = t / T, shifted unless the shift is dynamic.
    const T = config.numTrainTimesteps;
    const train = linspace(1, T, T);
    this.sigmas = new Float32Array(T);
    this.timesteps = new Float64Array(T);
    for (let i = 0; i < T; i++) {
      let s = f32(f32(train[T - 1 - i]!) / T);
      if (!config.useDynamicShifting) s = shiftSigmaFloat32(s, config.shift);
      this.sigmas[i] = s;
      this.timesteps[i] = f32(s * T);
    }
    this.sigmaMin = this.sigmas[T - 1]!;
    this.sigmaMax = this.sigmas[0]!;
  }

  get stepIndex(): number | null { return this.stepIndexValue; }
  get beginIndex(): number | null { return this.beginIndexValue; }

  setBeginIndex(beginIndex = 0): void {
    this.beginIndexValue = beginIndex;
  }

  setShift(shift: number): void {
    this.shift = shift;
  }

  /**
   * Default schedule: timesteps linspace(sigmaMax * T, sigmaMin * T, n) in float64, sigmas = t / T, shifted
   * (constant shift, or time_shift(mu) when dynamic), optionally stretched to shift_terminal, then float32;
   * timesteps = sigmas * T in float32 unless given. Custom sigmas/timesteps are float32 numpy arrays, so their
   * shift is computed in float32.
   */
  setTimesteps(numInferenceSteps: number | null, options: SetTimestepsOptions = {}): void {
    const { mu } = options;
    const { numTrainTimesteps: T, useDynamicShifting } = this.config;
    if (useDynamicShifting && mu === undefined) {
      throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: mu must be passed when use_dynamic_shifting is true`);
    }
    const customSigmas = options.sigmas === undefined ? null : Array.from(options.sigmas);
    const customTimesteps = options.timesteps === undefined ? null : Array.from(options.timesteps, f32);
    if (customSigmas !== null && customTimesteps !== null && customSigmas.length !== customTimesteps.length) {
      throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: sigmas and timesteps must have the same length`);
    }
    let n: number;
    if (numInferenceSteps !== null) {
      if (!Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
        throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: the number of steps must be a positive integer`);
      }
      if ((customSigmas !== null && customSigmas.length !== numInferenceSteps)
        || (customTimesteps !== null && customTimesteps.length !== numInferenceSteps)) {
        throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: sigmas and timesteps must have numInferenceSteps entries`);
      }
      n = numInferenceSteps;
    } else if (customSigmas !== null || customTimesteps !== null) {
      n = (customSigmas ?? customTimesteps)!.length;
    } else {
      throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: give a number of steps, sigmas or timesteps`);
    }
    if (n < 1) throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: the schedule would be empty`);

    // 1. Unshifted sigmas: float64 from the default grid, float32 from caller values.
    let base: number[];
    let float32Path: boolean;
    if (customSigmas !== null) {
      base = customSigmas.map(f32);
      float32Path = true;
    } else if (customTimesteps !== null) {
      base = customTimesteps.map((t) => f32(t / T));
      float32Path = true;
    } else {
      base = Array.from(linspace(this.sigmaMax * T, this.sigmaMin * T, n), (t) => t / T);
      float32Path = false;
    }
    // 2. Shift.
    let shifted = base.map((s) => {
      if (useDynamicShifting) return timeShift(this.config.timeShiftType, mu!, s, float32Path);
      return float32Path ? shiftSigmaFloat32(s, this.shift) : shiftSigma(s, this.shift);
    });
    // 3. Stretch so that the last sigma is shift_terminal (LTX-Video); diffusers skips it for 0 as for null.
    if (this.config.shiftTerminal) shifted = stretchToTerminal(shifted, this.config.shiftTerminal, float32Path);
    // 4-6. float32 sigmas, timesteps, the terminal sigma.
    let sigmas = shifted.map(f32);
    let timesteps = customTimesteps ?? sigmas.map((s) => f32(s * T));
    if (this.config.invertSigmas) {
      sigmas = sigmas.map((s) => f32(1 - s));
      timesteps = sigmas.map((s) => f32(s * T));
    }
    this.sigmas = new Float32Array(n + 1);
    this.sigmas.set(sigmas);
    this.sigmas[n] = this.config.invertSigmas ? 1 : 0;
    this.timesteps = Float64Array.from(timesteps);
    this.numInferenceSteps = n;
    this.stepIndexValue = null;
    this.beginIndexValue = null;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, out?: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) throw new SchedulerUsageError(`${CLASS_NAME}.step: call setTimesteps first`);
    const n = sample.length;
    if (modelOutput.length !== n) {
      throw new SchedulerUsageError(`${CLASS_NAME}.step: model output has ${modelOutput.length} elements, sample ${n}`);
    }
    const result = out ?? new Float32Array(n);
    if (result.length !== n) throw new SchedulerUsageError(`${CLASS_NAME}.step: out has ${result.length} elements, sample ${n}`);
    if (this.stepIndexValue === null) {
      this.stepIndexValue = this.beginIndexValue ?? indexForTimestep(this.timesteps, f32(timestep), 'error');
    }
    const i = this.stepIndexValue;
    if (i + 1 >= this.sigmas.length) {
      throw new SchedulerUsageError(`${CLASS_NAME}.step: all ${this.timesteps.length} steps are done; call setTimesteps again`);
    }
    const dt = f32(this.sigmas[i + 1]! - this.sigmas[i]!);
    for (let k = 0; k < n; k++) result[k] = sample[k]! + f32(dt * modelOutput[k]!);
    this.stepIndexValue = i + 1;
    return result;
  }

  /** diffusers' `scale_noise(sample, timestep, noise)`: sigma * noise + (1 - sigma) * sample. */
  scaleNoise(sample: Float32Array, timestep: number | ArrayLike<number>, noise: Float32Array,
    out?: Float32Array): Float32Array {
    const requested = timestepList(timestep).map(f32);
    const indices = noiseStepIndices(this.timesteps, requested, this.beginIndexValue, this.stepIndexValue, 'error');
    return flowNoise(sample, noise, indices.map((k) => {
      const s = this.sigmas[k];
      if (s === undefined) throw new SchedulerUsageError(`${CLASS_NAME}.scaleNoise: no sigma at index ${k}`);
      return s;
    }), out);
  }
}

/**
 * diffusers' `stretch_shift_to_terminal`: 1 - (1 - t) / ((1 - t_last) / (1 - terminal)). On a float32 array
 * numpy 1.24 computes the scale factor in float64 (scalar / Python float), then divides in float32.
 */
function stretchToTerminal(t: number[], terminal: number, float32: boolean): number[] {
  if (!float32) {
    const oneMinus = t.map((x) => 1 - x);
    const scale = oneMinus[oneMinus.length - 1]! / (1 - terminal);
    return oneMinus.map((x) => 1 - x / scale);
  }
  const oneMinus = t.map((x) => f32(1 - x));
  const scale = f32(oneMinus[oneMinus.length - 1]! / (1 - terminal));
  return oneMinus.map((x) => f32(1 - f32(x / scale)));
}
