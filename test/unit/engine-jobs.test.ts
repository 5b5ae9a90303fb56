// The engine end to end on the embedded tiny Wan model (real pipeline in a DeviceActor worker, real sharp and
// ffmpeg in the encoder pool, real files): image jobs and edits, a video job's lifecycle and its events in order,
// model-specific refusals, the bounded queue (429), cancellation by delete, and LoRA operations serialised with
// jobs. One engine for the whole file: workers cost seconds to start under tap's TS loader.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import {
  ApiError, type GenerationParams, type JobEvent, type JobRecord, type VideoJobParams,
} from '../../src/actors/api.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import { ffmpegPath } from '../../src/media/video.js';
import { jobParams, picture as pictureOf, recordingLogger } from '../helpers/engine-jobs.js';
import { fixtureRoot } from '../helpers/goldens.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-engine-'));
const logger = recordingLogger();
const logs = logger.lines;

const engine = new Supervisor({
  outputPath: join(dir, 'outputs'), inputSavePath: join(dir, 'inputs'), threads: 2, maxQueuedRequests: 1, encoderThreads: 1, logger,
});
t.teardown(async () => {
  await engine.stop({ drainTimeoutMs: 0 });
  rmSync(dir, { recursive: true, force: true });
});

const base: GenerationParams = { prompt: 'a red fox in the snow', n: 1, seed: 1024, generatorDevice: 'cpu', enableTeacache: false, numInferenceSteps: 2 };
const made = jobParams(base);
const imageParams = made.imageParams;
const videoParams = (over: Partial<VideoJobParams> = {}): VideoJobParams => made.videoParams({ numFrames: 9, ...over });

// Every event of every job, from the start (a job's first events go out inside its submit call).
const events = new Map<string, JobEvent[]>();
const ended = new Map<string, () => void>();
engine.subscribe((e) => {
  if (!events.has(e.id)) events.set(e.id, []);
  events.get(e.id)!.push(e);
  if (e.type === 'completed' || e.type === 'failed') ended.get(e.id)?.();
});
const isEnd = (e: JobEvent | undefined): boolean => e?.type === 'completed' || e?.type === 'failed';

/** Every event of one job, once its terminal event came. */
function eventsOf(id: string): Promise<JobEvent[]> {
  if (isEnd(events.get(id)?.at(-1))) return Promise.resolve(events.get(id)!);
  return new Promise((resolve) => ended.set(id, () => resolve(events.get(id)!)));
}

const rawPixels = async (bytes: Uint8Array): Promise<Buffer> => sharp(bytes).raw().toBuffer();

t.before(() => engine.ready());

t.test('model facts are known from construction: the embedded model with small defaults', async (t) => {
  const m = engine.model();
  t.match(m, { taskType: 'T2V', pipelineClass: 'WanPipeline', pipelineName: 'wan_pipeline', numGpus: 1, supportsLora: true });
  t.match(m.defaults, { width: 64, height: 64, numFrames: 9, guidanceScale: 5 });
  t.match(m.defaults.negativePrompt, /^Bright tones, overexposed/);
  t.equal(engine.readiness(), 'ready');
  t.equal(engine.server().outputPath, join(dir, 'outputs'));
});

t.test('an image job runs end to end: a PNG on disk, the same bytes in the result, the record completed', async (t) => {
  const { id, result } = await engine.submitImageJob(imageParams({ width: 48, height: 32 }));
  const r = await result;
  t.equal(r.job.id, id);
  t.match(r.job, { kind: 'image', status: 'completed', progress: 100, size: '48x32', numFrames: 1, n: 1, format: 'png', error: null });
  t.ok(r.job.completedAt !== null && r.job.startedAt !== null);
  const out = r.job.outputs[0]!;
  t.equal(out.path, join(dir, 'outputs', `${id}.png`));
  t.match(out, { index: 0, contentType: 'image/png', width: 48, height: 32, cloudUrl: null });
  const onDisk = readFileSync(out.path!);
  t.ok(onDisk.equals(Buffer.from(r.images[0]!)), 'the result bytes are the file');
  t.equal(out.bytes, onDisk.length);
  const meta = await sharp(onDisk).metadata();
  t.same([meta.format, meta.width, meta.height], ['png', 48, 32]);
  t.same(await engine.getJob(id), r.job, 'getJob answers the stored record');
});

