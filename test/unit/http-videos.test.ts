// Videos over HTTP (spec 5), the progress WebSocket (spec 8) and LoRA management (spec 6), against the engine
// test double.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import WebSocket from 'ws';
import type { VideoJobParams } from '../../src/actors/api.js';
import { type Harness, expectError, startHarness } from './http-harness.js';

interface VideoObject {
  id: string; object: string; model: string; status: string; progress: number; created_at: number;
  completed_at: number | null; expires_at: null; size: string; seconds: string; quality: string; url: string | null;
  remixed_from_video_id: null; error: { code: string; message: string } | null; prompt: string;
  file_path: string | null; file_paths: string[] | null; num_outputs: number | null; deleted?: boolean;
}
interface VideoList { object: string; data: VideoObject[]; has_more: boolean; first_id: string | null; last_id: string | null }

const form = (fields: Record<string, string>, build?: (f: FormData) => void): FormData => {
  const f = new FormData();
  for (const [k, v] of Object.entries(fields)) f.append(k, v);
  build?.(f);
  return f;
};

async function createVideo(h: Harness, body: Record<string, unknown> | FormData): Promise<VideoObject> {
  const r = body instanceof FormData
    ? await h.fetch('/v1/videos', { method: 'POST', body })
    : await h.post('/v1/videos', body);
  const text = await r.text();
  if (r.status !== 200) throw new Error(`create failed: ${r.status} ${text}`);
  return JSON.parse(text) as VideoObject;
}

async function waitFor(h: Harness, id: string, status: string): Promise<VideoObject> {
  for (let i = 0; i < 400; i++) {
    const v = await (await h.fetch(`/v1/videos/${id}`)).json() as VideoObject;
    if (v.status === status) return v;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`video ${id} never reached ${status}`);
}

const lastParams = (h: Harness): VideoJobParams => h.engine.submitted[h.engine.submitted.length - 1] as VideoJobParams;

