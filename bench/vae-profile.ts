// Where the mid-size Wan VAE decode spends its time, per native function (bench:wan's VAE and job).
//   node --import @tapjs/typescript/import bench/vae-profile.ts [--threads N] [--frames N] [--shapes]
// --shapes adds the time of sgld_conv3d per layer shape (with GFLOP/s counted as torch counts: 2 * K per output)
// and of sgld_copy_strided per copy shape. SGLD_LIB_DIR picks another build of the library (A/B runs).
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
const shapes = args.includes('--shapes') ? profileShapes() : null;
const t0 = performance.now(), cpu0 = process.cpuUsage();
scoped(() => vae.decode(z)).free();
const cpu = process.cpuUsage(cpu0);
// CPU seconds (all threads) vary less than wall time when other processes share the cores.
console.log(`VAE decode of latent [${shape.join(', ')}] on ${threads} thread(s): ${((performance.now() - t0) / 1000).toFixed(2)} s` +
  ` (CPU ${((cpu.user + cpu.system) / 1e6).toFixed(2)} s)`);
console.log(profile.report());
if (shapes) console.log(shapes());

/** Wraps sgld_conv3d and sgld_copy_strided to sum their time per call shape; returns the report. */
function profileShapes(): () => string {
  const fns = device.lib.fns as unknown as Record<string, (...a: unknown[]) => unknown>;
  const rows = new Map<string, { calls: number; ms: number; flops: number }>();
  const timed = (name: string, key: (a: unknown[]) => [string, number]) => {
    const fn = fns[name]!;
    fns[name] = (...a: unknown[]) => {
      const t0 = performance.now();
      try { return fn(...a); } finally {
        const [k, flops] = key(a);
        const r = rows.get(k) ?? { calls: 0, ms: 0, flops: 0 };
        r.calls++;
        r.ms += performance.now() - t0;
        r.flops += flops;
        rows.set(k, r);
      }
    };
  };
  timed('sgld_conv3d', (a) => {
    const [n, cin, t, h, w, , cout, kt, kh, kw] = (a.slice(2, 12) as unknown[]).map(Number) as number[];
    const st = a[14] as Int32Array, p = a[15] as Int32Array;
    const to = Math.floor((t! + p[0]! + p[1]! - kt!) / st[0]!) + 1;
    const ho = Math.floor((h! + p[2]! + p[3]! - kh!) / st[1]!) + 1, wo = Math.floor((w! + p[4]! + p[5]! - kw!) / st[2]!) + 1;
    return [`conv ${cin}->${cout} k${kt}${kh}${kw} s${st[1]} ${h}x${w}`, 2 * n! * cout! * to * ho * wo * cin! * kt! * kh! * kw!];
  });
  timed('sgld_copy_strided', (a) => [`copy [${Array.from(a[2] as ArrayLike<number | bigint>).join(',')}]`, 0]);
  return () => [...rows.entries()].sort((x, y) => y[1].ms - x[1].ms)
    .map(([k, r]) => `${k.padEnd(44)} ${String(r.calls).padStart(5)} calls ${(r.ms / 1000).toFixed(3).padStart(8)} s` +
      (r.flops ? ` ${(r.flops / r.ms / 1e6).toFixed(0).padStart(5)} GFLOP/s` : ''))
    .join('\n');
}
