// `sgld serve` as a process: it prints the URL it listens on, answers /ready once the model is loaded, runs a
// video job through the HTTP API, and on SIGTERM stops taking work, lets the running job finish, writes the job
// index and exits 0. The process runs the TypeScript sources under tap's loader.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import t from 'tap';
import { INDEX_FILE } from '../../src/actors/job-store.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-serve-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
const repo = join(import.meta.dirname, '..', '..');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

t.test('serve: URL printed, ready, a job over HTTP, SIGTERM drains it and exits 0', async (t) => {
  const out = join(dir, 'outputs');
  // A script file, not `-e`: worker threads inherit the flags, and --input-type would break them.
  const script = join(dir, 'serve.mjs');
  writeFileSync(script, `const { main } = await import(${JSON.stringify(pathToFileURL(join(repo, 'src', 'cli', 'main.js')).href)});\n`
    + 'process.exitCode = await main(process.argv.slice(2));\n');
  const child = spawn(process.execPath, [
    '--import', '@tapjs/typescript/import', script,
    'serve', '--port', '0', '--output-path', out, '--input-save-path', '', '--threads', '2', '--shutdown-timeout', '60',
    '--num-gpus', '4', '--ulysses-degree=2', '--ring-degree=2', '--warmup-resolutions', '64x64', '--warmup-steps', '1',
  ], { cwd: repo, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL'); });

  let url: string | undefined;
  for (let i = 0; i < 1200 && !url; i++) {
    url = /serving .* at (http:\/\/\S+)/.exec(stderr)?.[1];
    if (!url) await sleep(50);
  }
  t.ok(url, `the URL is printed (${url})`);
  t.teardown(() => { if (t.passing()) return; t.comment(stderr); });
  t.match(stderr, /no effect in sgld: --warmup-resolutions --warmup-steps/, 'ignored SGLang flags are named');
  t.match(stderr, /--num-gpus 4 \(dp 1 x tp 1 x cfg 1 x ulysses 2 x ring 2\): 4 CPU ranks in 1 replica of 4/, "the seed's layout runs 4 CPU ranks");
  t.equal((await fetch(`${url}/health`)).status, 200, '/health answers while loading too');
  const statuses: number[] = [];
  while (statuses.at(-1) !== 200 && statuses.length < 1200) {
    statuses.push((await fetch(`${url}/ready`)).status);
    if (statuses.at(-1) !== 200) await sleep(50);
  }
  t.equal(statuses.at(-1), 200, '/ready once the model is loaded');
  t.ok(statuses.slice(0, -1).every((s) => s === 503), `503 until then (${statuses.length - 1} polls)`);

  const created = await fetch(`${url}/v1/videos`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt: 'waves on a beach', seconds: 1, fps: 8, num_inference_steps: 40 }),
  });
  t.equal(created.status, 200);
  const { id } = (await created.json()) as { id: string };
  let status = '';
  for (let i = 0; i < 600 && status !== 'in_progress'; i++) {
    status = ((await (await fetch(`${url}/v1/videos/${id}`)).json()) as { status: string }).status;
    if (status !== 'in_progress') await sleep(20);
  }
  t.equal(status, 'in_progress', 'the job runs');

  child.kill('SIGTERM');
  for (let i = 0; i < 200 && !/shutting down/.test(stderr); i++) await sleep(10);
  const refused = await fetch(`${url}/v1/videos`, {
    method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ prompt: 'late' }),
  }).then((r) => r.status, () => 'closed');
  t.equal(refused, 503, 'while draining, new work is refused with 503');
  t.equal(await exited, 0, 'exit code 0');
  t.match(stderr, /stopped; the job index is written/);

  const index = JSON.parse(readFileSync(join(out, INDEX_FILE), 'utf8')) as { jobs: { id: string; status: string; outputs: { path: string }[] }[] };
  const job = index.jobs.find((j) => j.id === id);
  t.equal(job?.status, 'completed', 'the running job was drained, not cut off');
  t.ok(job && existsSync(job.outputs[0]!.path), 'its MP4 is on disk');
});