t.test('video lifecycle', async (t) => {
  const h = await startHarness(t);

  t.test('multipart create (what the SDK sends) answers the queued job object', async (t) => {
    const v = await createVideo(h, form({ model: 'sora-2', prompt: 'a boat', seconds: '4', size: '64x32' }));
    t.match(v, {
      object: 'video', model: 'sora-2', status: 'queued', progress: 0, completed_at: null, expires_at: null,
      size: '64x32', seconds: '4', quality: 'standard', url: null, remixed_from_video_id: null, error: null, prompt: 'a boat',
    });
    t.match(v.id, /^[0-9a-f-]{36}$/);
    t.match(lastParams(h), { fps: 24, numFrames: 96, level: 50, n: 1, seed: 1024, width: 64, height: 32 }, 'fps 24 x 4 s; video default level 50');
    const done = await waitFor(h, v.id, 'completed');
    t.equal(done.progress, 100);
    t.ok(Number.isInteger(done.completed_at) && done.completed_at! >= done.created_at);
    t.equal(done.num_outputs, 1);
    t.match(done.file_path, new RegExp(`${v.id}\\.mp4$`));
  });

  t.test('JSON create: model defaults to the served name; num_frames wins over seconds; extra_body merged', async (t) => {
    const v = await createVideo(h, { prompt: 'json', seconds: 8, fps: 8, num_frames: 17, extra_body: { num_inference_steps: 3, guidance_scale_2: 2 } });
    t.equal(v.model, 'Test/Tiny-Model');
    t.match(lastParams(h), { numFrames: 17, fps: 8, numInferenceSteps: 3, guidanceScale2: 2 });
    t.equal(v.seconds, '2', 'seconds = round(final frames / fps)');
    const v2 = await createVideo(h, { prompt: 'json', seconds: '8', fps: 4 });
    t.match(lastParams(h), { numFrames: 32, fps: 4 }, 'seconds as numeric string');
    await waitFor(h, v2.id, 'completed');
  });

  t.test('multipart extra_body as JSON text and as nested parts', async (t) => {
    await createVideo(h, form({ prompt: 'p', extra_body: '{"num_inference_steps": 6, "output_quality": "high"}' }));
    t.match(lastParams(h), { numInferenceSteps: 6, level: 90 });
    await createVideo(h, form({ prompt: 'p', 'extra_body[num_inference_steps]': '5' }));
    t.match(lastParams(h), { numInferenceSteps: 5 });
  });

  t.test('content: MP4 bytes for variant 0 / video; other variants 404', async (t) => {
    const v = await createVideo(h, { prompt: 'content' });
    await waitFor(h, v.id, 'completed');
    const r = await h.fetch(`/v1/videos/${v.id}/content`, { headers: { accept: 'application/binary' } });
    t.equal(r.status, 200);
    t.equal(r.headers.get('content-type'), 'video/mp4');
    t.equal(r.headers.get('content-disposition'), `attachment; filename="${v.id}.mp4"`);
    const bytes = Buffer.from(await r.arrayBuffer());
    t.equal(bytes.subarray(4, 8).toString(), 'ftyp', 'an MP4 file');
    t.same(Buffer.from(await (await h.fetch(`/v1/videos/${v.id}/content?variant=video`)).arrayBuffer()), bytes, 'variant=video is output 0 [sgld]');
    t.same(Buffer.from(await (await h.fetch(`/v1/videos/${v.id}/content?variant=0`)).arrayBuffer()), bytes);
    await expectError(t, await h.fetch(`/v1/videos/${v.id}/content?variant=thumbnail`), 404, { code: 'variant_not_found' });
    await expectError(t, await h.fetch(`/v1/videos/${v.id}/content?variant=spritesheet`), 404, { code: 'variant_not_found' });
    await expectError(t, await h.fetch(`/v1/videos/${v.id}/content?variant=1`), 404, { code: 'variant_not_found' });
    await expectError(t, await h.fetch('/v1/videos/nope/content'), 404, { code: 'video_not_found', message: /^Video not found$/ });
  });

  t.test('n = 2: file_paths and variant 1', async (t) => {
    const v = await createVideo(h, { prompt: 'two', n: 2, seed: [3, 4] });
    const done = await waitFor(h, v.id, 'completed');
    t.equal(done.num_outputs, 2);
    t.equal(done.file_paths!.length, 2);
    t.equal(done.file_path, done.file_paths![0]);
    const a = Buffer.from(await (await h.fetch(`/v1/videos/${v.id}/content?variant=0`)).arrayBuffer());
    const b = Buffer.from(await (await h.fetch(`/v1/videos/${v.id}/content?variant=1`)).arrayBuffer());
    t.equal(b.subarray(4, 8).toString(), 'ftyp');
    t.not(a.toString('base64'), b.toString('base64'), 'different seeds, different videos');
    await createVideo(h, { prompt: 'alias', num_outputs_per_prompt: 3 });
    t.equal(lastParams(h).n, 3, 'num_outputs_per_prompt is n');
  });

  t.test('in progress: status and monotonic progress; content 404 video_not_ready', async (t) => {
    h.engine.opts.stepDelayMs = 60;
    t.teardown(() => { h.engine.opts.stepDelayMs = 5; });
    await h.engine.idle();
    const v = await createVideo(h, { prompt: 'slow' });
    await expectError(t, await h.fetch(`/v1/videos/${v.id}/content`), 404, { code: 'video_not_ready', message: /Generation is still in-progress/ });
    const seen: number[] = [];
    let sawInProgress = false;
    for (;;) {
      const cur = await (await h.fetch(`/v1/videos/${v.id}`)).json() as VideoObject;
      seen.push(cur.progress);
      if (cur.status === 'in_progress') sawInProgress = true;
      if (cur.status === 'completed') break;
      await new Promise((r) => setTimeout(r, 15));
    }
    t.ok(sawInProgress, 'in_progress was reported [sgld]');
    t.ok(seen.every((p, i) => i === 0 || p >= seen[i - 1]!), `progress never decreases: ${seen.join(',')}`);
    t.ok(seen.some((p) => p > 0 && p < 100), 'intermediate progress was visible');
  });

  t.test('a failed job: status failed, error {code, message}, content 404', async (t) => {
    const v = await createVideo(h, { prompt: 'FAIL this one' });
    const failed = await waitFor(h, v.id, 'failed');
    t.match(failed.error, { code: 'generation_failed', message: /told to fail/ });
    t.equal(failed.completed_at, null);
    t.ok(failed.progress < 100);
    await expectError(t, await h.fetch(`/v1/videos/${v.id}/content`), 404, { code: 'video_failed' });
    t.equal((await h.fetch('/health')).status, 200, 'the server keeps serving');
  });

  t.test('delete: the job fields with object video.deleted, deleted true; then 404', async (t) => {
    const v = await createVideo(h, { prompt: 'to delete' });
    await waitFor(h, v.id, 'completed');
    const r = await h.fetch(`/v1/videos/${v.id}`, { method: 'DELETE' });
    t.equal(r.status, 200);
    const d = await r.json() as VideoObject;
    t.match(d, { id: v.id, object: 'video.deleted', deleted: true, status: 'deleted', prompt: 'to delete' });
    await expectError(t, await h.fetch(`/v1/videos/${v.id}`), 404, { type: 'not_found_error', code: 'video_not_found' });
    await expectError(t, await h.fetch(`/v1/videos/${v.id}/content`), 404, { code: 'video_not_found' });
    await expectError(t, await h.fetch(`/v1/videos/${v.id}`, { method: 'DELETE' }), 404, { code: 'video_not_found' });
  });

  t.test('delete of a running job cancels it [sgld]', async (t) => {
    h.engine.opts.stepDelayMs = 100;
    t.teardown(() => { h.engine.opts.stepDelayMs = 5; });
    await h.engine.idle();
    const v = await createVideo(h, { prompt: 'cancel me' });
    await waitFor(h, v.id, 'in_progress');
    const events: string[] = [];
    const off = h.engine.subscribe((e) => events.push(e.type), { jobId: v.id });
    t.equal((await h.fetch(`/v1/videos/${v.id}`, { method: 'DELETE' })).status, 200);
    await h.engine.idle();
    off();
    t.equal(events.at(-1), 'failed', 'the job stopped');
    t.notOk(events.includes('completed'));
  });

  t.test('an image job id is not a video', async (t) => {
    const img = await (await h.post('/v1/images/generations', { prompt: 'p', response_format: 'b64_json' })).json() as { id: string };
    await expectError(t, await h.fetch(`/v1/videos/${img.id}`), 404, { code: 'video_not_found' });
  });
});

