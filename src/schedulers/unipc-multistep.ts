// UniPC (Zhao et al. 2023, arXiv:2302.04867): a multistep predictor (UniP) and corrector (UniC) on the data
// prediction x0, in the flow-sigma form that Wan uses: x_t = (1 - sigma) x0 + sigma noise, so alpha_t = 1 - sigma
// and lambda = log(alpha) - log(sigma). Mirrors diffusers v0.36.0 `UniPCMultistepScheduler` with
// `use_flow_sigmas=True, prediction_type="flow_prediction"`, including its float32 rounding: the scalars live
// in 0-d float32 tensors there, so each scalar operation here is rounded with Math.fround, and each elementwise
// operation on the latents rounds once, in diffusers' order.
import { ConfigReader, type RawSchedulerConfig } from './config-reader.js';
import { f32, pow32, solveFloat32 } from './float32-linalg.js';
import { flowNoise, timestepList } from './flow-noise.js';
import { linspace } from './numpy-linspace.js';
import { shiftSigma } from './flow-shift.js';
import { indexForTimestep, noiseStepIndices } from './step-index.js';
import {
  type FlowScheduler, SchedulerConfigError, type SetTimestepsOptions, SchedulerUsageError,
} from './types.js';

const CLASS_NAME = 'UniPCMultistepScheduler';

/** The config keys sgld honours, with diffusers' defaults. */
export interface UniPCConfig {
  numTrainTimesteps: number;
  solverOrder: number;
  solverType: 'bh1' | 'bh2';
  lowerOrderFinal: boolean;
  /** Steps (by index of the step that would be corrected, minus one, as diffusers counts) without the corrector. */
  disableCorrector: number[];
  flowShift: number;
  finalSigmasType: 'zero' | 'sigma_min';
  useDynamicShifting: boolean;
}

