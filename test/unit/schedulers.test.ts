// The flow-matching schedulers: every `scheduler` case of every fixture manifest against diffusers v0.36.0's
// goldens, then the behaviours those cases do not reach (config checks, other options, buffers, noising).
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { solveFloat32 } from '../../src/schedulers/float32-linalg.js';
import {
  calculateShift, createScheduler, FlowMatchEulerDiscreteScheduler, type FlowScheduler, SchedulerConfigError,
  SchedulerUsageError, UniPCMultistepScheduler,
} from '../../src/schedulers/index.js';
import { linspace } from '../../src/schedulers/numpy-linspace.js';
import { schedulerCallArguments } from '../helpers/scheduler-call.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtureRoot = resolve(process.env.SGLD_FIXTURE_DIR ?? join(here, '..', '..', '..', 'shared', 'fixtures'));

// ---- manifest-driven golden cases ----

interface TensorSpec { name: string; dtype: string }
interface SchedulerCase {
  id: string;
  kind: string;
  file: string;
  config?: string;
  num_inference_steps: number;
  timesteps_list?: number[];
  sigmas_list?: number[];
  call?: unknown;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  tolerance: { atol?: number; rtol?: number };
}
interface Manifest { name: string; model_dir?: string; cases: SchedulerCase[] }

function fixtureSets(): { dir: string; manifest: Manifest }[] {
  if (!existsSync(fixtureRoot)) return [];
  return readdirSync(fixtureRoot, { withFileTypes: true })
    .filter((e) => e.isDirectory() && existsSync(join(fixtureRoot, e.name, 'manifest.json')))
    .map((e) => {
      const dir = join(fixtureRoot, e.name);
      return { dir, manifest: JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest };
    });
}

function tensorEndingWith(specs: TensorSpec[], suffix: string): TensorSpec | undefined {
  return specs.find((s) => s.name.endsWith(suffix));
}

/** Largest |ours - golden| and whether every element passes |d| <= atol + rtol * |golden|. */
function compare(ours: ArrayLike<number>, golden: ArrayLike<number>, atol: number, rtol: number) {
  let maxAbs = 0;
  let worstExcess = -Infinity;
  let ok = ours.length === golden.length;
  for (let i = 0; i < golden.length; i++) {
    const d = Math.abs(ours[i]! - golden[i]!);
    maxAbs = Math.max(maxAbs, d);
    const excess = d - (atol + rtol * Math.abs(golden[i]!));
    worstExcess = Math.max(worstExcess, excess);
    if (!(excess <= 0)) ok = false;
  }
  return { ok, maxAbs, worstExcess };
}

const sets = fixtureSets();
const goldenCases = sets.flatMap(({ dir, manifest }) =>
  manifest.cases.filter((c) => c.kind === 'scheduler').map((c) => ({ dir, manifest, c })));

t.test('the fixture manifests hold scheduler cases', async (t) => {
  t.ok(existsSync(fixtureRoot), `fixture root ${fixtureRoot} exists (set SGLD_FIXTURE_DIR)`);
  t.ok(goldenCases.length > 0, `found ${goldenCases.length} scheduler cases in ${sets.length} fixture sets`);
});

for (const { dir, manifest, c } of goldenCases) {
  t.test(`${manifest.name} ${c.id} matches diffusers`, async (t) => {
    const configPath = join(dir, c.config ?? join(manifest.model_dir ?? 'model', 'scheduler', 'scheduler_config.json'));
    const scheduler = createScheduler(JSON.parse(readFileSync(configPath, 'utf8')));
    const goldens = SafetensorsFile.open(join(dir, c.file));
    t.teardown(() => goldens.close());
    const atol = c.tolerance.atol ?? 0;
    const rtol = c.tolerance.rtol ?? 0;

    const { sigmaMin, mu } = schedulerCallArguments(c.call);
    if (sigmaMin !== undefined) {
      t.ok(scheduler instanceof FlowMatchEulerDiscreteScheduler, 'only FlowMatchEuler has a settable sigma_min');
      (scheduler as FlowMatchEulerDiscreteScheduler).sigmaMin = sigmaMin;
    }
    scheduler.setTimesteps(c.num_inference_steps, mu === undefined ? {} : { mu });

    // Timesteps: exact, int64 or float32 alike.
    const tsSpec = tensorEndingWith(c.outputs, '_timesteps');
    if (tsSpec === undefined) throw new Error(`${c.id}: no *_timesteps output`);
    const goldenTimesteps = tsSpec.dtype === 'int64'
      ? Array.from(goldens.readBigInt64(tsSpec.name), Number)
      : Array.from(goldens.readFloat32(tsSpec.name));
    t.equal(scheduler.timestepDtype, tsSpec.dtype, 'timestep dtype as diffusers types it');
    t.same(Array.from(scheduler.timesteps), goldenTimesteps, 'timesteps exact');
    if (c.timesteps_list) t.same(Array.from(scheduler.timesteps), c.timesteps_list, 'timesteps exact (manifest list)');

    const sigmaSpec = tensorEndingWith(c.outputs, '_sigmas');
    if (sigmaSpec === undefined) throw new Error(`${c.id}: no *_sigmas output`);
    const sigmas = compare(scheduler.sigmas, goldens.readFloat32(sigmaSpec.name), atol, rtol);
    t.ok(sigmas.ok, `sigmas within atol ${atol} rtol ${rtol} (max |err| ${sigmas.maxAbs})`);
    if (c.sigmas_list) t.ok(compare(scheduler.sigmas, c.sigmas_list, atol, rtol).ok, 'sigmas (manifest list)');

    // Steps, when the case has a trajectory: sample_0, model_output_i -> prev_sample_i.
    const sampleSpec = tensorEndingWith(c.inputs, '_sample_0');
    let worstStep = 0;
    let steps = 0;
    if (sampleSpec !== undefined) {
      const prefix = sampleSpec.name.slice(0, -'sample_0'.length);
      let sample = goldens.readFloat32(sampleSpec.name);
      for (let i = 0; i < scheduler.timesteps.length; i++) {
        const modelOutput = goldens.readFloat32(`${prefix}model_output_${i}`);
        sample = scheduler.step(modelOutput, scheduler.timesteps[i]!, sample);
        const r = compare(sample, goldens.readFloat32(`${prefix}prev_sample_${i}`), atol, rtol);
        t.ok(r.ok, `prev_sample_${i} within tolerance (max |err| ${r.maxAbs})`);
        worstStep = Math.max(worstStep, r.maxAbs);
        steps++;
      }
      const stored = c.outputs.filter((o) => /_prev_sample_\d+$/.test(o.name)).length;
      t.equal(steps, stored, 'one step per stored prev_sample');
    }
    t.comment(`${manifest.name} ${c.id}: timesteps exact; max |err| sigmas ${sigmas.maxAbs}, `
      + `prev_sample ${steps ? worstStep : 'n/a'} over ${steps} steps (atol ${atol})`);
  });
}

