// Images over HTTP (spec 3 and 4): generations and edits, response shapes, content downloads, output encoding,
// and every 4xx the spec names, against the engine test double.
import { existsSync, readFileSync } from 'node:fs';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import t from 'tap';
import type { ImageJobParams } from '../../src/actors/api.js';
import { expectError, startHarness } from './http-harness.js';

interface ImageData { b64_json: string | null; url: string | null; revised_prompt: string; file_path: string | null }
interface ImagesResponse { id: string; created: number; data: ImageData[]; usage: unknown; inference_time_s?: number }

const GEN = '/v1/images/generations';
const EDITS = '/v1/images/edits';

async function pngOf(width: number, height: number, rgb: [number, number, number]): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: rgb[0], g: rgb[1], b: rgb[2] } } }).png().toBuffer();
}

const magic = (b: Uint8Array): string => {
  if (b[0] === 0x89 && b[1] === 0x50) return 'png';
  if (b[0] === 0xff && b[1] === 0xd8) return 'jpeg';
  if (Buffer.from(b.subarray(8, 12)).toString() === 'WEBP') return 'webp';
  return 'unknown';
};

t.test('POST /v1/images/generations', async (t) => {
  const h = await startHarness(t);
  const lastParams = (): ImageJobParams => h.engine.submitted[h.engine.submitted.length - 1] as ImageJobParams;

  t.test('b64_json: the encoded file, JPEG by default, exactly the requested size', async (t) => {
    const r = await h.post(GEN, { prompt: 'a red fox', size: '64x32', response_format: 'b64_json', model: 'anything' });
    t.equal(r.status, 200);
    const body = await r.json() as ImagesResponse;
    t.match(body.id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/, 'UUIDv4 id');
    t.ok(Number.isInteger(body.created), 'created is integer seconds');
    t.equal(body.data.length, 1);
    const d = body.data[0]!;
    t.equal(d.url, null);
    t.equal(d.revised_prompt, 'a red fox');
    const bytes = Buffer.from(d.b64_json!, 'base64');
    t.equal(magic(bytes), 'jpeg', 'generic default format is JPEG (spec 4.1)');
    const meta = await sharp(bytes).metadata();
    t.same([meta.width, meta.height], [64, 32]);
    t.ok(d.file_path && existsSync(d.file_path) && d.file_path.endsWith('.jpg'), 'file_path names the stored .jpg');
    t.same(readFileSync(d.file_path!), bytes, 'b64_json is the stored file');
    t.equal(body.usage, null);
  });

  t.test('defaults and pass-through of generation parameters', async (t) => {
    t.equal((await h.post(GEN, { prompt: 'p', response_format: 'b64_json' })).status, 200);
    t.match(lastParams(), {
      prompt: 'p', n: 1, seed: 1024, generatorDevice: 'cuda', enableTeacache: false, format: 'jpeg', level: 75, inputs: [],
    });
    t.notOk('width' in lastParams(), 'no size: model default');
    t.equal((await h.post(GEN, {
      prompt: 'p', response_format: 'B64_JSON', size: '64x64', width: 32, num_inference_steps: 7, guidance_scale: 3.5,
      negative_prompt: 'blurry', seed: 7, generator_device: 'CPU', true_cfg_scale: 4, flow_shift: 3, max_sequence_length: 77,
      enable_teacache: true, quality: 'hd', style: 'vivid', user: 'u1', unknown_member: { deep: true },
    })).status, 200, 'response_format is case-insensitive; unknown members ignored');
    t.match(lastParams(), {
      width: 32, height: 64, numInferenceSteps: 7, guidanceScale: 3.5, negativePrompt: 'blurry', seed: 7,
      generatorDevice: 'cpu', trueCfgScale: 4, flowShift: 3, maxSequenceLength: 77, enableTeacache: true, quality: 'hd',
    });
    t.equal((await h.post(GEN, { prompt: 'p', response_format: 'b64_json', size: 'auto' })).status, 200);
    t.notOk('width' in lastParams(), 'size auto: model default');
  });

  t.test('identical requests give identical images (default seed 1024)', async (t) => {
    const a = await (await h.post(GEN, { prompt: 'same', response_format: 'b64_json', output_format: 'png' })).json() as ImagesResponse;
    const b = await (await h.post(GEN, { prompt: 'same', response_format: 'b64_json', output_format: 'png' })).json() as ImagesResponse;
    t.equal(a.data[0]!.b64_json, b.data[0]!.b64_json);
    t.not(a.id, b.id, 'ids are unique');
  });

  t.test('url (the default): relative content URL; content downloads the stored bytes', async (t) => {
    const r = await h.post(GEN, { prompt: 'p', output_format: 'png' });
    const body = await r.json() as ImagesResponse;
    const d = body.data[0]!;
    t.equal(d.b64_json, null);
    t.equal(d.url, `/v1/images/${body.id}/content`, 'n == 1: no variant');
    const c = await h.fetch(d.url!);
    t.equal(c.status, 200);
    t.equal(c.headers.get('content-type'), 'image/png');
    t.equal(c.headers.get('content-disposition'), `attachment; filename="${body.id}.png"`);
    const bytes = Buffer.from(await c.arrayBuffer());
    t.equal(c.headers.get('content-length'), String(bytes.length));
    t.same(bytes, readFileSync(d.file_path!));
  });

  t.test('n = 3: three outputs, URLs with ?variant=i, content per variant', async (t) => {
    const body = await (await h.post(GEN, { prompt: 'p', n: 3, output_format: 'webp' })).json() as ImagesResponse;
    t.equal(body.data.length, 3);
    const files = new Set<string>();
    for (let i = 0; i < 3; i++) {
      t.equal(body.data[i]!.url, `/v1/images/${body.id}/content?variant=${i}`);
      const c = await h.fetch(body.data[i]!.url!);
      t.equal(c.headers.get('content-type'), 'image/webp');
      const bytes = Buffer.from(await c.arrayBuffer());
      t.equal(magic(bytes), 'webp');
      t.same(bytes, readFileSync(body.data[i]!.file_path!), `variant ${i} is output ${i}`);
      files.add(body.data[i]!.file_path!);
    }
    t.equal(files.size, 3, 'three distinct files');
    await expectError(t, await h.fetch(`/v1/images/${body.id}/content?variant=3`), 404, { type: 'not_found_error', code: 'variant_not_found' });
    await expectError(t, await h.fetch(`/v1/images/${body.id}/content?variant=abc`), 404, { code: 'variant_not_found', message: /Image variant abc not found/ });
    t.equal((await h.fetch(`/v1/images/${body.id}/content`)).status, 200, 'absent variant is 0');
    await expectError(t, await h.fetch('/v1/images/00000000-0000-4000-8000-000000000000/content'), 404, { type: 'not_found_error', code: 'image_not_found', message: /^Image not found$/ });
  });

  t.test('seed lists give one seed per output', async (t) => {
    const body = await (await h.post(GEN, { prompt: 'p', n: 2, seed: [5, 5], response_format: 'b64_json', output_format: 'png' })).json() as ImagesResponse;
    t.equal(body.data[0]!.b64_json, body.data[1]!.b64_json, 'same seed twice: same pixels');
    await expectError(t, await h.post(GEN, { prompt: 'p', n: 2, seed: [1, 2, 3] }), 400, { param: 'seed', code: 'length_mismatch' });
  });

  t.test('file format choice (spec 4.1)', async (t) => {
    const fmt = async (body: Record<string, unknown>): Promise<string> => {
      const r = await h.post(GEN, { prompt: 'p', response_format: 'b64_json', ...body });
      const out = await r.json() as ImagesResponse;
      return `${magic(Buffer.from(out.data[0]!.b64_json!, 'base64'))}:${out.data[0]!.file_path!.split('.').pop()}`;
    };
    t.equal(await fmt({ output_format: 'png' }), 'png:png');
    t.equal(await fmt({ output_format: 'jpeg' }), 'jpeg:jpg');
    t.equal(await fmt({ output_format: 'jpg' }), 'jpeg:jpg');
    t.equal(await fmt({ output_format: 'WEBP' }), 'webp:webp');
    t.equal(await fmt({ background: 'transparent' }), 'png:png', 'transparent background selects PNG');
    t.equal(await fmt({ background: 'transparent', output_format: 'jpeg' }), 'jpeg:jpg', 'output_format wins');
    t.equal(await fmt({ background: 'opaque' }), 'jpeg:jpg');
  });

  t.test('output_quality / output_compression (spec 4.2, 4.3)', async (t) => {
    const jpegBytes = async (extra: Record<string, unknown>): Promise<Buffer> => {
      const out = await (await h.post(GEN, { prompt: 'q', size: '128x128', response_format: 'b64_json', output_format: 'jpeg', ...extra })).json() as ImagesResponse;
      return Buffer.from(out.data[0]!.b64_json!, 'base64');
    };
    const sizes: Record<string, number> = {};
    for (const q of ['low', 'medium', 'default', 'high', 'maximum']) sizes[q] = (await jpegBytes({ output_quality: q })).length;
    t.ok(sizes.low! < sizes.medium! && sizes.medium! < sizes.default! && sizes.default! < sizes.high! && sizes.high! < sizes.maximum!,
      `JPEG bytes grow with the level: ${JSON.stringify(sizes)}`);
    t.same(await jpegBytes({}), await jpegBytes({ output_quality: 'default' }), 'absent = default (75)');
    t.same(await jpegBytes({ output_quality: 'low', output_compression: 100 }), await jpegBytes({ output_quality: 'maximum' }), 'output_compression wins');
    t.same(await jpegBytes({ output_compression: 90 }), await jpegBytes({ output_quality: 'high' }), 'high = 90');
    t.same(await jpegBytes({ output_quality: 'MEDIUM' }), await jpegBytes({ output_compression: 55 }), 'medium = 55, case-insensitive');
    // PNG: lossless at every level; only the zlib effort may change.
    const pixels: Buffer[] = [];
    for (const level of [0, 35, 75, 100]) {
      const out = await (await h.post(GEN, { prompt: 'q', size: '128x128', response_format: 'b64_json', output_format: 'png', output_compression: level })).json() as ImagesResponse;
      pixels.push(await sharp(Buffer.from(out.data[0]!.b64_json!, 'base64')).raw().toBuffer());
    }
    for (let i = 1; i < pixels.length; i++) t.same(pixels[i], pixels[0], `PNG pixels identical at level ${[0, 35, 75, 100][i]}`);
  });

  t.test('caller errors (400 / 422, param names the wire field)', async (t) => {
    const cases: [Record<string, unknown>, number, string, string | null][] = [
      [{}, 422, 'prompt', 'missing_required_field'],
      [{ prompt: null }, 422, 'prompt', 'missing_required_field'],
      [{ prompt: 42 }, 422, 'prompt', 'invalid_type'],
      [{ prompt: 'p', n: 'abc' }, 422, 'n', 'invalid_type'],
      [{ prompt: 'p', n: 0 }, 400, 'n', 'invalid_n'],
      [{ prompt: 'p', n: 11 }, 400, 'n', 'invalid_n'],
      [{ prompt: 'p', size: 'big' }, 400, 'size', 'invalid_size'],
      [{ prompt: 'p', size: '1024' }, 400, 'size', 'invalid_size'],
      [{ prompt: 'p', size: '1024x' }, 400, 'size', 'invalid_size'],
      [{ prompt: 'p', size: 'axb' }, 400, 'size', 'invalid_size'],
      [{ prompt: 'p', size: '0x64' }, 400, 'size', 'invalid_size'],
      [{ prompt: 'p', size: 48 }, 422, 'size', 'invalid_type'],
      [{ prompt: 'p', width: 0 }, 400, 'width', 'invalid_size'],
      [{ prompt: 'p', response_format: 'xml' }, 400, 'response_format', 'invalid_response_format'],
      [{ prompt: 'p', output_format: 'gif' }, 400, 'output_format', 'invalid_output_format'],
      [{ prompt: 'p', background: 'blue' }, 400, 'background', 'invalid_value'],
      [{ prompt: 'p', output_quality: 'ultra' }, 400, 'output_quality', 'invalid_output_quality'],
      [{ prompt: 'p', output_compression: 101 }, 400, 'output_compression', 'invalid_output_compression'],
      [{ prompt: 'p', output_compression: -1 }, 400, 'output_compression', 'invalid_output_compression'],
      [{ prompt: 'p', output_compression: 50.5 }, 400, 'output_compression', 'invalid_output_compression'],
      [{ prompt: 'p', output_compression: 'high' }, 400, 'output_compression', 'invalid_output_compression'],
      [{ prompt: 'p', stream: true }, 400, 'stream', 'streaming_not_supported'],
      [{ prompt: 'p', seed: 'lucky' }, 422, 'seed', 'invalid_type'],
      [{ prompt: 'p', num_inference_steps: 0 }, 400, 'num_inference_steps', 'invalid_value'],
      [{ prompt: 'p', guidance_scale: 'high' }, 422, 'guidance_scale', 'invalid_type'],
      [{ prompt: 'p', generator_device: 'tpu' }, 400, 'generator_device', 'invalid_value'],
      [{ prompt: 'p', enable_teacache: 'maybe' }, 422, 'enable_teacache', 'invalid_type'],
    ];
    const before = h.engine.jobs.size;
    for (const [body, status, param, code] of cases) {
      await expectError(t, await h.post(GEN, body), status, { type: 'invalid_request_error', param, code });
    }
    t.equal(h.engine.jobs.size, before, 'no job was created by a refused request');
    await expectError(t, await h.post(GEN, { prompt: 'p', stream: false, partial_images: 0 }).then(async (r) => {
      t.equal(r.status, 200, 'stream: false is fine');
      return h.post(GEN, { prompt: 'p', size: '50x50' });
    }), 400, { param: 'size', code: 'invalid_size', message: /multiples of 16/ });
  });

  t.test('an empty prompt is allowed', async (t) => {
    t.equal((await h.post(GEN, { prompt: '', response_format: 'b64_json' })).status, 200);
  });

  t.test('a failed generation is 500 generation_failed and the server keeps serving', async (t) => {
    await expectError(t, await h.post(GEN, { prompt: 'FAIL now' }), 500, { type: 'server_error', code: 'generation_failed', message: /told to fail/ });
    t.equal((await h.post(GEN, { prompt: 'fine', response_format: 'b64_json' })).status, 200);
  });

  t.test('content of a job still running is 404 image_not_ready', async (t) => {
    h.engine.opts.stepDelayMs = 100;
    const pending = h.post(GEN, { prompt: 'slow' });
    await new Promise((r) => setTimeout(r, 80));
    const running = [...h.engine.jobs.values()].find((j) => j.prompt === 'slow')!;
    await expectError(t, await h.fetch(`/v1/images/${running.id}/content`), 404, { code: 'image_not_ready', message: /still being generated/ });
    t.equal((await pending).status, 200);
    h.engine.opts.stepDelayMs = 5;
  });

  t.test('a client that goes away cancels its generation', async (t) => {
    h.engine.opts.stepDelayMs = 100;
    const abort = new AbortController();
    // The first job keeps the queue busy, so the second is cancelled while still queued.
    const pending = h.post(GEN, { prompt: 'abandoned' });
    const req = fetch(`${h.base}${GEN}`, { method: 'POST', body: JSON.stringify({ prompt: 'abandoned' }), headers: { 'content-type': 'application/json' }, signal: abort.signal }).catch(() => null);
    await new Promise((r) => setTimeout(r, 150));
    abort.abort();
    await req;
    t.equal((await pending).status, 200);
    await h.engine.idle();
    const jobs = [...h.engine.jobs.values()].filter((j) => j.prompt === 'abandoned');
    t.equal(jobs.length, 2);
    t.same(jobs.map((j) => j.status).sort(), ['completed', 'failed'], 'the abandoned one was cancelled, the other completed');
    t.equal(jobs.find((j) => j.status === 'failed')!.error!.code, 'cancelled');
    h.engine.opts.stepDelayMs = 5;
  });
});

