// AutoencoderKLWan (Wan2.1 video VAE, diffusers v0.36.0 autoencoders/autoencoder_kl_wan.py), built from the
// checkpoint's config.json and weights. decode() turns latents [B, 16, F, h, w] into video [B, 3, 1 + 4(F-1),
// 8h, 8w] in [-1, 1], one latent frame at a time (the layers at latent resolution four at a time); encode() turns video [B, 3, T, H, W] into the latent
// distribution's mean and log-variance, the first frame alone and then four frames at a time. Between chunks
// only the causal convolutions' cached frames and the growing output stay on the device, so memory does not
// grow with the frame count beyond the output itself.
import type { DiffusersModel } from '../../checkpoint/diffusers.js';
import type { Device } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import { add, cat, contiguous, div, empty, fromFloat32, mul, sub } from '../../runtime/ops.js';
import { Scope, type Tensor, copyInto, copyTo, scoped } from '../../runtime/tensor.js';
import { type WeightSource, WeightStore } from '../weights.js';
import { clamp } from './vae-clamp.js';
import { type WanVAEConfig, parseWanVAEConfig, videoFramesFor } from './vae-config.js';
import { WanDecoder } from './vae-decoder.js';
import { WanEncoder } from './vae-encoder.js';
import { FrameCache } from './vae-frame-cache.js';
import { CausalConv3d } from './vae-layers.js';

/** Frames per encoder chunk after the first frame (diffusers hard-codes 4, the temporal compression). */
const ENCODE_CHUNK_FRAMES = 4;
/**
 * Latent frames whose latent-resolution layers (WanDecoder.forwardLatentRes) run as one call after the first
 * frame. Diffusers decodes one latent frame at a time; the layers are causal, so batching them changes nothing
 * but the speed: a latent frame is few conv tiles (64 at 32x32), and four at once share each conv's weight
 * transform (a third of a one-frame call at 384 channels). The upsampled layers still run frame by frame, so
 * memory grows only by these small tensors.
 */
const DECODE_LATENT_BATCH = 4;
/** DiagonalGaussianDistribution clamps the log-variance to this range. */
const LOGVAR_MIN = -30;
const LOGVAR_MAX = 20;

/** Called after each decoded latent frame / encoded chunk with (done, total). */
export type VAEProgress = (done: number, total: number) => void;

export interface LatentDistribution { mean: Tensor; logvar: Tensor }

export interface AutoencoderKLWanOptions {
  /** Storage dtype of the weights (default: the device's compute dtype). */
  dtype?: DType;
  /** Where config.json came from, for error messages. */
  configName?: string;
}

export class AutoencoderKLWan {
  readonly config: WanVAEConfig;
  readonly weights: WeightStore;
  readonly encoder: WanEncoder;
  readonly quantConv: CausalConv3d;
  readonly postQuantConv: CausalConv3d;
  readonly decoder: WanDecoder;
  /** latents_mean and 1 / latents_std as [1, z_dim, 1, 1, 1] fp32-rounded like the pipeline's torch tensors. */
  readonly #latentsMean: Tensor;
  readonly #latentsInvStd: Tensor;
  /** Storage dtype of weights and activations; inputs in another dtype are converted chunk by chunk. */
  readonly dtype: DType;

