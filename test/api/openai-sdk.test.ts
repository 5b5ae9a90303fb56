// End to end: the real engine (Supervisor on the embedded tiny Wan model, CPU) behind the HTTP front on a random
// loopback port, driven by the official `openai` SDK 6.49.0, raw fetch and a `ws` WebSocket client. The tiny model
// has random weights, so pictures are noise: the checks are about the API (shapes, formats, sizes, order,
// persistence), not about content.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import sharp from 'sharp';
import t from 'tap';
import WebSocket from 'ws';
import { Supervisor } from '../../src/actors/supervisor.js';
import { type Logger, consoleLogger } from '../../src/kernel/index.js';
import { type HttpServer, startHttpServer } from '../../src/http/server.js';

const MODEL_DIR = new URL('../../models/wan-tiny', import.meta.url).pathname;
/** Small and quick on 2 CPU cores: 32x32 pixels, 2 denoising steps, 5 frames for videos. */
const FAST = { size: '32x32', num_inference_steps: 2 } as const;

interface Running { engine: Supervisor; server: HttpServer; client: OpenAI; base: string }

async function start(outputPath: string, inputSavePath: string): Promise<Running> {
  const engine = new Supervisor({
    modelPath: MODEL_DIR, servedModelName: 'sgld/wan-tiny', outputPath, inputSavePath, threads: 2, logger: quietLogger(),
    // A prompt of exactly 'boom' makes the device pipeline throw after step 1 (the engine's test hook).
    faultInjection: [{ prompt: 'boom', kind: 'throw', atStep: 1 }],
  });
  await engine.ready();
  const server = await startHttpServer(engine, { host: '127.0.0.1', port: 0, logger: { info() {}, warn() {}, error: (m) => console.error(m) } });
  const base = `http://127.0.0.1:${server.port}`;
  const client = new OpenAI({ apiKey: 'sk-unused', baseURL: `${base}/v1`, maxRetries: 0, timeout: 120_000 });
  return { engine, server, client, base };
}

async function stop(r: Running): Promise<void> {
  await r.server.close();
  await r.engine.stop();
}

/** The HTTP status of the SDK error a call throws (the SDK maps 4xx/5xx to typed errors with .status). */
async function statusOf(call: Promise<unknown>): Promise<number | 'resolved'> {
  try { await call; return 'resolved'; } catch (e) { return (e as { status: number }).status; }
}

/** Engine logs: errors only (the tests print nothing else). */
const quietLogger = (): Logger => consoleLogger('error');

const dir = mkdtempSync(join(tmpdir(), 'sgld-api-'));
const outputPath = join(dir, 'outputs');
const inputSavePath = join(dir, 'inputs');
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let run = await start(outputPath, inputSavePath);
t.teardown(() => stop(run));

t.test('models.list / models.retrieve', async (t) => {
  const list = await run.client.models.list();
  t.equal(list.data.length, 1);
  t.match(list.data[0], { id: 'sgld/wan-tiny', object: 'model', task_type: 'T2V', pipeline_class: 'WanPipeline' });
  const card = await run.client.models.retrieve('sgld/wan-tiny');
  t.equal(card.id, 'sgld/wan-tiny', 'an id with a slash survives the SDK percent-encoding');
  t.equal(await statusOf(run.client.models.retrieve('nope')), 404);
});