t.test('GET /v1/videos: cursor pagination (spec 5.6)', async (t) => {
  const h = await startHarness(t);
  const ids: string[] = [];
  for (let i = 0; i < 5; i++) ids.push((await createVideo(h, { prompt: `v${i}` })).id);
  await h.engine.idle();
  const list = async (q: string): Promise<VideoList> => {
    const r = await h.fetch(`/v1/videos${q}`);
    t.equal(r.status, 200, q);
    return r.json() as Promise<VideoList>;
  };
  const all = await list('');
  t.equal(all.object, 'list');
  t.same(all.data.map((v) => v.id), [...ids].reverse(), 'default order desc (newest first)');
  t.equal(all.has_more, false);
  const p1 = await list('?limit=2');
  t.same(p1.data.map((v) => v.id), [ids[4], ids[3]]);
  t.same([p1.has_more, p1.first_id, p1.last_id], [true, ids[4], ids[3]]);
  const p2 = await list(`?limit=2&after=${p1.last_id}`);
  t.same(p2.data.map((v) => v.id), [ids[2], ids[1]]);
  const p3 = await list(`?limit=2&after=${p2.last_id}`);
  t.same(p3.data.map((v) => v.id), [ids[0]]);
  t.same([p3.has_more, p3.last_id], [false, ids[0]]);
  const asc = await list('?order=asc&limit=3');
  t.same(asc.data.map((v) => v.id), ids.slice(0, 3));
  t.same((await list('?order=sideways')).data.map((v) => v.id), [...ids].reverse(), 'other orders are desc');
  const empty = await list('?after=unknown-id');
  t.same([empty.data, empty.has_more, empty.first_id, empty.last_id], [[], false, null, null], 'unknown cursor: empty page');
  for (const bad of ['0', '101', 'x', '-1']) await expectError(t, await h.fetch(`/v1/videos?limit=${bad}`), 422, { param: 'limit' });
});

