// Z-Image mid-size CPU benchmark: one denoise step of ZImagePipeline (Turbo: no CFG; and with CFG) on a mid-size
// ZImageTransformer2DModel, and a 512x512 decode with the real-size AutoencoderKL, CPU backend, fp32, random
// weights. Prints seconds and achieved GFLOP/s (GEMM, convolution and attention FLOPs counted from the configs;
// norms, RoPE and elementwise work are not counted, so GFLOP/s slightly understates the work done).
//   npm run bench:zimage [-- --threads N] [-- --quick]        --quick skips the VAE row
import { AutoencoderKL, parseAutoencoderKLConfig, type AutoencoderKLConfig } from '../src/models/autoencoder-kl/index.js';
import { RandomWeightSource } from '../src/models/random-weights.js';
import { ZImageTransformer2DModel } from '../src/models/zimage/transformer.js';
import type { ZImageTransformerConfig } from '../src/models/zimage/transformer-config.js';
import { planBatchLayout } from '../src/models/zimage/transformer-sequence.js';
import { ZImagePipeline } from '../src/pipelines/zimage/pipeline.js';
import { CancelledError } from '../src/pipelines/types.js';
import { Device } from '../src/runtime/device.js';
import { fromFloat32 } from '../src/runtime/ops.js';
import { TorchGenerator } from '../src/runtime/random.js';
import { scoped } from '../src/runtime/tensor.js';

const args = process.argv.slice(2);
const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
const quick = args.includes('--quick');

// Mid-size transformer, scaled from Z-Image-Turbo's (dim 3840, 30 heads x 128, 30 layers, 2 + 2 refiner layers,
// cap_feat_dim 2560, axes_dims [32, 48, 48]; shared/fixtures/zimage-tiny/manifest.json real_model_mirrored) to the
// width of the Wan mid-size benchmark: 12 heads x 64 (dim 768, SwiGLU hidden int(768 / 3 * 8) = 2048), 8 layers,
// 2 + 2 refiner layers, caption features 256 wide, RoPE axes halved with the head dim.
const TRANSFORMER = {
  _class_name: 'ZImageTransformer2DModel', all_patch_size: [2], all_f_patch_size: [1], in_channels: 16,
  dim: 768, n_layers: 8, n_refiner_layers: 2, n_heads: 12, n_kv_heads: 12, norm_eps: 1e-5, qk_norm: true,
  cap_feat_dim: 256, rope_theta: 256.0, t_scale: 1000.0, axes_dims: [16, 24, 24], axes_lens: [1536, 512, 512],
};
// The real-size VAE of Z-Image-Turbo (FLUX's AutoencoderKL; manifest.json real_model_mirrored.vae).
const VAE = {
  _class_name: 'AutoencoderKL', in_channels: 3, out_channels: 3, block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
  layers_per_block: 2, latent_channels: 16, norm_num_groups: 32, act_fn: 'silu', scaling_factor: 0.3611,
  shift_factor: 0.1159, use_quant_conv: false, use_post_quant_conv: false, mid_block_add_attention: true,
  force_upcast: true, sample_size: 1024,
};
// Z-Image-Turbo's scheduler (the tiny fixture's scheduler_config.json, which mirrors the real one).
const SCHEDULER = {
  _class_name: 'FlowMatchEulerDiscreteScheduler', num_train_timesteps: 1000, shift: 3.0, use_dynamic_shifting: false,
  base_image_seq_len: 256, max_image_seq_len: 4096, base_shift: 0.5, max_shift: 1.15, invert_sigmas: false,
  shift_terminal: null, stochastic_sampling: false, time_shift_type: 'exponential', use_beta_sigmas: false,
  use_exponential_sigmas: false, use_karras_sigmas: false,
};
// Job: 512x512 -> latent [1, 16, 64, 64] -> 32x32 = 1024 image tokens; 128 caption rows; CFG row at guidance 4.0.
const JOB = { width: 512, height: 512, captionRows: 128, guidance: 4.0 };

function seconds<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const r = fn();
  return [r, (performance.now() - t0) / 1000];
}

/** GEMM + attention FLOPs of one transformer forward over `batch` identical items (multiply-add = 2). */
function transformerFlops(c: ZImageTransformerConfig, latent: number[], captionRows: number, batch: number): number {
  const layout = planBatchLayout([latent], [captionRows], 2, 1);
  const it = layout.items[0]!;
  const patchDim = 2 * 2 * c.inChannels;
  // A block over S tokens: q, k, v, out (dim x dim), SwiGLU w1, w3 (dim -> hidden), w2 (hidden -> dim),
  // attention scores and values (2 S^2 dim each), plus its adaLN Linear once per item when modulated.
  const block = (S: number, modulated: boolean): number =>
    2 * S * (4 * c.dim * c.dim + 3 * c.dim * c.ffnHidden) + 4 * S * S * c.dim + (modulated ? 2 * c.adalnDim * 4 * c.dim : 0);
  const perItem =
    2 * it.imageLength * patchDim * c.dim // all_x_embedder
    + 2 * it.captionLength * c.capFeatDim * c.dim // cap_embedder
    + c.numRefinerLayers * (block(it.imageLength, true) + block(it.captionLength, false))
    + c.numLayers * block(it.imageLength + it.captionLength, true)
    + 2 * c.adalnDim * c.dim + 2 * it.imageTokens * c.dim * patchDim; // final layer
  return batch * perItem;
}

