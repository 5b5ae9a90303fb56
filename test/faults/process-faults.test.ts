// Faults of a real `sgld serve` process (embedded default model, CPU, loopback), in the order they build on each
// other, over one output folder:
// 1. a DeviceActor killed mid-job (SGLD_FAULT_INJECTION: its thread exits after step 1) -> that job `failed` with
//    `device_crashed`, the device comes back with the model reloaded, the next jobs complete;
// 2. kill -9 of the whole process during a job -> a new process on the same output and input folders reports that
//    job `failed` / `server_restarted` (spec 5.5), and every earlier output downloads byte for byte as before;
// 3. SIGTERM during a job, with another queued (and a third refused: queue full, 429 + Retry-After) -> new work
//    answered 503 while both drain, exit code 0, both jobs `completed` in the job index on disk with their files.
// Along the way, the structured log lines carry the request and job ids.
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { type SgldProcess, killIfRunning, startSgld, waitReady } from '../helpers/sgld-process.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-faults-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const outputs = join(dir, 'outputs');
const INDEX = join(outputs, 'sgld-jobs.json');
const args = ['--port', '0', '--device', 'cpu', '--threads', '2', '--output-path', outputs, '--input-save-path', join(dir, 'inputs')];
const FAULTS = JSON.stringify([{ prompt: 'fault: exit', kind: 'exit', atStep: 1 }]);

const processes: SgldProcess[] = [];
t.teardown(() => processes.forEach(killIfRunning));

interface Video { id: string; status: string; progress: number; error: { code: string; message: string } | null }

const post = async (base: string, path: string, body: unknown): Promise<Response> =>
  fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json', 'x-request-id': `req-${Math.random().toString(36).slice(2, 10)}` }, body: JSON.stringify(body) });

async function createVideo(base: string, prompt: string, steps: number): Promise<Video> {
  const r = await post(base, '/v1/videos', { prompt, size: '32x32', num_frames: 5, fps: 8, num_inference_steps: steps });
  if (r.status !== 200) throw new Error(`POST /v1/videos answered ${r.status}: ${await r.text()}`);
  return await r.json() as Video;
}

const getVideo = async (base: string, id: string): Promise<Video> => await (await fetch(`${base}/v1/videos/${id}`)).json() as Video;