t.test('video caller errors', async (t) => {
  const inputDir = mkdtempSync(join(tmpdir(), 'sgld-http-inputs-'));
  t.teardown(() => rmSync(inputDir, { recursive: true, force: true }));
  const h = await startHarness(t, { inputSavePath: inputDir }, { remoteInputs: false });
  const before = h.engine.jobs.size;
  const multipartCases: [Record<string, string>, number, string, string | null][] = [
    [{ seconds: '4' }, 400, 'prompt', 'missing_prompt'],
    [{ prompt: '' }, 400, 'prompt', 'missing_prompt'],
    [{ prompt: 'p', n: '11' }, 400, 'n', 'invalid_n'],
    [{ prompt: 'p', n: '0' }, 400, 'n', 'invalid_n'],
    [{ prompt: 'p', seconds: 'four' }, 422, 'seconds', 'invalid_type'],
    [{ prompt: 'p', seconds: '0' }, 400, 'seconds', 'invalid_seconds'],
    [{ prompt: 'p', size: 'big' }, 400, 'size', 'invalid_size'],
    [{ prompt: 'p', size: '50x50' }, 400, 'size', 'invalid_size'],
    [{ prompt: 'p', fps: '0' }, 400, 'fps', 'invalid_fps'],
    [{ prompt: 'p', output_quality: 'ultra' }, 400, 'output_quality', 'invalid_output_quality'],
    [{ prompt: 'p', output_compression: '200' }, 400, 'output_compression', 'invalid_output_compression'],
    [{ prompt: 'p', extra_body: '{not json' }, 400, 'extra_body', 'invalid_json'],
    [{ prompt: 'p', output_path: '/etc' }, 400, 'output_path', 'output_path_not_allowed'],
    [{ prompt: 'p', reference_url: 'ftp://x/y.png' }, 400, 'reference_url', 'unsupported_image_url'],
    [{ prompt: 'p', reference_url: 'https://example.com/a.png' }, 400, 'reference_url', 'remote_input_disabled'],
  ];
  for (const [fields, status, param, code] of multipartCases) {
    await expectError(t, await h.fetch('/v1/videos', { method: 'POST', body: form(fields) }), status, { param, code });
  }
  const e = await expectError(t, await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'p', extra_body: '[' }) }), 400, {});
  t.equal(e.error.message, 'extra_body is not valid JSON');
  await expectError(t, await h.post('/v1/videos', { seconds: 4 }), 422, { param: 'prompt' });
  await expectError(t, await h.post('/v1/videos', { prompt: 'p', n: 'many' }), 422, { param: 'n' });
  await expectError(t, await h.post('/v1/videos', { prompt: 'p', input_reference: 5 }), 422, { param: 'input_reference' });
  await expectError(t, await h.fetch('/v1/videos', { method: 'POST', body: 'prompt=hello', headers: { 'content-type': 'text/plain' } }), 422, { param: 'prompt' },
  );
  await expectError(t, await h.fetch('/v1/videos', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{bad' }), 400, { code: 'invalid_json' });
  await expectError(t, await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'p' }, (f) => f.append('input_reference', new Blob(['junk'], { type: 'image/png' }), 'r.png')) }), 400, {
    param: 'input_reference', code: 'invalid_image',
  });
  await expectError(t, await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'p' }, (f) => f.append('input_reference', new Blob(['....ftyp'], { type: 'video/mp4' }), 'clip.mp4')) }), 400, {
    param: 'input_reference', code: 'unsupported_input',
  });
  await expectError(t, await h.post('/v1/videos', { prompt: 'p', input_reference: '/etc/passwd' }), 400, { param: 'input_reference', code: 'input_path_not_allowed' });
  await expectError(t, await h.post('/v1/videos', { prompt: 'p', input_reference: `${inputDir}/../x.png` }), 400, { param: 'input_reference', code: 'input_path_not_allowed' });
  t.equal(h.engine.jobs.size, before, 'refused requests create no job');

  t.test('JSON input_reference: data URL, a path inside --input-save-path, {image_url}', async (t) => {
    const png = await sharp({ create: { width: 32, height: 16, channels: 3, background: '#00ff00' } }).png().toBuffer();
    mkdirSync(join(inputDir, 'sub'), { recursive: true });
    writeFileSync(join(inputDir, 'sub', 'ref.png'), png);
    await createVideo(h, { prompt: 'p', input_reference: `data:image/png;base64,${png.toString('base64')}` });
    t.match(lastParams(h).reference, { source: 'url', image: { width: 32, height: 16 } });
    await createVideo(h, { prompt: 'p', input_reference: join(inputDir, 'sub', 'ref.png') });
    t.match(lastParams(h).reference, { source: 'path', filename: 'ref.png', image: { width: 32 } });
    await createVideo(h, { prompt: 'p', input_reference: { image_url: `data:image/png;base64,${png.toString('base64')}` } });
    t.match(lastParams(h).reference, { source: 'url' });
    await createVideo(h, form({ prompt: 'p', 'input_reference[image_url]': `data:image/png;base64,${png.toString('base64')}` }));
    t.match(lastParams(h).reference, { source: 'url' }, 'multipart {image_url} form');
    const v = await createVideo(h, form({ prompt: 'p', size: '32x16' }, (f) => f.append('input_reference', new Blob([png], { type: 'image/png' }), 'ref.png')));
    t.match(lastParams(h).reference, { source: 'upload', filename: 'ref.png' });
    t.equal(v.size, '32x16');
  });
});