// ---- configs ----

const WAN_UNIPC = {
  _class_name: 'UniPCMultistepScheduler',
  prediction_type: 'flow_prediction',
  use_flow_sigmas: true,
  num_train_timesteps: 1000,
  flow_shift: 3.0,
};
const ZIMAGE_EULER = { _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: 1000, shift: 3.0 };

t.test('createScheduler picks the class from _class_name', async (t) => {
  t.ok(createScheduler(WAN_UNIPC) instanceof UniPCMultistepScheduler);
  t.ok(createScheduler(ZIMAGE_EULER) instanceof FlowMatchEulerDiscreteScheduler);
  t.throws(() => createScheduler({ _class_name: 'DDIMScheduler' }), SchedulerConfigError);
  t.throws(() => createScheduler({}), SchedulerConfigError);
  t.throws(() => new UniPCMultistepScheduler(ZIMAGE_EULER), SchedulerConfigError, 'a class refuses another class config');
});

t.test('unsupported config values are rejected by key', async (t) => {
  const cases: [Record<string, unknown>, string][] = [
    [{ ...WAN_UNIPC, prediction_type: 'epsilon' }, 'prediction_type'],
    [{ ...WAN_UNIPC, use_flow_sigmas: false }, 'use_flow_sigmas'],
    [{ ...WAN_UNIPC, thresholding: true }, 'thresholding'],
    [{ ...WAN_UNIPC, predict_x0: false }, 'predict_x0'],
    [{ ...WAN_UNIPC, solver_type: 'dpm' }, 'solver_type'],
    [{ ...WAN_UNIPC, use_karras_sigmas: true }, 'use_karras_sigmas'],
    [{ ...WAN_UNIPC, final_sigmas_type: 'one' }, 'final_sigmas_type'],
    [{ ...WAN_UNIPC, solver_type: 'bh1' }, 'solver_type'],
    [{ ...WAN_UNIPC, lower_order_final: false }, 'lower_order_final'],
    [{ ...WAN_UNIPC, lower_order_final: false, final_sigmas_type: 'sigma_min', solver_order: 3 }, 'lower_order_final'],
    [{ ...WAN_UNIPC, solver_order: 0 }, 'solver_order'],
    [{ ...WAN_UNIPC, flow_shift: 'three' }, 'flow_shift'],
    [{ ...WAN_UNIPC, solver_p: {} }, 'solver_p'],
    [{ ...WAN_UNIPC, time_shift_type: 'linear' }, 'time_shift_type'],
    [{ ...ZIMAGE_EULER, stochastic_sampling: true }, 'stochastic_sampling'],
    [{ ...ZIMAGE_EULER, use_beta_sigmas: true }, 'use_beta_sigmas'],
    [{ ...ZIMAGE_EULER, time_shift_type: 'cubic' }, 'time_shift_type'],
  ];
  for (const [config, key] of cases) {
    try {
      createScheduler(config);
      t.fail(`${key}: accepted ${JSON.stringify(config[key])}`);
    } catch (e) {
      t.ok(e instanceof SchedulerConfigError && e.key === key, `${key}=${JSON.stringify(config[key])}: ${(e as Error).message}`);
    }
  }
  // Allowed variants: the names diffusers maps to bh2, bh1 with a non-zero final sigma, no lower-order final step
  // when the final sigma is not zero.
  t.doesNotThrow(() => createScheduler({ ...WAN_UNIPC, solver_type: 'midpoint' }));
  t.doesNotThrow(() => createScheduler({ ...WAN_UNIPC, solver_type: 'bh1', final_sigmas_type: 'sigma_min' }));
  t.doesNotThrow(() => createScheduler({ ...WAN_UNIPC, lower_order_final: false, final_sigmas_type: 'sigma_min' }));
});

t.test('keys diffusers does not know are reported, not fatal', async (t) => {
  const s = createScheduler({ ...ZIMAGE_EULER, some_future_option: 1, _diffusers_version: '0.36.0' });
  t.same(s.ignoredConfigKeys, ['some_future_option']);
  for (const { dir, manifest } of sets) {
    const path = join(dir, manifest.model_dir ?? 'model', 'scheduler', 'scheduler_config.json');
    if (!existsSync(path)) continue;
    const s = createScheduler(JSON.parse(readFileSync(path, 'utf8')));
    t.same(s.ignoredConfigKeys, [], `${manifest.name}: every key of its ${s.className} config is read`);
  }
});

// ---- UniPC options ----

t.test('UniPC with use_dynamic_shifting takes flow_shift = exp(mu)', async (t) => {
  const fixed = createScheduler(WAN_UNIPC);
  fixed.setTimesteps(10);
  const dynamic = createScheduler({ ...WAN_UNIPC, flow_shift: 1.0, use_dynamic_shifting: true });
  dynamic.setTimesteps(10, { mu: Math.log(3) });
  t.ok(compare(dynamic.sigmas, fixed.sigmas, 1e-7, 0).ok, 'same sigmas as flow_shift 3');
  t.throws(() => fixed.setTimesteps(10, { mu: 1 }), SchedulerConfigError, 'mu needs use_dynamic_shifting');
});

t.test('UniPC final_sigmas_type sigma_min repeats the last sigma', async (t) => {
  const s = createScheduler({ ...WAN_UNIPC, final_sigmas_type: 'sigma_min' });
  s.setTimesteps(6);
  t.equal(s.sigmas.length, 7);
  t.equal(s.sigmas[6], s.sigmas[5]);
  t.ok(s.sigmas[6]! > 0);
});

/** A deterministic pseudo-random Float32Array in [-1, 1). */
function noiseArray(n: number, seed: number): Float32Array {
  const out = new Float32Array(n);
  let x = seed >>> 0;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x / 2 ** 31 - 1;
  }
  return out;
}

/** Runs the whole schedule with model outputs made by `velocity(sample, sigma)`; returns every step's output. */
function trajectory(s: FlowScheduler, steps: number, start: Float32Array,
  velocity: (sample: Float32Array, stepIndex: number) => Float32Array): Float32Array[] {
  s.setTimesteps(steps);
  const outs: Float32Array[] = [];
  let x = start;
  for (let i = 0; i < s.timesteps.length; i++) {
    x = s.step(velocity(x, i), s.timesteps[i]!, x);
    outs.push(x);
  }
  return outs;
}

