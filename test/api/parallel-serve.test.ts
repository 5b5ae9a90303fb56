// Parallel ranks end to end through the HTTP API: servers started from `sgld serve` command lines (parsed by the
// CLI, engine with its CPU ranks, uWS front on a loopback port), driven by the openai SDK.
// - The seed's exact flags `--num-gpus 4 --ulysses-degree=2 --ring-degree=2`: one replica of 4 CPU ranks (Ulysses
//   all-to-all inside pairs, ring attention across them), each request's tokens sharded over the 4 ranks.
// - `--num-gpus 2 --dp-size 2`: two replicas of one rank, serving two requests at once.
// Both are compared with a 1-rank server on the same requests: the decoded pixels may differ by at most 1 (uint8),
// as the fp32 results differ by ~1e-6 relative (rounding order of the sharded attention) and a value near a
// quantisation boundary may round the other way. 48x32 pixels give 6 latent tokens: 4 ranks shard them unevenly.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import sharp from 'sharp';
import t from 'tap';
import type { JobEvent } from '../../src/actors/api.js';
import { type ServeConfig, type ServeHandle, parseServeArgs, startServe } from '../../src/cli/serve.js';
import { consoleLogger } from '../../src/kernel/index.js';

// Seven ranks in all, each a worker thread compiling the engine under tap's TS loader: slow on a busy 2-core machine.
t.setTimeout(300_000);

const dir = mkdtempSync(join(tmpdir(), 'sgld-parallel-serve-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** The largest difference of decoded pixels the parallel server may show against one rank (uint8 levels). */
const MAX_PIXEL_DIFF = 1;

interface Server { handle: ServeHandle; client: OpenAI }

async function serve(name: string, flags: string[]): Promise<Server> {
  const config = parseServeArgs([
    '--port', '0', '--device', 'cpu', '--threads', '2', '--output-path', join(dir, name), '--input-save-path', '', ...flags,
  ]) as ServeConfig;
  const handle = await startServe(config, consoleLogger('error'));
  t.teardown(() => handle.stop());
  await handle.engine.ready();
  return { handle, client: new OpenAI({ apiKey: 'sk-unused', baseURL: `${handle.url}/v1`, maxRetries: 0, timeout: 240_000 }) };
}

const requests = {
  lighthouse: { prompt: 'a lighthouse in a storm', seed: 7 },
  fox: { prompt: 'a red fox in the snow', seed: 8 },
};

/** One image through the API, decoded to raw RGB. */
async function generate(server: Server, r: { prompt: string; seed: number }): Promise<Buffer> {
  const res = await server.client.images.generate({
    prompt: r.prompt, size: '48x32', response_format: 'b64_json', seed: r.seed, num_inference_steps: 2,
  } as never);
  const png = Buffer.from(res.data![0]!.b64_json!, 'base64');
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  if (info.width !== 48 || info.height !== 32 || info.channels !== 3) throw new Error(`unexpected image ${info.width}x${info.height}x${info.channels}`);
  return data;
}

function maxDiff(a: Buffer, b: Buffer): number {
  if (a.length !== b.length) return Infinity;
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

// Started together: their ranks load at the same time.
const [one, usp, replicas] = await Promise.all([
  serve('one', []),
  serve('usp', ['--num-gpus', '4', '--ulysses-degree=2', '--ring-degree=2']),
  serve('dp', ['--num-gpus', '2', '--dp-size', '2']),
]);
const reference = {
  lighthouse: await generate(one, requests.lighthouse),
  fox: await generate(one, requests.fox),
};

t.test("the seed's flags: 4 CPU ranks (ulysses 2 x ring 2) give the 1-rank picture", async (t) => {
  t.match(usp.handle.engine.layout, { numGpus: 4, dp: 1, ulysses: 2, ring: 2, sp: 4 });
  const picture = await generate(usp, requests.lighthouse);
  const diff = maxDiff(picture, reference.lighthouse);
  t.ok(diff <= MAX_PIXEL_DIFF, `max pixel difference ${diff} <= ${MAX_PIXEL_DIFF}`);
  t.notOk(reference.lighthouse.equals(reference.fox), 'the two requests give different pictures (the comparison can fail)');
  const extra = usp.handle.engine.stats().extra ?? {};
  t.same(Object.keys(extra).sort(), [0, 1, 2, 3].map((r) => `device_peak_memory_bytes:${r}`), 'one memory gauge per rank');
  t.ok([0, 1, 2, 3].every((r) => extra[`device_peak_memory_bytes:${r}`]! > 0), 'every rank worked on the request');
});

t.test('--num-gpus 2 --dp-size 2: two requests run at once on the two replicas, each giving the 1-rank picture', async (t) => {
  t.match(replicas.handle.engine.layout, { numGpus: 2, dp: 2, sp: 1 });
  const events: JobEvent[] = [];
  const stop = replicas.handle.engine.subscribe((e) => { if (e.type === 'started' || e.type === 'completed') events.push(e); });
  const [lighthouse, fox] = await Promise.all([generate(replicas, requests.lighthouse), generate(replicas, requests.fox)]);
  stop();
  t.same(events.map((e) => e.type), ['started', 'started', 'completed', 'completed'], 'both started before either completed');
  t.equal(maxDiff(lighthouse, reference.lighthouse), 0, 'the first replica gives the 1-rank picture exactly (it is one rank)');
  t.equal(maxDiff(fox, reference.fox), 0, 'so does the second');
  const extra = replicas.handle.engine.stats().extra ?? {};
  t.ok(extra['device_peak_memory_bytes:0']! > 0 && extra['device_peak_memory_bytes:1']! > 0, 'both replicas served a request');
});