t.test('task types: I2V needs a reference; image models make no videos', async (t) => {
  t.test('I2V', async (t) => {
    const h = await startHarness(t, { taskType: 'I2V' });
    await expectError(t, await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'p' }) }), 400, {
      param: 'input_reference', code: 'missing_input_reference', message: /input_reference or reference_url is required for image-to-video generation/,
    });
    const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#123456' } }).png().toBuffer();
    await createVideo(h, form({ prompt: 'p' }, (f) => f.append('input_reference', new Blob([png], { type: 'image/png' }), 'ref.png')));
    t.match(lastParams(h).reference, { image: { width: 16 } });
  });
  t.test('T2I', async (t) => {
    const h = await startHarness(t, { taskType: 'T2I' });
    await expectError(t, await h.post('/v1/videos', { prompt: 'p' }), 400, { code: 'unsupported_task' });
  });
});

// ---- the progress WebSocket ----------------------------------------------------------------------------------------

interface WsMessage { type: string; event: string; id: string; status: string; progress: number; step?: number; total_steps?: number; error?: unknown }

function collect(url: string, headers: Record<string, string> = {}): Promise<{ messages: WsMessage[]; code: number }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { headers });
    const messages: WsMessage[] = [];
    ws.on('message', (m) => messages.push(JSON.parse(m.toString()) as WsMessage));
    ws.on('close', (code) => resolve({ messages, code }));
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
  });
}