/** Polls until the job's status passes `until`. */
async function waitVideo(base: string, id: string, until: (v: Video) => boolean, timeoutMs = 120_000): Promise<Video> {
  const t0 = Date.now();
  for (;;) {
    const v = await getVideo(base, id);
    if (until(v)) return v;
    if (Date.now() - t0 > timeoutMs) throw new Error(`video ${id} still ${v.status} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
const ended = (v: Video): boolean => v.status === 'completed' || v.status === 'failed';

/** The job's status in the index file on disk (what a crash at this moment leaves). */
const indexStatus = (id: string): string | undefined => {
  try {
    return (JSON.parse(readFileSync(INDEX, 'utf8')) as { jobs: { id: string; status: string }[] }).jobs.find((j) => j.id === id)?.status;
  } catch {
    return undefined; // between the temp file and its rename
  }
};

const download = async (base: string, path: string): Promise<{ status: number; bytes: Buffer }> => {
  const r = await fetch(base + path);
  return { status: r.status, bytes: Buffer.from(await r.arrayBuffer()) };
};

/** Outputs made before the crash, with the bytes they downloaded as then. */
const earlier: { path: string; bytes: Buffer }[] = [];
let crashedJob = '';

t.test('a DeviceActor killed mid-job fails only that job; the device comes back and the next jobs complete', async (t) => {
  const a = await startSgld([...args, '--log-level', 'info'], { SGLD_FAULT_INJECTION: FAULTS });
  processes.push(a);
  await waitReady(a.base);
  t.match(a.output(), /test-only device faults are armed/, 'the fault switch is announced');

  const doomed = await createVideo(a.base, 'fault: exit', 4);
  const failed = await waitVideo(a.base, doomed.id, ended);
  t.match(failed, { status: 'failed', error: { code: 'device_crashed' } }, 'the job whose device died is failed with device_crashed');
  t.ok(failed.progress > 0 && failed.progress < 100, `it keeps the progress it had (${failed.progress})`);

  await waitReady(a.base, 60_000);
  const next = await createVideo(a.base, 'a calm sea', 2);
  t.match(await waitVideo(a.base, next.id, ended), { status: 'completed', progress: 100 }, 'the next video completes on the restarted device');
  const image = await post(a.base, '/v1/images/generations', { prompt: 'a lighthouse', size: '32x32', num_inference_steps: 2, n: 2, response_format: 'url' });
  t.equal(image.status, 200, 'an image request completes too');
  const { data } = await image.json() as { data: { url: string }[] };

  // Keep what downloads now, to compare after the crash.
  for (const path of [...data.map((d) => d.url), `/v1/videos/${next.id}/content`]) {
    const got = await download(a.base, path);
    t.equal(got.status, 200, `${path} downloads`);
    earlier.push({ path, bytes: got.bytes });
  }

  const logs = a.logLines();
  // The engine's own wording may change; a warning that speaks of the restart is what counts.
  t.ok(logs.some((l) => l.level === 'warn' && /restart/i.test(String(l.msg))), 'the device restart is logged');
  t.match(logs.find((l) => l.msg === 'job failed' && l.job_id === doomed.id), { component: 'jobs', error_code: 'device_crashed' }, 'the failure is logged with its job id and code');
  t.match(logs.find((l) => l.msg === 'request' && l.job_id === next.id && l.method === 'POST'),
    { component: 'http', request_id: /^req-/, route: '/v1/videos', status: 200 }, 'the access line of the submission carries the request id and the job id');
  t.ok(logs.some((l) => l.msg === 'job completed' && l.job_id === next.id), 'the completion is logged with its job id');
});

t.test('kill -9 during a job: after a restart that job is failed / server_restarted and earlier outputs still download', async (t) => {
  const a = processes[0]!;
  const long = await createVideo(a.base, 'a very long tide', 400);
  crashedJob = long.id;
  await waitVideo(a.base, long.id, (v) => v.status === 'in_progress');
  // Wait for the index on disk to say so too: that is what the crash leaves behind.
  for (let i = 0; i < 200 && indexStatus(long.id) !== 'in_progress'; i++) await new Promise((r) => setTimeout(r, 25));
  t.equal(indexStatus(long.id), 'in_progress', 'the index on disk records the running job');
  a.child.kill('SIGKILL');
  t.match(await a.exited, { signal: 'SIGKILL' }, 'the process is gone');

  const b = await startSgld([...args, '--log-level', 'info', '--max-queued-requests', '1']);
  processes.push(b);
  // The store is read at startup: the answer is there before the model is loaded.
  t.match(await getVideo(b.base, long.id), { status: 'failed', error: { code: 'server_restarted' } }, 'the cut-off job is failed with server_restarted');
  for (const e of earlier) {
    const got = await download(b.base, e.path);
    t.same({ status: got.status, same: got.bytes.equals(e.bytes) }, { status: 200, same: true }, `${e.path} downloads with the same bytes`);
  }
  t.ok(b.logLines().some((l) => l.level === 'warn' && JSON.stringify(l).includes(long.id)), 'the restart logs the cut-off job by id');
  await waitReady(b.base);
});

t.test('SIGTERM during a job: new work is refused with 503, running and queued jobs drain, exit 0, both persisted', async (t) => {
  const b = processes[1]!;
  const running = await createVideo(b.base, 'the first of two', 40);
  const queued = await createVideo(b.base, 'the second of two', 2);
  await waitVideo(b.base, running.id, (v) => v.status === 'in_progress');
  // --max-queued-requests 1: one job waits, the next submission is refused with a hint of when to retry.
  const full = await post(b.base, '/v1/videos', { prompt: 'one too many', size: '32x32', num_frames: 5 });
  t.match({ status: full.status, retryAfterAtLeast1s: Number(full.headers.get('retry-after')) >= 1, body: await full.json() },
    { status: 429, retryAfterAtLeast1s: true, body: { error: { type: 'rate_limit_error', code: 'queue_full' } } }, 'a full queue answers 429 with Retry-After');
  b.child.kill('SIGTERM');
  // While it drains it still answers, but takes no new work.
  let refused: Response | undefined;
  for (let i = 0; i < 100 && refused?.status !== 503; i++) {
    refused = await post(b.base, '/v1/images/generations', { prompt: 'too late', size: '32x32', num_inference_steps: 1 }).catch(() => undefined);
    if (!refused) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  t.match({ status: refused?.status, body: await refused?.json() }, { status: 503, body: { error: { code: 'shutting_down' } } }, 'a new request during the drain is 503 shutting_down');
  const exit = await b.exited;
  t.same(exit, { code: 0, signal: null }, 'exit code 0');
  const index = JSON.parse(readFileSync(INDEX, 'utf8')) as { jobs: { id: string; status: string; outputs: { path: string }[] }[] };
  for (const job of [running, queued]) {
    const rec = index.jobs.find((j) => j.id === job.id);
    t.match(rec, { status: 'completed' }, `${job.id === running.id ? 'the running' : 'the queued'} job is completed in the index on disk`);
    const file = rec?.outputs[0]?.path;
    t.ok(file && existsSync(file) && statSync(file).size > 0, 'and its MP4 is written');
  }
  t.match(index.jobs.find((j) => j.id === crashedJob), { status: 'failed' }, 'the crashed job stays failed');
});
