// End to end: the LoRA endpoints of spec section 6 (/work/shared/spec/http-api.md) against the real engine
// (Supervisor on the wan-tiny fixture model, CPU) behind the real HTTP front on a random loopback port. Pictures come
// from the official `openai` SDK 6.49.0 (images.generate, b64_json PNG, fixed seed) and are compared as decoded
// pixels; the LoRA routes have no SDK method, so they go through raw fetch.
//
// The fixture's LoRA goldens are transformer-level (one forward pass), not pipeline-level, so the merged pictures are
// checked for determinism (same seed + same adapter = the same pixels) rather than against a golden. "Base restored"
// is checked on the output pixels and on the weights themselves: EngineApi.weightsDigest() (SHA-256 of every
// transformer weight, read back from the device) must equal the base digest after each unmerge.
//
// One server for the whole file: the checks run in order and each leaves the LoRA state the next expects.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import type { JobEvent } from '../../src/actors/api.js';
import { type RunningServer, startApiServer } from '../helpers/api-server.js';
import { fixtureRoot } from '../helpers/goldens.js';

const WAN = join(fixtureRoot(), 'wan-tiny');
const MODEL_DIR = join(WAN, 'model');
const PEFT_LORA = join(WAN, 'lora', 'lora_diffusers_peft.safetensors');
const COMFY_LORA = join(WAN, 'lora', 'lora_wan_comfy.safetensors');
/** A LoRA for another architecture (Z-Image): its module names do not exist in Wan. */
const ZIMAGE_LORA = join(fixtureRoot(), 'zimage-tiny', 'lora', 'lora_diffusers_peft.safetensors');
/** A real safetensors file that holds model weights, not LoRA matrices. */
const NOT_A_LORA = join(MODEL_DIR, 'transformer', 'diffusion_pytorch_model-00002-of-00002.safetensors');

/** Small and quick on 2 CPU cores: 32x32 pixels (16-aligned), 2 denoising steps, PNG so pixels are exact. */
const PICTURE = { size: '32x32', num_inference_steps: 2, response_format: 'b64_json', output_format: 'png' } as const;
/** Long enough (12 steps of 9 frames, ~0.5 s of denoising here) that a request sent at its start arrives while it is on the device. */
const VIDEO = { prompt: 'a boat on a lake', size: '32x32', num_frames: 9, num_inference_steps: 12, seed: 11 } as const;

type Running = RunningServer;

interface ErrorEnvelope { error: { message: string; type: string; param: string | null; code: string | null }; detail: string }
interface Answer { status: number; body: Record<string, unknown> }

