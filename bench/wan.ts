// Wan mid-size CPU benchmark: the workload of ../shared/benchmarks.md ("Wan, mid-size (CPU)"), timed on the CPU
// backend with 2 threads and random weights, printed beside the reference's figures (diffusers v0.36.0 on
// torch 1.13.1, float32, 2 threads, best environment).
//   npm run bench:wan [-- --threads N] [-- --quick]
import { readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { AutoencoderKLWan } from '../src/models/wan/vae.js';
import { WanTransformer3DModel } from '../src/models/wan/transformer.js';
import { RandomWeightSource } from '../src/models/random-weights.js';
import { WanPipeline } from '../src/pipelines/wan/pipeline.js';
import { Device } from '../src/runtime/device.js';
import { fromFloat32 } from '../src/runtime/ops.js';
import { TorchGenerator } from '../src/runtime/random.js';
import { type Tensor, scoped } from '../src/runtime/tensor.js';

const args = process.argv.slice(2);
const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
const quick = args.includes('--quick');

// benchmarks.md: 12 heads x 64 (dim 768), 8 layers, ffn 3072, freq_dim 256, patch (1,2,2),
// qk_norm rms_norm_across_heads, cross_attn_norm, text_dim 256 (128 text rows).
const TRANSFORMER = {
  _class_name: 'WanTransformer3DModel', patch_size: [1, 2, 2], num_attention_heads: 12, attention_head_dim: 64,
  in_channels: 16, out_channels: 16, text_dim: 256, freq_dim: 256, ffn_dim: 3072, num_layers: 8,
  cross_attn_norm: true, qk_norm: 'rms_norm_across_heads', eps: 1e-6, image_dim: null, added_kv_proj_dim: null,
  rope_max_seq_len: 1024, pos_embed_seq_len: null,
};
// The real-size AutoencoderKLWan (Wan2.1): base_dim 96, z_dim 16, dim_mult [1,2,4,4], 2 res blocks.
const VAE = {
  _class_name: 'AutoencoderKLWan', base_dim: 96, z_dim: 16, dim_mult: [1, 2, 4, 4], num_res_blocks: 2,
  attn_scales: [], temperal_downsample: [false, true, true], dropout: 0.0, is_residual: false,
  in_channels: 3, out_channels: 3, scale_factor_spatial: 8, scale_factor_temporal: 4, patch_size: null,
  decoder_base_dim: null,
  latents_mean: [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508, 0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921],
  latents_std: [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743, 3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916],
};
const SCHEDULER = {
  _class_name: 'UniPCMultistepScheduler', num_train_timesteps: 1000, solver_order: 2, prediction_type: 'flow_prediction',
  use_flow_sigmas: true, flow_shift: 3.0, solver_type: 'bh2', predict_x0: true, lower_order_final: true,
  final_sigmas_type: 'zero', disable_corrector: [], timestep_spacing: 'linspace', steps_offset: 0,
};
// Job: 256x256, 17 frames (latent [1,16,5,32,32] = 1280 tokens), 4 UniPC steps, guidance 5.0 with a negative prompt.
const JOB = { width: 256, height: 256, numFrames: 17, steps: 4, guidance: 5.0, textRows: 128 };
const REFERENCE = { forward: 1.29, step: 2.82, vae: 28.4, whole: 39.7 };

function time<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const r = fn();
  return [r, (performance.now() - t0) / 1000];
}

const device = new Device({ threads });
const source = new RandomWeightSource(7);
console.log(`sgld bench:wan — CPU backend, ${threads} thread(s), fp32, random weights${quick ? ' (quick: VAE rows skipped)' : ''}`);
const [transformer, loadT] = time(() => new WanTransformer3DModel(device, TRANSFORMER, source));
const [vae, loadV] = time(() => new AutoencoderKLWan(device, VAE, source));
console.log(`loaded transformer in ${loadT.toFixed(2)} s, VAE in ${loadV.toFixed(2)} s`);

const gen = new TorchGenerator(1);
const latentShape = [1, 16, 5, 32, 32];
const text = (seed: number): Tensor => fromFloat32(device, new TorchGenerator(seed).randn([1, JOB.textRows, 256]), [1, JOB.textRows, 256]);
const cond = text(2), uncond = text(3);
const latents = fromFloat32(device, gen.randn(latentShape), latentShape);