/** Convolution + attention FLOPs of AutoencoderKL's decoder on latents [1, C, h, w] (walks the same structure). */
function vaeDecodeFlops(c: AutoencoderKLConfig, h: number, w: number): number {
  const conv = (cin: number, cout: number, k: number, px: number): number => 2 * px * cin * cout * k * k;
  const resnet = (cin: number, cout: number, px: number): number =>
    conv(cin, cout, 3, px) + conv(cout, cout, 3, px) + (cin !== cout ? conv(cin, cout, 1, px) : 0);
  const widths = [...c.blockOutChannels].reverse();
  let px = h * w;
  let flops = conv(c.latentChannels, widths[0]!, 3, px);
  // Mid block: resnet, single-head attention over all positions (q, k, v, out projections + scores + values), resnet.
  flops += 2 * resnet(widths[0]!, widths[0]!, px);
  if (c.midBlockAddAttention) flops += 4 * 2 * px * widths[0]! * widths[0]! + 4 * px * px * widths[0]!;
  let cin = widths[0]!;
  widths.forEach((cout, i) => {
    for (let r = 0; r < c.layersPerBlock + 1; r++) flops += resnet(r === 0 ? cin : cout, cout, px);
    if (i < widths.length - 1) { px *= 4; flops += conv(cout, cout, 3, px); } // nearest x2, then conv
    cin = cout;
  });
  return flops + conv(cin, c.outChannels, 3, px);
}

const device = new Device({ backend: 'cpu', threads });
const source = new RandomWeightSource(7);
console.log(`sgld bench:zimage — CPU backend, ${threads} thread(s), fp32, random weights${quick ? ' (quick: VAE row skipped)' : ''}`);
const [transformer, loadT] = seconds(() => new ZImageTransformer2DModel(device, TRANSFORMER, source));
const [vae, loadV] = seconds(() => new AutoencoderKL(device, VAE, source));
console.log(`loaded transformer in ${loadT.toFixed(2)} s, VAE in ${loadV.toFixed(2)} s`);
const pipe = new ZImagePipeline({ device, transformer, vae, schedulerConfig: SCHEDULER });

const capShape = [JOB.captionRows, TRANSFORMER.cap_feat_dim];
const caption = (seed: number) => fromFloat32(device, new TorchGenerator(seed).randn(capShape), capShape);
const cond = caption(2), uncond = caption(3);

/**
 * One denoise step as ZImagePipeline.generate runs it (latents upload, transformer over the batch, guidance,
 * Euler step): a 1-step request whose job is cancelled right after the step, so the VAE decode is not paid here.
 */
async function denoiseStep(guidanceScale: number): Promise<number> {
  const abort = new AbortController();
  const t0 = performance.now();
  try {
    await pipe.generate(
      { prompt: '', width: JOB.width, height: JOB.height, numInferenceSteps: 1, guidanceScale, seed: 1 },
      { promptEmbeds: [cond], negativePromptEmbeds: [uncond], signal: abort.signal, onStepTensors: () => abort.abort() },
    );
  } catch (e) {
    if (!(e instanceof CancelledError)) throw e;
    return (performance.now() - t0) / 1000;
  }
  throw new Error('bench: the pipeline did not stop after the denoise step');
}

const latent = [TRANSFORMER.in_channels, 1, JOB.height / 8, JOB.width / 8];
const forwardFlops = transformerFlops(transformer.config, latent, JOB.captionRows, 1);
await denoiseStep(0); // warm-up: allocator pools, RoPE tables
let turbo = Infinity, cfg = Infinity;
for (let i = 0; i < 2; i++) turbo = Math.min(turbo, await denoiseStep(0));
for (let i = 0; i < 2; i++) cfg = Math.min(cfg, await denoiseStep(JOB.guidance));

let vaeTime = NaN;
const vaeFlops = vaeDecodeFlops(parseAutoencoderKLConfig(VAE), JOB.height / 8, JOB.width / 8);
if (!quick) {
  const zShape = [1, 16, JOB.height / 8, JOB.width / 8];
  const z = fromFloat32(device, new TorchGenerator(4).randn(zShape), zShape);
  vaeTime = seconds(() => scoped(() => vae.decode(z)).free())[1];
  z.free();
}

const rows: [string, number, number][] = [
  [`one denoise step, Turbo (no CFG: 1 forward, batch 1)`, turbo, forwardFlops],
  [`one denoise step, CFG ${JOB.guidance} (1 forward, batch 2)`, cfg, 2 * forwardFlops],
  [`VAE decode ${JOB.width}x${JOB.height} (real-size AutoencoderKL)`, vaeTime, vaeFlops],
];
const layout = planBatchLayout([latent], [JOB.captionRows], 2, 1).items[0]!;
console.log(`job: ${JOB.width}x${JOB.height}, latent [1, ${latent[0]}, ${latent[2]}, ${latent[3]}] -> ${layout.imageTokens} image tokens + ${layout.captionLength} caption rows`);
console.log('');
console.log('| row | seconds | GFLOP | GFLOP/s |');
console.log('|---|---:|---:|---:|');
for (const [name, s, flops] of rows) {
  const skipped = Number.isNaN(s);
  console.log(`| ${name} | ${skipped ? 'skipped' : s.toFixed(2)} | ${(flops / 1e9).toFixed(1)} | ${skipped ? '-' : (flops / 1e9 / s).toFixed(1)} |`);
}
const stats = device.memoryStats();
console.log(`\npeak device memory ${(stats.peak / 2 ** 20).toFixed(0)} MiB`);
cond.free(); uncond.free();
pipe.dispose();
device.close();