t.test('n = 2 JPEG outputs get {id}_{i} names and different seeds (seed, seed + 1)', async (t) => {
  const { id, result } = await engine.submitImageJob(imageParams({ n: 2, format: 'jpeg', seed: 7 }));
  const r = await result;
  t.same(r.job.outputs.map((o) => o.path), [0, 1].map((i) => join(dir, 'outputs', `${id}_${i}.jpg`)));
  const [a, b] = await Promise.all(r.images.map(rawPixels));
  t.notOk(a!.equals(b!), 'the two outputs differ');
  const single = await (await engine.submitImageJob(imageParams({ format: 'jpeg', seed: 7 }))).result;
  t.ok((await rawPixels(single.images[0]!)).equals(a!), 'output 0 equals a single run with the same seed');
});

t.test('an edit runs Wan image-to-image: output at the input size snapped to 16, or at the size asked', async (t) => {
  const width = 50, height = 40;
  const pixels = new Uint8Array(width * height * 3).map((_, i) => (i * 7) % 256);
  const png = await sharp(Buffer.from(pixels), { raw: { width, height, channels: 3 } }).png().toBuffer();
  const input = { data: new Uint8Array(png), filename: '../evil name.png', contentType: 'image/png', image: { width, height, data: pixels }, source: 'upload' as const };
  const snapped = await (await engine.submitImageJob(imageParams({ inputs: [input], numInferenceSteps: 4 }))).result;
  t.equal(snapped.job.size, '48x32');
  const sized = await (await engine.submitImageJob(imageParams({ inputs: [input], width: 64, height: 64, numInferenceSteps: 4 }))).result;
  t.equal(sized.job.size, '64x64');
  t.same(((await sharp(sized.images[0]!).metadata()).width), 64);
  const saved = join(dir, 'inputs', `${sized.job.id}_0_evil_name.png`);
  t.ok(existsSync(saved), 'the input is saved under --input-save-path with a safe name');
  const generated = await (await engine.submitImageJob(imageParams({ width: 64, height: 64, numInferenceSteps: 4 }))).result;
  t.notOk((await rawPixels(sized.images[0]!)).equals(await rawPixels(generated.images[0]!)), 'the input changes the output');
  await t.rejects(engine.submitImageJob(imageParams({ inputs: [input], strength: 0.1, numInferenceSteps: 4 })),
    { name: 'ApiError', status: 400, param: 'strength' }, 'a strength that leaves no step is refused');
});

t.test('a video job: queued -> in_progress -> completed, events in order, progress monotonic', async (t) => {
  const job = await engine.submitVideoJob(videoParams({ numFrames: 10, numInferenceSteps: 3 }));
  t.match(job, { kind: 'video', status: 'queued', progress: 0, size: '64x64', numFrames: 9, fps: 8, seconds: '1', format: 'mp4' });
  const during: Promise<JobRecord | undefined>[] = [];
  const stop = engine.subscribe((e) => { if (e.type === 'step' && e.step === 1) during.push(engine.getJob(job.id)); }, { jobId: job.id });
  const seen = await eventsOf(job.id);
  stop();
  t.same(seen.map((e) => e.type), ['queued', 'started', 'step', 'step', 'step', 'decoding', 'encoding', 'completed']);
  t.same(seen.map((e) => e.status), ['queued', 'in_progress', 'in_progress', 'in_progress', 'in_progress', 'in_progress', 'in_progress', 'completed']);
  t.same(seen.filter((e) => e.type === 'step').map((e) => [(e as { step: number }).step, (e as { total: number }).total]), [[1, 3], [2, 3], [3, 3]]);
  const progress = seen.map((e) => e.progress);
  t.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), `progress never decreases: ${progress.join(' ')}`);
  t.same(progress.slice(2, 5), [31, 63, 95], 'floor(95 * done / total)');
  t.equal(progress.at(-1), 100);
  t.equal((await during[0])?.status, 'in_progress', 'the record says in_progress while it runs');
  const done = await engine.getJob(job.id);
  t.match(done, { status: 'completed', progress: 100 });
  const path = done!.outputs[0]!.path!;
  const raw = execFileSync(ffmpegPath(), ['-v', 'error', '-i', path, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 26 });
  t.equal(raw.length, 9 * 64 * 64 * 3, 'the MP4 decodes to 9 frames of 64x64');
});