t.test('an exact velocity field is followed exactly at every UniPC order and by Euler', async (t) => {
  // x_sigma = (1 - sigma) x0 + sigma eps has velocity eps - x0 everywhere: every consistent solver stays on it.
  const n = 64;
  const x0 = noiseArray(n, 1);
  const eps = noiseArray(n, 2);
  const v = eps.map((e, i) => e - x0[i]!);
  const configs: [string, Record<string, unknown>][] = [
    ['UniPC order 1', { ...WAN_UNIPC, solver_order: 1 }],
    ['UniPC order 2', WAN_UNIPC],
    ['UniPC order 3', { ...WAN_UNIPC, solver_order: 3 }],
    ['UniPC order 3, corrector off at 1 and 2', { ...WAN_UNIPC, solver_order: 3, disable_corrector: [1, 2] }],
    ['FlowMatchEuler', ZIMAGE_EULER],
  ];
  for (const [name, config] of configs) {
    const s = createScheduler(config);
    s.setTimesteps(8);
    const start = x0.map((a, i) => (1 - s.sigmas[0]!) * a + s.sigmas[0]! * eps[i]!);
    const outs = trajectory(s, 8, start, () => v);
    let worst = 0;
    outs.forEach((x, i) => {
      const sigma = s.sigmas[i + 1]!;
      worst = Math.max(worst, compare(x, x0.map((a, k) => (1 - sigma) * a + sigma * eps[k]!), 0, 0).maxAbs);
    });
    t.ok(worst < 1e-5, `${name}: max distance from the exact path ${worst}`);
  }
});

t.test('UniPC disable_corrector skips the corrector at the listed steps only', async (t) => {
  const n = 48;
  const start = noiseArray(n, 3);
  const velocity = (x: Float32Array, i: number) => x.map((a, k) => Math.sin(3 * a + i) + 0.1 * k / n);
  const base = trajectory(createScheduler(WAN_UNIPC), 6, start, velocity);
  // diffusers tests `step_index - 1 in disable_corrector`: listing 1 turns off the correction made in step 2.
  const off = trajectory(createScheduler({ ...WAN_UNIPC, disable_corrector: [1] }), 6, start, velocity);
  t.same(off[0], base[0], 'step 0 (never corrected) equal');
  t.same(off[1], base[1], 'step 1 (corrected) equal');
  t.notSame(off[2], base[2], 'step 2 differs without its correction');
});

t.test('UniPC solver_order 3 warms up through orders 1 and 2', async (t) => {
  // With three points of history the third-order step differs from the second-order one; before that they agree.
  const n = 32;
  const start = noiseArray(n, 4);
  const velocity = (x: Float32Array, i: number) => x.map((a) => Math.cos(2 * a) * (i + 1) * 0.3);
  const second = trajectory(createScheduler(WAN_UNIPC), 8, start, velocity);
  const third = trajectory(createScheduler({ ...WAN_UNIPC, solver_order: 3 }), 8, start, velocity);
  t.same(third[0], second[0], 'step 0: both first order');
  t.same(third[1], second[1], 'step 1: both second order');
  t.notSame(third[2], second[2], 'step 2: third order differs');
  t.ok(third.every((x) => x.every(Number.isFinite)), 'all finite');
});

// ---- FlowMatchEuler options ----

t.test('FlowMatchEuler custom sigmas go through the same shift (in float32)', async (t) => {
  const pipeline = new FlowMatchEulerDiscreteScheduler(ZIMAGE_EULER);
  pipeline.sigmaMin = 0;
  pipeline.setTimesteps(9);
  const custom = new FlowMatchEulerDiscreteScheduler(ZIMAGE_EULER);
  custom.setTimesteps(null, { sigmas: linspace(1, 0, 9) });
  t.equal(custom.numInferenceSteps, 9);
  t.ok(compare(custom.sigmas, pipeline.sigmas, 2e-7, 0).ok, 'sigmas agree within float32 rounding');
  t.ok(compare(custom.timesteps, pipeline.timesteps, 2e-4, 0).ok, 'timesteps agree within float32 rounding');
  const given = [900.5, 500.25, 100];
  custom.setTimesteps(3, { timesteps: given });
  t.same(Array.from(custom.timesteps), given, 'custom timesteps are kept');
  t.throws(() => custom.setTimesteps(4, { timesteps: given }), SchedulerUsageError);
});

t.test('FlowMatchEuler dynamic shifting uses exp(mu) / (exp(mu) + 1/t - 1)', async (t) => {
  const s = new FlowMatchEulerDiscreteScheduler({ ...ZIMAGE_EULER, use_dynamic_shifting: true });
  t.throws(() => s.setTimesteps(4), SchedulerUsageError, 'mu is required');
  s.setTimesteps(4, { mu: Math.log(3) });
  const fixed = new FlowMatchEulerDiscreteScheduler(ZIMAGE_EULER);
  fixed.sigmaMin = s.sigmaMin; // the unshifted training minimum, as the dynamic config has it
  fixed.setTimesteps(4);
  t.ok(compare(s.sigmas, fixed.sigmas, 1e-7, 0).ok, 'exp(mu) = 3 gives the constant shift 3');
});

t.test('FlowMatchEuler invert_sigmas and shift_terminal', async (t) => {
  const plain = new FlowMatchEulerDiscreteScheduler(ZIMAGE_EULER);
  plain.setTimesteps(5);
  const inverted = new FlowMatchEulerDiscreteScheduler({ ...ZIMAGE_EULER, invert_sigmas: true });
  inverted.setTimesteps(5);
  t.same(Array.from(inverted.sigmas.subarray(0, 5)), Array.from(plain.sigmas.subarray(0, 5), (s) => Math.fround(1 - s)));
  t.equal(inverted.sigmas[5], 1, 'terminal sigma 1');
  const stretched = new FlowMatchEulerDiscreteScheduler({ ...ZIMAGE_EULER, shift_terminal: 0.1 });
  stretched.setTimesteps(5);
  t.ok(Math.abs(stretched.sigmas[4]! - 0.1) < 1e-7, `last sigma is shift_terminal (${stretched.sigmas[4]})`);
  t.equal(stretched.sigmas[0], plain.sigmas[0], 'first sigma unchanged (1)');
});

// ---- both: buffers, noising, misuse ----