t.test('progress WebSocket /v1/jobs/{id}/events', async (t) => {
  const h = await startHarness(t, { steps: 5, stepDelayMs: 40 }, { apiKey: 'sk' });
  const auth = { authorization: 'Bearer sk' };
  const wsBase = h.base.replace('http', 'ws');

  t.test('events arrive in order and end in done/completed; the server closes with 1000', async (t) => {
    const r = await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'watched' }), headers: auth });
    const v = await r.json() as VideoObject;
    const { messages, code } = await collect(`${wsBase}/v1/jobs/${v.id}/events`, auth);
    t.equal(code, 1000);
    t.equal(messages[0]!.event, 'snapshot');
    const events = messages.map((m) => m.event);
    t.same(events.slice(-3), ['decoding', 'encoding', 'completed']);
    const steps = messages.filter((m) => m.event === 'step');
    t.ok(steps.length >= 3, `step events seen: ${steps.length}`);
    t.same(steps.map((s) => s.step), [...Array(steps.length)].map((_, i) => 6 - steps.length + i), 'consecutive steps ending at the last');
    t.ok(steps.every((s) => s.total_steps === 5 && s.status === 'in_progress'));
    const progress = messages.map((m) => m.progress);
    t.ok(progress.every((p, i) => i === 0 || p >= progress[i - 1]!), `monotonic: ${progress.join(',')}`);
    t.match(messages.at(-1), { type: 'done', event: 'completed', status: 'completed', progress: 100, id: v.id });
  });

  t.test('a finished job answers its snapshot and done at once', async (t) => {
    const r = await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'FAIL early' }), headers: auth });
    const v = await r.json() as VideoObject;
    await h.engine.idle();
    const { messages, code } = await collect(`${wsBase}/v1/jobs/${v.id}/events`, auth);
    t.equal(code, 1000);
    t.match(messages.at(-1), { type: 'done', event: 'failed', status: 'failed', error: { code: 'generation_failed' } });
  });

  t.test('image jobs have events too', async (t) => {
    const pending = h.post('/v1/images/generations', { prompt: 'img', response_format: 'b64_json' }, auth);
    await new Promise((r) => setTimeout(r, 30));
    const job = [...h.engine.jobs.values()].find((j) => j.prompt === 'img')!;
    const { messages } = await collect(`${wsBase}/v1/jobs/${job.id}/events`, auth);
    t.equal(messages.at(-1)!.event, 'completed');
    t.equal((await pending).status, 200);
  });

  t.test('refusals: unknown job 404, missing key 401, plain GET 426, other paths 404', async (t) => {
    await t.rejects(collect(`${wsBase}/v1/jobs/nope/events`, auth), /HTTP 404/);
    const v = await (await h.fetch('/v1/videos', { method: 'POST', body: form({ prompt: 'x' }), headers: auth })).json() as VideoObject;
    await t.rejects(collect(`${wsBase}/v1/jobs/${v.id}/events`), /HTTP 401/);
    await t.rejects(collect(`${wsBase}/v1/somewhere`, auth), /HTTP 404/);
    await expectError(t, await h.fetch(`/v1/jobs/${v.id}/events`, { headers: auth }), 426, { code: 'upgrade_required' });
  });
});

// ---- LoRA ---------------------------------------------------------------------------------------------------------