t.test('model rules are 400s before a job exists', async (t) => {
  const before = (await engine.listJobs({ kind: 'image', limit: 100, order: 'asc' })).data.length;
  await t.rejects(engine.submitImageJob(imageParams({ width: 50, height: 64 })), { name: 'ApiError', status: 400, param: 'size', code: 'unsupported_size' });
  await t.rejects(engine.submitImageJob(imageParams({ numFrames: 5 })), { name: 'ApiError', status: 400, param: 'num_frames' });
  await t.rejects(engine.submitImageJob(imageParams({ numInferenceSteps: 5000 })), { status: 400, param: 'num_inference_steps', code: 'limit_exceeded' });
  await t.rejects(engine.submitImageJob(imageParams({ n: 2, seed: [1, 2, 3] })), { name: 'ApiError', status: 400, param: 'seed' });
  t.equal((await engine.listJobs({ kind: 'image', limit: 100, order: 'asc' })).data.length, before, 'no job was recorded');
});

t.test('a full queue answers 429 with Retry-After; a deleted job is cancelled and the next one runs', async (t) => {
  const running = await engine.submitVideoJob(videoParams({ numInferenceSteps: 12 }));
  const queued = await engine.submitVideoJob(videoParams());
  const err = await engine.submitVideoJob(videoParams()).then(() => undefined, (e: unknown) => e);
  t.ok(err instanceof ApiError, 'an ApiError');
  t.match(err, { status: 429, type: 'rate_limit_error', code: 'queue_full' });
  t.match((err as ApiError).headers['Retry-After'], /^\d+$/);

  const deleted = await engine.deleteJob(queued.id);
  t.equal(deleted?.status, 'queued', 'delete answers the record as it was');
  t.match((await eventsOf(queued.id)).at(-1), { type: 'failed', error: { code: 'cancelled' } });
  t.equal(await engine.getJob(queued.id), undefined, 'gone from the store');

  await new Promise<void>((resolve) => { const stop = engine.subscribe((e) => { if (e.type === 'step') { stop(); resolve(); } }, { jobId: running.id }); });
  await engine.deleteJob(running.id);
  const ev = await eventsOf(running.id);
  t.match(ev.at(-1), { type: 'failed', error: { code: 'cancelled' } });
  t.ok(ev.filter((e) => e.type === 'step').length < 12, 'the running job stopped between steps');
  const next = await engine.submitVideoJob(videoParams());
  t.match((await eventsOf(next.id)).at(-1), { type: 'completed' }, 'the device is fine afterwards');
  t.notOk(existsSync(join(dir, 'outputs', `${running.id}.mp4`)), 'the cancelled job left no file');
});

const lora = join(fixtureRoot(), 'wan-tiny', 'lora', 'lora_diffusers_peft.safetensors');
const noLora = existsSync(lora) ? false : `no LoRA fixture at ${lora} (set SGLD_FIXTURE_DIR)`;