t.test('step writes into out (which may be the sample) and a new run repeats the last', async (t) => {
  const n = 40;
  const start = noiseArray(n, 5);
  const velocity = (x: Float32Array, i: number) => x.map((a) => Math.tanh(a) - 0.2 * i);
  for (const config of [WAN_UNIPC, ZIMAGE_EULER]) {
    const s = createScheduler(config);
    const fresh = trajectory(s, 5, start, velocity);
    const again = trajectory(s, 5, start, velocity);
    t.same(again, fresh, `${s.className}: a second run after setTimesteps is identical`);
    s.setTimesteps(5);
    const buffer = Float32Array.from(start);
    for (let i = 0; i < 5; i++) {
      const returned = s.step(velocity(buffer, i), s.timesteps[i]!, buffer, buffer);
      t.equal(returned, buffer, 'returns out');
      t.same(buffer, fresh[i], `${s.className}: in-place step ${i} equals the allocating one`);
    }
  }
});

t.test('step refuses to run before setTimesteps, past the end, or on mismatched sizes', async (t) => {
  for (const config of [WAN_UNIPC, ZIMAGE_EULER]) {
    const s = createScheduler(config);
    const x = new Float32Array(4);
    t.throws(() => s.step(x, 999, x), SchedulerUsageError, 'before setTimesteps');
    s.setTimesteps(2);
    t.throws(() => s.step(new Float32Array(3), s.timesteps[0]!, x), SchedulerUsageError, 'size mismatch');
    s.step(x, s.timesteps[0]!, x);
    s.step(x, s.timesteps[1]!, x);
    t.throws(() => s.step(x, s.timesteps[1]!, x), SchedulerUsageError, 'past the last step');
  }
  const euler = createScheduler(ZIMAGE_EULER);
  euler.setTimesteps(3);
  t.throws(() => euler.step(new Float32Array(2), 123.5, new Float32Array(2)), SchedulerUsageError,
    'FlowMatchEuler refuses a timestep that is not in its schedule');
});

t.test('a run can start mid-schedule from the begin index (image-to-image)', async (t) => {
  const n = 24;
  const start = noiseArray(n, 6);
  const v = noiseArray(n, 7);
  for (const config of [WAN_UNIPC, ZIMAGE_EULER]) {
    const byIndex = createScheduler(config);
    byIndex.setTimesteps(6);
    byIndex.setBeginIndex(2);
    const a = byIndex.step(v, byIndex.timesteps[2]!, start);
    const byLookup = createScheduler(config);
    byLookup.setTimesteps(6);
    const b = byLookup.step(v, byLookup.timesteps[2]!, start);
    t.same(a, b, `${byIndex.className}: begin index 2 and the looked-up timestep agree`);
    t.equal(byIndex.stepIndex, 3);
  }
});

t.test('scaleNoise / addNoise: (1 - sigma) x + sigma noise, per batch item', async (t) => {
  const perItem = 10;
  const x = noiseArray(2 * perItem, 8);
  const noise = noiseArray(2 * perItem, 9);
  for (const config of [WAN_UNIPC, ZIMAGE_EULER]) {
    const s = createScheduler(config);
    s.setTimesteps(5);
    const ts = [s.timesteps[1]!, s.timesteps[3]!];
    const out = s.scaleNoise(x, ts, noise);
    let worst = 0;
    for (let b = 0; b < 2; b++) {
      const sigma = s.sigmas[b === 0 ? 1 : 3]!;
      for (let i = b * perItem; i < (b + 1) * perItem; i++) {
        worst = Math.max(worst, Math.abs(out[i]! - ((1 - sigma) * x[i]! + sigma * noise[i]!)));
      }
    }
    t.ok(worst < 1e-6, `${s.className}: max |err| vs float64 ${worst}`);
    s.setBeginIndex(3);
    t.same(s.scaleNoise(x, [0, 0], noise), s.scaleNoise(x, [s.timesteps[3]!, s.timesteps[3]!], noise),
      'with a begin index the timestep is not looked up');
  }
  const unipc = new UniPCMultistepScheduler(WAN_UNIPC);
  unipc.setTimesteps(5);
  t.same(unipc.addNoise(x, noise, unipc.timesteps[2]!), unipc.scaleNoise(x, unipc.timesteps[2]!, noise),
    'UniPC add_noise and scale_noise are one formula');
});

// ---- options the fixtures do not reach, against diffusers v0.36.0 ----
// Expected values were computed by diffusers v0.36.0's own scheduler modules under torch 1.13.0a0 and numpy
// 1.24.2 (the versions the fixtures were made with) from the exact rational inputs of `referenceInputs`;
// docs/schedulers.md shows how. Timesteps must match exactly; the tolerances are the fixtures' 1e-5.

interface ReferenceScenario {
  cls: 'UniPCMultistepScheduler' | 'FlowMatchEulerDiscreteScheduler';
  name: string;
  n: number | null;
  config?: Record<string, unknown>;
  kwargs?: { mu?: number; sigmas?: number[]; timesteps?: number[] };
  sigma_min?: number;
  set_shift?: number;
  begin_index?: number;
  noise_idx?: number[];
  steps?: boolean;
  expect: { timesteps: number[]; sigmas: number[]; last_sample?: number[]; noised?: number[] };
}

/** The reference run's inputs: 24 floats each (2 batch items of 12 for noising), exact in float32. */
const referenceInputs = {
  sample: () => Float32Array.from({ length: 24 }, (_, k) => (((k * 37 + 11) % 29) - 14) / 8),
  modelOutput: (i: number) => Float32Array.from({ length: 24 }, (_, k) => ((((k + 1) * (i + 3) * 13) % 31) - 15) / 9),
  noise: () => Float32Array.from({ length: 24 }, (_, k) => (((k * 53 + 5) % 23) - 11) / 7),
};

for (const sc of referenceScenarios()) {
  t.test(`${sc.cls} ${sc.name} matches diffusers`, async (t) => {
    const s = createScheduler({ ...(sc.cls === 'UniPCMultistepScheduler' ? WAN_UNIPC : ZIMAGE_EULER), ...(sc.config ?? {}) });
    t.equal(s.className, sc.cls);
    if (sc.sigma_min !== undefined) (s as FlowMatchEulerDiscreteScheduler).sigmaMin = sc.sigma_min;
    if (sc.set_shift !== undefined) (s as FlowMatchEulerDiscreteScheduler).setShift(sc.set_shift);
    s.setTimesteps(sc.n, sc.kwargs ?? {});
    t.same(Array.from(s.timesteps), sc.expect.timesteps.map(Math.fround), 'timesteps exact');
    const sigmas = compare(s.sigmas, sc.expect.sigmas.map(Math.fround), 1e-6, 0);
    t.ok(sigmas.ok, `sigmas within 1e-6 (max |err| ${sigmas.maxAbs})`);
    if (sc.expect.noised) {
      if (sc.begin_index !== undefined) s.setBeginIndex(sc.begin_index);
      const noised = s.scaleNoise(referenceInputs.sample(), sc.noise_idx!.map((i) => s.timesteps[i]!), referenceInputs.noise());
      const r = compare(noised, sc.expect.noised.map(Math.fround), 1e-5, 1e-5);
      t.ok(r.ok, `noised sample within 1e-5 (max |err| ${r.maxAbs})`);
    }
    if (sc.expect.last_sample) {
      const begin = sc.begin_index ?? 0;
      if (sc.begin_index !== undefined) s.setBeginIndex(begin);
      let x: Float32Array = referenceInputs.sample();
      for (let i = begin; i < s.timesteps.length; i++) x = s.step(referenceInputs.modelOutput(i - begin), s.timesteps[i]!, x);
      const r = compare(x, sc.expect.last_sample.map(Math.fround), 1e-5, 1e-5);
      t.ok(r.ok, `last sample within 1e-5 (max |err| ${r.maxAbs})`);
    }
  });
}

