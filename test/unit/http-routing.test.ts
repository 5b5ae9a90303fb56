// The HTTP front's plumbing: probes, discovery, routing (404 / 405 + Allow / OPTIONS / HEAD), auth (spec 1.2),
// body limits (413), JSON errors, metrics, and the pure parsers (size grammar, field schemas).
import { connect } from 'node:net';
import t from 'tap';
import { ApiError } from '../../src/actors/api.js';
import { parseSize } from '../../src/http/generation-fields.js';
import { Router } from '../../src/http/router.js';
import { field, parseFields } from '../../src/http/schema.js';
import { expectError, startHarness } from './http-harness.js';

t.test('probes', async (t) => {
  const h = await startHarness(t);
  t.test('GET /health answers {"status":"ok"}', async (t) => {
    const r = await h.fetch('/health');
    t.equal(r.status, 200);
    t.match(r.headers.get('content-type'), /application\/json/);
    t.same(await r.json(), { status: 'ok' });
  });
  t.test('GET /health_generate answers ok without generating', async (t) => {
    const r = await h.fetch('/health_generate');
    t.same(await r.json(), { status: 'ok' });
    t.equal(h.engine.jobs.size, 0);
  });
  t.test('/ready is 503 model_loading while loading, 200 once ready', async (t) => {
    h.engine.state = 'loading';
    await expectError(t, await h.fetch('/ready'), 503, { type: 'server_error', code: 'model_loading' });
    await expectError(t, await h.fetch('/health_generate'), 503, { code: 'model_loading' });
    t.equal((await h.fetch('/health')).status, 200, '/health stays live while loading');
    await expectError(t, await h.post('/v1/images/generations', { prompt: 'x' }), 503, { code: 'model_loading' });
    h.engine.state = 'failed';
    await expectError(t, await h.fetch('/health'), 503, { code: 'model_failed' });
    h.engine.state = 'ready';
    const r = await h.fetch('/ready');
    t.equal(r.status, 200);
    t.same(await r.json(), { status: 'ready' });
  });
  t.test('HEAD /health carries the headers without a body', async (t) => {
    const r = await h.fetch('/health', { method: 'HEAD' });
    t.equal(r.status, 200);
    t.equal(r.headers.get('content-length'), String(JSON.stringify({ status: 'ok' }).length));
    t.equal(await r.text(), '');
  });
});

t.test('discovery (spec 2.2 - 2.5)', async (t) => {
  const h = await startHarness(t);
  const card = {
    id: 'Test/Tiny-Model', object: 'model', created: 1_700_000_000, owned_by: 'sgld', root: 'Test/Tiny-Model', parent: null,
    max_model_len: null, num_gpus: 1, task_type: 'T2V', dit_precision: 'bf16', vae_precision: 'fp32',
    pipeline_name: 'wan_pipeline', pipeline_class: 'WanPipeline',
  };
  t.test('GET /models is the flat model description', async (t) => {
    t.same(await (await h.fetch('/models')).json(), {
      model_path: '/models/test-tiny', num_gpus: 1, task_type: 'T2V', dit_precision: 'bf16', vae_precision: 'fp32',
      pipeline_name: 'wan_pipeline', pipeline_class: 'WanPipeline',
    });
  });
  t.test('GET /v1/models lists exactly one card', async (t) => {
    t.same(await (await h.fetch('/v1/models')).json(), { object: 'list', data: [card] });
  });
  t.test('GET /v1/models/{id} matches the id percent-encoded (SDK) or raw', async (t) => {
    t.same(await (await h.fetch('/v1/models/Test%2FTiny-Model')).json(), card);
    t.same(await (await h.fetch('/v1/models/Test/Tiny-Model')).json(), card);
  });
  t.test('an unknown model is the exact OpenAI-shaped 404', async (t) => {
    const r = await h.fetch('/v1/models/gpt-4');
    t.equal(r.status, 404);
    const body = await r.json() as { error: unknown };
    t.same(body.error, { message: "The model 'gpt-4' does not exist", type: 'invalid_request_error', param: 'model', code: 'model_not_found' });
  });
  t.test('model_info, v1/model_info and server_info', async (t) => {
    t.same(await (await h.fetch('/v1/model_info')).json(), { model_path: '/models/test-tiny' });
    t.same(await (await h.fetch('/model_info')).json(), {
      model_path: '/models/test-tiny', is_generation: true, model_type: 'diffusion', architectures: ['WanPipeline'],
      has_image_understanding: false, has_audio_understanding: false, task_type: 'T2V', is_image_gen: false,
    });
    t.same(await (await h.fetch('/server_info')).json(), {
      model_path: '/models/test-tiny', served_model_name: 'Test/Tiny-Model', tp_size: 1, dp_size: 1, version: '0.0.0-test',
    });
  });
});

