// A rank fault on a 2-rank replica (Ulysses 2): the dead rank's peer is released from the collective it waits in
// (the Supervisor breaks the replica's barriers, or the failing rank breaks them itself), the job fails once with
// the cause of the rank that failed first, both ranks come back with the model and the LoRA replayed, the replica's
// barriers are repaired, and the next job completes with the picture from before the crash. Faults come from the
// test-only fault switch of EngineOptions, aimed at member 1 (not the leader). Before the faults: several outputs
// per job and a running job cancelled, which the ranks must stop together.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import type { GenerationParams } from '../../src/actors/api.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import { finished, jobParams, picture as pictureOf, recordingLogger } from '../helpers/engine-jobs.js';
import { fixtureRoot } from '../helpers/goldens.js';

// Six worker starts (2 ranks, then 2 restarts of both), each compiling the engine under tap's TS loader: slow on a
// busy 2-core machine.
t.setTimeout(300_000);

const logger = recordingLogger();
const logs = logger.lines;

const base: GenerationParams = { prompt: 'a lighthouse at dusk', n: 1, seed: 5, generatorDevice: 'cpu', enableTeacache: false, numInferenceSteps: 2 };
const { imageParams, videoParams } = jobParams(base);

const picture = (engine: Supervisor): Promise<Buffer> => pictureOf(engine, imageParams());

const lora = join(fixtureRoot(), 'wan-tiny', 'lora', 'lora_diffusers_peft.safetensors');

t.test('2 ranks (ulysses 2): a rank killed mid-job fails the job once; both ranks come back with the LoRA and serve', async (t) => {
  const pair = new Supervisor({
    outputPath: null, inputSavePath: null, threads: 2, encoderThreads: 1, logger, numGpus: 2, ulyssesDegree: 2,
    faultInjection: [
      { prompt: 'fault: exit rank 1', kind: 'exit', atStep: 1, member: 1 },
      { prompt: 'fault: throw rank 1', kind: 'throw', atStep: 2, member: 1 },
    ],
  });
  t.teardown(() => pair.stop({ drainTimeoutMs: 0 }));
  await pair.ready();
  t.match(pair.model(), { numGpus: 2 });
  const useLora = existsSync(lora);
  if (useLora) await pair.setLora({ entries: [{ nickname: 'style', path: lora, target: 'all', strength: 1 }] });
  const merged = await picture(pair);
  const restarts = (): number => logs.filter((l) => l.message === 'device restarted with the model reloaded').length;

  // Several outputs are several runs: the ranks agree after each whether the job goes on.
  const two = await (await pair.submitImageJob(imageParams({ n: 2 }))).result;
  t.ok((await sharp(two.images[0]!).raw().toBuffer()).equals(merged), 'output 0 of n = 2 is the n = 1 picture');
  // A running job deleted mid-denoise: the leader decides for both ranks, so neither is left in a collective.
  const long = await pair.submitVideoJob(videoParams({ prompt: 'a long one', numInferenceSteps: 200 }));
  await new Promise<void>((resolve) => { const stop = pair.subscribe((e) => { if (e.type === 'step') { stop(); resolve(); } }, { jobId: long.id }); });
  await pair.deleteJob(long.id);
  t.ok((await picture(pair)).equals(merged), 'after a cancelled job the replica serves the next one');
  t.equal(restarts(), 0, 'cancelling crashed no rank');

  // Rank 1 (not the leader) dies after step 1; the leader, waiting for it in the next step's collective, is released.
  const exitJob = await pair.submitVideoJob(videoParams({ prompt: 'fault: exit rank 1', numInferenceSteps: 4 }));
  const exitEvents = await finished(pair, exitJob.id);
  t.same(exitEvents.map((e) => e.type), ['step', 'failed'], "one step (the leader's), then failed once");
  t.match(exitEvents.at(-1), { error: { code: 'device_crashed' } }, 'the cause is the rank that died, not the peer it released');
  t.equal(pair.readiness(), 'ready', 'the engine stays ready while the ranks restart');
  const after = await picture(pair);
  t.ok(after.equals(merged), useLora ? 'the next job completes with the same picture: both ranks reloaded and merged the LoRA again' : 'the next job completes with the same picture');
  t.equal(restarts(), 2, 'both ranks restarted (the peer failed on its broken barrier)');
  t.ok(logs.some((l) => l.message === 'actor crashed' && /ERR_BARRIER_BROKEN/.test(JSON.stringify(l.fields ?? {}))), 'the peer crashed on the broken barrier');
  if (useLora) t.match((await pair.listLoras()).active.transformer?.[0], { nickname: 'style', merged: true });
  const digests = (await pair.weightsDigest()).ranks;
  t.equal(digests.length, 2, 'a weights digest per rank');
  t.equal(digests[0]!.modules.transformer, digests[1]!.modules.transformer, 'after the restarts both ranks hold bit-identical transformer weights');

  // Rank 1 throws after step 2: it breaks its groups itself; the job fails with its error, not its peer's.
  const throwJob = await pair.submitImageJob(imageParams({ prompt: 'fault: throw rank 1', numInferenceSteps: 4 }));
  await t.rejects(throwJob.result, { status: 500, code: 'generation_failed', message: /injected device fault/ });
  t.ok((await picture(pair)).equals(merged), 'and the next job completes again, with the same picture');
  t.equal(restarts(), 4, 'both ranks restarted again');
  t.match(pair.stats(), { running: 0, jobsByStatus: { failed: 2 } });
});