/** Reads every key of diffusers v0.36.0's UniPC config: honoured, checked and unused, or rejected. */
export function parseUniPCConfig(raw: RawSchedulerConfig): { config: UniPCConfig; ignoredKeys: string[] } {
  const r = new ConfigReader(CLASS_NAME, raw);
  const numTrainTimesteps = r.number('num_train_timesteps', 1000, { integer: true, min: 1 });

  // The VP beta schedule only defines sigmas when use_flow_sigmas is off, which sgld does not support; the keys
  // are still checked the way diffusers' constructor checks them.
  r.number('beta_start', 0.0001);
  r.number('beta_end', 0.02);
  const trainedBetas = r.any('trained_betas');
  if (trainedBetas !== undefined && trainedBetas !== null && !Array.isArray(trainedBetas)) {
    r.fail('trained_betas', 'must be a list of numbers or null');
  }
  if (trainedBetas === undefined || trainedBetas === null) {
    r.choice('beta_schedule', 'linear', ['linear', 'scaled_linear', 'squaredcos_cap_v2']);
  } else {
    r.any('beta_schedule');
  }
  r.flag('rescale_betas_zero_snr', false);

  const solverOrder = r.number('solver_order', 2, { integer: true, min: 1 });
  const prediction = r.choice('prediction_type', 'epsilon', ['epsilon', 'sample', 'v_prediction', 'flow_prediction']);
  if (prediction !== 'flow_prediction') {
    r.fail('prediction_type', `"${prediction}" is not supported: sgld's UniPC implements flow_prediction only`);
  }
  if (r.flag('thresholding', false)) r.fail('thresholding', 'dynamic thresholding is not supported');
  r.number('dynamic_thresholding_ratio', 0.995); // used only with thresholding
  r.number('sample_max_value', 1.0); // used only with thresholding
  if (!r.flag('predict_x0', true)) {
    r.fail('predict_x0', 'must be true: diffusers has no noise-prediction form of flow_prediction');
  }
  // diffusers maps the DPM-Solver names to bh2 and rejects anything else.
  const solverTypeRaw = r.choice('solver_type', 'bh2', ['bh1', 'bh2', 'midpoint', 'heun', 'logrho']);
  const solverType = solverTypeRaw === 'bh1' ? 'bh1' : 'bh2';
  const lowerOrderFinal = r.flag('lower_order_final', true);
  const disableCorrector = r.integerList('disable_corrector');
  if (r.any('solver_p') !== undefined && r.any('solver_p') !== null) {
    r.fail('solver_p', 'an external predictor scheduler is not supported');
  }
  const karras = r.flag('use_karras_sigmas', false);
  const exponential = r.flag('use_exponential_sigmas', false);
  const beta = r.flag('use_beta_sigmas', false);
  if (Number(karras) + Number(exponential) + Number(beta) > 1) {
    r.fail('use_karras_sigmas', 'only one of use_beta_sigmas, use_exponential_sigmas, use_karras_sigmas can be used');
  }
  if (karras) r.fail('use_karras_sigmas', 'Karras sigmas are not supported');
  if (exponential) r.fail('use_exponential_sigmas', 'exponential sigmas are not supported');
  if (beta) r.fail('use_beta_sigmas', 'beta sigmas are not supported');
  if (!r.flag('use_flow_sigmas', false)) {
    r.fail('use_flow_sigmas', 'must be true: sgld implements the flow-matching form of UniPC only');
  }
  const flowShift = r.number('flow_shift', 1.0);
  // With flow sigmas the spacing and offset are computed and then replaced by sigma * num_train_timesteps.
  r.choice('timestep_spacing', 'linspace', ['linspace', 'leading', 'trailing']);
  r.number('steps_offset', 0, { integer: true });
  const finalSigmasType = r.choice('final_sigmas_type', 'zero', ['zero', 'sigma_min']);
  const useDynamicShifting = r.flag('use_dynamic_shifting', false);
  r.choice('time_shift_type', 'exponential', ['exponential']);

  // Combinations for which diffusers returns inf/NaN at the last step: a final sigma of 0 makes lambda = +inf
  // there, a final sigma_min repeats the last sigma (h = 0). Refuse them rather than reproduce garbage.
  if (finalSigmasType === 'zero' && solverType === 'bh1') {
    r.fail('solver_type', 'bh1 with final_sigmas_type "zero" gives NaN at the last step in diffusers (B(h) = -inf)');
  }
  if (finalSigmasType === 'zero' && !lowerOrderFinal && solverOrder > 1) {
    r.fail('lower_order_final', 'false with solver_order > 1 and final_sigmas_type "zero" divides by zero at the last step');
  }
  if (finalSigmasType === 'sigma_min' && !lowerOrderFinal && solverOrder > 2) {
    r.fail('lower_order_final', 'false with solver_order > 2 and final_sigmas_type "sigma_min" gives NaN at the last step (h = 0)');
  }
  return {
    config: {
      numTrainTimesteps, solverOrder, solverType, lowerOrderFinal, disableCorrector, flowShift, finalSigmasType,
      useDynamicShifting,
    },
    ignoredKeys: r.unreadKeys(),
  };
}

/** log(alpha) - log(sigma) of a flow sigma, in float32 (+inf at sigma = 0). */
function lambdaOf(sigma: number): number {
  return f32(f32(Math.log(f32(1 - sigma))) - f32(Math.log(sigma)));
}

/** The scalars of one UniP or UniC update, all float32 as diffusers computes them. */
interface UniUpdate {
  /** sigma_t / sigma_s0: weight of the previous sample. */
  sampleWeight: number;
  /** alpha_t * h * phi_1(h): weight of the newest x0 prediction m0. */
  x0Weight: number;
  /** alpha_t * B(h): weight of the higher-order residual. */
  residualWeight: number;
  /** r_k of each older model output, so that D1_k = (m_k - m0) / r_k. */
  rks: number[];
  /** b_i = h phi_{i+1}(h) i! / B(h) and the Vandermonde rows R_i = r^(i-1), for the rho solves. */
  b: number[];
  R: number[][];
}

/**
 * Scalars of an update from sigma index `s0` to `t`, with older points at the sigma indices `older` (newest first).
 * In the data-prediction form hh = -h, h = lambda_t - lambda_s0.
 */