t.test('engine refusals keep their status: 429 queue full with Retry-After', async (t) => {
  const h = await startHarness(t, { queueCapacity: 0 });
  const r = await h.post(GEN, { prompt: 'p' });
  t.equal(r.headers.get('retry-after'), '1');
  await expectError(t, r, 429, { type: 'rate_limit_error', code: 'queue_full' });
});

t.test('without persistence (--output-path "")', async (t) => {
  const h = await startHarness(t, { outputDir: null });
  t.test('url is 400 url_unavailable, before any job runs', async (t) => {
    await expectError(t, await h.post(GEN, { prompt: 'p' }), 400, { param: 'response_format', code: 'url_unavailable', message: /requires cloud storage/ });
    t.equal(h.engine.jobs.size, 0);
  });
  t.test('b64_json works, file_path is null, content is 404 image_not_persisted', async (t) => {
    const body = await (await h.post(GEN, { prompt: 'p', response_format: 'b64_json' })).json() as ImagesResponse;
    t.equal(magic(Buffer.from(body.data[0]!.b64_json!, 'base64')), 'jpeg');
    t.equal(body.data[0]!.file_path, null);
    await expectError(t, await h.fetch(`/v1/images/${body.id}/content`), 404, { code: 'image_not_persisted' });
  });
});

