// The engine's failures: a DeviceActor that dies (thread exit) or throws mid-job fails only that job, comes back
// with the model reloaded and its LoRA state replayed, and the next job completes; and a restart on the same
// output directory keeps every job and output, while a job the old server was running becomes failed /
// server_restarted (spec 5.5). Faults come from the test-only fault switch of EngineOptions. The two tests share
// one output directory and the first engine (every device start costs seconds under tap's TS loader).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { GenerationParams } from '../../src/actors/api.js';
import { INDEX_FILE } from '../../src/actors/job-store.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import { finished, jobParams, picture as pictureOf, recordingLogger } from '../helpers/engine-jobs.js';
import { fixtureRoot } from '../helpers/goldens.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-faults-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const logger = recordingLogger();
const logs = logger.lines;

const base: GenerationParams = { prompt: 'a lighthouse at dusk', n: 1, seed: 5, generatorDevice: 'cpu', enableTeacache: false, numInferenceSteps: 2 };
const { imageParams, videoParams } = jobParams(base);

function start(outputs: string): Supervisor {
  return new Supervisor({
    outputPath: outputs, inputSavePath: null, threads: 2, encoderThreads: 1, logger,
    faultInjection: [{ prompt: 'fault: exit', kind: 'exit', atStep: 1 }, { prompt: 'fault: throw', kind: 'throw', atStep: 2 }],
  });
}

const picture = (engine: Supervisor): Promise<Buffer> => pictureOf(engine, imageParams());

const lora = join(fixtureRoot(), 'wan-tiny', 'lora', 'lora_diffusers_peft.safetensors');

const outputs = join(dir, 'outputs');
const engine = start(outputs);
t.teardown(() => engine.stop({ drainTimeoutMs: 0 }));

t.test('a device crash fails only its job; the device comes back with its model and LoRA, and the next job completes', async (t) => {
  await engine.ready();
  const useLora = existsSync(lora);
  const plain = await picture(engine);
  if (useLora) await engine.setLora({ entries: [{ nickname: 'style', path: lora, target: 'all', strength: 1 }] });
  const merged = await picture(engine);
  if (useLora) t.notOk(merged.equals(plain), 'the LoRA changes the picture');

  // The thread dies after step 1 (as a native abort would end it).
  const exitJob = await engine.submitVideoJob(videoParams({ prompt: 'fault: exit', numInferenceSteps: 4 }));
  const exitEvents = await finished(engine, exitJob.id);
  t.same(exitEvents.map((e) => e.type), ['step', 'failed'], 'one step, then failed');
  t.match(exitEvents.at(-1), { status: 'failed', error: { code: 'device_crashed' } });
  t.match(await engine.getJob(exitJob.id), { status: 'failed', progress: exitEvents[0]!.progress, error: { code: 'device_crashed' } },
    'a failed job keeps its last progress');
  t.equal(engine.readiness(), 'ready', 'the engine stays ready while the device restarts');

  const after = await picture(engine);
  t.ok(after.equals(merged), useLora ? 'same picture as before the crash: the LoRA was merged again' : 'same picture as before the crash');
  if (useLora) t.match((await engine.listLoras()).active.transformer?.[0], { nickname: 'style', merged: true });

  // The pipeline throws after step 2: a crash too (the device is not trusted after an unknown error).
  const throwJob = await engine.submitImageJob(imageParams({ prompt: 'fault: throw', numInferenceSteps: 4 }));
  await t.rejects(throwJob.result, { name: 'ApiError', status: 500, code: 'generation_failed', message: /injected device fault/ });
  t.match(await engine.getJob(throwJob.id), { status: 'failed', error: { code: 'generation_failed' } });
  t.ok((await picture(engine)).equals(merged), 'the next job completes, with the same result');

  t.equal(logs.filter((l) => l.message === 'device restarted with the model reloaded').length, 2, 'two restarts logged');
  t.equal(engine.stats().jobsByStatus.failed, 2);
});

t.test('a restart keeps every job and output; the job that was running becomes failed / server_restarted', async (t) => {
  const image = await (await engine.submitImageJob(imageParams({ n: 2 }))).result;
  const video = await engine.submitVideoJob(videoParams());
  await finished(engine, video.id);

  // A long job; once the index on disk says it runs, keep that index as a crash at this moment would leave it.
  const long = await engine.submitVideoJob(videoParams({ numInferenceSteps: 400 }));
  const indexPath = join(outputs, INDEX_FILE);
  let crashedIndex = '';
  for (let i = 0; i < 1000 && !crashedIndex; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const text = readFileSync(indexPath, 'utf8');
    const job = (JSON.parse(text) as { jobs: { id: string; status: string }[] }).jobs.find((j) => j.id === long.id);
    if (job?.status === 'in_progress') crashedIndex = text;
  }
  t.ok(crashedIndex, 'the index recorded the running job');
  await engine.stop({ drainTimeoutMs: 0 });
  t.match(JSON.parse(readFileSync(indexPath, 'utf8')).jobs.at(-1), { id: long.id, status: 'failed', error: { code: 'server_shutdown' } },
    'a clean stop records the cut-off job itself');
  writeFileSync(indexPath, crashedIndex);

  const restarted = start(outputs);
  t.teardown(() => restarted.stop({ drainTimeoutMs: 0 }));
  const again = await restarted.getJob(image.job.id);
  t.same(again, image.job, 'the completed image job is listed as it was');
  for (const o of again!.outputs) t.ok(readFileSync(o.path!).equals(Buffer.from(image.images[o.index]!)), `output ${o.index} is on disk`);
  t.match(await restarted.getJob(video.id), { status: 'completed', progress: 100 });
  t.ok(existsSync((await restarted.getJob(video.id))!.outputs[0]!.path!), 'the video file is there');
  t.match(await restarted.getJob(long.id), { status: 'failed', error: { code: 'server_restarted' } });
  t.same((await restarted.listJobs({ kind: 'video', limit: 10, order: 'asc' })).data.map((j) => j.id).slice(-2), [video.id, long.id]);
  t.equal(restarted.stats().jobsByStatus.failed, 3, 'the two crashed jobs and the cut-off one');
  t.match(logs.find((l) => l.message.startsWith('jobs cut off')), { fields: { count: 1, ids: [long.id] } });

  await restarted.ready();
  const fresh = await (await restarted.submitImageJob(imageParams())).result;
  t.equal(fresh.job.status, 'completed', 'the restarted engine serves');
  const page1 = await restarted.listJobs({ kind: 'image', limit: 1, order: 'desc' });
  t.same([page1.data[0]!.id, page1.hasMore], [fresh.job.id, true], 'newest first');
  const page2 = await restarted.listJobs({ kind: 'image', limit: 1, order: 'desc', after: page1.data[0]!.id });
  t.same([page2.data[0]!.id, page2.hasMore], [image.job.id, true], 'then the one before it; the first test\'s jobs follow');
});