// One transformer forward (batch 1), best of 3 after a warm-up.
scoped(() => transformer.forward(latents, [999], cond)).free();
let forward = Infinity;
for (let i = 0; i < 3; i++) forward = Math.min(forward, time(() => scoped(() => transformer.forward(latents, [999], cond)).free())[1]);

// One denoise step with CFG, as the pipeline runs it (cond + uncond batched, guidance, UniPC step).
const pipe = new WanPipeline(undefined, device, device, undefined, undefined, transformer, vae, SCHEDULER, []);
const stepRun = async (steps: number, decode: boolean) => {
  const t0 = performance.now();
  let denoise = 0;
  if (decode) {
    const r = await pipe.generate({ prompt: '', height: JOB.height, width: JOB.width, numFrames: JOB.numFrames, numInferenceSteps: steps, guidanceScale: JOB.guidance, seed: 1 },
      { promptEmbeds: cond, negativePromptEmbeds: uncond });
    denoise = r.timings.denoiseMs / 1000;
    return { total: (performance.now() - t0) / 1000, denoise, decode: r.timings.decodeMs / 1000 };
  }
  return { total: 0, denoise, decode: 0 };
};

// Denoise step time: run the loop without decoding by timing the transformer batch + scheduler directly.
const { createScheduler } = await import('../src/schedulers/index.js');
const { cat } = await import('../src/runtime/ops.js');
const both = cat([cond, uncond], 0);
const sched = createScheduler(SCHEDULER);
sched.setTimesteps(JOB.steps);
let host = gen.randn(latentShape);
let step = Infinity;
for (let i = 0; i < 2; i++) {
  const [, s] = time(() => {
    const pred = scoped(() => {
      const x = fromFloat32(device, host, latentShape);
      return transformer.forward(cat([x, x], 0), [sched.timesteps[i]!, sched.timesteps[i]!], both);
    });
    const p = pred.toFloat32Array();
    pred.free();
    const n = host.length, out = new Float32Array(n);
    for (let j = 0; j < n; j++) out[j] = p[n + j]! + JOB.guidance * (p[j]! - p[n + j]!);
    host = sched.step(out, sched.timesteps[i]!, host);
  });
  step = Math.min(step, s);
}

let vaeTime = NaN, whole = NaN;
if (!quick) {
  const z = fromFloat32(device, gen.randn(latentShape), latentShape);
  vaeTime = time(() => scoped(() => vae.decode(z)).free())[1];
  const run = await stepRun(JOB.steps, true);
  whole = run.total;
  console.log(`whole call: denoise ${run.denoise.toFixed(2)} s (${JOB.steps} steps), decode ${run.decode.toFixed(2)} s, the rest ${(run.total - run.denoise - run.decode).toFixed(2)} s`);
}

const rows: [string, number, number][] = [
  ['one transformer forward', forward, REFERENCE.forward],
  ['one denoise step (CFG: 2 forwards + scheduler)', step, REFERENCE.step],
  ['VAE decode of the 17 frames', vaeTime, REFERENCE.vae],
  ['whole pipeline call, load excluded', whole, REFERENCE.whole],
];
console.log('');
console.log(`| row | sgld (s) | reference (s) | speed-up |`);
console.log(`|---|---:|---:|---:|`);
for (const [name, ours, ref] of rows) {
  const o = Number.isNaN(ours) ? 'skipped' : ours.toFixed(2);
  const x = Number.isNaN(ours) ? '-' : `${(ref / ours).toFixed(2)}x`;
  console.log(`| ${name} | ${o} | ${ref.toFixed(2)} | ${x} |`);
}
const stats = device.memoryStats();
console.log(`\npeak device memory ${(stats.peak / 2 ** 20).toFixed(0)} MiB`);
// The reference's figures come from a 2-core Zen 5 with AVX-512 (../shared/benchmarks.md); say what this machine
// is, so a reader can tell whether the comparison is like for like (docs/benchmarks.md has the reference run on
// the development machine side by side with this bench).
const flags = (() => { try { return readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; } })();
const isa = /\bavx512f\b/.test(flags) ? 'AVX-512' : /\bavx2\b/.test(flags) ? 'AVX2 (no AVX-512)' : 'no AVX2';
console.log(`this machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} cores, ${isa}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
console.log('reference figures: diffusers v0.36.0 / torch 1.13.1 on a 2-core Zen 5 with AVX-512; the same reference run on a 2-core Zen 3 (AVX2) is in docs/benchmarks.md');
both.free(); cond.free(); uncond.free(); latents.free();
pipe.dispose();
device.close();
