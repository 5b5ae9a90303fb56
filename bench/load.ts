// Bounded loopback load run (issue 8): `sgld serve` (embedded default model, CPU) as a child process with a small
// queue, then N image requests fired at once. Every request must be answered 200 or 429 (with Retry-After) — none
// 5xx, none lost (no connection error, no timeout) — and the server must have completed exactly as many jobs as
// it answered 200. Prints latency percentiles per outcome; exits 1 when a rule is broken.
//
//   npm run bench:load [-- --requests 200 --max-queued 50 --steps 1 --size 32x32]
//
// The server is started from source through the TypeScript loader, as the API tests start it
// (test/helpers/sgld-process.ts), so the bench runs the source as it is.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startSgld, waitReady } from '../test/helpers/sgld-process.js';

interface BenchOptions { requests: number; maxQueued: number; steps: number; size: string }

function parseArgs(argv: string[]): BenchOptions {
  const o: BenchOptions = { requests: 200, maxQueued: 50, steps: 1, size: '32x32' };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`bench:load: ${flag} needs a value`);
    if (flag === '--requests') o.requests = Number(value);
    else if (flag === '--max-queued') o.maxQueued = Number(value);
    else if (flag === '--steps') o.steps = Number(value);
    else if (flag === '--size') o.size = value;
    else throw new Error(`bench:load: unknown option ${flag} (--requests, --max-queued, --steps, --size)`);
  }
  return o;
}

interface Outcome { status: number; ms: number; retryAfter: string | null; problem?: string }

async function runBench(o: BenchOptions): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'sgld-load-'));
  const server = await startSgld(['--port', '0', '--device', 'cpu', '--threads', '2', '--log-level', 'warning',
    '--max-queued-requests', String(o.maxQueued), '--output-path', join(dir, 'outputs'), '--input-save-path', '']);
  try {
    const base = server.base;
    const t0 = performance.now();
    await waitReady(base, 180_000);
    const body = JSON.stringify({ prompt: 'a lighthouse at dusk', size: o.size, num_inference_steps: o.steps, response_format: 'b64_json', output_format: 'png' });
    // One request first, not counted: it starts the encoder threads and gives the server a job time for Retry-After.
    const warm = await fetch(`${base}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    if (warm.status !== 200) throw new Error(`the warm-up request answered ${warm.status}: ${await warm.text()}`);
    console.log(`sgld serve ready and warm after ${((performance.now() - t0) / 1000).toFixed(1)} s; ${o.requests} image requests (${o.size}, ${o.steps} step${o.steps === 1 ? '' : 's'}) at once against --max-queued-requests ${o.maxQueued}\n`);
    const one = async (): Promise<Outcome> => {
      const start = performance.now();
      try {
        const r = await fetch(`${base}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(300_000) });
        await r.arrayBuffer();
        return { status: r.status, ms: performance.now() - start, retryAfter: r.headers.get('retry-after') };
      } catch (e) {
        return { status: 0, ms: performance.now() - start, retryAfter: null, problem: (e as Error).message };
      }
    };
    const wall = performance.now();
    const outcomes = await Promise.all(Array.from({ length: o.requests }, one));
    const wallS = (performance.now() - wall) / 1000;
    // The warm-up job is one of those the server completed.
    const completed = await completedJobs(base) - 1;
    return report(o, outcomes, wallS, completed);
  } finally {
    const stopping = performance.now();
    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    console.log(`sgld serve stopped (exit ${code}) ${((performance.now() - stopping) / 1000).toFixed(1)} s after SIGTERM`);
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Image jobs the server says it completed (its Prometheus counter). */
async function completedJobs(base: string): Promise<number> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const m = /^sgld_jobs_finished_total\{kind="image",status="completed"\} (\d+)/m.exec(text);
  return m ? Number(m[1]) : 0;
}

const percentile = (sorted: number[], p: number): number => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;

function report(o: BenchOptions, outcomes: Outcome[], wallS: number, completed: number): number {
  const groups = new Map<string, Outcome[]>();
  for (const x of outcomes) {
    const key = x.status === 0 ? 'lost' : String(x.status);
    groups.set(key, [...groups.get(key) ?? [], x]);
  }
  groups.set('all', outcomes);
  console.log('| outcome | count | p50 ms | p90 ms | p99 ms | max ms |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const [key, xs] of [...groups].sort(([a], [b]) => (a === 'all' ? 1 : b === 'all' ? -1 : a.localeCompare(b)))) {
    const ms = xs.map((x) => x.ms).sort((a, b) => a - b);
    const cell = (v: number): string => v.toFixed(0);
    console.log(`| ${key} | ${xs.length} | ${cell(percentile(ms, 50))} | ${cell(percentile(ms, 90))} | ${cell(percentile(ms, 99))} | ${cell(ms.at(-1)!)} |`);
  }
  const ok = groups.get('200')?.length ?? 0, full = groups.get('429') ?? [];
  const other = outcomes.filter((x) => x.status !== 200 && x.status !== 429);
  const problems: string[] = [];
  if (other.length > 0) problems.push(`${other.length} answers were neither 200 nor 429: ${[...new Set(other.map((x) => x.problem ?? x.status))].join(', ')}`);
  if (full.some((x) => x.retryAfter === null || !(Number(x.retryAfter) >= 1))) problems.push('a 429 came without a Retry-After of at least 1 s');
  if (completed !== ok) problems.push(`the server completed ${completed} image jobs but answered ${ok} requests 200`);
  if (ok < 1) problems.push('no request was served');
  console.log(`\n${outcomes.length} requests in ${wallS.toFixed(1)} s: ${ok} served (200), ${full.length} refused (429, Retry-After ${[...new Set(full.map((x) => x.retryAfter))].join('/') || '-'} s), `
    + `${other.filter((x) => x.status >= 500).length} 5xx, ${other.filter((x) => x.status === 0).length} lost; jobs completed by the server: ${completed}`);
  if (problems.length) {
    console.log(`FAILED:\n- ${problems.join('\n- ')}`);
    return 1;
  }
  console.log(`OK: every request answered 200 or 429, none 5xx, none lost (queue limit ${o.maxQueued})`);
  return 0;
}

// Last, so every declaration above is initialised before the top-level await runs.
process.exitCode = await runBench(parseArgs(process.argv.slice(2)));
