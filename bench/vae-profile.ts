// Where the mid-size Wan VAE decode spends its time, per native function (bench:wan's VAE and job).
//   node --import @tapjs/typescript/import bench/vae-profile.ts [--threads N] [--frames N]
import { AutoencoderKLWan } from '../src/models/wan/vae.js';
import { RandomWeightSource } from '../src/models/random-weights.js';
import { Device } from '../src/runtime/device.js';
import { fromFloat32 } from '../src/runtime/ops.js';
import { TorchGenerator } from '../src/runtime/random.js';
import { scoped } from '../src/runtime/tensor.js';
import { profileNativeCalls } from './op-profile.js';

const args = process.argv.slice(2);
const flag = (name: string, fallback: number): number => (args.includes(`--${name}`) ? Number(args[args.indexOf(`--${name}`) + 1]) : fallback);
const threads = flag('threads', 2), frames = flag('frames', 5);
const VAE = {
  _class_name: 'AutoencoderKLWan', base_dim: 96, z_dim: 16, dim_mult: [1, 2, 4, 4], num_res_blocks: 2,
  attn_scales: [], temperal_downsample: [false, true, true], dropout: 0.0, is_residual: false,
  in_channels: 3, out_channels: 3, scale_factor_spatial: 8, scale_factor_temporal: 4, patch_size: null, decoder_base_dim: null,
  latents_mean: new Array(16).fill(0), latents_std: new Array(16).fill(1),
};
const device = new Device({ threads });
const vae = new AutoencoderKLWan(device, VAE, new RandomWeightSource(7));
const shape = [1, 16, frames, 32, 32];
const z = fromFloat32(device, new TorchGenerator(1).randn(shape), shape);
const profile = profileNativeCalls(device.lib);
const t0 = performance.now();
scoped(() => vae.decode(z)).free();
console.log(`VAE decode of latent [${shape.join(', ')}] on ${threads} thread(s): ${((performance.now() - t0) / 1000).toFixed(2)} s`);
console.log(profile.report());
