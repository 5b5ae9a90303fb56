// Parallel layouts on CPU ranks: the denoise-step time (one CFG step of the mid-size Wan transformer of
// ../shared/benchmarks.md, random weights) for 1, 2 and 4 ranks, and the bytes each kind of process group moved
// into rank 0 per step beside the volume docs/parallelism.md's formulas predict.
//   npm run bench:parallel [-- --steps N] [-- --threads N (cores shared by all ranks, default 2)]
import { cpus } from 'node:os';
import { Worker } from 'node:worker_threads';
import { balancedSplit } from '../src/parallel/sequence-parallel.js';
import { type LayoutDegrees, buildTopologies, worldSize } from '../src/parallel/topology.js';
import type { BenchRankJob, BenchRankReply } from './parallel-rank.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? Number(args[i + 1]) : fallback;
};
const steps = flag('steps', 2);
const cores = flag('threads', 2);

// benchmarks.md's mid-size Wan transformer: 12 heads x 64 (dim 768), 8 layers, ffn 3072; 256x256, 17 frames
// (latent [1, 16, 5, 32, 32] -> 5 x 16 x 16 = 1280 tokens), 128 text rows.
const TRANSFORMER = {
  _class_name: 'WanTransformer3DModel', patch_size: [1, 2, 2], num_attention_heads: 12, attention_head_dim: 64,
  in_channels: 16, out_channels: 16, text_dim: 256, freq_dim: 256, ffn_dim: 3072, num_layers: 8,
  cross_attn_norm: true, qk_norm: 'rms_norm_across_heads', eps: 1e-6, image_dim: null, added_kv_proj_dim: null,
  rope_max_seq_len: 1024, pos_embed_seq_len: null,
};
const LATENT = [1, 16, 5, 32, 32];
const TEXT_ROWS = 128;

const LAYOUTS: { name: string; degrees: LayoutDegrees }[] = [
  { name: '1 rank', degrees: { dp: 1, cfg: 1, ulysses: 1, ring: 1 } },
  { name: 'ulysses 2', degrees: { dp: 1, cfg: 1, ulysses: 2, ring: 1 } },
  { name: 'ring 2', degrees: { dp: 1, cfg: 1, ulysses: 1, ring: 2 } },
  { name: 'cfg 2', degrees: { dp: 1, cfg: 2, ulysses: 1, ring: 1 } },
  { name: 'ulysses 2 x ring 2', degrees: { dp: 1, cfg: 1, ulysses: 2, ring: 2 } },
  { name: 'cfg 2 x ulysses 2', degrees: { dp: 1, cfg: 2, ulysses: 2, ring: 1 } },
  { name: 'ulysses 4', degrees: { dp: 1, cfg: 1, ulysses: 4, ring: 1 } },
];

/** Bytes rank 0 should receive per CFG step from each kind of group (docs/parallelism.md, "Volumes"). */
export function expectedBytes(d: LayoutDegrees): Record<string, number> {
  const E = 4; // fp32
  const H = TRANSFORMER.num_attention_heads, D = TRANSFORMER.attention_head_dim, layers = TRANSFORMER.num_layers;
  const [, C, F, Hh, Ww] = LATENT as [number, number, number, number, number];
  const S = F * (Hh / 2) * (Ww / 2);
  const batch = d.cfg === 2 ? 1 : 2;
  const sp = d.ulysses * d.ring;
  const shards = balancedSplit(S, sp);
  const heads = balancedSplit(H, d.ulysses);
  const group = shards.slice(0, d.ulysses); // rank 0's Ulysses group: sp ranks 0..u-1
  const blocks = Array.from({ length: d.ring }, (_, r) => shards.slice(r * d.ulysses, (r + 1) * d.ulysses).reduce((a, b) => a + b, 0));
  const others = (xs: number[]): number => xs.slice(1).reduce((a, b) => a + b, 0);
  // Ulysses: q, k, v in (peers' tokens x my heads), out back (my tokens x peers' heads), per layer.
  const ulysses = d.ulysses === 1 ? 0 : layers * batch * E * D * (3 * heads[0]! * others(group) + group[0]! * (H - heads[0]!));
  // Ring: every other block's K and V once, for my heads, per layer.
  const ring = d.ring === 1 ? 0 : layers * batch * E * D * 2 * heads[0]! * others(blocks);
  // Sequence gather before unpatchify: every other shard's proj_out rows (out_channels x patch volume).
  const sp0 = sp === 1 ? 0 : batch * E * (S - shards[0]!) * C * 1 * 2 * 2;
  // CFG: the other branch's prediction.
  const cfg = d.cfg === 1 ? 0 : E * C * F * Hh * Ww;
  return { replica: 0, cfg, sp: sp0, ulysses, ring };
}

async function runLayout(degrees: LayoutDegrees): Promise<BenchRankReply[]> {
  const n = worldSize(degrees);
  const threads = Math.max(1, Math.floor(cores / n));
  const spin = n > cpus().length ? 0 : 1000;
  return Promise.all(buildTopologies(degrees).map((topology) => new Promise<BenchRankReply>((resolve, reject) => {
    const job: BenchRankJob = { topology, threads, spin, transformer: TRANSFORMER, latentShape: LATENT, textRows: TEXT_ROWS, steps };
    const w = new Worker(new URL('./parallel-rank.ts', import.meta.url), { workerData: job });
    w.once('message', resolve);
    w.once('error', reject);
  })));
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const mib = (b: number): string => (b / 2 ** 20).toFixed(2);

console.log(`sgld bench:parallel — CPU ranks (worker threads, shm collectives), ${cores} cores shared by all ranks, fp32, random weights`);
console.log(`mid-size Wan transformer (dim 768, 12 heads, 8 layers), latent [${LATENT.join(', ')}] = 1280 tokens, one CFG step = cond + uncond; median of ${steps}`);
const rows: string[][] = [['layout', 'ranks', 'threads/rank', 'step s', 'vs 1 rank', 'ulysses MiB (expected)', 'ring MiB (expected)', 'sp gather MiB (expected)', 'cfg MiB (expected)']];
let base = 0;
for (const layout of LAYOUTS) {
  const replies = await runLayout(layout.degrees);
  const step = Math.max(...replies.map((r) => median(r.stepSeconds)));
  if (base === 0) base = step;
  const rank0 = replies.find((r) => r.rank === 0)!.bytesPerStep;
  const want = expectedBytes(layout.degrees);
  const col = (k: string): string => `${mib(rank0[k]!)} (${mib(want[k]!)})`;
  const n = worldSize(layout.degrees);
  rows.push([layout.name, String(n), String(Math.max(1, Math.floor(cores / n))), step.toFixed(2), `${(base / step).toFixed(2)}x`, col('ulysses'), col('ring'), col('sp'), col('cfg')]);
  console.log(`  ${layout.name}: ${step.toFixed(2)} s`);
}
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const [i, r] of rows.entries()) {
  console.log(`| ${r.map((c, j) => c.padEnd(widths[j]!)).join(' | ')} |`);
  if (i === 0) console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
}
