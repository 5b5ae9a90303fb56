// Every parallel layout of the parallelism issue against one rank, on real worker threads with shm collectives:
// {1; ulysses 2; ring 2; ulysses 2 x ring 2; cfg 2; cfg 2 x ulysses 2; 2 replicas}, each on a small request and on
// one with more tokens, where neither 2 nor 4 divides the token count. Tolerance: 1e-5 relative error in fp32
// (max |parallel - single| / max |single|) on the final latents of every rank: the output of what the layout
// parallelises. The leader's frames come from the one-rank VAE decode of those latents, which magnifies their
// rounding differences (ring attention's log-sum-exp merge reorders softmax sums: ~1e-6 on the latents, ~1e-5 on
// the frames, i.e. 0.003 of one 8-bit level); they are held to 1e-4.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import type { LayoutDegrees } from '../../src/parallel/topology.js';
import type { WanGenerateRequest } from '../../src/pipelines/wan/request.js';
import { RankPool, type RankResult, relativeError } from './run-layout.js';

const MODEL = fileURLToPath(new URL('../../models/wan-tiny', import.meta.url));
const TOLERANCE = 1e-5;
const FRAMES_TOLERANCE = 1e-4;

const base = { prompt: 'a lighthouse at dusk, waves', negativePrompt: 'blurry', numInferenceSteps: 2, guidanceScale: 5 };
const CONFIGS: { name: string; request: WanGenerateRequest; tokens: number }[] = [
  // latent 16 x 1 x 6 x 4 -> 1 x 3 x 2 patches = 6 tokens (4 ranks: 2 + 2 + 1 + 1)
  { name: 'image 48x32', request: { ...base, width: 32, height: 48, numFrames: 1, seed: 11 }, tokens: 6 },
  // latent 16 x 3 x 10 x 6 -> 3 x 5 x 3 patches = 45 tokens (odd: 23 + 22, or 12 + 11 + 11 + 11)
  { name: 'video 48x80x9', request: { ...base, width: 48, height: 80, numFrames: 9, seed: 12 }, tokens: 45 },
];

const LAYOUTS: { name: string; degrees: LayoutDegrees }[] = [
  { name: 'ulysses 2', degrees: { dp: 1, cfg: 1, ulysses: 2, ring: 1 } },
  { name: 'ring 2', degrees: { dp: 1, cfg: 1, ulysses: 1, ring: 2 } },
  { name: 'ulysses 2 x ring 2', degrees: { dp: 1, cfg: 1, ulysses: 2, ring: 2 } },
  { name: 'cfg 2', degrees: { dp: 1, cfg: 2, ulysses: 1, ring: 1 } },
  { name: 'cfg 2 x ulysses 2', degrees: { dp: 1, cfg: 2, ulysses: 2, ring: 1 } },
  { name: '2 replicas', degrees: { dp: 2, cfg: 1, ulysses: 1, ring: 1 } },
];

const pool = new RankPool(MODEL, 4);
t.teardown(() => pool.close());

for (const config of CONFIGS) {
  t.test(config.name, async (t) => {
    const [single] = await pool.run({ dp: 1, cfg: 1, ulysses: 1, ring: 1 }, [config.request]);
    t.ok(single!.frames > 0, 'the single rank decodes frames');
    // A second request for the second replica: replicas serve different requests at once.
    const other = { ...config.request, seed: config.request.seed! as number + 100, prompt: 'a red fox in snow' };
    const [singleOther] = await pool.run({ dp: 1, cfg: 1, ulysses: 1, ring: 1 }, [other]);

    for (const layout of LAYOUTS) {
      const replicas = layout.degrees.dp;
      const results = await pool.run(layout.degrees, replicas === 2 ? [config.request, other] : [config.request]);
      const ranksPerReplica = results.length / replicas;
      results.forEach((r: RankResult, i) => {
        const ref = Math.floor(i / ranksPerReplica) === 0 ? single! : singleOther!;
        const err = relativeError(r.latents, ref.latents);
        t.ok(err <= TOLERANCE, `${layout.name}: rank ${r.rank} latents rel error ${err.toExponential(2)} <= ${TOLERANCE}`);
        const leader = i % ranksPerReplica === 0;
        if (leader) {
          const perr = relativeError(r.pixels, ref.pixels);
          t.ok(perr <= FRAMES_TOLERANCE, `${layout.name}: leader ${r.rank} frames rel error ${perr.toExponential(2)} <= ${FRAMES_TOLERANCE}`);
        } else {
          t.equal(r.frames, 0, `${layout.name}: rank ${r.rank} does not decode (VAE decode runs on the leader)`);
        }
        if (ranksPerReplica > 1) t.ok(r.bytesReceived > 0, `${layout.name}: rank ${r.rank} received data from its peers`);
      });
      if (replicas === 2) t.ok(relativeError(results[0]!.latents, results[1]!.latents) > 1e-3, '2 replicas: the replicas served different requests');
    }
  });
}