function uniUpdate(sigmas: Float32Array, t: number, s0: number, older: number[], order: number,
  solverType: 'bh1' | 'bh2'): UniUpdate {
  const sigmaT = sigmas[t]!;
  const sigmaS0 = sigmas[s0]!;
  const alphaT = f32(1 - sigmaT);
  const lambdaS0 = lambdaOf(sigmaS0);
  const h = f32(lambdaOf(sigmaT) - lambdaS0);
  const rks = older.map((si) => f32(f32(lambdaOf(sigmas[si]!) - lambdaS0) / h));
  const allRks = [...rks, 1];

  const hh = f32(-h);
  const hPhi1 = f32(Math.expm1(hh));
  let hPhiK = f32(f32(hPhi1 / hh) - 1);
  const bH = solverType === 'bh1' ? hh : f32(Math.expm1(hh));
  let factorial = 1;
  const R: number[][] = [];
  const b: number[] = [];
  for (let i = 1; i <= order; i++) {
    R.push(allRks.map((r) => pow32(r, i - 1)));
    b.push(f32(f32(hPhiK * factorial) / bH));
    factorial *= i + 1;
    hPhiK = f32(f32(hPhiK / hh) - f32(1 / factorial));
  }
  return {
    sampleWeight: f32(sigmaT / sigmaS0),
    x0Weight: f32(alphaT * hPhi1),
    residualWeight: f32(alphaT * bH),
    rks, b, R,
  };
}

/**
 * `sum_k rhos[k] * (m_k - m0) / r_k` at element i (torch.einsum over the stacked D1s: each product rounded,
 * then summed in order).
 */
function residualAt(i: number, m0: Float32Array, olderOutputs: Float32Array[], rks: number[], rhos: number[]): number {
  let acc = 0;
  for (let k = 0; k < olderOutputs.length; k++) {
    const d1 = f32(f32(olderOutputs[k]![i]! - m0[i]!) / rks[k]!);
    const term = f32(rhos[k]! * d1);
    acc = k === 0 ? term : f32(acc + term);
  }
  return acc;
}

// The two elementwise kernels. Both compute x_t = (sigma_t / sigma_s0) x - alpha_t h phi_1 m0 - alpha_t B(h) res,
// rounding like diffusers' tensor expressions; the single-history case (every order-2 step, i.e. Wan's) has
// its own loop so that a 2M-float latent costs a few tens of milliseconds.

/** UniP into `out`; res = sum_k rho_k D1_k over the older outputs. */
function predictorKernel(out: Float32Array, x: Float32Array, m0: Float32Array, older: Float32Array[], u: UniUpdate,
  rhos: number[]): void {
  const n = x.length;
  const a = u.sampleWeight;
  const b = u.x0Weight;
  const c = u.residualWeight;
  if (older.length === 0) {
    // diffusers subtracts alpha_t * B(h) * 0 here; the product is an exact zero for every finite B(h).
    const zeroTerm = f32(c * 0);
    for (let i = 0; i < n; i++) out[i] = f32(f32(f32(a * x[i]!) - f32(b * m0[i]!)) - zeroTerm);
  } else if (older.length === 1) {
    const m1 = older[0]!;
    const rk = u.rks[0]!;
    const rho = rhos[0]!;
    for (let i = 0; i < n; i++) {
      const base = f32(f32(a * x[i]!) - f32(b * m0[i]!));
      const d1 = f32(f32(m1[i]! - m0[i]!) / rk);
      out[i] = f32(base - f32(c * f32(rho * d1)));
    }
  } else {
    for (let i = 0; i < n; i++) {
      const base = f32(f32(a * x[i]!) - f32(b * m0[i]!));
      out[i] = f32(base - f32(c * residualAt(i, m0, older, u.rks, rhos)));
    }
  }
}