  constructor(readonly device: Device, configJson: Record<string, unknown>, source: WeightSource, options: AutoencoderKLWanOptions = {}) {
    this.config = parseWanVAEConfig(configJson, options.configName);
    const z = this.config.zDim;
    this.dtype = options.dtype ?? device.computeDType;
    this.weights = new WeightStore(device, source, '', this.dtype);
    try {
      this.encoder = new WanEncoder(this.weights, this.config);
      this.quantConv = new CausalConv3d(this.weights, 'quant_conv', 2 * z, 2 * z, [1, 1, 1]);
      this.postQuantConv = new CausalConv3d(this.weights, 'post_quant_conv', z, z, [1, 1, 1]);
      this.decoder = new WanDecoder(this.weights, this.config);
    } catch (e) {
      this.weights.free();
      throw e;
    }
    try {
      requireAllUsed(source, this.weights);
    } catch (e) {
      this.decoder.free();
      this.weights.free();
      throw e;
    }
    // The pipeline builds 1 / torch.tensor(latents_std) in fp32 and multiplies (normalise) or divides (denormalise).
    const stat = (values: number[]): Tensor =>
      Scope.detach(fromFloat32(device, Float32Array.from(values), [1, z, 1, 1, 1], this.dtype));
    this.#latentsMean = stat(this.config.latentsMean);
    this.#latentsInvStd = stat(this.config.latentsStd.map((s) => 1 / Math.fround(s)));
  }

  /** The `vae` component of an opened Diffusers pipeline folder. */
  static fromDiffusers(device: Device, model: DiffusersModel, component = 'vae', options: AutoencoderKLWanOptions = {}): AutoencoderKLWan {
    const c = model.component(component);
    if (c.className !== 'AutoencoderKLWan') throw new Error(`sgld: component '${component}' is ${c.className}, not AutoencoderKLWan`);
    return new AutoencoderKLWan(device, c.config, model.weights(component), { configName: c.configPath, ...options });
  }

  /** Video frames that `latentFrames` latent frames decode to. */
  videoFrames(latentFrames: number): number { return videoFramesFor(this.config, latentFrames); }