t.test('images.generate', async (t) => {
  t.test('b64_json: a JPEG of the requested size', async (t) => {
    const res = await run.client.images.generate({ prompt: 'a red fox', response_format: 'b64_json', ...FAST } as never);
    t.equal(res.data!.length, 1);
    const bytes = Buffer.from(res.data![0]!.b64_json!, 'base64');
    const meta = await sharp(bytes).metadata();
    t.same([meta.format, meta.width, meta.height], ['jpeg', 32, 32]);
    t.equal(res.data![0]!.revised_prompt, 'a red fox');
  });
  t.test('url, then the content download is the same file', async (t) => {
    const res = await run.client.images.generate({ prompt: 'a fox', output_format: 'png', ...FAST } as never);
    const url = res.data![0]!.url!;
    t.match(url, /^\/v1\/images\/[0-9a-f-]{36}\/content$/);
    const dl = await fetch(run.base + url);
    t.equal(dl.headers.get('content-type'), 'image/png');
    const meta = await sharp(Buffer.from(await dl.arrayBuffer())).metadata();
    t.same([meta.format, meta.width, meta.height], ['png', 32, 32]);
  });
  t.test('n = 3: three different images', async (t) => {
    const res = await run.client.images.generate({ prompt: 'three', n: 3, response_format: 'b64_json', output_format: 'png', ...FAST } as never);
    t.equal(res.data!.length, 3);
    t.equal(new Set(res.data!.map((d) => d.b64_json)).size, 3, 'seed, seed+1, seed+2 differ');
  });
  t.test('same request twice: identical pixels (default seed 1024)', async (t) => {
    const a = await run.client.images.generate({ prompt: 'same', response_format: 'b64_json', output_format: 'png', ...FAST } as never);
    const b = await run.client.images.generate({ prompt: 'same', response_format: 'b64_json', output_format: 'png', ...FAST } as never);
    t.equal(a.data![0]!.b64_json, b.data![0]!.b64_json);
  });
  t.test('output_quality / output_compression: JPEG shrinks with the level, PNG pixels never change', async (t) => {
    const gen = async (extra: Record<string, unknown>): Promise<Buffer> => {
      const r = await run.client.images.generate({ prompt: 'quality', response_format: 'b64_json', size: '64x64', num_inference_steps: 2, ...extra } as never);
      return Buffer.from(r.data![0]!.b64_json!, 'base64');
    };
    const jpeg: Record<string, number> = {};
    for (const q of ['low', 'medium', 'high', 'maximum']) jpeg[q] = (await gen({ output_format: 'jpeg', output_quality: q })).length;
    t.ok(jpeg.low! < jpeg.medium! && jpeg.medium! < jpeg.high! && jpeg.high! < jpeg.maximum!, `JPEG bytes by level: ${JSON.stringify(jpeg)}`);
    const c10 = (await gen({ output_format: 'jpeg', output_compression: 10, output_quality: 'maximum' })).length;
    t.ok(c10 < jpeg.low!, `output_compression 10 (${c10} B) wins over output_quality maximum`);
    const px = await Promise.all([0, 50, 100].map(async (level) => sharp(await gen({ output_format: 'png', output_compression: level })).raw().toBuffer()));
    t.same(px[1], px[0], 'PNG level 50 = level 0 pixels');
    t.same(px[2], px[0], 'PNG level 100 = level 0 pixels');
  });
  t.test('caller errors come back as typed SDK errors', async (t) => {
    t.equal(await statusOf(run.client.images.generate({ prompt: 'x', n: 11 })), 400);
    t.equal(await statusOf(run.client.images.generate({ prompt: 'x', size: '30x30' } as never)), 400);
    t.equal(await statusOf(run.client.images.generate({ prompt: 'x', output_quality: 'ultra' } as never)), 400);
  });
});

t.test('images.edit', async (t) => {
  const red = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#ff0000' } }).png().toBuffer();
  const blue = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#0000ff' } }).png().toBuffer();
  t.test('one image (`image` part), b64_json by default', async (t) => {
    const res = await run.client.images.edit({ prompt: 'make it blue', image: await toFile(red, 'red.png', { type: 'image/png' }), ...FAST } as never);
    const meta = await sharp(Buffer.from(res.data![0]!.b64_json!, 'base64')).metadata();
    t.same([meta.width, meta.height], [32, 32]);
  });
  t.test('two images (`image[]` parts)', async (t) => {
    const res = await run.client.images.edit({
      prompt: 'combine', n: 2, image: [await toFile(red, 'a.png', { type: 'image/png' }), await toFile(blue, 'b.png', { type: 'image/png' })], ...FAST,
    } as never);
    t.equal(res.data!.length, 2);
  });
  t.test('a data: URL in the `url` field', async (t) => {
    const res = await run.client.images.edit({
      prompt: 'from a url', image: [] as never, url: `data:image/png;base64,${red.toString('base64')}`, ...FAST,
    } as never);
    t.equal(res.data!.length, 1);
  });
  t.test('an undecodable upload is a 400', async (t) => {
    t.equal(await statusOf(run.client.images.edit({ prompt: 'x', image: await toFile(Buffer.from('not a png'), 'x.png', { type: 'image/png' }) })), 400);
  });
});

interface Progress { type: string; event: string; status: string; progress: number; step?: number }