t.test('POST /v1/images/edits (multipart)', async (t) => {
  const h = await startHarness(t, {}, { remoteInputs: false });
  const red = await pngOf(32, 32, [255, 0, 0]);
  const blue = await pngOf(16, 16, [0, 0, 255]);
  const lastParams = (): ImageJobParams => h.engine.submitted[h.engine.submitted.length - 1] as ImageJobParams;
  const edit = (build: (f: FormData) => void): Promise<Response> => {
    const form = new FormData();
    build(form);
    return h.fetch(EDITS, { method: 'POST', body: form });
  };

  t.test('one `image` part: b64_json by default, the input decoded and used', async (t) => {
    const r = await edit((f) => {
      f.append('prompt', 'make it red');
      f.append('image', new Blob([red], { type: 'image/png' }), 'red.png');
      f.append('output_format', 'png');
    });
    t.equal(r.status, 200);
    const body = await r.json() as ImagesResponse;
    t.equal(body.data[0]!.url, null, 'edits default to b64_json');
    const { data, info } = await sharp(Buffer.from(body.data[0]!.b64_json!, 'base64')).raw().toBuffer({ resolveWithObject: true });
    t.same([info.width, info.height], [32, 32], 'size from the input image');
    t.same([...data.subarray(0, 3)], [255, 0, 0], 'the double returns the input: decoded pixels reached the engine');
    const p = lastParams();
    t.equal(p.inputs.length, 1);
    t.match(p.inputs[0], { filename: 'red.png', contentType: 'image/png', source: 'upload', image: { width: 32, height: 32 } });
  });

  t.test('two `image[]` parts (the SDK list form), numbers as text', async (t) => {
    const r = await edit((f) => {
      f.append('prompt', 'combine');
      f.append('image[]', new Blob([red], { type: 'image/png' }), 'a.png');
      f.append('image[]', new Blob([blue], { type: 'image/png' }), 'b.png');
      f.append('n', '2');
      f.append('size', '16x16');
      f.append('seed', '9');
      f.append('guidance_scale', '2.5');
      f.append('enable_teacache', 'true');
      f.append('mask', new Blob([red], { type: 'image/png' }), 'mask.png');
    });
    t.equal(r.status, 200);
    const body = await r.json() as ImagesResponse;
    t.equal(body.data.length, 2);
    const p = lastParams();
    t.same(p.inputs.map((i) => i.filename), ['a.png', 'b.png'], 'both images in order; mask ignored');
    t.match(p, { n: 2, width: 16, height: 16, seed: 9, guidanceScale: 2.5, enableTeacache: true });
  });

  t.test('`image` and `image[]` are merged in part order [sgld]', async (t) => {
    t.equal((await edit((f) => {
      f.append('prompt', 'p');
      f.append('image', new Blob([red], { type: 'image/png' }), 'first.png');
      f.append('image[]', new Blob([blue], { type: 'image/png' }), 'second.png');
    })).status, 200);
    t.same(lastParams().inputs.map((i) => i.filename), ['first.png', 'second.png']);
  });

  t.test('a data: URL input (`url` field), after the files', async (t) => {
    const r = await edit((f) => {
      f.append('prompt', 'p');
      f.append('image', new Blob([blue], { type: 'image/png' }), 'file.png');
      f.append('url', `data:image/png;base64,${red.toString('base64')}`);
    });
    t.equal(r.status, 200);
    t.match(lastParams().inputs, [{ filename: 'file.png', source: 'upload' }, { filename: 'url_0.png', source: 'url', contentType: 'image/png', image: { width: 32 } }]);
  });

  t.test('url response_format gives content URLs', async (t) => {
    const body = await (await edit((f) => {
      f.append('prompt', 'p');
      f.append('image', new Blob([red], { type: 'image/png' }), 'r.png');
      f.append('response_format', 'url');
    })).json() as ImagesResponse;
    t.equal(body.data[0]!.url, `/v1/images/${body.id}/content`);
    t.equal((await h.fetch(body.data[0]!.url!)).status, 200);
  });

  t.test('caller errors', async (t) => {
    const img = (f: FormData) => f.append('image', new Blob([red], { type: 'image/png' }), 'r.png');
    await expectError(t, await edit(img), 422, { param: 'prompt', code: 'missing_required_field' });
    await expectError(t, await edit((f) => f.append('prompt', 'p')), 422, { param: 'image', message: /Field 'image' or 'url' is required/ });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); img(f); f.append('n', 'abc'); }), 422, { param: 'n' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); img(f); f.append('n', '0'); }), 400, { param: 'n', code: 'invalid_n' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); img(f); f.append('size', 'big'); }), 400, { param: 'size', code: 'invalid_size' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); img(f); f.append('output_quality', 'best'); }), 400, { param: 'output_quality' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('image', new Blob(['not an image'], { type: 'image/png' }), 'x.png'); }), 400, {
      param: 'image', code: 'invalid_image', message: /Failed to process image source/,
    });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('image[]', new Blob(['nope']), 'x.bin'); }), 400, { param: 'image[]', code: 'invalid_image' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('url', 'ftp://example.com/a.png'); }), 400, { param: 'url', code: 'unsupported_image_url', message: /Unsupported image url format/ });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('url', `data:image/png,${red.toString('base64')}`); }), 400, { param: 'url', code: 'invalid_data_url' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('url[]', 'data:image/png;base64,'); }), 400, { param: 'url[]', code: 'invalid_data_url' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('url', 'data:text/plain;base64,aGVsbG8='); }), 400, { param: 'url', code: 'invalid_data_url' });
    await expectError(t, await edit((f) => { f.append('prompt', 'p'); f.append('url', 'https://example.com/a.png'); }), 400, { param: 'url', code: 'remote_input_disabled' });
  });

  t.test('a JSON body is 422 (no prompt form field, as in SGLang)', async (t) => {
    await expectError(t, await h.post(EDITS, { prompt: 'p', image: 'x' }), 422, { param: 'prompt' });
  });

  t.test('malformed multipart is 400 invalid_multipart', async (t) => {
    const send = (contentType: string, body: string) => h.fetch(EDITS, { method: 'POST', headers: { 'content-type': contentType }, body });
    await expectError(t, await send('multipart/form-data', 'x'), 400, { code: 'invalid_multipart', message: /no boundary/ });
    await expectError(t, await send('multipart/form-data; boundary=XX', '--XX\r\nContent-Disposition: form-data; name="prompt"\r\n\r\nhello'), 400, { code: 'invalid_multipart', message: /truncated/ });
    await expectError(t, await send('multipart/form-data; boundary=XX', 'garbage --XX--'), 400, { code: 'invalid_multipart' });
  });
});

