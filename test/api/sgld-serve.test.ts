// `sgld serve` as a process: flags -> engine -> HTTP front on a free loopback port, reached with the openai SDK
// (key required), then SIGTERM drains the running job and the process exits 0. Runs the CLI from source through
// tap's TypeScript loader (sgld-cli-entry.ts), so startup includes compiling the engine's worker modules.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import sharp from 'sharp';
import t from 'tap';
import { ROOT, killIfRunning, startSgld, waitReady } from '../helpers/sgld-process.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-serve-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('sgld serve: SDK requests with --api-key, then SIGTERM drains and exits 0', async (t) => {
  const serve = await startSgld([
    '--model-path', join(ROOT, 'models/wan-tiny'), '--served-model-name', 'sgld/wan-tiny', '--port', '0',
    '--output-path', join(dir, 'outputs'), '--input-save-path', join(dir, 'inputs'), '--api-key', 'sk-test',
    '--device', 'cpu', '--threads', '2',
  ]);
  t.teardown(() => killIfRunning(serve));
  const { base } = serve;
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
  const { code } = await serve.exited;
  t.equal(code, 0, 'exit code 0 after SIGTERM');
  if (code !== 0) t.comment(serve.output().slice(-2000));
  t.match(serve.output(), /stopped/);
  t.ok(existsSync(join(dir, 'outputs', `${video.id}.mp4`)), 'the running video was finished and written before exit');
});
