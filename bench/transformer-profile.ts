// Where one mid-size Wan transformer forward (bench:wan's model and job) spends its time, per native function.
//   node --import @tapjs/typescript/import bench/transformer-profile.ts [--threads N]
import { RandomWeightSource } from '../src/models/random-weights.js';
import { WanTransformer3DModel } from '../src/models/wan/transformer.js';
import { Device } from '../src/runtime/device.js';
import { fromFloat32 } from '../src/runtime/ops.js';
import { TorchGenerator } from '../src/runtime/random.js';
import { scoped } from '../src/runtime/tensor.js';
import { profileNativeCalls } from './op-profile.js';

const args = process.argv.slice(2);
const threads = args.includes('--threads') ? Number(args[args.indexOf('--threads') + 1]) : 2;
const TRANSFORMER = {
  _class_name: 'WanTransformer3DModel', patch_size: [1, 2, 2], num_attention_heads: 12, attention_head_dim: 64,
  in_channels: 16, out_channels: 16, text_dim: 256, freq_dim: 256, ffn_dim: 3072, num_layers: 8,
  cross_attn_norm: true, qk_norm: 'rms_norm_across_heads', eps: 1e-6, image_dim: null, added_kv_proj_dim: null,
  rope_max_seq_len: 1024, pos_embed_seq_len: null,
};
const device = new Device({ threads });
const model = new WanTransformer3DModel(device, TRANSFORMER, new RandomWeightSource(7));
const shape = [1, 16, 5, 32, 32];
const latents = fromFloat32(device, new TorchGenerator(1).randn(shape), shape);
const text = fromFloat32(device, new TorchGenerator(2).randn([1, 128, 256]), [1, 128, 256]);
scoped(() => model.forward(latents, [999], text)).free(); // warm-up
const profile = profileNativeCalls(device.lib);
let best = Infinity;
for (let i = 0; i < 3; i++) {
  profile.reset();
  const t0 = performance.now();
  scoped(() => model.forward(latents, [999], text)).free();
  best = Math.min(best, (performance.now() - t0) / 1000);
}
console.log(`forward on ${threads} thread(s): best ${best.toFixed(3)} s (216 GFLOP: ${(216 / best).toFixed(0)} GFLOP/s)`);
console.log(profile.report());
