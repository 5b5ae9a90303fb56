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

/**
 * What the case's `call` does beyond set_timesteps(N): the pipeline's `s.sigma_min = ...` and a `mu=` argument.
 * `call` is Python for people (comments after '#' are ignored), or an object with the same fields.
 */
function callArguments(call: unknown): { sigmaMin?: number; mu?: number } {
  if (call !== null && typeof call === 'object') {
    const o = call as Record<string, unknown>;
    return {
      ...(typeof o['sigma_min'] === 'number' ? { sigmaMin: o['sigma_min'] } : {}),
      ...(typeof o['mu'] === 'number' ? { mu: o['mu'] } : {}),
    };
  }
  if (typeof call !== 'string') return {};
  const code = call.replace(/#.*$/gm, '');
  const number = '([-+]?[0-9]*\\.?[0-9]+(?:[eE][-+]?[0-9]+)?)';
  const sigmaMin = new RegExp(`\\.sigma_min\\s*=\\s*${number}`).exec(code);
  const mu = new RegExp(`set_timesteps\\([^)]*\\bmu\\s*=\\s*${number}`).exec(code);
  return {
    ...(sigmaMin ? { sigmaMin: Number(sigmaMin[1]) } : {}),
    ...(mu ? { mu: Number(mu[1]) } : {}),
  };
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

    const { sigmaMin, mu } = callArguments(c.call);
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
  const wan = JSON.parse(readFileSync(join(fixtureRoot, 'wan-tiny', 'model', 'scheduler', 'scheduler_config.json'), 'utf8'));
  t.same(createScheduler(wan).ignoredConfigKeys, [], 'the real Wan config has no key left unread');
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

t.test('solveFloat32 solves small systems with pivoting', async (t) => {
  const a = [[2, 1, -1], [-3, -1, 2], [-2, 1, 2]];
  const x = solveFloat32(a, [8, -11, -3]);
  t.ok(compare(x, [2, 3, -1], 1e-5, 0).ok, `x = ${x}`);
  t.ok(compare(solveFloat32([[0, 1], [1, 0]], [3, 4]), [4, 3], 0, 0).ok, 'a zero leading entry needs a pivot');
  t.throws(() => solveFloat32([[1, 2], [2, 4]], [1, 2]), RangeError, 'singular');
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