t.test('edits with a remote http(s) image: retried on 5xx, content type checked', async (t) => {
  const png = await pngOf(16, 16, [0, 255, 0]);
  let hits = 0;
  const remote = createServer((req, res) => {
    hits++;
    if (req.url === '/flaky.png' && hits === 1) { res.writeHead(503).end(); return; }
    if (req.url === '/text') { res.writeHead(200, { 'content-type': 'text/html' }).end('<html>'); return; }
    if (req.url === '/missing.png') { res.writeHead(404).end(); return; }
    res.writeHead(200, { 'content-type': 'image/png' }).end(png);
  });
  await new Promise<void>((r) => remote.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => remote.close(() => r())));
  const port = (remote.address() as { port: number }).port;
  const h = await startHarness(t, {}, { allowPrivateUrls: true });
  const edit = (url: string) => {
    const f = new FormData();
    f.append('prompt', 'p');
    f.append('url', url);
    return h.fetch(EDITS, { method: 'POST', body: f });
  };
  const r = await edit(`http://127.0.0.1:${port}/flaky.png`);
  t.equal(r.status, 200, 'the 503 was retried');
  t.equal(hits, 2);
  t.match((h.engine.submitted.at(-1) as ImageJobParams).inputs[0], { filename: 'flaky.png', contentType: 'image/png', source: 'url', image: { width: 16 } });
  await expectError(t, await edit(`http://127.0.0.1:${port}/text`), 400, { param: 'url', code: 'invalid_image', message: /not an image/ });
  await expectError(t, await edit(`http://127.0.0.1:${port}/missing.png`), 400, { param: 'url', code: 'image_download_failed', message: /HTTP 404/ });
});

t.test('large downloads stream with backpressure and arrive intact', async (t) => {
  const h = await startHarness(t);
  const body = await (await h.post(GEN, { prompt: 'big', size: '1024x1024', output_format: 'png' })).json() as ImagesResponse;
  const onDisk = readFileSync(body.data[0]!.file_path!);
  t.ok(onDisk.length > 1024 * 1024, `a multi-chunk file (${onDisk.length} bytes)`);
  // Read slowly so the server has to wait for the socket to drain.
  const res = await h.fetch(body.data[0]!.url!);
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    parts.push(value);
    if (parts.length % 8 === 0) await new Promise((r) => setTimeout(r, 5));
  }
  t.same(Buffer.concat(parts), onDisk);
  const dir = mkdtempSync(join(tmpdir(), 'sgld-http-dl-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'x'), Buffer.concat(parts));
  t.equal((await h.fetch('/health')).status, 200);
});
