// Where one mid-size Wan transformer forward (bench:wan's model and job) spends its time, per native function:
// the per-function table of the fastest of N forwards (the least disturbed by other work on the machine).
//   node --import @tapjs/typescript/import bench/transformer-profile.ts [--threads N] [--forwards N] [--batch 2]
// --batch 2 runs the CFG shape (cond + uncond as one batch, one timestep for both).
import { loadavg } from 'node:os';
import { RandomWeightSource } from '../src/models/random-weights.js';
import { WanTransformer3DModel } from '../src/models/wan/transformer.js';
import { Device } from '../src/runtime/device.js';
import { cat, fromFloat32 } from '../src/runtime/ops.js';
import { TorchGenerator } from '../src/runtime/random.js';
import { scoped } from '../src/runtime/tensor.js';
import { profileNativeCalls } from './op-profile.js';

const args = process.argv.slice(2);
const option = (name: string, fallback: number): number => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const threads = option('--threads', 2), forwards = option('--forwards', 3), batch = option('--batch', 1);
const TRANSFORMER = {
  _class_name: 'WanTransformer3DModel', patch_size: [1, 2, 2], num_attention_heads: 12, attention_head_dim: 64,
  in_channels: 16, out_channels: 16, text_dim: 256, freq_dim: 256, ffn_dim: 3072, num_layers: 8,
  cross_attn_norm: true, qk_norm: 'rms_norm_across_heads', eps: 1e-6, image_dim: null, added_kv_proj_dim: null,
  rope_max_seq_len: 1024, pos_embed_seq_len: null,
};
const device = new Device({ threads });
const model = new WanTransformer3DModel(device, TRANSFORMER, new RandomWeightSource(7));
const shape = [1, 16, 5, 32, 32];
const one = fromFloat32(device, new TorchGenerator(1).randn(shape), shape);
const oneText = fromFloat32(device, new TorchGenerator(2).randn([1, 128, 256]), [1, 128, 256]);
const latents = batch === 1 ? one : cat(Array(batch).fill(one), 0);
const text = batch === 1 ? oneText : cat(Array(batch).fill(oneText), 0);
const steps = Array(batch).fill(999);
const loadBefore = loadavg();
scoped(() => model.forward(latents, steps, text)).free(); // warm-up
const profile = profileNativeCalls(device.lib);
let best = Infinity, bestReport = '';
for (let i = 0; i < forwards; i++) {
  profile.reset();
  const t0 = performance.now();
  scoped(() => model.forward(latents, steps, text)).free();
  const s = (performance.now() - t0) / 1000;
  if (s < best) { best = s; bestReport = profile.report(); }
}
const gflop = 216 * batch;
console.log(`forward (batch ${batch}) on ${threads} thread(s): best of ${forwards} ${best.toFixed(3)} s (${gflop} GFLOP: ${(gflop / best).toFixed(0)} GFLOP/s); load average before ${loadBefore.map((l) => l.toFixed(2)).join(', ')}`);
console.log(bestReport);