  /** (mean - latents_mean) / latents_std per channel: what the pipelines feed the transformer. */
  normalizeLatents(mean: Tensor): Tensor {
    this.#checkLatents('normalizeLatents', mean);
    return scoped(() => mul(sub(this.#asOwnDType(mean), this.#latentsMean), this.#latentsInvStd));
  }

  /** z * latents_std + latents_mean per channel (as the pipeline: z / (1 / std) + mean): what decode() takes. */
  denormalizeLatents(z: Tensor): Tensor {
    this.#checkLatents('denormalizeLatents', z);
    return scoped(() => add(div(this.#asOwnDType(z), this.#latentsInvStd), this.#latentsMean));
  }

  /**
   * Decodes (denormalised) latents [B, z_dim, F, h, w] to video [B, out_channels, 1 + 4(F-1), 8h, 8w] clamped
   * to [-1, 1]. `onProgress` is called after each latent frame.
   */
  decode(latents: Tensor, onProgress?: VAEProgress): Tensor {
    this.#checkLatents('decode', latents);
    const [b, , f, h, w] = latents.shape as [number, number, number, number, number];
    const s = this.config.scaleFactorSpatial;
    const frames = this.videoFrames(f);
    const video = empty(this.device, [b, this.config.outChannels, frames, h * s, w * s]);
    const cache = new FrameCache();
    try {
      let at = 0;
      // The first latent frame alone (it decodes to a single frame), then up to DECODE_LATENT_BATCH at a time.
      for (let i = 0; i < f;) {
        const count = i === 0 ? 1 : Math.min(DECODE_LATENT_BATCH, f - i);
        scoped(() => {
          const zi = this.postQuantConv.forward(this.#frames(latents, i, i + count));
          const low = this.decoder.forwardLatentRes(zi, cache);
          const per = low.shape[2]! / count;
          if (!Number.isInteger(per)) throw new Error(`sgld: Wan VAE decoded ${count} latent frames to ${low.shape[2]} frames at latent resolution`);
          for (let j = 0; j < count; j++) {
            scoped(() => {
              const piece = count === 1 ? low : contiguous(low.slice(2, j * per, (j + 1) * per));
              const chunk = clamp(this.decoder.forwardUpsampled(piece, cache), -1, 1);
              const n = chunk.shape[2]!;
              const expected = i + j === 0 ? 1 : this.config.scaleFactorTemporal;
              if (n !== expected) throw new Error(`sgld: Wan VAE decoded latent frame ${i + j} to ${n} frames, expected ${expected}`);
              copyInto(video.slice(2, at, at + n), chunk);
              at += n;
            });
            onProgress?.(i + j + 1, f);
          }
        });
        i += count;
      }
    } catch (e) {
      video.free();
      throw e;
    } finally {
      cache.clear();
    }
    return video;
  }

  /**
   * Encodes video [B, in_channels, T, H, W] (values in [-1, 1]) to the latent distribution: mean and log-variance
   * (clamped to [-30, 20]), each [B, z_dim, 1 + (T-1)/4, H/8, W/8]. Like diffusers, frames beyond the last full
   * chunk of four are ignored. `onProgress` is called after each chunk.
   */
  encode(video: Tensor, onProgress?: VAEProgress): LatentDistribution {
    if (video.ndim !== 5 || video.shape[1] !== this.config.inChannels) {
      throw new Error(`sgld: Wan VAE encode expects video [B, ${this.config.inChannels}, T, H, W], got [${video.shape.join(', ')}]`);
    }
    const t = video.shape[2]!;
    const chunks = 1 + Math.floor((t - 1) / ENCODE_CHUNK_FRAMES);
    const cache = new FrameCache();
    const parts: Tensor[] = [];
    try {
      for (let i = 0; i < chunks; i++) {
        const [from, to] = i === 0 ? [0, 1] : [1 + ENCODE_CHUNK_FRAMES * (i - 1), 1 + ENCODE_CHUNK_FRAMES * i];
        // quant_conv is 1x1x1, so applying it per chunk equals applying it to the concatenation.
        parts.push(Scope.detach(scoped(() =>
          this.quantConv.forward(this.encoder.forward(this.#frames(video, from, to), cache)))));
        onProgress?.(i + 1, chunks);
      }
      cache.clear();
      return scoped(() => {
        const z = this.config.zDim;
        const moments = parts.length === 1 ? parts[0]! : cat(parts, 2);
        return {
          // A copy, never a view: with batch 1 the slice is dense and would share (and pin) the moments' storage.
          mean: copyTo(moments.slice(1, 0, z), moments.dtype),
          logvar: clamp(moments.slice(1, z, 2 * z), LOGVAR_MIN, LOGVAR_MAX),
        };
      });
    } finally {
      cache.clear();
      for (const p of parts) p.free();
    }
  }

  /** Releases the weights (the model is unusable afterwards). */
  free(): void {
    this.decoder.free();
    this.weights.free();
    this.#latentsMean.free();
    this.#latentsInvStd.free();
  }

  /** Frames [from, to) of x as a dense tensor in the model's dtype (a view when x already is one). */
  #frames(x: Tensor, from: number, to: number): Tensor {
    const s = x.slice(2, from, to);
    return s.dtype === this.dtype ? contiguous(s) : copyTo(s, this.dtype);
  }

  #asOwnDType(x: Tensor): Tensor {
    return x.dtype === this.dtype ? x : copyTo(x, this.dtype);
  }

  #checkLatents(op: string, z: Tensor): void {
    if (z.ndim !== 5 || z.shape[1] !== this.config.zDim) {
      throw new Error(`sgld: Wan VAE ${op} expects latents [B, ${this.config.zDim}, F, h, w], got [${z.shape.join(', ')}]`);
    }
  }
}

/** A checkpoint tensor no layer asked for means the config and the checkpoint disagree: say which. */
function requireAllUsed(source: WeightSource, store: WeightStore): void {
  const names = (source as { names?: () => string[] }).names?.();
  if (!names) return;
  const unused = names.filter((n) => !store.tensors.has(n));
  if (unused.length > 0) {
    const shown = unused.slice(0, 5).join(', ') + (unused.length > 5 ? `, ... (${unused.length} in all)` : '');
    throw new Error(`sgld: the Wan VAE checkpoint has tensors this config does not use: ${shown}`);
  }
}