t.test('set_lora waits for the running job to complete, changes the output, and unmerge restores it exactly', { skip: noLora }, async (t) => {
  const picture = (): Promise<Buffer> => pictureOf(engine, imageParams({ seed: 3 }));
  const before = await picture();

  const order: string[] = [];
  const job = await engine.submitVideoJob(videoParams({ numInferenceSteps: 6 }));
  engine.subscribe((e) => { if (e.type === 'encoding' || e.type === 'completed') order.push(e.type); }, { jobId: job.id });
  const set = engine.setLora({ entries: [{ nickname: 'style', path: lora, target: 'all', strength: 1 }] }).then((r) => { order.push('set_lora'); return r; });
  t.same(await engine.listLoras(), { loaded_adapters: [], active: {} }, 'list_loras answers at once, from the state before');
  t.same(await set, {});
  t.same(order, ['encoding', 'completed', 'set_lora'], 'set_lora answers after the job ahead of it completed, encoding included');
  t.match(await engine.getJob(job.id), { status: 'completed' }, 'the job was not disturbed');

  const listing = await engine.listLoras();
  t.same(listing.loaded_adapters, [{ nickname: 'style', path: lora }]);
  t.match(listing.active.transformer?.[0], { nickname: 'style', merged: true, strength: 1 });
  const merged = await picture();
  t.notOk(merged.equals(before), 'the adapter changes the picture');

  await t.rejects(engine.setLora({ entries: [{ nickname: 'other', path: lora, target: 'all', strength: 1 }] }),
    { status: 409, code: 'lora_already_merged' }, 'another adapter while one is merged: 409');
  await t.rejects(engine.setLora({ entries: [{ nickname: 'x', path: null, target: 'all', strength: 1 }] }),
    { status: 400, code: 'lora_not_loaded', param: 'lora_path' });
  await t.rejects(engine.setLora({ entries: [{ nickname: 'style', path: null, target: 'all', strength: 1 }], mergeMode: 'dynamic' }),
    { name: 'ApiError', status: 400, param: 'merge_mode' });

  await engine.unmergeLora({ target: 'all' });
  t.same((await engine.listLoras()).active, {}, 'nothing active after unmerge');
  t.ok((await picture()).equals(before), 'unmerge restores the base picture bit for bit');
});

t.test('stats count jobs by status', async (t) => {
  const s = engine.stats();
  t.equal(s.queued, 0);
  t.ok(s.jobsByStatus.completed >= 8, `completed ${s.jobsByStatus.completed}`);
  t.equal(s.jobsByStatus.failed, 0, 'deleted jobs left the store');
  t.ok((s.extra?.['device_peak_memory_bytes:0'] ?? 0) > 0, 'device peak memory is reported');
  t.notOk(logs.some((l) => l.level === 'error'), `no error logged: ${JSON.stringify(logs.filter((l) => l.level === 'error'))}`);
});

t.test('--job-timeout: a job past the limit stops between steps and fails job_timeout; the next job runs', async (t) => {
  // Far more steps than fit in the limit however fast a step gets (400 once took about the limit itself), so
  // only the timeout can end this job early.
  const STEPS = 20_000;
  const limited = new Supervisor({ outputPath: null, inputSavePath: null, threads: 2, encoderThreads: 1, logger, jobTimeoutMs: 1500, limits: { maxSteps: STEPS } });
  t.teardown(() => limited.stop({ drainTimeoutMs: 0 }));
  await limited.ready();
  const steps: number[] = [];
  const long = await limited.submitImageJob(imageParams({ numInferenceSteps: STEPS, prompt: 'a very long one' }));
  limited.subscribe((e) => { if (e.type === 'step') steps.push(performance.now()); }, { jobId: long.id });
  const t0 = performance.now();
  await t.rejects(long.result, { status: 504, code: 'job_timeout', message: /limit of 1\.5 s/ }, 'an image request waiting for it gets 504');
  const waited = performance.now() - t0;
  t.ok(waited >= 1400, `failed after the limit (${waited.toFixed(0)} ms)`);
  t.ok(steps.length < STEPS, `stopped between steps (${steps.length} of ${STEPS} ran)`);
  t.match(await limited.getJob(long.id), { status: 'failed', error: { code: 'job_timeout' } });
  const next = await (await limited.submitImageJob(imageParams())).result;
  t.equal(next.images.length, 1, 'the device serves the next job');
});
