// `sgld serve` as a process: flags -> engine -> HTTP front on a free loopback port, reached with the openai SDK
// (key required), then SIGTERM drains the running job and the process exits 0. Runs the CLI from source through
// tap's TypeScript loader (sgld-cli-entry.ts), so startup includes compiling the engine's worker modules.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import sharp from 'sharp';
import t from 'tap';

const ROOT = new URL('../..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'sgld-serve-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Loading includes the TS compile of the device worker's modules: tens of seconds on a busy 2-core machine. */
const READY_TIMEOUT_MS = 120_000;

function startServe(args: string[]): { child: ChildProcess; url: Promise<string>; log: () => string; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', join(ROOT, 'test/api/sgld-cli-entry.ts'), 'serve', ...args], {
    cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' },
  });
  let output = '';
  const url = new Promise<string>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const m = /at (http:\/\/127\.0\.0\.1:\d+)/.exec(output);
      if (m) resolve(m[1]!);
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('exit', (code) => reject(new Error(`sgld serve exited (${code}) before listening:\n${output}`)));
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, url, log: () => output, exit };
}

async function waitReady(base: string): Promise<void> {
  const t0 = Date.now();
  while (Date.now() - t0 < READY_TIMEOUT_MS) {
    const r = await fetch(`${base}/ready`).catch(() => null);
    if (r?.status === 200) return;
    if (r && r.status !== 503) throw new Error(`/ready answered ${r.status}`);
    await new Promise((res) => setTimeout(res, 250));
  }
  throw new Error('the model did not load in time');
}

t.test('sgld serve: SDK requests with --api-key, then SIGTERM drains and exits 0', async (t) => {
  const serve = startServe([
    '--model-path', join(ROOT, 'models/wan-tiny'), '--served-model-name', 'sgld/wan-tiny', '--port', '0',
    '--output-path', join(dir, 'outputs'), '--input-save-path', join(dir, 'inputs'), '--api-key', 'sk-test',
    '--device', 'cpu', '--threads', '2',
  ]);
  t.teardown(() => { if (serve.child.exitCode === null) serve.child.kill('SIGKILL'); });
  const base = await serve.url;
  t.equal((await fetch(`${base}/health`)).status, 200, '/health answers while the model loads');
  await waitReady(base);

  const client = new OpenAI({ apiKey: 'sk-test', baseURL: `${base}/v1`, maxRetries: 0 });
  t.equal((await client.models.list()).data[0]!.id, 'sgld/wan-tiny');
  const img = await client.images.generate({ prompt: 'a lighthouse', size: '32x32', response_format: 'b64_json', num_inference_steps: 2 } as never);
  const meta = await sharp(Buffer.from(img.data![0]!.b64_json!, 'base64')).metadata();
  t.same([meta.width, meta.height], [32, 32]);
  const wrong = new OpenAI({ apiKey: 'sk-wrong', baseURL: `${base}/v1`, maxRetries: 0 });
  const status = await wrong.models.list().then(() => 200, (e: { status: number }) => e.status);
  t.equal(status, 401, 'a wrong key is refused');

  // A job still running at SIGTERM is drained, not cut off.
  const video = await client.videos.create({ prompt: 'drain me', size: '32x32' as never, num_frames: 5, num_inference_steps: 4 } as never);
  serve.child.kill('SIGTERM');
  const code = await serve.exit;
  t.equal(code, 0, 'exit code 0 after SIGTERM');
  if (code !== 0) t.comment(serve.log().slice(-2000));
  t.match(serve.log(), /stopped/);
  t.ok(existsSync(join(dir, 'outputs', `${video.id}.mp4`)), 'the running video was finished and written before exit');
});