const missing = [MODEL_DIR, PEFT_LORA, COMFY_LORA].find((p) => !existsSync(p));
if (missing) {
  t.plan(0, `no wan-tiny fixture at ${missing} (set SGLD_FIXTURE_DIR to the fixture root)`);
} else {
  const dir = mkdtempSync(join(tmpdir(), 'sgld-api-lora-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const run = await startApiServer(MODEL_DIR, dir, 'sgld/wan-tiny-fixture');
  t.teardown(async () => {
    await run.server.close();
    await run.engine.stop({ drainTimeoutMs: 0 });
  });

  /** POST a JSON body (curl-style callers may send another content type; spec 6 says it is still JSON). */
  const post = async (path: string, body: unknown, contentType = 'application/json'): Promise<Answer> => {
    const res = await fetch(run.base + path, { method: 'POST', headers: { 'content-type': contentType }, body: JSON.stringify(body) });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  const listLoras = async (): Promise<Record<string, unknown>> => {
    const res = await fetch(`${run.base}/v1/list_loras`);
    if (res.status !== 200) throw new Error(`list_loras answered ${res.status}: ${await res.text()}`);
    return await res.json() as Record<string, unknown>;
  };
  /** The spec 1.4 envelope with exactly this status, type, param and code; `detail` repeats the message. */
  const isError = (tt: Test, a: Answer, status: number, want: { type?: string; param: string | null; code: string | null }, what: string): void => {
    const body = a.body as unknown as ErrorEnvelope;
    tt.equal(a.status, status, `${what}: status ${status} (${body.error?.message})`);
    tt.same({ type: body.error?.type, param: body.error?.param, code: body.error?.code },
      { type: want.type ?? 'invalid_request_error', param: want.param, code: want.code }, `${what}: type / param / code`);
    tt.equal(body.detail, body.error?.message, `${what}: detail repeats error.message`);
  };
  let baseDigest = '';
  /** SHA-256 of the transformer's weights on the (only) rank. */
  const transformerDigest = async (): Promise<string> => (await run.engine.weightsDigest()).ranks[0]!.modules.transformer!;
  /** Decoded RGB pixels of one fixed-seed picture. */
  const picture = async (prompt = 'a red fox in the snow', seed = 42): Promise<Buffer> => {
    const res = await run.client.images.generate({ prompt, seed, ...PICTURE } as never);
    return sharp(Buffer.from(res.data![0]!.b64_json!, 'base64')).raw().toBuffer();
  };
  /** How two pictures differ, for messages. */
  const diff = (a: Buffer, b: Buffer): string => {
    let changed = 0, maxAbs = 0;
    for (let i = 0; i < a.length; i++) { const d = Math.abs(a[i]! - b[i]!); if (d) changed++; maxAbs = Math.max(maxAbs, d); }
    return `${changed}/${a.length} bytes differ, max |diff| ${maxAbs}`;
  };
  const waitForVideo = async (id: string): Promise<void> => {
    for (;;) {
      const v = await run.client.videos.retrieve(id);
      if (v.status === 'completed') return;
      if (v.status === 'failed') throw new Error(`video ${id} failed: ${JSON.stringify(v.error)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const videoBytes = async (id: string): Promise<Buffer> => Buffer.from(await (await run.client.videos.downloadContent(id)).arrayBuffer());

  const pictures: { base?: Buffer; style?: Buffer } = {};

  t.test('before any set_lora: empty listing, merge is 409 lora_not_set, unmerge is a no-op', async (t) => {
    t.same(await listLoras(), { loaded_adapters: [], active: {} });
    isError(t, await post('/v1/merge_lora_weights', {}), 409, { param: null, code: 'lora_not_set' }, 'merge, target all');
    isError(t, await post('/v1/merge_lora_weights', { target: 'transformer', strength: 0.5 }), 409, { param: null, code: 'lora_not_set' }, 'merge, target transformer');
    t.same(await post('/v1/unmerge_lora_weights', {}), { status: 200, body: { status: 'ok', message: 'Successfully unmerged LoRA weights (target: all)' } },
      'unmerging what is not merged is ok (idempotent)');
    pictures.base = await picture();
    t.ok((await picture()).equals(pictures.base), 'the base picture is deterministic (seed 42)');
    baseDigest = await transformerDigest();
    t.match(baseDigest, /^[0-9a-f]{64}$/, 'the base weights have a SHA-256 digest');
  });

  t.test('set_lora caller errors: spec 6.1 status, type, param and code; nothing changes', async (t) => {
    const set = (body: Record<string, unknown>): Promise<Answer> => post('/v1/set_lora', body);
    isError(t, await set({ lora_path: PEFT_LORA }), 422, { param: 'lora_nickname', code: 'missing_required_field' }, 'no lora_nickname');
    isError(t, await set({ lora_nickname: 42, lora_path: PEFT_LORA }), 422, { param: 'lora_nickname', code: 'invalid_type' }, 'lora_nickname not a string');
    isError(t, await set({ lora_nickname: ['a', 'b'], lora_path: PEFT_LORA }), 400, { param: 'lora_path', code: 'length_mismatch' },
      'two nicknames, one scalar path (never repeated)');
    isError(t, await set({ lora_nickname: ['a', 'b'], lora_path: [PEFT_LORA, COMFY_LORA], strength: [1, 0.5, 0.2] }), 400,
      { param: 'strength', code: 'length_mismatch' }, 'strength list of the wrong length');
    isError(t, await set({ lora_nickname: ['a', 'b'], lora_path: [PEFT_LORA, COMFY_LORA], target: ['all'] }), 400,
      { param: 'target', code: 'length_mismatch' }, 'target list of the wrong length');
    isError(t, await set({ lora_nickname: 'a', lora_path: PEFT_LORA, target: 'unet' }), 400, { param: 'target', code: 'invalid_target' }, 'unknown target');
    isError(t, await set({ lora_nickname: 'a', lora_path: PEFT_LORA, target: 'transformer_2' }), 400,
      { param: 'target', code: 'target_not_available' }, 'transformer_2 on a Wan2.1 pipeline');
    isError(t, await set({ lora_nickname: 'a', lora_path: PEFT_LORA, target: 'critic' }), 400,
      { param: 'target', code: 'target_not_available' }, 'critic outside distillation');
    isError(t, await set({ lora_nickname: 'never-loaded' }), 400, { param: 'lora_path', code: 'lora_not_loaded' }, 'unknown nickname without a path');
    isError(t, await set({ lora_nickname: 'never-loaded', lora_path: null }), 400, { param: 'lora_path', code: 'lora_not_loaded' }, 'unknown nickname, path null');
    isError(t, await set({ lora_nickname: 'a', lora_path: join(dir, 'missing.safetensors') }), 400,
      { param: 'lora_path', code: 'lora_load_failed' }, 'a file that does not exist');
    isError(t, await set({ lora_nickname: 'a', lora_path: 'nobody/no-such-lora' }), 400,
      { param: 'lora_path', code: 'lora_load_failed' }, 'a hub repo id not in the local cache');
    isError(t, await set({ lora_nickname: 'a', lora_path: join(WAN, 'README.md') }), 400,
      { param: 'lora_path', code: 'lora_load_failed' }, 'a file that is not safetensors');
    isError(t, await set({ lora_nickname: 'a', lora_path: NOT_A_LORA }), 400,
      { param: 'lora_path', code: 'lora_load_failed' }, 'model weights, not LoRA tensors');
    isError(t, await set({ lora_nickname: 'a', lora_path: PEFT_LORA, merge_mode: 'dynamic' }), 400,
      { param: 'merge_mode', code: 'unsupported_merge_mode' }, 'merge_mode dynamic (sgld always merges)');
    isError(t, await set({ lora_nickname: 'a', lora_path: PEFT_LORA, merge_mode: 'sometimes' }), 400,
      { param: 'merge_mode', code: 'invalid_merge_mode' }, 'unknown merge_mode');
    isError(t, await set({ lora_nickname: 'a', lora_path: PEFT_LORA, lora_alpha: 0 }), 400,
      { param: 'lora_alpha', code: 'invalid_value' }, 'lora_alpha not positive');
    t.same((await listLoras()).active, {}, 'nothing became active');
    t.ok((await picture()).equals(pictures.base!), 'the weights are untouched: the base picture again');
  });

  t.test('merge / unmerge caller errors: invalid target 400, a module the pipeline lacks 400', async (t) => {
    isError(t, await post('/v1/merge_lora_weights', { target: 'unet' }), 400, { param: 'target', code: 'invalid_target' }, 'merge, unknown target');
    isError(t, await post('/v1/unmerge_lora_weights', { target: 'unet' }), 400, { param: 'target', code: 'invalid_target' }, 'unmerge, unknown target');
    isError(t, await post('/v1/merge_lora_weights', { target: 'transformer_2' }), 400,
      { param: 'target', code: 'target_not_available' }, 'merge, transformer_2 on Wan2.1');
    isError(t, await post('/v1/unmerge_lora_weights', { target: 'transformer_2' }), 400,
      { param: 'target', code: 'target_not_available' }, 'unmerge, transformer_2 on Wan2.1');
  });

  t.test('a set_lora sent while a video runs is answered after the job leaves the device; the video is unaffected', async (t) => {
    // The same video on the base weights first: the one made while set_lora waits must equal it byte for byte.
    const reference = await run.client.videos.create(VIDEO as never);
    await waitForVideo(reference.id);
    const referenceMp4 = await videoBytes(reference.id);

    // In-process listener: events and the set_lora answer land on the server's main thread in the order they
    // happen, so this order is exact (an event is recorded before any answer written after it). The job's first
    // denoising step triggers the request, so it arrives while the device still has steps to run.
    const order: string[] = [];
    let videoId: string | undefined;
    let sent: Promise<Answer> | undefined;
    let orderWhenSent: string[] = [];
    const stop = run.engine.subscribe((e: JobEvent) => {
      if (e.id === reference.id || (videoId !== undefined && e.id !== videoId)) return;
      videoId = e.id;
      order.push(e.type);
      if (e.type === 'step' && !sent) {
        orderWhenSent = [...order];
        sent = post('/v1/set_lora', { lora_nickname: 'style', lora_path: PEFT_LORA }).then((a) => { order.push('set_lora answered'); return a; });
      }
    });
    t.teardown(stop);
    const video = await run.client.videos.create(VIDEO as never);
    await waitForVideo(video.id);
    t.equal(videoId, video.id, 'the events recorded are the video job\'s');
    t.ok(sent, 'set_lora was sent at the first denoising step');
    const answer = await sent!;

    t.same(answer, { status: 200, body: { status: 'ok', message: 'Successfully set LoRA adapter(s): style (target: all, strength: 1.00)' } });
    const stepsWhenSent = orderWhenSent.filter((e) => e === 'step').length;
    t.ok(order.filter((e) => e === 'step').length > stepsWhenSent, `set_lora was sent mid-denoise, after step ${stepsWhenSent} of ${VIDEO.num_inference_steps}`);
    const answeredAt = order.indexOf('set_lora answered');
    const lastDeviceEvent = order.lastIndexOf('decoding');
    t.ok(lastDeviceEvent >= 0 && lastDeviceEvent < answeredAt, `answered after every step and the decode (${order.join(' ')})`);
    const completedAt = order.indexOf('completed');
    t.ok(completedAt >= 0 && completedAt < answeredAt, 'answered after the running job completed (encoded and written)');
    t.equal(order.filter((e, i) => e === 'step' && i > answeredAt).length, 0, 'no denoising step after the merge');
    t.ok(referenceMp4.equals(await videoBytes(video.id)), 'the running job used the base weights: its MP4 equals the reference byte for byte');
  });

  t.test('after set_lora: listed as merged, the picture changes and is deterministic', async (t) => {
    t.same(await listLoras(), {
      loaded_adapters: [{ nickname: 'style', path: PEFT_LORA }],
      active: { transformer: [{ nickname: 'style', path: PEFT_LORA, merged: true, mode: 'merged', strength: 1, strengths: [1] }] },
    });
    t.not(await transformerDigest(), baseDigest, 'the merged weights hash differently from the base');
    pictures.style = await picture();
    t.notOk(pictures.style.equals(pictures.base!), `the adapter changes the picture (${diff(pictures.style, pictures.base!)})`);
    t.ok((await picture()).equals(pictures.style), 'same seed + same LoRA: identical pixels');
  });

  t.test('a different adapter while one is merged is 409 lora_already_merged; the same configuration is a no-op', async (t) => {
    const before = await listLoras();
    isError(t, await post('/v1/set_lora', { lora_nickname: 'comfy', lora_path: COMFY_LORA }), 409,
      { param: null, code: 'lora_already_merged' }, 'another nickname on the merged module');
    isError(t, await post('/v1/set_lora', { lora_nickname: ['style', 'comfy'], lora_path: [null, COMFY_LORA] }), 409,
      { param: null, code: 'lora_already_merged' }, 'a different set of nicknames');
    t.same(await listLoras(), before, 'nothing changed (the refused file was not even cached)');
    t.equal((await post('/v1/set_lora', { lora_nickname: 'style' })).status, 200, 'exactly the merged configuration again: ok');
    t.ok((await picture()).equals(pictures.style!), 'and the picture is unchanged');
  });

  t.test('unmerge restores the base picture bit for bit and keeps the adapter cached', async (t) => {
    t.same(await post('/v1/unmerge_lora_weights', { target: 'all' }),
      { status: 200, body: { status: 'ok', message: 'Successfully unmerged LoRA weights (target: all)' } });
    t.same(await listLoras(), { loaded_adapters: [{ nickname: 'style', path: PEFT_LORA }], active: {} }, 'nothing active, adapter still cached');
    t.equal(await transformerDigest(), baseDigest, 'the weights hash equal to the base weights (bit for bit)');
    const after = await picture();
    t.ok(after.equals(pictures.base!), `base pixels back exactly (${diff(after, pictures.base!)})`);
  });

  t.test('merge_lora_weights re-merges the last adapters: strength 1 gives the set_lora picture, 0.5 another', async (t) => {
    t.same(await post('/v1/merge_lora_weights', { target: 'all', strength: 1 }),
      { status: 200, body: { status: 'ok', message: 'Successfully merged LoRA weights (target: all, strength: 1.0)' } });
    t.match((await listLoras()).active, { transformer: [{ nickname: 'style', merged: true, strength: 1 }] });
    t.ok((await picture()).equals(pictures.style!), 're-merged at 1: the same pixels as after set_lora');
    t.equal((await post('/v1/merge_lora_weights', { target: 'transformer', strength: 0.5 })).status, 200, 're-merge at 0.5');
    t.match((await listLoras()).active, { transformer: [{ nickname: 'style', merged: true, strength: 0.5 }] });
    const half = await picture();
    t.notOk(half.equals(pictures.style!), `strength 0.5 differs from 1 (${diff(half, pictures.style!)})`);
    t.notOk(half.equals(pictures.base!), `strength 0.5 differs from the base (${diff(half, pictures.base!)})`);
    t.equal((await post('/v1/unmerge_lora_weights', { target: 'transformer' })).status, 200, 'unmerge, target transformer');
    t.ok((await picture()).equals(pictures.base!), 'base pixels back exactly after a re-merge at another strength');
  });

  t.test('a cached nickname re-activates without a path, from a curl-style (form content type) body', async (t) => {
    const a = await post('/v1/set_lora', { lora_nickname: 'style', strength: 1 }, 'application/x-www-form-urlencoded');
    t.equal(a.status, 200, `set_lora from the cache: ${JSON.stringify(a.body)}`);
    t.ok((await picture()).equals(pictures.style!), 'same seed + same LoRA, merged a second time: identical pixels');
    t.equal((await post('/v1/unmerge_lora_weights', {})).status, 200);
  });

  t.test('after unmerge another adapter can be set (ComfyUI format); unmerge brings the base back again', async (t) => {
    const a = await post('/v1/set_lora', { lora_nickname: 'comfy', lora_path: COMFY_LORA, strength: 0.8 });
    t.same(a, { status: 200, body: { status: 'ok', message: 'Successfully set LoRA adapter(s): comfy (target: all, strength: 0.80)' } });
    t.same(await listLoras(), {
      loaded_adapters: [{ nickname: 'style', path: PEFT_LORA }, { nickname: 'comfy', path: COMFY_LORA }],
      active: { transformer: [{ nickname: 'comfy', path: COMFY_LORA, merged: true, mode: 'merged', strength: 0.8, strengths: [0.8] }] },
    }, 'both cached in load order; comfy active');
    const comfy = await picture();
    t.notOk(comfy.equals(pictures.base!), `comfy changes the picture (${diff(comfy, pictures.base!)})`);
    t.notOk(comfy.equals(pictures.style!), 'and differs from the PEFT adapter');
    t.ok((await picture()).equals(comfy), 'deterministic');
    t.equal((await post('/v1/unmerge_lora_weights', {})).status, 200);
    t.ok((await picture()).equals(pictures.base!), 'base pixels back exactly');
  });

  t.test('two adapters on one module, combined in list order at their own strengths', async (t) => {
    const a = await post('/v1/set_lora', { lora_nickname: ['style', 'comfy'], lora_path: [null, null], strength: [0.7, 0.9] });
    t.same(a, { status: 200, body: { status: 'ok', message: 'Successfully set LoRA adapter(s): style, comfy (target: all, strength: 0.70, 0.90)' } });
    t.match((await listLoras()).active, {
      transformer: [{ nickname: 'style,comfy', path: `${PEFT_LORA},${COMFY_LORA}`, merged: true, mode: 'merged', strength: 0.7, strengths: [0.7, 0.9] }],
    });
    const both = await picture();
    t.notOk(both.equals(pictures.base!) || both.equals(pictures.style!), 'the pair gives its own picture');
    t.equal((await post('/v1/unmerge_lora_weights', {})).status, 200);
    t.ok((await picture()).equals(pictures.base!), 'base pixels back exactly');
  });

  // Refusals of another model's LoRA: they must leave the cache and the weights as they were.
  const noZImage = existsSync(ZIMAGE_LORA) ? false : `no Z-Image LoRA fixture at ${ZIMAGE_LORA}`;

  t.test("another model's LoRA is 400 lora_incompatible and leaves the weights alone", { skip: noZImage }, async (t) => {
    isError(t, await post('/v1/set_lora', { lora_nickname: 'zimage', lora_path: ZIMAGE_LORA }), 400,
      { param: null, code: 'lora_incompatible' }, 'a Z-Image LoRA on Wan (modules Wan does not have)');
    t.same((await listLoras()).active, {}, 'nothing active');
    t.ok((await picture()).equals(pictures.base!), 'base pixels unchanged');
  });

  t.test('a refused adapter is not cached, and a refused reload keeps the cached adapter', { skip: noZImage }, async (t) => {
    t.equal((await post('/v1/set_lora', { lora_nickname: 'style' })).status, 200, 'a successful operation refreshes the listing');
    const listing = await listLoras() as { loaded_adapters: { nickname: string }[] };
    t.same(listing.loaded_adapters.map((a) => a.nickname), ['style', 'comfy'], 'the refused zimage adapter is not listed as loaded');
    t.equal((await post('/v1/unmerge_lora_weights', {})).status, 200);
    isError(t, await post('/v1/set_lora', { lora_nickname: 'style', lora_path: ZIMAGE_LORA }), 400,
      { param: null, code: 'lora_incompatible' }, "re-pointing 'style' at a Z-Image file");
    t.equal((await post('/v1/set_lora', { lora_nickname: 'style' })).status, 200, "'style' from the cache still works");
    t.ok((await picture()).equals(pictures.style!), "and still gives the 'style' picture");
  });
}
