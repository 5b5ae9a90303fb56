// HTTP front benchmark: requests per second and latency percentiles for `GET /health` and `GET /v1/videos/{id}`
// against the real engine (embedded tiny model) and uWebSockets.js front on loopback, under autocannon.
// The load generator runs in its own process (autocannon's CLI, JSON output), so it does not share the server's
// event loop. Bounded: a few seconds per row.   npm run bench:http [-- --seconds N] [-- --connections N]
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Supervisor } from '../src/actors/supervisor.js';
import { startHttpServer } from '../src/http/server.js';
import { consoleLogger } from '../src/kernel/index.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const seconds = flag('seconds', 4);
const connections = flag('connections', 50);

const dir = mkdtempSync(join(tmpdir(), 'sgld-bench-http-'));
const engine = new Supervisor({
  modelPath: new URL('../models/wan-tiny', import.meta.url).pathname, servedModelName: 'sgld/wan-tiny',
  outputPath: join(dir, 'outputs'), inputSavePath: join(dir, 'inputs'), threads: 1, logger: consoleLogger('error'),
});
await engine.ready();
const server = await startHttpServer(engine, { host: '127.0.0.1', port: 0, logger: { info() {}, warn() {}, error: (m: string) => console.error(m) } });
const base = `http://127.0.0.1:${server.port}`;

// One small video job, so /v1/videos/{id} has a real record to serve.
const created = await (await fetch(`${base}/v1/videos`, {
  method: 'POST', headers: { 'content-type': 'application/json' },
  body: JSON.stringify({ prompt: 'bench', size: '32x32', num_frames: 5, num_inference_steps: 1 }),
})).json() as { id: string };
// Let it finish first: the rows measure reads, not reads racing a running job.
for (let status = ''; status !== 'completed' && status !== 'failed';) {
  await new Promise((r) => setTimeout(r, 100));
  status = ((await (await fetch(`${base}/v1/videos/${created.id}`)).json()) as { status: string }).status;
}

interface Row { route: string; rps: number; p50: number; p90: number; p99: number; max: number; errors: number; non2xx: number }
interface Histogram { average: number; p50: number; p90: number; p99: number; max: number }
interface AutocannonResult { requests: Histogram; latency: Histogram; errors: number; timeouts: number; non2xx: number }
const autocannonBin = new URL('../node_modules/autocannon/autocannon.js', import.meta.url).pathname;
async function load(route: string, pipelining: number): Promise<Row> {
  const { stdout } = await promisify(execFile)(process.execPath, [autocannonBin, '-j', '-c', String(connections),
    '-p', String(pipelining), '-d', String(seconds), `${base}${route}`], { execArgv: [], maxBuffer: 1 << 24 } as never);
  const r = JSON.parse(String(stdout)) as AutocannonResult;
  return {
    route: `${route.replace(created.id, '{id}')}${pipelining > 1 ? ` (pipelining ${pipelining})` : ''}`,
    rps: r.requests.average, p50: r.latency.p50, p90: r.latency.p90, p99: r.latency.p99, max: r.latency.max,
    errors: r.errors + r.timeouts, non2xx: r.non2xx,
  };
}

const rows: Row[] = [];
for (const route of ['/health', `/v1/videos/${created.id}`]) {
  rows.push(await load(route, 1));
  rows.push(await load(route, 10));
}
console.log(`sgld bench:http — ${connections} connections, ${seconds} s per row, loopback, autocannon (single-threaded client)\n`);
console.log('| route | req/s | p50 ms | p90 ms | p99 ms | max ms | errors | non-2xx |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.route} | ${Math.round(r.rps)} | ${r.p50} | ${r.p90} | ${r.p99} | ${r.max} | ${r.errors} | ${r.non2xx} |`);
await server.close();
await engine.stop();
rmSync(dir, { recursive: true, force: true });
