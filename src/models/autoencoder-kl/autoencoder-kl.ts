// AutoencoderKL, the 2-D image VAE of SD/SDXL/FLUX and Z-Image (diffusers v0.36.0 autoencoders/autoencoder_kl.py
// and vae.py), built from the checkpoint's config.json and weights. decode() turns latents [B, latent_channels,
// h, w] into images [B, out_channels, 8h, 8w] (for 4 stages) in about [-1, 1], unclamped; encode() turns images in
// [-1, 1] into the latent distribution's mean and log-variance. The pipeline-side latent normalisation
// (FLUX/Z-Image: z_model = (z_vae - shift_factor) * scaling_factor) is exposed as helpers, not applied here, as in
// diffusers. No tiling: the whole image goes through at once, with intermediates freed as soon as they are used.
import type { DiffusersModel } from '../../checkpoint/diffusers.js';
import type { Device } from '../../runtime/device.js';
import type { DType } from '../../runtime/dtype.js';
import { add, contiguous, conv2d, copyTo, div, full, mul, sub } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { clamp } from '../wan/vae-clamp.js';
import { type WeightSource, WeightStore } from '../weights.js';
import { type AutoencoderKLConfig, parseAutoencoderKLConfig } from './config.js';
import { Decoder } from './decoder.js';
import { Encoder } from './encoder.js';

/** DiagonalGaussianDistribution clamps the log-variance to this range (diffusers autoencoders/vae.py). */
export const LOGVAR_MIN = -30;
export const LOGVAR_MAX = 20;

export interface LatentDistribution { mean: Tensor; logvar: Tensor }

export interface AutoencoderKLOptions {
  /** Storage dtype of the weights and activations (default: the device's compute dtype). */
  dtype?: DType;
  /** Where config.json came from, for error messages. */
  configName?: string;
}

/** A 1x1 convolution over channels (quant_conv / post_quant_conv), weight [C, C, 1, 1]. */
interface PointwiseConv { weight: Tensor; bias: Tensor }

export class AutoencoderKL {
  readonly config: AutoencoderKLConfig;
  readonly weights: WeightStore;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quantConv: PointwiseConv | null;
  readonly postQuantConv: PointwiseConv | null;
  readonly dtype: DType;

  constructor(readonly device: Device, configJson: Record<string, unknown>, source: WeightSource, options: AutoencoderKLOptions = {}) {
    this.config = parseAutoencoderKLConfig(configJson, options.configName);
    this.dtype = options.dtype ?? device.computeDType;
    this.weights = new WeightStore(device, source, '', this.dtype);
    try {
      const z = this.config.latentChannels;
      const pointwise = (key: string, dim: number): PointwiseConv => ({
        weight: this.weights.get(`${key}.weight`, [dim, dim, 1, 1]),
        bias: this.weights.get(`${key}.bias`, [dim]),
      });
      this.encoder = new Encoder(this.weights, this.config);
      this.decoder = new Decoder(this.weights, this.config);
      this.quantConv = this.config.useQuantConv ? pointwise('quant_conv', 2 * z) : null;
      this.postQuantConv = this.config.usePostQuantConv ? pointwise('post_quant_conv', z) : null;
      requireAllUsed(source, this.weights);
    } catch (e) {
      this.weights.free();
      throw e;
    }
  }

  /** The `vae` component of an opened Diffusers pipeline folder. */
  static fromDiffusers(device: Device, model: DiffusersModel, component = 'vae', options: AutoencoderKLOptions = {}): AutoencoderKL {
    const c = model.component(component);
    if (c.className !== 'AutoencoderKL') throw new Error(`sgld: component '${component}' is ${c.className}, not AutoencoderKL`);
    return new AutoencoderKL(device, c.config, model.weights(component), { configName: c.configPath, ...options });
  }

  /** Image pixels per latent pixel along each axis (8 for four stages). */
  get scaleFactor(): number { return this.config.scaleFactor; }

  /**
   * (z - shift_factor) * scaling_factor: VAE latents to the transformer's latent space (what diffusers' img2img
   * pipelines do after encode). Elementwise in the latents' dtype, like the torch expression.
   */
  normalizeLatents(z: Tensor): Tensor {
    this.#checkLatents('normalizeLatents', z);
    const { scalingFactor, shiftFactor } = this.config;
    return scoped(() => mul(sub(z, this.#scalar(z, shiftFactor)), this.#scalar(z, scalingFactor)));
  }

  /** z / scaling_factor + shift_factor: the transformer's latents back to what decode() takes. */
  denormalizeLatents(z: Tensor): Tensor {
    this.#checkLatents('denormalizeLatents', z);
    const { scalingFactor, shiftFactor } = this.config;
    return scoped(() => add(div(z, this.#scalar(z, scalingFactor)), this.#scalar(z, shiftFactor)));
  }

  /** Decodes (denormalised) latents [B, latent_channels, h, w] to images [B, out_channels, h * f, w * f], unclamped. */
  decode(latents: Tensor): Tensor {
    this.#checkLatents('decode', latents);
    return scoped(() => {
      const z = this.#asOwnDType(latents);
      return this.decoder.forward(this.postQuantConv ? conv2d(z, this.postQuantConv.weight, this.postQuantConv.bias) : z);
    });
  }

  /**
   * Encodes images [B, in_channels, H, W] (values in [-1, 1]) to the latent distribution: mean and log-variance
   * (clamped to [-30, 20]), each [B, latent_channels, H / f, W / f].
   */
  encode(image: Tensor): LatentDistribution {
    if (image.ndim !== 4 || image.shape[1] !== this.config.inChannels) {
      throw new Error(`sgld: AutoencoderKL encode expects images [B, ${this.config.inChannels}, H, W], got [${image.shape.join(', ')}]`);
    }
    return scoped(() => {
      const h = this.encoder.forward(this.#asOwnDType(image));
      const moments = this.quantConv ? conv2d(h, this.quantConv.weight, this.quantConv.bias) : h;
      const z = this.config.latentChannels;
      return {
        // Copies, never views: a view would pin the whole moments tensor for as long as the mean lives.
        mean: copyTo(moments.slice(1, 0, z), moments.dtype),
        logvar: clamp(moments.slice(1, z, 2 * z), LOGVAR_MIN, LOGVAR_MAX),
      };
    });
  }

  /** Releases the weights (the model is unusable afterwards). */
  free(): void {
    this.weights.free();
  }

  /** A one-element tensor holding `value` in z's dtype, broadcast by the elementwise ops. */
  #scalar(z: Tensor, value: number): Tensor {
    return full(z.device, [1], value, z.dtype);
  }

  #asOwnDType(x: Tensor): Tensor {
    return x.dtype === this.dtype ? contiguous(x) : copyTo(x, this.dtype);
  }

  #checkLatents(op: string, z: Tensor): void {
    if (z.ndim !== 4 || z.shape[1] !== this.config.latentChannels) {
      throw new Error(`sgld: AutoencoderKL ${op} expects latents [B, ${this.config.latentChannels}, h, w], got [${z.shape.join(', ')}]`);
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
    throw new Error(`sgld: the AutoencoderKL checkpoint has tensors this config does not use: ${shown}`);
  }
}