t.test('routing: 404, 405 with Allow, OPTIONS preflight', async (t) => {
  const h = await startHarness(t, {}, { apiKey: 'sk-normal' });
  const auth = { authorization: 'Bearer sk-normal' };
  t.test('an unknown path is 404 not_found_error', async (t) => {
    await expectError(t, await h.fetch('/v1/nothing', { headers: auth }), 404, { type: 'not_found_error', code: 'route_not_found' });
    await expectError(t, await h.fetch('/v1/images/abc', { headers: auth }), 404, { type: 'not_found_error' });
  });
  t.test('remix and other video sub-resources are unknown routes (spec 5.10)', async (t) => {
    await expectError(t, await h.fetch('/v1/videos/abc/remix', { method: 'POST', headers: auth }), 404, { code: 'route_not_found' });
    await expectError(t, await h.fetch('/v1/videos/edits/x/y', { headers: auth }), 404, { code: 'route_not_found' });
  });
  t.test('a known path with another method is 405 with Allow', async (t) => {
    const cases: [string, string, string][] = [
      ['GET', '/v1/images/generations', 'POST'],
      ['PUT', '/v1/videos', 'POST, GET'],
      ['POST', '/v1/videos/abc', 'GET, DELETE'],
      ['GET', '/v1/set_lora', 'POST'],
      ['POST', '/v1/list_loras', 'GET'],
      ['DELETE', '/health', 'GET'],
    ];
    for (const [method, path, allow] of cases) {
      const r = await h.fetch(path, { method, headers: auth });
      t.equal(r.headers.get('allow'), allow, `${method} ${path}: Allow`);
      await expectError(t, r, 405, { type: 'invalid_request_error', code: 'method_not_allowed' });
    }
  });
  t.test('OPTIONS preflight is answered without a key', async (t) => {
    const r = await h.fetch('/v1/images/generations', {
      method: 'OPTIONS', headers: { origin: 'http://x.test', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization, content-type' },
    });
    t.equal(r.status, 204);
    t.equal(r.headers.get('access-control-allow-origin'), '*');
    t.match(r.headers.get('access-control-allow-methods'), /POST/);
    t.equal(r.headers.get('access-control-allow-headers'), 'authorization, content-type');
  });
});

t.test('authentication (spec 1.2)', async (t) => {
  t.test('--api-key: normal and admin routes need it, probes do not', async (t) => {
    const h = await startHarness(t, {}, { apiKey: 'sk-normal' });
    const e = await expectError(t, await h.fetch('/v1/models'), 401, { type: 'authentication_error', code: 'invalid_api_key', param: null });
    t.match(e.error.message, /Missing API key/);
    await expectError(t, await h.fetch('/v1/models', { headers: { authorization: 'Bearer wrong' } }), 401, { type: 'authentication_error', code: 'invalid_api_key' });
    await expectError(t, await h.fetch('/v1/models', { headers: { authorization: 'Bearer sk-normal-but-longer' } }), 401, { code: 'invalid_api_key' });
    t.equal((await h.fetch('/v1/models', { headers: { authorization: 'Bearer sk-normal' } })).status, 200, 'Bearer');
    t.equal((await h.fetch('/v1/models', { headers: { authorization: 'bearer sk-normal' } })).status, 200, 'scheme is case-insensitive');
    t.equal((await h.fetch('/v1/models', { headers: { 'x-api-key': 'sk-normal' } })).status, 200, 'x-api-key');
    for (const p of ['/health', '/health_generate', '/ready', '/metrics']) t.equal((await h.fetch(p)).status, 200, `${p} is open`);
    await expectError(t, await h.fetch('/no-such-route'), 401, { code: 'invalid_api_key' });
    await expectError(t, await h.post('/v1/unmerge_lora_weights', {}), 401, { code: 'invalid_api_key' });
    t.equal((await h.post('/v1/unmerge_lora_weights', {}, { 'x-api-key': 'sk-normal' })).status, 200, 'admin route takes the api key when no admin key is set');
  });
  t.test('--admin-api-key alone: normal routes open, LoRA mutators need the admin key', async (t) => {
    const h = await startHarness(t, {}, { adminApiKey: 'sk-admin' });
    t.equal((await h.fetch('/v1/models')).status, 200);
    t.equal((await h.fetch('/v1/list_loras')).status, 200, 'list_loras is a normal route');
    await expectError(t, await h.post('/v1/unmerge_lora_weights', {}), 401, { type: 'authentication_error' });
    t.equal((await h.post('/v1/unmerge_lora_weights', {}, { authorization: 'Bearer sk-admin' })).status, 200);
  });
  t.test('both keys: the api key is refused on admin routes', async (t) => {
    const h = await startHarness(t, {}, { apiKey: 'sk-normal', adminApiKey: 'sk-admin' });
    await expectError(t, await h.post('/v1/merge_lora_weights', {}, { authorization: 'Bearer sk-normal' }), 401, { code: 'invalid_api_key' });
    await expectError(t, await h.post('/v1/set_lora', { lora_nickname: 'a', lora_path: '/a' }, { authorization: 'Bearer sk-normal' }), 401, {});
    t.equal((await h.post('/v1/unmerge_lora_weights', {}, { authorization: 'Bearer sk-admin' })).status, 200);
    await expectError(t, await h.fetch('/v1/models', { headers: { authorization: 'Bearer sk-admin' } }), 401, {});
    t.equal((await h.fetch('/v1/models', { headers: { authorization: 'Bearer sk-normal' } })).status, 200);
  });
});

t.test('request bodies', async (t) => {
  const h = await startHarness(t, {}, { maxBodyBytes: 4096, maxUploadBytes: 1024 });
  t.test('a body over the limit is 413, and the server keeps serving', async (t) => {
    await expectError(t, await h.post('/v1/images/generations', { prompt: 'x'.repeat(10_000) }), 413, { type: 'invalid_request_error', code: 'request_too_large' });
    t.equal((await h.fetch('/health')).status, 200);
  });
  t.test('a body streamed past the limit without Content-Length is 413', async (t) => {
    const chunks = [new TextEncoder().encode('{"prompt":"'), new Uint8Array(8192).fill(120), new TextEncoder().encode('"}')];
    const stream = new ReadableStream({ pull(c) { const next = chunks.shift(); if (next) c.enqueue(next); else c.close(); } });
    const r = await fetch(`${h.base}/v1/images/generations`, { method: 'POST', body: stream, headers: { 'content-type': 'application/json' }, duplex: 'half' } as RequestInit);
    await expectError(t, r, 413, { code: 'request_too_large' });
  });
  t.test('an uploaded file over the per-file limit is 413 naming the part', async (t) => {
    const form = new FormData();
    form.append('prompt', 'p');
    form.append('image', new Blob([new Uint8Array(2000)], { type: 'image/png' }), 'big.png');
    await expectError(t, await h.fetch('/v1/images/edits', { method: 'POST', body: form }), 413, { param: 'image', code: 'file_too_large' });
  });
  t.test('malformed JSON is 400 invalid_json; a JSON array is 422', async (t) => {
    await expectError(t, await h.fetch('/v1/images/generations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"prompt": ' }), 400, { code: 'invalid_json', param: null });
    await expectError(t, await h.fetch('/v1/images/generations', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '["prompt"]' }), 422, { param: null });
  });
  t.test('a request that is not HTTP-conformant does not stop the server', async (t) => {
    await new Promise<void>((resolve) => {
      const s = connect(h.server.port, '127.0.0.1', () => s.end('GARBAGE / NOT-HTTP\r\n\r\n'));
      s.on('close', () => resolve());
      s.on('error', () => resolve());
      s.resume();
    });
    t.equal((await h.fetch('/health')).status, 200);
  });
});