// ---- helpers ----

t.test('calculateShift gives the mu ZImagePipeline uses for 64x48 (12 latent tokens)', async (t) => {
  t.equal(calculateShift(12), 0.45869791666666665);
  t.equal(calculateShift(256), 0.5);
  t.ok(Math.abs(calculateShift(4096) - 1.15) < 1e-12);
});

t.test('numpy linspace: exact endpoints, one point, none', async (t) => {
  const y = linspace(1, 0.001, 11);
  t.equal(y[0], 1);
  t.equal(y[10], 0.001);
  t.equal(y[5], 5 * ((0.001 - 1) / 10) + 1, 'interior points are i * step + start');
  t.same(Array.from(linspace(2, 5, 1)), [2]);
  t.equal(linspace(0, 1, 0).length, 0);
});

t.test('solveFloat32 solves small systems with pivoting, with either factorization', async (t) => {
  for (const transposedLU of [false, true]) {
    const a = [[2, 1, -1], [-3, -1, 2], [-2, 1, 2]];
    const x = solveFloat32(a, [8, -11, -3], { transposedLU });
    t.ok(compare(x, [2, 3, -1], 1e-5, 0).ok, `transposedLU ${transposedLU}: x = ${x}`);
    t.ok(compare(solveFloat32([[0, 1], [1, 0]], [3, 4], { transposedLU }), [4, 3], 0, 0).ok,
      'a zero leading entry needs a pivot');
    t.ok(compare(solveFloat32([[1, 2], [5, 3]], [5, 11], { transposedLU }), [1, 2], 1e-6, 0).ok, 'non-symmetric');
    t.throws(() => solveFloat32([[1, 2], [2, 4]], [1, 2], { transposedLU }), RangeError, 'singular');
  }
});

t.test('a UniPC step on Wan-sized latents is fast and allocation-free after warm-up', async (t) => {
  const n = 16 * 21 * 60 * 104; // 480p, 81 frames: 2,096,640 floats
  const s = createScheduler(WAN_UNIPC);
  s.setTimesteps(4);
  const x = noiseArray(n, 10);
  const v = noiseArray(n, 11);
  const started = performance.now();
  for (let i = 0; i < 4; i++) s.step(v, s.timesteps[i]!, x, x);
  const ms = (performance.now() - started) / 4;
  t.ok(x.every(Number.isFinite), 'finite');
  t.comment(`UniPC step on ${n} floats: ${ms.toFixed(1)} ms per step`);
});