/** UniC in place in `x`; res = sum_k rho_k D1_k + rho_t (modelT - m0), rho_t being the last rho. */
function correctorKernel(x: Float32Array, m0: Float32Array, modelT: Float32Array, older: Float32Array[], u: UniUpdate,
  rhos: number[]): void {
  const n = x.length;
  const a = u.sampleWeight;
  const b = u.x0Weight;
  const c = u.residualWeight;
  const rhoT = rhos[rhos.length - 1]!;
  if (older.length === 0) {
    for (let i = 0; i < n; i++) {
      const base = f32(f32(a * x[i]!) - f32(b * m0[i]!));
      x[i] = f32(base - f32(c * f32(rhoT * f32(modelT[i]! - m0[i]!))));
    }
  } else if (older.length === 1) {
    const m1 = older[0]!;
    const rk = u.rks[0]!;
    const rho = rhos[0]!;
    for (let i = 0; i < n; i++) {
      const base = f32(f32(a * x[i]!) - f32(b * m0[i]!));
      const d1 = f32(f32(m1[i]! - m0[i]!) / rk);
      const residual = f32(f32(rho * d1) + f32(rhoT * f32(modelT[i]! - m0[i]!)));
      x[i] = f32(base - f32(c * residual));
    }
  } else {
    for (let i = 0; i < n; i++) {
      const base = f32(f32(a * x[i]!) - f32(b * m0[i]!));
      const residual = f32(residualAt(i, m0, older, u.rks, rhos) + f32(rhoT * f32(modelT[i]! - m0[i]!)));
      x[i] = f32(base - f32(c * residual));
    }
  }
}

export class UniPCMultistepScheduler implements FlowScheduler {
  readonly className = CLASS_NAME;
  readonly timestepDtype = 'int64';
  readonly order = 1;
  readonly config: UniPCConfig;
  readonly ignoredConfigKeys: readonly string[];

  timesteps = new Float64Array(0);
  sigmas = new Float32Array(0);
  numInferenceSteps: number | null = null;
  /** Current flow shift: the config's, or exp(mu) once setTimesteps got a mu (diffusers overwrites its config). */
  flowShift: number;

  private stepIndexValue: number | null = null;
  private beginIndexValue: number | null = null;
  /** x0 predictions of the last `solverOrder` steps, oldest first; null until that many steps ran. */
  private modelOutputs: (Float32Array | null)[];
  /** Buffer the next converted model output is written into (becomes the newest history entry). */
  private scratch: Float32Array | null = null;
  /** History buffers of a finished run, reused by the next one so a run allocates nothing after its first. */
  private spare: Float32Array[] = [];
  /** The sample the last predictor started from (after its correction): the corrector's x_{t-1}. */
  private lastSample: Float32Array | null = null;
  private hasLastSample = false;
  private lowerOrderNums = 0;
  /** Order of the last predictor, which the next corrector reuses. */
  private thisOrder = 0;

  constructor(rawConfig: RawSchedulerConfig) {
    const { config, ignoredKeys } = parseUniPCConfig(rawConfig);
    this.config = config;
    this.ignoredConfigKeys = ignoredKeys;
    this.flowShift = config.flowShift;
    this.modelOutputs = new Array<Float32Array | null>(config.solverOrder).fill(null);
  }

  get stepIndex(): number | null { return this.stepIndexValue; }
  get beginIndex(): number | null { return this.beginIndexValue; }

  setBeginIndex(beginIndex = 0): void {
    this.beginIndexValue = beginIndex;
  }

