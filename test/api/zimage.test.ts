// End to end: a Z-Image (text-to-image) model served by the real engine (Supervisor on the zimage-tiny fixture
// model, CPU) behind the real HTTP front on a random loopback port, driven by the official `openai` SDK 6.49.0
// (maxRetries 0) and raw fetch where the SDK has no method. The fixture has random weights, so pictures are noise:
// the checks are about the API (model card, formats, sizes, determinism, LoRA state, refusals), compared on
// decoded pixels where exactness matters. Spec: /work/shared/spec/http-api.md sections 2, 3, 5.1 and 6.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APIError, toFile } from 'openai';
import sharp from 'sharp';
import t from 'tap';
import { type RunningServer, startApiServer } from '../helpers/api-server.js';
import { fixtureRoot } from '../helpers/goldens.js';

const ZIMAGE = join(fixtureRoot(), 'zimage-tiny');
const MODEL_DIR = join(ZIMAGE, 'model');
const PEFT_LORA = join(ZIMAGE, 'lora', 'lora_diffusers_peft.safetensors');
const SERVED_NAME = 'sgld/zimage-tiny-fixture';

/** Small and quick on 2 CPU cores: 32x32 pixels (16-aligned), 2 denoising steps. */
const FAST = { size: '32x32', num_inference_steps: 2 } as const;

type Running = RunningServer;

/** The SDK error a call throws (it must throw one). */
async function sdkError(call: Promise<unknown>): Promise<APIError> {
  try {
    await call;
  } catch (e) {
    if (e instanceof APIError) return e;
    throw e;
  }
  throw new Error('the call succeeded; an error answer was expected');
}

const rgb = (buf: Buffer): Promise<Buffer> => sharp(buf).raw().toBuffer();
const fromB64 = (b64: string | undefined): Buffer => Buffer.from(b64!, 'base64');

