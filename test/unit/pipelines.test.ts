// Pipeline behaviour beyond the goldens, on the tiny fixture models: progress events, cancellation between
// steps, seeded determinism, and Z-Image's image-to-image schedule.
import { join } from 'node:path';
import t from 'tap';
import { CancelledError, type StepProgress } from '../../src/pipelines/types.js';
import { WanPipeline } from '../../src/pipelines/wan/pipeline.js';
import { ZImagePipeline } from '../../src/pipelines/zimage/pipeline.js';
import { Device } from '../../src/runtime/device.js';
import { fixtureRoot } from '../helpers/goldens.js';

const device = new Device({ threads: 2 });
const wan = WanPipeline.load(join(fixtureRoot(), 'wan-tiny', 'model'), { device });
const zimage = ZImagePipeline.load(join(fixtureRoot(), 'zimage-tiny', 'model'), { device });
t.teardown(() => { wan.dispose(); zimage.dispose(); device.close(); });

const WAN_JOB = { prompt: 'a cat', negativePrompt: 'blurry', height: 32, width: 48, numFrames: 5, numInferenceSteps: 3, guidanceScale: 5 };

t.test('Wan reports prompt, every denoising step in order, then decoding', async (t) => {
  const events: StepProgress[] = [];
  await wan.generate({ ...WAN_JOB, seed: 3 }, { onProgress: (p) => events.push(p) });
  const steps = events.filter((e) => e.phase === 'denoising').map((e) => e.step);
  t.same(steps, [1, 2, 3]);
  t.equal(events[0]!.phase, 'encoding_prompt');
  t.equal(events[events.length - 1]!.phase, 'decoding');
  const phases = events.map((e) => e.phase);
  t.ok(phases.lastIndexOf('denoising') < phases.indexOf('decoding'), 'decoding after the last step');
});

t.test('Wan: the same seed gives the same frames, another seed other frames', async (t) => {
  const a = await wan.generate({ ...WAN_JOB, seed: 11 });
  const b = await wan.generate({ ...WAN_JOB, seed: 11 });
  const c = await wan.generate({ ...WAN_JOB, seed: 12 });
  t.same([a.frames, a.height, a.width], [5, 32, 48]);
  t.ok(a.data.every((v, i) => v === b.data[i]), 'identical');
  t.notOk(a.data.every((v, i) => v === c.data[i]), 'different');
  t.ok(a.data.every((v) => v >= 0 && v <= 1), 'frames in [0, 1]');
});

t.test('Wan: an abort between steps cancels the job', async (t) => {
  const ac = new AbortController();
  const seen: number[] = [];
  await t.rejects(wan.generate({ ...WAN_JOB, seed: 1 }, {
    signal: ac.signal,
    onProgress: (p) => { if (p.phase === 'denoising') { seen.push(p.step); if (p.step === 1) ac.abort(); } },
  }), CancelledError);
  t.same(seen, [1], 'no step ran after the abort');
  t.equal(device.memoryStats().inUse > 0, true, 'weights still resident');
});

t.test('Wan: a frame count off the 4k+1 grid is rounded like diffusers', async (t) => {
  const r = await wan.generate({ ...WAN_JOB, numFrames: 7, numInferenceSteps: 1, seed: 1 });
  t.equal(r.frames, 5);
  t.match(r.request.adjustments.join(';'), /num_frames 7 -> 5/);
});

t.test('Z-Image image-to-image runs the strength tail of the schedule', async (t) => {
  const width = 48, height = 64;
  const pixels = new Uint8Array(width * height * 3).map((_, i) => (i * 37) & 255);
  const full = await zimage.generate({ prompt: 'a cat', width, height, numInferenceSteps: 9, seed: 5 });
  t.equal(full.timesteps.length, 9);
  const edit = await zimage.generate({ prompt: 'a cat', width, height, numInferenceSteps: 9, seed: 5, image: { width, height, data: pixels }, strength: 0.6 });
  // diffusers: t_start = int(max(steps - steps * strength, 0)) = int(3.6) = 3, so the last 6 timesteps run
  t.same(edit.timesteps, full.timesteps.slice(3), 'timesteps from t_start = 3');
  t.same([edit.width, edit.height], [width, height]);
  t.ok(edit.data.every((v) => v >= 0 && v <= 1));
});