  /**
   * Flow sigmas: 1 - linspace(1, 1/T, n + 1), shifted, reversed, the last (zero) dropped; timesteps are
   * sigma * T truncated to integers (torch's float -> int64 cast); then the final sigma is appended.
   */
  setTimesteps(numInferenceSteps: number | null, options: SetTimestepsOptions = {}): void {
    if (numInferenceSteps === null || !Number.isInteger(numInferenceSteps) || numInferenceSteps < 1) {
      throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps: the number of steps must be a positive integer`);
    }
    if (options.sigmas !== undefined || options.timesteps !== undefined) {
      throw new SchedulerUsageError(`${CLASS_NAME}.setTimesteps takes no custom sigmas or timesteps (diffusers neither)`);
    }
    if (options.mu !== undefined) {
      if (!this.config.useDynamicShifting) {
        throw new SchedulerConfigError(CLASS_NAME, 'use_dynamic_shifting', 'must be true to pass mu to setTimesteps');
      }
      this.flowShift = Math.exp(options.mu);
    }
    const T = this.config.numTrainTimesteps;
    const n = numInferenceSteps;
    const alphas = linspace(1, 1 / T, n + 1);
    const shift = this.flowShift;
    // After the flip, element j is the shifted sigma of alphas[n - j]; j = n (alpha 1, sigma 0) is dropped.
    const sigmas64 = new Float64Array(n);
    for (let j = 0; j < n; j++) sigmas64[j] = shiftSigma(1.0 - alphas[n - j]!, shift);
    this.timesteps = new Float64Array(n);
    for (let j = 0; j < n; j++) this.timesteps[j] = Math.trunc(sigmas64[j]! * T);
    this.sigmas = new Float32Array(n + 1);
    this.sigmas.set(sigmas64);
    this.sigmas[n] = this.config.finalSigmasType === 'zero' ? 0 : sigmas64[n - 1]!;

    this.numInferenceSteps = n;
    for (const m of this.modelOutputs) if (m !== null) this.spare.push(m);
    this.modelOutputs.fill(null);
    this.lowerOrderNums = 0;
    this.hasLastSample = false;
    this.stepIndexValue = null;
    this.beginIndexValue = null;
  }

  step(modelOutput: Float32Array, timestep: number, sample: Float32Array, out?: Float32Array): Float32Array {
    if (this.numInferenceSteps === null) {
      throw new SchedulerUsageError(`${CLASS_NAME}.step: call setTimesteps first`);
    }
    const n = sample.length;
    if (modelOutput.length !== n) {
      throw new SchedulerUsageError(`${CLASS_NAME}.step: model output has ${modelOutput.length} elements, sample ${n}`);
    }
    const result = out ?? new Float32Array(n);
    if (result.length !== n) throw new SchedulerUsageError(`${CLASS_NAME}.step: out has ${result.length} elements, sample ${n}`);
    if (this.stepIndexValue === null) {
      this.stepIndexValue = this.beginIndexValue ?? indexForTimestep(this.timesteps, timestep, 'last');
    }
    const stepIndex = this.stepIndexValue;
    if (stepIndex >= this.timesteps.length) {
      throw new SchedulerUsageError(`${CLASS_NAME}.step: all ${this.timesteps.length} steps are done; call setTimesteps again`);
    }
    this.ensureBuffers(n);
    const { solverOrder } = this.config;

    // x0 = sample - sigma * v (flow_prediction), into the scratch buffer.
    const converted = this.scratch!;
    const sigma = this.sigmas[stepIndex]!;
    for (let i = 0; i < n; i++) converted[i] = f32(sample[i]! - f32(sigma * modelOutput[i]!));

    const useCorrector = stepIndex > 0 && !this.config.disableCorrector.includes(stepIndex - 1) && this.hasLastSample;
    const lastSample = this.lastSample!;
    if (useCorrector) {
      this.correct(converted, stepIndex);
    } else {
      lastSample.set(sample);
    }

    // Shift the history by one; the oldest buffer becomes the next scratch.
    const recycled = this.modelOutputs[0] ?? this.spare.pop() ?? new Float32Array(n);
    for (let i = 0; i < solverOrder - 1; i++) this.modelOutputs[i] = this.modelOutputs[i + 1]!;
    this.modelOutputs[solverOrder - 1] = converted;
    this.scratch = recycled;

    const orderCap = this.config.lowerOrderFinal
      ? Math.min(solverOrder, this.timesteps.length - stepIndex)
      : solverOrder;
    this.thisOrder = Math.min(orderCap, this.lowerOrderNums + 1); // warm-up: one more history point per step
    this.hasLastSample = true;
    this.predict(stepIndex, result);

    if (this.lowerOrderNums < solverOrder) this.lowerOrderNums++;
    this.stepIndexValue = stepIndex + 1;
    return result;
  }

  /** UniP: x_{t} from the (corrected) sample at s0 = stepIndex and the x0 history, of order `thisOrder`. */
  private predict(stepIndex: number, out: Float32Array): void {
    const order = this.thisOrder;
    const history = this.modelOutputs;
    const m0 = history[history.length - 1]!;
    const older: Float32Array[] = [];
    const olderSigmaIdx: number[] = [];
    for (let i = 1; i < order; i++) {
      older.push(history[history.length - 1 - i]!);
      olderSigmaIdx.push(stepIndex - i);
    }
    const u = uniUpdate(this.sigmas, stepIndex + 1, stepIndex, olderSigmaIdx, order, this.config.solverType);
    // Order 2 uses rho = 0.5 (diffusers' simplification); higher orders solve the (order-1)^2 system, which
    // diffusers slices out of R (a strided view, so torch factors it untransposed).
    let rhos: number[] = [];
    if (order === 2) rhos = [0.5];
    else if (order > 2) {
      rhos = solveFloat32(u.R.slice(0, -1).map((row) => row.slice(0, -1)), u.b.slice(0, -1), { transposedLU: false });
    }
    predictorKernel(out, this.lastSample!, m0, older, u, rhos);
  }

  /**
   * UniC: corrects the sample reached by the previous predictor, using this step's x0 (`modelT`), in place in
   * `lastSample` (x_{t-1}); every element depends only on the same element of its inputs.
   */
  private correct(modelT: Float32Array, stepIndex: number): void {
    const order = this.thisOrder;
    const history = this.modelOutputs;
    const m0 = history[history.length - 1]!;
    const older: Float32Array[] = [];
    const olderSigmaIdx: number[] = [];
    for (let i = 1; i < order; i++) {
      older.push(history[history.length - 1 - i]!);
      olderSigmaIdx.push(stepIndex - (i + 1));
    }
    const u = uniUpdate(this.sigmas, stepIndex, stepIndex - 1, olderSigmaIdx, order, this.config.solverType);
    // R is freshly stacked (contiguous), so torch factors its transpose.
    const rhos = order === 1 ? [0.5] : solveFloat32(u.R, u.b, { transposedLU: true });
    correctorKernel(this.lastSample!, m0, modelT, older, u, rhos);
  }

  private ensureBuffers(n: number): void {
    if (this.lastSample !== null && this.lastSample.length === n) return;
    if (this.lastSample !== null && this.modelOutputs.some((m) => m !== null)) {
      throw new SchedulerUsageError(`${CLASS_NAME}.step: the sample size changed mid-run (call setTimesteps to restart)`);
    }
    this.lastSample = new Float32Array(n);
    this.scratch = new Float32Array(n);
    this.spare = [];
    this.hasLastSample = false;
  }

  /** diffusers' `add_noise(original, noise, timesteps)`: alpha_t * x0 + sigma_t * noise, alpha_t = 1 - sigma. */
  addNoise(originalSamples: Float32Array, noise: Float32Array, timesteps: number | ArrayLike<number>,
    out?: Float32Array): Float32Array {
    const indices = noiseStepIndices(this.timesteps, timestepList(timesteps), this.beginIndexValue,
      this.stepIndexValue, 'last');
    return flowNoise(originalSamples, noise, indices.map((i) => this.sigmaAt(i)), out);
  }

  /** The same forward process with FlowMatch's argument order, for pipelines that do not care which they have. */
  scaleNoise(sample: Float32Array, timestep: number | ArrayLike<number>, noise: Float32Array,
    out?: Float32Array): Float32Array {
    return this.addNoise(sample, noise, timestep, out);
  }

  private sigmaAt(index: number): number {
    const s = this.sigmas[index];
    if (s === undefined) throw new SchedulerUsageError(`${CLASS_NAME}: no sigma at index ${index}; call setTimesteps first`);
    return s;
  }
}