const missing = [MODEL_DIR, PEFT_LORA].find((p) => !existsSync(p));
if (missing) {
  t.plan(0, `no zimage-tiny fixture at ${missing} (set SGLD_FIXTURE_DIR to the fixture root)`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'sgld-api-zimage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = await startApiServer(MODEL_DIR, dir, SERVED_NAME);
  t.teardown(async () => {
    await run.server.close();
    await run.engine.stop({ drainTimeoutMs: 0 });
  });

  const post = async (path: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
    const res = await fetch(run.base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  /** Decoded RGB pixels of one fixed-seed PNG picture. */
  const picture = async (seed = 42): Promise<Buffer> => {
    const res = await run.client.images.generate({ prompt: 'a lighthouse at dusk', seed, response_format: 'b64_json', output_format: 'png', ...FAST } as never);
    return rgb(fromB64(res.data![0]!.b64_json));
  };

  t.test('/v1/models: one card, task T2I, the ZImagePipeline', async (t) => {
    const list = await run.client.models.list();
    t.equal(list.data.length, 1);
    t.match(list.data[0], {
      id: SERVED_NAME, object: 'model', root: SERVED_NAME, task_type: 'T2I', pipeline_class: 'ZImagePipeline', pipeline_name: 'zimage_pipeline',
    });
    t.match(await run.client.models.retrieve(SERVED_NAME), { id: SERVED_NAME, task_type: 'T2I', pipeline_class: 'ZImagePipeline' });
    const flat = await (await fetch(`${run.base}/models`)).json() as Record<string, unknown>;
    t.match(flat, { model_path: MODEL_DIR, task_type: 'T2I', pipeline_class: 'ZImagePipeline' }, 'GET /models (spec 2.2) agrees');
  });

  t.test('images.generate', async (t) => {
    t.test('b64_json PNG of the requested size; the same request twice gives the same pixels', async (t) => {
      const res = await run.client.images.generate({ prompt: 'a lighthouse at dusk', seed: 42, response_format: 'b64_json', output_format: 'png', ...FAST } as never);
      t.equal(res.data!.length, 1);
      t.equal(res.data![0]!.url ?? null, null, 'b64_json answers carry no url');
      t.equal(res.data![0]!.revised_prompt, 'a lighthouse at dusk');
      const bytes = fromB64(res.data![0]!.b64_json);
      const meta = await sharp(bytes).metadata();
      t.same([meta.format, meta.width, meta.height], ['png', 32, 32]);
      t.ok((await picture(42)).equals(await rgb(bytes)), 'deterministic for a fixed seed');
      t.notOk((await picture(43)).equals(await rgb(bytes)), 'another seed, another picture');
    });
    t.test('a non-square size is produced exactly', async (t) => {
      const res = await run.client.images.generate({ prompt: 'wide', response_format: 'b64_json', size: '48x32', num_inference_steps: 2 } as never);
      const meta = await sharp(fromB64(res.data![0]!.b64_json)).metadata();
      t.same([meta.format, meta.width, meta.height], ['jpeg', 48, 32], 'JPEG by default (spec 4.1), 48 wide and 32 high');
    });
    t.test('url, then the content download holds the same pixels as the b64_json answer', async (t) => {
      const res = await run.client.images.generate({ prompt: 'a lighthouse at dusk', seed: 42, output_format: 'png', ...FAST } as never);
      const url = res.data![0]!.url!;
      t.equal(res.data![0]!.b64_json ?? null, null, 'url answers carry no b64_json');
      t.match(url, /^\/v1\/images\/[0-9a-f-]{36}\/content$/);
      const dl = await fetch(run.base + url);
      t.equal(dl.status, 200);
      t.equal(dl.headers.get('content-type'), 'image/png');
      const file = Buffer.from(await dl.arrayBuffer());
      const meta = await sharp(file).metadata();
      t.same([meta.format, meta.width, meta.height], ['png', 32, 32]);
      t.ok((await rgb(file)).equals(await picture(42)), 'the file has the pixels of the same request answered as b64_json');
    });
  });

  t.test('images.edit with one image: the input size is kept, and the input matters', async (t) => {
    const gradient = (flip: boolean): Promise<Buffer> => {
      const w = 48, h = 32;
      const px = Buffer.alloc(w * h * 3);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < w; x++) {
          const i = (y * w + x) * 3;
          px[i] = flip ? 255 - x * 5 : x * 5; px[i + 1] = y * 8; px[i + 2] = flip ? 40 : 200;
        }
      }
      return sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toBuffer();
    };
    const edit = async (png: Buffer): Promise<Buffer> => {
      const res = await run.client.images.edit({
        prompt: 'make it a watercolour', image: await toFile(png, 'input.png', { type: 'image/png' }), output_format: 'png', num_inference_steps: 4, seed: 5,
      } as never);
      t.equal(res.data!.length, 1);
      const bytes = fromB64(res.data![0]!.b64_json); // b64_json is the edits default (spec 3.2)
      const meta = await sharp(bytes).metadata();
      t.same([meta.format, meta.width, meta.height], ['png', 48, 32], 'no size given: the input size (already 16-aligned)');
      return rgb(bytes);
    };
    const a = await edit(await gradient(false));
    const b = await edit(await gradient(true));
    t.notOk(a.equals(b), 'two different inputs give two different outputs (image-to-image)');
    t.ok((await edit(await gradient(false))).equals(a), 'the same edit twice: identical pixels');
  });

  t.test('LoRA (diffusers/PEFT fixture): set changes the picture, unmerge restores it bit for bit', async (t) => {
    const base = await picture();
    const set = await post('/v1/set_lora', { lora_nickname: 'zstyle', lora_path: PEFT_LORA });
    t.same(set, { status: 200, body: { status: 'ok', message: 'Successfully set LoRA adapter(s): zstyle (target: all, strength: 1.00)' } });
    const listing = await (await fetch(`${run.base}/v1/list_loras`)).json();
    t.same(listing, {
      loaded_adapters: [{ nickname: 'zstyle', path: PEFT_LORA }],
      active: { transformer: [{ nickname: 'zstyle', path: PEFT_LORA, merged: true, mode: 'merged', strength: 1, strengths: [1] }] },
    });
    const merged = await picture();
    t.notOk(merged.equals(base), 'the adapter changes the picture');
    t.ok((await picture()).equals(merged), 'same seed + same LoRA: identical pixels');
    t.same(await post('/v1/unmerge_lora_weights', {}), { status: 200, body: { status: 'ok', message: 'Successfully unmerged LoRA weights (target: all)' } });
    t.same((await (await fetch(`${run.base}/v1/list_loras`)).json() as { active: unknown }).active, {}, 'nothing active after unmerge');
    t.ok((await picture()).equals(base), 'base pixels back exactly');
  });

  t.test('POST /v1/videos is 400 unsupported_task for a text-to-image model, and records no job', async (t) => {
    const e = await sdkError(run.client.videos.create({ prompt: 'a boat', size: '32x32' as never }));
    t.equal(e.status, 400);
    t.match(e.error, { type: 'invalid_request_error', code: 'unsupported_task' }, `SDK error: ${e.message}`);
    const raw = await post('/v1/videos', { prompt: 'a boat' });
    t.equal(raw.status, 400, 'the JSON form too');
    t.match(raw.body, { error: { type: 'invalid_request_error', code: 'unsupported_task', message: /T2I/ } });
    t.equal((raw.body as { detail: string }).detail, (raw.body.error as { message: string }).message, 'detail repeats the message');
    const list = await run.client.videos.list();
    t.same(list.data, [], 'no video job was recorded');
  });
}