// Generated from diffusers v0.36.0 (see the section above); one scenario per line pair.
function referenceScenarios(): ReferenceScenario[] {
  return [
    { cls: 'UniPCMultistepScheduler', name: 'solver_order 3', n: 8, config: { solver_order: 3 },
      expect: { timesteps: [999, 954, 899, 832, 749, 642, 499, 299], sigmas: [0.99966645, 0.9541981, 0.8996398, 0.83296275, 0.7496248, 0.6424896, 0.49966654, 0.29975995, 0], last_sample: [-0.16638678, 0.87209547, 2.1199458, -0.5308014, -1.103594, 1.507885, -1.5557146, -0.43550232, -0.46780404, 0.42471743, -1.1678272, 0.49287593, 1.0542753, 0.8126054, -1.5645441, 0.7034701, 1.9513211, -1.9153494, -1.3539498, 0.3067534, 2.3392086, -0.39327005, -0.4255719, 0.69464064] } },
    { cls: 'UniPCMultistepScheduler', name: 'disable_corrector [0, 2]', n: 6, config: { disable_corrector: [0, 2] },
      expect: { timesteps: [999, 937, 856, 749, 599, 374], sigmas: [0.99966645, 0.9371482, 0.8567753, 0.7496248, 0.59963983, 0.37471867, 0], last_sample: [-0.6264597, -0.050459564, 1.7313163, -1.106151, -0.61507267, 1.2516251, -1.881396, -1.0947639, 0.687012, 1.2639129, -1.4216135, 0.6557163, 1.1476955, 1.7236955, -0.119528666, -0.74154544, 1.0402305, -2.0087693, -1.5167904, 0.5605392, 1.5000128, -1.548086, 0.23368983, 1.020322] } },
    { cls: 'UniPCMultistepScheduler', name: 'final_sigmas_type sigma_min', n: 5, config: { final_sigmas_type: 'sigma_min' },
      expect: { timesteps: [999, 922, 817, 666, 428], sigmas: [0.99966645, 0.9227217, 0.8178097, 0.6662961, 0.4282652, 0.4282652], last_sample: [-0.3512438, 1.0865147, 1.6287766, -0.63145006, -0.08918831, 1.3485699, -1.9464753, -0.36939472, 0.17286712, 1.3983184, -1.2219199, 0.35516083, 0.6851154, 2.122874, -0.95986444, 0.14637525, 0.688637, -1.4986045, -1.1686499, 0.4084307, 1.4131929, -0.98635614, -0.44409427, 1.1329863] } },
    { cls: 'UniPCMultistepScheduler', name: 'bh1, final sigma_min', n: 6, config: { final_sigmas_type: 'sigma_min', solver_type: 'bh1' },
      expect: { timesteps: [999, 937, 856, 749, 599, 374], sigmas: [0.99966645, 0.9371482, 0.8567753, 0.7496248, 0.59963983, 0.37471867, 0.37471867], last_sample: [-0.8806413, 0.58274806, 1.8041822, -1.2819049, -0.29366958, 1.4029186, -1.845852, -0.69493324, 0.5265009, 1.3778843, -1.0376213, 0.34649658, 0.72272587, 2.1861153, -0.21745065, -0.6019879, 0.6194463, -1.5421647, -1.1659352, 0.2181826, 1.4276769, -1.3459394, -0.12450546, 1.0264134] } },
    { cls: 'UniPCMultistepScheduler', name: 'no lower_order_final, final sigma_min', n: 6, config: { final_sigmas_type: 'sigma_min', lower_order_final: false },
      expect: { timesteps: [999, 937, 856, 749, 599, 374], sigmas: [0.99966645, 0.9371482, 0.8567753, 0.7496248, 0.59963983, 0.37471867, 0.37471867], last_sample: [-0.66635585, 0.544063, 1.5174319, -0.981365, -0.24119505, 1.2024229, -1.8808352, -0.5562041, 0.41716468, 1.4291557, -1.1938419, 0.3639881, 0.90573007, 2.116149, -0.535482, -0.28395653, 0.68941236, -1.7251685, -1.1834269, 0.3744033, 1.3764056, -1.2366031, -0.26323462, 1.0613964] } },
    { cls: 'UniPCMultistepScheduler', name: 'dynamic shifting mu 0.7', n: 7, config: { use_dynamic_shifting: true }, kwargs: { mu: 0.7 },
      expect: { timesteps: [999, 923, 833, 728, 601, 445, 251], sigmas: [0.99950314, 0.9230677, 0.8337988, 0.7281683, 0.601224, 0.44579113, 0.25106758, 0], last_sample: [-0.5495529, 0.35406664, 2.2751536, -0.55689627, -0.7425847, 1.4030219, -1.7962793, -0.7499282, 0.30637062, 0.95658916, -1.6753072, 0.6130308, 1.0387299, 1.077561, -0.62635183, -0.23470406, 1.6863832, -1.8997859, -1.4740866, 0.81425136, 1.8073549, -1.1674266, -0.111127704, 0.935223] } },
    { cls: 'UniPCMultistepScheduler', name: 'flow_shift 5, 50 steps', n: 50, config: { flow_shift: 5 },
      expect: { timesteps: [999, 995, 991, 987, 982, 978, 973, 968, 963, 957, 952, 946, 940, 934, 927, 920, 913, 906, 898, 890, 882, 873, 863, 854, 843, 833, 821, 809, 796, 783, 768, 753, 737, 720, 701, 681, 660, 636, 611, 584, 555, 522, 487, 448, 405, 356, 302, 241, 172, 92], sigmas: [0.99979985, 0.99573237, 0.9915305, 0.9871874, 0.9826958, 0.978048, 0.9732358, 0.96825016, 0.96308166, 0.9577199, 0.95215404, 0.94637203, 0.9403611, 0.9341073, 0.92759573, 0.92081004, 0.91373265, 0.9063442, 0.8986237, 0.8905484, 0.88209325, 0.8732307, 0.86393064, 0.85415983, 0.8438816, 0.8330554, 0.82163614, 0.8095738, 0.7968125, 0.78328955, 0.7689347, 0.7536689, 0.7374024, 0.7200336, 0.7014464, 0.6815081, 0.6600657, 0.6369424, 0.6119324, 0.584795, 0.5552468, 0.5229515, 0.4875073, 0.4484302, 0.4051314, 0.35688767, 0.3028007, 0.24174033, 0.17226514, 0.092506856, 0], last_sample: [-0.49899173, 0.39130726, 1.7719686, -0.9923247, -0.20130986, 0.96868634, -1.8625381, -0.46489835, 0.3838932, 1.2445487, -1.2971908, -0.3005356, 0.95122564, 1.7681239, -0.9470268, 0.13115034, 1.0410004, -1.7671014, -0.5153408, 0.48131442, 1.5645747, -1.1997694, -0.35097775, 1.0466619] } },
    { cls: 'UniPCMultistepScheduler', name: '1 step', n: 1,
      expect: { timesteps: [999], sigmas: [0.99966645, 0], last_sample: [0.4025184, 0.51392597, 0.62533355, 0.5550368, 0.6664443, 0.7778519, -2.7357407, 0.8189626, 0.9303703, 1.0417778, -2.4718146, 1.0828886, 1.1942962, 1.3057038, -2.2078886, 1.3468145, 1.4582222, -2.0553703, -1.9439626, 1.6107405, 1.7221481, -1.7914443, -1.6800368, 1.8746665] } },
    { cls: 'UniPCMultistepScheduler', name: 'num_train_timesteps 500', n: 6, config: { num_train_timesteps: 500 },
      expect: { timesteps: [499, 468, 428, 374, 299, 187], sigmas: [0.9993324, 0.936796, 0.85640734, 0.7492492, 0.5992794, 0.3744372, 0], last_sample: [-0.79915214, -0.025772005, 1.788176, -1.1535369, -0.62931687, 1.4337915, -1.8716772, -0.9837015, 0.83024657, 1.3989382, -1.5271066, 0.6505971, 0.9701288, 1.7435088, -0.06754318, -0.7934936, 1.0204544, -1.8311656, -1.511634, 0.6660696, 1.3650249, -1.6912836, 0.12266463, 1.0106401] } },
    { cls: 'UniPCMultistepScheduler', name: 'begin index 2', n: 6, begin_index: 2,
      expect: { timesteps: [999, 937, 856, 749, 599, 374], sigmas: [0.99966645, 0.9371482, 0.8567753, 0.7496248, 0.59963983, 0.37471867, 0], last_sample: [0.07922387, 1.6499581, 1.9299948, -0.38094646, -0.10090974, 1.4698246, -2.1289103, -0.5610801, -0.28104335, 1.0359193, -0.8994943, 0.6683359, 0.69460106, 2.2653356, -1.079628, 0.23443076, 0.5144674, -1.5397983, -1.5135332, 0.054297134, 1.7438834, -0.56415397, -0.28411728, 1.2837131] } },
    { cls: 'UniPCMultistepScheduler', name: 'add_noise by lookup', n: 6, noise_idx: [1, 4],
      expect: { timesteps: [999, 937, 856, 749, 599, 374], sigmas: [0.99966645, 0.9371482, 0.8567753, 0.7496248, 0.59963983, 0.37471867, 0], noised: [-0.8268393, 0.17316069, 1.1731607, -1.1338784, -0.13387832, 0.8661217, -1.4409173, -0.4409173, 0.5590827, 1.5590827, -0.7479563, 0.2520437, 1.0712357, 0.100990474, -0.35031515, 0.64968485, -0.32056034, -0.77186596, 0.2281341, -0.7421111, 0.25788894, -0.19341668, 0.80658334, -0.16366184] } },
    { cls: 'UniPCMultistepScheduler', name: 'add_noise with begin index', n: 6, noise_idx: [1, 4], begin_index: 3,
      expect: { timesteps: [999, 937, 856, 749, 599, 374], sigmas: [0.99966645, 0.9371482, 0.8567753, 0.7496248, 0.59963983, 0.37471867, 0], noised: [-0.7364263, 0.26357377, 1.2635738, -1.1070893, -0.10708926, 0.8929108, -1.4777523, -0.4777523, 0.52224773, 1.5222477, -0.8484153, 0.15158471, 1.1515847, -0.31146818, -0.2190783, 0.7809217, -0.6821312, -0.58974135, 0.41025868, -1.0527941, -0.052794218, 0.039595664, 1.0395957, -0.42345726] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'custom sigmas', n: null, kwargs: { sigmas: [1, 0.8, 0.55, 0.3, 0.1, 0.02] },
      expect: { timesteps: [1000, 923.07697, 785.7144, 562.5, 250, 57.692307], sigmas: [1, 0.923077, 0.7857144, 0.5625, 0.25, 0.057692308, 0], last_sample: [-0.4173534, 1.0855465, 1.7107754, -0.6195055, -0.19299456, 1.5086232, -2.1630037, -0.3951467, 0.23008218, 1.2598443, -1.1697954, 0.79677963, 0.75015277, 2.253053, -0.74671847, -0.11439261, 0.51083624, -1.6112638, -1.6578908, 0.30868414, 1.5040448, -1.0911933, -0.46596447, 1.3018925] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'custom timesteps', n: null, kwargs: { timesteps: [999.5, 800.25, 512, 100] },
      expect: { timesteps: [999.5, 800.25, 512, 100], sigmas: [0.9998332, 0.9231878, 0.75889325, 0.25, 0], last_sample: [0.22583, 1.5872858, 2.0876305, -0.47781616, 0.02252847, 1.3839842, -2.3065746, -0.68111765, -0.18077308, 0.6147795, -0.7570214, 0.8684353, 0.8028766, 2.1643324, -0.9603229, 0.09923037, 0.599575, -1.6639693, -1.7295278, -0.10407114, 2.149128, -0.68031955, -0.17997485, 1.4454819] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'custom sigmas and timesteps', n: 4, kwargs: { sigmas: [0.9, 0.6, 0.3, 0.05], timesteps: [950, 700, 300, 10] },
      expect: { timesteps: [950, 700, 300, 10], sigmas: [0.9642857, 0.8181818, 0.5625, 0.13636364, 0], last_sample: [0.12121217, 1.3606603, 2.1304114, -0.6325758, 0.1371753, 1.3766234, -2.3593073, -0.6166126, 0.15313844, 0.51190484, -0.875541, 0.86715364, 0.75622284, 1.995671, -0.8595779, 0.002435036, 0.7721861, -1.6133657, -1.7242965, 0.01839824, 2.2559524, -1.0102813, -0.24053025, 1.5021644] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'dynamic exponential mu 0.9', n: 6, config: { use_dynamic_shifting: true }, kwargs: { mu: 0.9 },
      expect: { timesteps: [1000, 907.8403, 787.03284, 621.7621, 381.94476, 2.4560184], sigmas: [1, 0.90784025, 0.78703284, 0.6217621, 0.38194478, 0.0024560185, 0], last_sample: [-0.7793682, 0.69887686, 1.3595439, -0.88588613, -0.23367868, 1.253026, -2.1358807, -0.34019682, 0.3204704, 1.3826011, -1.0209255, 0.78321826, 1.0193114, 2.4975564, -0.46677643, -0.39433467, 0.2663324, -1.8804225, -1.6443292, 0.15981437, 1.3812878, -1.1815817, -0.5209143, 1.2747699] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'dynamic exponential, sigma_min 0', n: 6, config: { use_dynamic_shifting: true }, kwargs: { mu: 0.9 }, sigma_min: 0,
      expect: { timesteps: [1000, 907.7356, 786.7533, 621.17413, 380.7669, 0], sigmas: [1, 0.9077356, 0.7867533, 0.62117416, 0.3807669, 0, 0], last_sample: [-0.7821374, 0.7003751, 1.3548181, -0.8865863, -0.23214334, 1.2503692, -2.1369045, -0.33659235, 0.31785074, 1.3836466, -1.0165821, 0.78373003, 1.0214564, 2.503969, -0.46658796, -0.39452308, 0.25992, -1.8825674, -1.6448411, 0.15547106, 1.3802421, -1.178962, -0.52451885, 1.2757933] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'dynamic linear mu 2', n: 5, config: { use_dynamic_shifting: true, time_shift_type: 'linear' }, kwargs: { mu: 2 },
      expect: { timesteps: [1000, 857.30615, 667.11096, 400.95944, 1.9980022], sigmas: [1, 0.8573061, 0.667111, 0.40095943, 0.0019980022, 0], last_sample: [-0.083380945, 1.5777706, 1.8647214, -0.2627425, 0.0242085, 1.68536, -2.3078055, -0.15515304, 0.13179792, 1.1378328, -1.283472, 0.86918056, 0.50101495, 2.1621666, -1.1758826, 0.31477144, 0.6017224, -1.3621262, -1.7302916, 0.4223609, 1.6260562, -0.9929091, -0.70595807, 1.4466945] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'dynamic, custom sigmas', n: null, config: { use_dynamic_shifting: true }, kwargs: { mu: 1.1, sigmas: [1, 0.7, 0.45, 0.2, 0.05] },
      expect: { timesteps: [1000, 875.1517, 710.81165, 428.91132, 136.52715], sigmas: [1, 0.8751517, 0.7108116, 0.42891133, 0.13652715, 0], last_sample: [-0.25645146, 1.2388519, 1.7270542, -0.5386696, -0.050467268, 1.4448363, -2.258022, -0.33268538, 0.15551692, 1.0847601, -1.0810478, 0.8442887, 0.76643074, 2.261734, -0.8750636, 0.013952419, 0.5021547, -1.6275418, -1.7053999, 0.21993664, 1.6791288, -1.0166281, -0.52842575, 1.3969108] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'shift_terminal 0.1', n: 7, config: { shift_terminal: 0.1 },
      expect: { timesteps: [1000, 943.4344, 870.7692, 773.991, 638.70966, 436.2416, 100], sigmas: [1, 0.94343436, 0.8707692, 0.77399105, 0.63870966, 0.4362416, 0.1, 0], last_sample: [-0.5309513, 0.40452555, 2.0321987, -0.71277845, -0.5877153, 1.5059271, -1.8998566, -0.76954246, 0.5136861, 1.198872, -1.6232735, 0.665206, 0.8844225, 1.4754548, -0.5218719, -0.3392391, 1.288434, -1.7455337, -1.5263171, 0.76216245, 1.565017, -1.3747972, -0.09156866, 1.0387454] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'shift_terminal, custom sigmas', n: null, config: { shift_terminal: 0.1 }, kwargs: { sigmas: [1, 0.75, 0.5, 0.25, 0.1] },
      expect: { timesteps: [1000, 880, 700, 399.99997, 99.99996], sigmas: [1, 0.88, 0.7, 0.39999998, 0.099999964, 0], last_sample: [-0.19055547, 1.325, 1.8072222, -0.50888884, -0.026666641, 1.4888889, -2.273889, -0.34500003, 0.13722217, 1.0327778, -1.0766667, 0.8522223, 0.7144444, 2.23, -0.9127778, 0.051666737, 0.5338889, -1.5755556, -1.7133334, 0.21555555, 1.7311109, -0.99833333, -0.5161111, 1.4127779] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'invert_sigmas', n: 5, config: { invert_sigmas: true }, steps: false,
      expect: { timesteps: [0, 99.64091, 248.87889, 497.01495, 991.0714], sigmas: [0, 0.099640906, 0.2488789, 0.49701494, 0.9910714, 1] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'shift 1.7', n: 8, config: { shift: 1.7 },
      expect: { timesteps: [1000, 910.8754, 809.89044, 694.5088, 561.4155, 406.19342, 222.82312, 2.8845484], sigmas: [1, 0.91087544, 0.80989045, 0.6945088, 0.56141555, 0.40619344, 0.22282311, 0.0028845484, 0], last_sample: [-0.61096287, 0.5848973, 1.9539338, -0.51605874, -0.5361971, 1.3012075, -1.9342021, -0.43135723, 0.18011323, 1.0281361, -1.4520746, 0.6823787, 1.0719693, 1.5102634, -0.7457001, -0.11541096, 1.2536258, -1.9330807, -1.5434898, 0.5909637, 1.7357528, -1.0412242, -0.42975384, 1.0730908] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'shift 1.7, custom sigmas', n: null, config: { shift: 1.7 }, kwargs: { sigmas: [0.97, 0.71, 0.43, 0.13] },
      expect: { timesteps: [982.13226, 806.27924, 561.8755, 202.56647], sigmas: [0.98213226, 0.80627924, 0.56187546, 0.20256646, 0], last_sample: [0.055410042, 1.3884971, 2.0238552, -0.50417703, 0.13118112, 1.4642682, -2.367209, -0.42840588, 0.20695218, 0.6982041, -1.0538179, 0.88498515, 0.678508, 2.011595, -0.9780468, 0.11892096, 0.75427914, -1.5376337, -1.744111, 0.1946921, 2.06767, -1.066078, -0.43071988, 1.5080832] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'set_shift 2.5', n: 6, set_shift: 2.5,
      expect: { timesteps: [1000, 909.4001, 790.30225, 626.75134, 388.1488, 7.451565], sigmas: [1, 0.9094001, 0.7903023, 0.62675136, 0.3881488, 0.007451565, 0], last_sample: [-0.7812595, 0.6891841, 1.363441, -0.8892751, -0.24068473, 1.2554253, -2.1312103, -0.34870034, 0.3255565, 1.385774, -1.0272934, 0.7808829, 1.0192474, 2.489691, -0.4610522, -0.40005878, 0.27419806, -1.8803585, -1.6419941, 0.16618232, 1.3781146, -1.1866677, -0.5124108, 1.2700993] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: '1 step', n: 1,
      expect: { timesteps: [1000], sigmas: [1, 0], last_sample: [0.4027778, 0.5138889, 0.625, 0.5555556, 0.6666667, 0.7777778, -2.7361112, 0.8194444, 0.9305556, 1.0416666, -2.4722223, 1.0833334, 1.1944444, 1.3055556, -2.2083335, 1.3472222, 1.4583334, -2.0555556, -1.9444444, 1.6111112, 1.7222222, -1.7916667, -1.6805556, 1.875] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'num_train_timesteps 500', n: 5, config: { num_train_timesteps: 500 },
      expect: { timesteps: [500, 450.35815, 376.11716, 252.9703, 8.858268], sigmas: [1, 0.9007163, 0.75223434, 0.5059406, 0.017716536, 0], last_sample: [-0.15018186, 1.662092, 1.7927047, -0.18948229, -0.058869265, 1.7534045, -2.2524207, -0.098169625, 0.03244329, 1.3332791, -1.3127629, 0.841488, 0.46066308, 2.2729368, -1.2214502, 0.36033916, 0.49095207, -1.3217742, -1.7025992, 0.45165172, 1.4306098, -0.8935545, -0.7629415, 1.3913094] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'begin index 3', n: 7, begin_index: 3,
      expect: { timesteps: [1000, 937.71045, 857.6923, 751.1211, 602.1506, 379.1946, 8.928572], sigmas: [1, 0.93771046, 0.8576923, 0.7511211, 0.60215056, 0.37919462, 0.008928572, 0], last_sample: [0.08492469, 1.0916941, 2.0677097, -0.80535936, 0.17065616, 1.1774256, -2.2395182, -0.7196279, 0.2563876, 0.49519774, -0.8784259, 0.6414645, 0.84952056, 1.8562901, -0.7926944, -0.040763494, 0.935252, -1.6829785, -1.4749223, 0.044967968, 2.2963443, -1.0898455, -0.113829985, 1.4060603] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'scale_noise by lookup', n: 6, noise_idx: [0, 5],
      expect: { timesteps: [1000, 923.3425, 818.92334, 668.32666, 432.22507, 8.928572], sigmas: [1, 0.9233425, 0.81892335, 0.6683267, 0.43222508, 0.008928572, 0], noised: [-0.85714287, 0.14285715, 1.1428572, -1.1428572, -0.14285715, 0.85714287, -1.4285715, -0.42857143, 0.5714286, 1.5714285, -0.71428573, 0.2857143, 0.75478315, 1.7254465, -0.8671875, 0.1328125, 1.1034757, -1.4891582, -0.48915815, 0.4815051, 1.481505, -1.1111288, -0.11112882, 0.85953444] } },
    { cls: 'FlowMatchEulerDiscreteScheduler', name: 'scale_noise with begin index', n: 6, noise_idx: [0, 5], begin_index: 2,
      expect: { timesteps: [1000, 923.3425, 818.92334, 668.32666, 432.22507, 8.928572], sigmas: [1, 0.9233425, 0.81892335, 0.6683267, 0.43222508, 0.008928572, 0], noised: [-0.7698381, 0.23016196, 1.2301619, -1.1169891, -0.116989054, 0.883011, -1.46414, -0.46414006, 0.53585994, 1.53586, -0.8112911, 0.18870895, 1.1887089, -0.5020392, -0.15844207, 0.8415579, -0.8491902, -0.50559306, 0.49440694, -1.1963413, -0.19634125, 0.14725594, 1.1472559, -0.54349226] } },
  ];
}