t.test('metrics (Prometheus text fed by job events)', async (t) => {
  const h = await startHarness(t);
  const r0 = await h.post('/v1/images/generations', { prompt: 'a cat', response_format: 'b64_json' });
  t.equal(r0.status, 200);
  await h.post('/v1/images/generations', { prompt: 'FAIL please' });
  const r = await h.fetch('/metrics');
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /text\/plain/);
  const text = await r.text();
  t.match(text, /sgld_job_queue_time_seconds_count\{kind="image"\} 2/);
  t.match(text, /sgld_job_e2e_latency_seconds_count\{kind="image",status="completed"\} 1/);
  t.match(text, /sgld_job_e2e_latency_seconds_count\{kind="image",status="failed"\} 1/);
  t.match(text, /sgld_jobs_finished_total\{kind="image",status="completed"\} 1/);
  t.match(text, /sgld_denoise_steps_per_second_count\{kind="image"\} 2/);
  t.match(text, /sgld_jobs\{status="completed"\} 1/);
  t.match(text, /sgld_jobs\{status="failed"\} 1/);
  t.match(text, /sgld_queue_depth 0/);
  t.match(text, /sgld_ready 1/);
  t.match(text, /sgld_http_requests_total\{method="POST",route="\/v1\/images\/generations",status="200"\} 1/);
  t.match(text, /sgld_http_requests_total\{method="POST",route="\/v1\/images\/generations",status="500"\} 1/);
  t.match(text, /sgld_process_cpu_user_seconds_total/);
});

