// HTTP limits and request bookkeeping in front of the engine test double (fast: no model): the image request time
// limit (504, job cancelled), `lora_path` confinement letting paths inside --lora-dir through, request ids
// (X-Request-Id echoed or made) and the structured access line carrying the request and job ids.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import type { HttpLogFields } from '../../src/http/context.js';
import { startHarness } from '../unit/http-harness.js';

const GEN = '/v1/images/generations';

t.test('an image request past --request-timeout is 504 request_timeout and its job is cancelled', async (t) => {
  const h = await startHarness(t, { steps: 10, stepDelayMs: 100 }, { requestTimeoutMs: 300 });
  const t0 = Date.now();
  const r = await h.post(GEN, { prompt: 'slow', size: '16x16' });
  const body = await r.json() as { error: { code: string; message: string; type: string } };
  t.match({ status: r.status, body }, { status: 504, body: { error: { code: 'request_timeout', type: 'server_error', message: /limit of 0.3 s/ } } }, 'the answer names the limit');
  t.ok(Date.now() - t0 < 900, `it comes at the limit, not when the 1 s job would end (${Date.now() - t0} ms)`);
  await h.engine.idle();
  t.match([...h.engine.jobs.values()].at(-1), { status: 'failed', error: { code: 'cancelled' } }, 'the job was cancelled');
  t.equal((await h.fetch('/health')).status, 200);
});

t.test('lora_path: inside a --lora-dir folder it reaches the engine; outside, or out through a link, it is refused', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'sgld-loras-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  mkdirSync(join(root, 'styles'));
  writeFileSync(join(root, 'styles', 'ink.safetensors'), 'x');
  symlinkSync('/etc', join(root, 'etc-link'));
  const h = await startHarness(t, {}, { loraRoots: [root] });
  const set = (path: string) => h.post('/v1/set_lora', { lora_nickname: 'ink', lora_path: path });
  const ok = await set(join(root, 'styles', 'ink.safetensors'));
  t.equal(ok.status, 200, `a file inside the folder is set (${ok.status === 200 ? '' : await ok.text()})`);
  for (const path of ['/etc/passwd', join(root, 'styles', '..', '..', 'x.safetensors'), join(root, 'etc-link', 'hostname')]) {
    const r = await set(path);
    t.match({ status: r.status, body: await r.json() }, { status: 400, body: { error: { param: 'lora_path', code: 'lora_path_not_allowed' } } }, `refused: ${path}`);
  }
  const none = await startHarness(t, {}, { loraRoots: [] });
  const r = await none.post('/v1/set_lora', { lora_nickname: 'ink', lora_path: join(root, 'styles', 'ink.safetensors') });
  t.match({ status: r.status, body: await r.json() }, { status: 400, body: { error: { code: 'lora_path_not_allowed', message: /--lora-dir/ } } }, 'no folders: every path is refused');
});

t.test('request ids: X-Request-Id echoed (or made), and the access line carries it with the job id', async (t) => {
  const lines: { level: string; message: string; fields?: HttpLogFields }[] = [];
  const logger = {
    debug: (message: string, fields?: HttpLogFields) => void lines.push({ level: 'debug', message, fields }),
    info: (message: string, fields?: HttpLogFields) => void lines.push({ level: 'info', message, fields }),
    warn: (message: string, fields?: HttpLogFields) => void lines.push({ level: 'warn', message, fields }),
    error: (message: string, fields?: HttpLogFields) => void lines.push({ level: 'error', message, fields }),
  };
  const h = await startHarness(t, {}, { logger });
  const given = await h.post(GEN, { prompt: 'p', size: '16x16', response_format: 'b64_json' }, { 'x-request-id': 'client-abc.123' });
  t.equal(given.headers.get('x-request-id'), 'client-abc.123', 'a client id is echoed');
  const { id } = await given.json() as { id: string };
  t.match(lines.find((l) => l.message === 'request' && l.fields?.request_id === 'client-abc.123'),
    { level: 'info', fields: { method: 'POST', route: GEN, status: 200, job_id: id, ms: Number } }, 'the access line has the request id, job id, route, status and time');
  const made = await h.fetch('/v1/models', { headers: { 'x-request-id': 'bad id with spaces' } });
  t.match(made.headers.get('x-request-id'), /^[0-9a-f-]{36}$/, 'an unusable client id is replaced by a UUID');
  const bad = await h.post(GEN, { prompt: 'p', n: 0 });
  t.match(lines.find((l) => l.message === 'request' && l.fields?.request_id === bad.headers.get('x-request-id')),
    { level: 'info', fields: { status: 400, error_code: 'invalid_n', param: 'n' } }, 'a refused request logs its error code and field');
  await h.fetch('/health');
  t.match(lines.findLast((l) => l.message === 'request'), { level: 'debug', fields: { path: '/health' } }, 'probes are logged at debug level');
});