t.test('LoRA management (spec 6)', async (t) => {
  const h = await startHarness(t);
  t.test('set, list, conflict, unmerge, merge', async (t) => {
    let r = await h.post('/v1/set_lora', { lora_nickname: ['style', 'char'], lora_path: ['/w/style.safetensors', '/w/char.safetensors'], strength: [0.7, 0.9] });
    t.equal(r.status, 200);
    t.same(await r.json(), { status: 'ok', message: 'Successfully set LoRA adapter(s): style, char (target: all, strength: 0.70, 0.90)' });
    t.same(await (await h.fetch('/v1/list_loras')).json(), {
      loaded_adapters: [{ nickname: 'style', path: '/w/style.safetensors' }, { nickname: 'char', path: '/w/char.safetensors' }],
      active: { transformer: [{ nickname: 'style,char', path: '/w/style.safetensors,/w/char.safetensors', merged: true, mode: 'merged', strength: 0.7, strengths: [0.7, 0.9] }] },
    });
    await expectError(t, await h.post('/v1/set_lora', { lora_nickname: 'other', lora_path: '/w/o.safetensors' }), 409, {
      type: 'invalid_request_error', code: 'lora_already_merged', message: /Call \/v1\/unmerge_lora_weights/,
    });
    // curl -d without a JSON content type (the docs' examples) is accepted.
    r = await h.fetch('/v1/unmerge_lora_weights', { method: 'POST', body: '{"target": "all"}', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
    t.same(await r.json(), { status: 'ok', message: 'Successfully unmerged LoRA weights (target: all)' });
    t.same((await (await h.fetch('/v1/list_loras')).json() as { active: unknown }).active, {});
    r = await h.fetch('/v1/merge_lora_weights', { method: 'POST', body: '{"strength": 0.8}' });
    t.same(await r.json(), { status: 'ok', message: 'Successfully merged LoRA weights (target: all, strength: 0.8)' });
    r = await h.fetch('/v1/unmerge_lora_weights', { method: 'POST' });
    t.equal(r.status, 200, 'an empty body means defaults');
    r = await h.post('/v1/set_lora', { lora_nickname: 'style' });
    t.equal(r.status, 200, 'a cached nickname needs no path');
  });
  t.test('caller errors', async (t) => {
    const cases: [Record<string, unknown>, number, string | null, string | null][] = [
      [{}, 422, 'lora_nickname', 'missing_required_field'],
      [{ lora_nickname: 5 }, 422, 'lora_nickname', 'invalid_type'],
      [{ lora_nickname: ['a', 'b'], lora_path: '/x' }, 400, 'lora_path', 'length_mismatch'],
      [{ lora_nickname: ['a', 'b'], lora_path: ['/x', '/y'], strength: [1, 2, 3] }, 400, 'strength', 'length_mismatch'],
      [{ lora_nickname: ['a', 'b'], lora_path: ['/x', '/y'], target: ['all'] }, 400, 'target', 'length_mismatch'],
      [{ lora_nickname: 'a', lora_path: '/x', target: 'vae' }, 400, 'target', 'invalid_target'],
      [{ lora_nickname: 'a', lora_path: '/x', target: 'transformer_2' }, 400, 'target', 'target_not_available'],
      [{ lora_nickname: 'a', lora_path: '/x', strength: 'big' }, 422, 'strength', 'invalid_type'],
      [{ lora_nickname: 'a', lora_path: '/x', lora_alpha: 0 }, 400, 'lora_alpha', 'invalid_value'],
      [{ lora_nickname: 'a', lora_path: '/x', merge_mode: 'sometimes' }, 400, 'merge_mode', 'invalid_merge_mode'],
      [{ lora_nickname: 'never-loaded' }, 400, 'lora_path', 'lora_not_loaded'],
    ];
    for (const [body, status, param, code] of cases) await expectError(t, await h.post('/v1/set_lora', body), status, { param, code });
    const e = await expectError(t, await h.post('/v1/set_lora', { lora_nickname: 'a', target: 'vae' }), 400, {});
    t.equal(e.error.message, 'Invalid target(s): ["vae"]. Valid targets: ["transformer","transformer_2","critic","all"]');
    await expectError(t, await h.post('/v1/merge_lora_weights', { target: 'vae' }), 400, { param: 'target', code: 'invalid_target' });
    await expectError(t, await h.post('/v1/unmerge_lora_weights', { target: 'everything' }), 400, { param: 'target', code: 'invalid_target' });
    await expectError(t, await h.post('/v1/merge_lora_weights', { strength: 'x' }), 422, { param: 'strength' });
    await expectError(t, await h.fetch('/v1/set_lora', { method: 'POST', body: '{oops' }), 400, { code: 'invalid_json' });
  });
  t.test('merge with nothing ever set is 409 lora_not_set', async (t) => {
    const fresh = await startHarness(t);
    await expectError(t, await fresh.post('/v1/merge_lora_weights', {}), 409, { code: 'lora_not_set' });
  });
  t.test('a pipeline without LoRA support: 400 lora_not_supported', async (t) => {
    const none = await startHarness(t, { supportsLora: false });
    await expectError(t, await none.fetch('/v1/list_loras'), 400, { code: 'lora_not_supported' });
    await expectError(t, await none.post('/v1/set_lora', { lora_nickname: 'a', lora_path: '/x' }), 400, { code: 'lora_not_supported' });
  });
});