/** The ApiError `fn` throws, as {status, param, code}; null when it throws nothing (or something else). */
function thrown(fn: () => unknown): { status: number; param: string | null; code: string | null } | null {
  try { fn(); } catch (e) { if (e instanceof ApiError) return { status: e.status, param: e.param, code: e.code }; }
  return null;
}

t.test('size grammar (spec 3.4)', async (t) => {
  t.same(parseSize('1024x768'), { width: 1024, height: 768 });
  t.same(parseSize(' 832 X 480 '), { width: 832, height: 480 }, 'case and spaces ignored');
  t.equal(parseSize('auto'), undefined);
  t.equal(parseSize(''), undefined);
  t.equal(parseSize(undefined), undefined);
  for (const bad of ['big', '1024', '1024x', 'axb', '0x64', '64x0', '-64x64', '64x64x3', '1.5x2']) {
    t.same(thrown(() => parseSize(bad)), { status: 400, param: 'size', code: 'invalid_size' }, bad);
  }
});

t.test('field schemas: 422 for missing / wrong type, 400 for range', async (t) => {
  const schema = {
    prompt: field.string().required(),
    n: field.integer({ min: 1, max: 10 }).default(1),
    limit: field.integer({ min: 1, max: 100, rangeStatus: 422 }),
    flag: field.boolean(),
    fmt: field.oneOf(['a', 'b'] as const, { caseInsensitive: true, code: 'bad_fmt' }),
    seed: field.integerOrList(),
  };
  const fails = (input: Record<string, unknown>, source: 'json' | 'form', status: number, param: string) =>
    t.match(thrown(() => parseFields(input, schema, source)), { status, param }, JSON.stringify(input));
  t.same(parseFields({ prompt: '' }, schema, 'json'), { prompt: '', n: 1, limit: undefined, flag: undefined, fmt: undefined, seed: undefined }, 'empty prompt allowed, defaults');
  t.same(parseFields({ prompt: 'p', n: '3', flag: 'true', fmt: 'B', seed: '[1,2]' }, schema, 'form'), { prompt: 'p', n: 3, limit: undefined, flag: true, fmt: 'b', seed: [1, 2] });
  t.same(parseFields({ prompt: 'p', n: null, extra: { any: 1 } }, schema, 'json').n, 1, 'null is absent; unknown members ignored');
  fails({}, 'json', 422, 'prompt');
  fails({ prompt: null }, 'json', 422, 'prompt');
  fails({ prompt: 3 }, 'json', 422, 'prompt');
  fails({ prompt: 'p', n: 'abc' }, 'json', 422, 'n');
  fails({ prompt: 'p', n: 2.5 }, 'json', 422, 'n');
  fails({ prompt: 'p', n: true }, 'json', 422, 'n');
  fails({ prompt: 'p', n: 0 }, 'json', 400, 'n');
  fails({ prompt: 'p', n: '11' }, 'form', 400, 'n');
  fails({ prompt: 'p', limit: 0 }, 'json', 422, 'limit');
  fails({ prompt: 'p', flag: 'maybe' }, 'form', 422, 'flag');
  fails({ prompt: 'p', fmt: 'c' }, 'json', 400, 'fmt');
  fails({ prompt: 'p', seed: [1, 'x'] }, 'json', 422, 'seed[1]');
});

t.test('router', async (t) => {
  const noop = () => {};
  const r = new Router().add(
    { method: 'GET', pattern: '/v1/models/{model+}', auth: 'normal', handler: noop },
    { method: 'GET', pattern: '/v1/videos/{id}/content', auth: 'normal', handler: noop },
    { method: 'DELETE', pattern: '/v1/videos/{id}', auth: 'normal', handler: noop },
  );
  t.match(r.match('GET', '/v1/models/a%2Fb/c'), { kind: 'found', params: { model: 'a/b/c' } });
  t.match(r.match('GET', '/v1/videos/x%20y/content'), { kind: 'found', params: { id: 'x y' } });
  t.match(r.match('HEAD', '/v1/videos/x/content'), { kind: 'found' }, 'HEAD uses the GET route');
  t.same(r.match('GET', '/v1/videos/x'), { kind: 'method_not_allowed', allow: ['DELETE'] });
  t.same(r.match('GET', '/v1/videos//content'), { kind: 'not_found' }, 'empty parameter');
  t.same(r.match('GET', '/v1/videos/%E0%A4%A/content'), { kind: 'not_found' }, 'bad percent-encoding');
  t.same(r.match('GET', '/v1/models'), { kind: 'not_found' });
});