t.test('videos: create, progress over WebSocket, retrieve, list pages, download, delete', async (t) => {
  const video = await run.client.videos.create({ prompt: 'a boat', seconds: '4', size: '32x32' as never, num_frames: 5, num_inference_steps: 3 } as never);
  t.match(video, { object: 'video', size: '32x32', prompt: 'a boat', model: 'sgld/wan-tiny' });
  // Spec 5.1: the create answer is the job as recorded, even when an idle device has started it since.
  t.match(video, { status: 'queued', progress: 0 });
  const messages: Progress[] = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${run.base.replace('http', 'ws')}/v1/jobs/${video.id}/events`);
    const got: Progress[] = [];
    ws.on('message', (m) => got.push(JSON.parse(m.toString()) as Progress));
    ws.on('close', () => resolve(got));
    ws.on('error', reject);
  });
  const events = messages.map((m) => m.event);
  t.equal(events.at(-1), 'completed', `events: ${events.join(' ')}`);
  t.equal(messages.at(-1)!.progress, 100);
  const order = ['snapshot', 'queued', 'started', 'step', 'decoding', 'encoding', 'completed'];
  t.ok(events.every((e, i) => i === 0 || order.indexOf(e) >= order.indexOf(events[i - 1]!)), 'events in lifecycle order');
  const progress = messages.map((m) => m.progress);
  t.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), `progress never decreases: ${progress.join(',')}`);

  const done = await run.client.videos.retrieve(video.id);
  t.match(done, { status: 'completed', progress: 100 });
  const content = await run.client.videos.downloadContent(video.id);
  t.equal(content.headers.get('content-type'), 'video/mp4');
  const mp4 = Buffer.from(await content.arrayBuffer());
  t.equal(mp4.subarray(4, 8).toString(), 'ftyp');

  const more = [];
  for (let i = 0; i < 2; i++) more.push(await run.client.videos.create({ prompt: `clip ${i}`, size: '32x32' as never, num_frames: 1, num_inference_steps: 1 } as never));
  for (const v of more) {
    for (;;) {
      const cur = await run.client.videos.retrieve(v.id);
      if (cur.status === 'completed' || cur.status === 'failed') break;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  const page = await run.client.videos.list({ limit: 2 });
  t.equal(page.data.length, 2);
  t.ok(page.hasNextPage(), 'has_more drives the SDK cursor');
  const seen: string[] = [];
  for await (const v of run.client.videos.list({ limit: 1, order: 'asc' })) seen.push(v.id);
  t.same(seen.slice(0, 3), [video.id, more[0]!.id, more[1]!.id], 'auto-pagination walks every job in order');

  const deleted = await run.client.videos.delete(more[1]!.id);
  t.match(deleted, { id: more[1]!.id, object: 'video.deleted', deleted: true });
  t.equal(await statusOf(run.client.videos.retrieve(more[1]!.id)), 404);
});

t.test('engine behaviour over raw HTTP', async (t) => {
  const post = (path: string, body: unknown) => fetch(run.base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  t.test('a size the model cannot make is 400 param size (not 500)', async (t) => {
    const r = await post('/v1/images/generations', { prompt: 'x', size: '40x40' });
    t.equal(r.status, 400);
    t.match(await r.json(), { error: { param: 'size', type: 'invalid_request_error' } });
  });
  t.test('a generation that fails is 500 generation_failed; the next request works', async (t) => {
    const r = await post('/v1/images/generations', { prompt: 'boom', ...FAST });
    t.equal(r.status, 500);
    t.match(await r.json(), { error: { type: 'server_error', code: 'generation_failed' } });
    const ok = await post('/v1/images/generations', { prompt: 'fine', response_format: 'b64_json', ...FAST });
    t.equal(ok.status, 200);
  });
  t.test('LoRA routes reach the engine', async (t) => {
    const list = await fetch(`${run.base}/v1/list_loras`);
    t.same(await list.json(), { loaded_adapters: [], active: {} });
    const merge = await post('/v1/merge_lora_weights', {});
    t.equal(merge.status, 409);
    t.match(await merge.json(), { error: { code: 'lora_not_set' } });
    const set = await post('/v1/set_lora', { lora_nickname: 'x', lora_path: join(dir, 'missing.safetensors') });
    t.equal(set.status, 400);
    t.match(await set.json(), { error: { code: 'lora_load_failed' } });
  });
  t.test('/metrics shows the jobs run so far', async (t) => {
    const text = await (await fetch(`${run.base}/metrics`)).text();
    const count = Number(/sgld_job_e2e_latency_seconds_count\{kind="image",status="completed"\} (\d+)/.exec(text)?.[1]);
    t.ok(count >= 5, `completed image jobs counted: ${count}`);
    t.match(text, /sgld_job_e2e_latency_seconds_count\{kind="image",status="failed"\} 1/);
    t.match(text, /sgld_denoise_steps_per_second_count\{kind="image"\} \d+/);
    t.match(text, /sgld_ready 1/);
  });
});

t.test('restart: jobs and outputs persist across a restart', async (t) => {
  const v = await run.client.videos.create({ prompt: 'persist me', size: '32x32' as never, num_frames: 1, num_inference_steps: 1 } as never);
  for (;;) {
    const cur = await run.client.videos.retrieve(v.id);
    if (cur.status === 'completed') break;
    if (cur.status === 'failed') throw new Error(`job failed: ${JSON.stringify(cur.error)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const img = await run.client.images.generate({ prompt: 'persisted image', output_format: 'png', ...FAST } as never);
  const before = Buffer.from(await (await run.client.videos.downloadContent(v.id)).arrayBuffer());
  await stop(run);
  run = await start(outputPath, inputSavePath);
  const again = await run.client.videos.retrieve(v.id);
  t.match(again, { id: v.id, status: 'completed', progress: 100, prompt: 'persist me' });
  t.same(Buffer.from(await (await run.client.videos.downloadContent(v.id)).arrayBuffer()), before, 'same MP4 after restart');
  const dl = await fetch(run.base + img.data![0]!.url!);
  t.equal(dl.status, 200, 'image content still served');
});
