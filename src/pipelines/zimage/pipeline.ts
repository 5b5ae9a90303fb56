// ZImagePipeline: prompt -> Qwen3 chat template -> Qwen3 hidden states (the second-to-last layer, prompt rows
// only) -> flow-matching denoising with the Z-Image transformer's list API (CFG with truncation and
// renormalisation) -> AutoencoderKL decode -> RGB images. Mirrors diffusers v0.36.0 ZImagePipeline.__call__ step
// for step (the golden `pipeline/*` cases prove it), and ZImageImg2ImgPipeline when the request has an input
// image. Progress is reported per step and an AbortSignal cancels between steps.
import { type DiffusersModel, openDiffusersModel } from '../../checkpoint/diffusers.js';
import { AutoencoderKL } from '../../models/autoencoder-kl/index.js';
import { type Qwen3Model, encodeZImagePrompt, qwen3ModelFrom } from '../../models/qwen3/index.js';
import { type ZImageTransformer2DModel, zImageTransformerFrom } from '../../models/zimage/transformer.js';
import { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import { TorchGenerator } from '../../runtime/random.js';
import { Scope, type Tensor } from '../../runtime/tensor.js';
import { FlowMatchEulerDiscreteScheduler, calculateShift, createScheduler } from '../../schedulers/index.js';
import { checkChatMlTemplate, zImagePromptText } from '../../text/chat-template.js';
import { TextTokenizer } from '../../text/tokenizer.js';
import { type FloatFrames, type ProgressCallback, throwIfAborted } from '../types.js';
import { guidanceAt, guidedPrediction, normalizedTimestep } from './guidance.js';
import {
  img2imgStartIndex, normalizeImageLatents, pixelsToVaeInput, sampleDistribution,
} from './image-latents.js';
import {
  type NormalisedZImageRequest, type ZImageGenerateRequest, ZImageRequestError, normaliseZImageRequest,
} from './request.js';

/**
 * What the pipeline uses of ZImageTransformer2DModel: its latent channel count and the list API, one output
 * [C, 1, h, w] per latent item [C, 1, h, w], normalised time and caption features [L_i, cap_dim].
 */
export type ZImageDenoiser = Pick<ZImageTransformer2DModel, 'forward' | 'free'> & { readonly config: { readonly inChannels: number } };

/** The transformer's spatial patch: ZImagePipeline calls it with the default patch_size=2 (and f_patch_size=1). */
const PATCH_SIZE = 2;

export interface ZImagePipelineOptions {
  /** Device for the transformer and the VAE (default: a CPU device with all cores). */
  device?: Device;
  /** Device for the text encoder (`--text-encoder-cpu-offload`); default: `device`. */
  textEncoderDevice?: Device;
}

export interface ZImageStepTensors {
  /** Raw transformer outputs per image, conditional branch ([C, 1, h, w] each). */
  pos: Float32Array[];
  /** Unconditional branch, only at steps where CFG ran. */
  neg?: Float32Array[];
  /** Latents after scheduler.step, [n, C, h, w]. */
  latents: Float32Array;
}

export interface ZImageGenerateOptions {
  /** Precomputed prompt embeddings, one [L, hidden] per prompt on the transformer's device (diffusers' prompt_embeds). */
  promptEmbeds?: Tensor[];
  /** Precomputed negative prompt embeddings; needed with promptEmbeds when CFG is on. */
  negativePromptEmbeds?: Tensor[];
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Per-step host copies for parity tests. */
  onStepTensors?: (step: number, t: ZImageStepTensors) => void;
}

export interface ZImageGenerateResult extends FloatFrames {
  request: NormalisedZImageRequest;
  /** Final latents before decoding, [n, C, h, w] row-major. */
  latents: Float32Array;
  /** The denoising timesteps actually run (image-to-image runs the tail of the schedule). */
  timesteps: number[];
  timings: { encodeMs: number; denoiseMs: number; decodeMs: number };
}

export interface ZImageComponents {
  /** The opened checkpoint folder (absent for pipelines assembled from components). */
  model?: DiffusersModel;
  device: Device;
  textDevice?: Device;
  /** Absent when the pipeline is only ever given prompt embeddings. */
  tokenizer?: TextTokenizer;
  textEncoder?: Qwen3Model;
  transformer: ZImageDenoiser;
  vae: AutoencoderKL;
  schedulerConfig: Record<string, unknown>;
  /** Devices the pipeline created and closes on dispose(). */
  ownedDevices?: Device[];
}

/** Runs fn in a scope that frees every device tensor it allocated; for work whose results are host copies. */
function hostScoped<T>(fn: () => T): T {
  const scope = Scope.open();
  try {
    return fn();
  } finally {
    scope.close();
  }
}

export class ZImagePipeline {
  readonly model?: DiffusersModel;
  readonly device: Device;
  readonly textDevice: Device;
  readonly tokenizer?: TextTokenizer;
  readonly textEncoder?: Qwen3Model;
  readonly transformer: ZImageDenoiser;
  readonly vae: AutoencoderKL;
  readonly schedulerConfig: Record<string, unknown>;
  readonly #ownedDevices: Device[];

  constructor(c: ZImageComponents) {
    this.model = c.model;
    this.device = c.device;
    this.textDevice = c.textDevice ?? c.device;
    this.tokenizer = c.tokenizer;
    this.textEncoder = c.textEncoder;
    this.transformer = c.transformer;
    this.vae = c.vae;
    this.schedulerConfig = c.schedulerConfig;
    this.#ownedDevices = c.ownedDevices ?? [];
    this.#newScheduler(); // validate now, not at the first request
    if (this.tokenizer) checkChatMlTemplate(this.tokenizer.chatTemplate, this.tokenizer.folder);
  }

  /** Loads a Z-Image Diffusers folder (model_index.json `ZImagePipeline`). */
  static load(dir: string, options: ZImagePipelineOptions = {}): ZImagePipeline {
    const model = openDiffusersModel(dir);
    const owned: Device[] = [];
    const loaded: { free(): void }[] = [];
    try {
      if (model.pipelineClass !== 'ZImagePipeline' && model.pipelineClass !== 'ZImageImg2ImgPipeline') {
        throw new Error(`sgld: ${dir} holds a ${model.pipelineClass}, not a ZImagePipeline`);
      }
      const device = options.device ?? (owned.push(new Device()), owned[owned.length - 1]!);
      const textDevice = options.textEncoderDevice ?? device;
      const tokenizer = TextTokenizer.load(model.component('tokenizer').dir);
      const textEncoder = qwen3ModelFrom(textDevice, model.component('text_encoder'));
      loaded.push(textEncoder);
      const transformer = zImageTransformerFrom(device, model.component('transformer'));
      loaded.push(transformer);
      const vae = AutoencoderKL.fromDiffusers(device, model);
      loaded.push(vae);
      return new ZImagePipeline({
        model, device, textDevice, tokenizer, textEncoder, transformer, vae,
        schedulerConfig: model.component('scheduler').config, ownedDevices: owned,
      });
    } catch (e) {
      for (const m of loaded) m.free();
      for (const d of owned) d.close();
      model.close();
      throw e;
    }
  }

  /** VAE/transformer geometry for request normalisation. */
  get geometry() {
    return { vaeScale: this.vae.scaleFactor, patch: PATCH_SIZE, latentChannels: this.transformer.config.inChannels };
  }

  /** Per prompt, its embeddings [L_i, hidden] (the chat-formatted prompt's tokens only) on the transformer's device. */
  encodePrompts(prompts: string[], maxSequenceLength: number): Tensor[] {
    if (!this.tokenizer || !this.textEncoder) throw new Error('sgld: this pipeline has no text encoder; pass prompt embeddings');
    const enc = this.tokenizer.encode(prompts.map((p) => zImagePromptText(p)), {
      maxLength: maxSequenceLength, padding: 'max_length', truncation: true, addSpecialTokens: true,
    });
    const embeds = encodeZImagePrompt(this.textEncoder, {
      ids: enc.inputIds.flat(), mask: enc.attentionMask.flat(), batch: prompts.length, length: maxSequenceLength,
    });
    if (this.textDevice === this.device) return embeds;
    // Text encoder offloaded to another device: move the (small) embeddings over through the host.
    return embeds.map((e) => {
      const host = e.toFloat32Array();
      const shape = [...e.shape];
      e.free();
      return fromFloat32(this.device, host, shape);
    });
  }

  /** Runs the whole pipeline for one request (image-to-image when it has an input image). */
  async generate(req: ZImageGenerateRequest, opts: ZImageGenerateOptions = {}): Promise<ZImageGenerateResult> {
    const r = normaliseZImageRequest(req, this.geometry);
    const t0 = performance.now();
    throwIfAborted(opts.signal);
    opts.onProgress?.({ phase: 'encoding_prompt', step: 0, total: 1, elapsed: 0 });
    const owned: Tensor[] = [];
    try {
      const { pos, neg } = this.#promptEmbeddings(r, opts, owned);
      const t1 = performance.now();
      const scheduler = this.#newScheduler();
      const [, , h, w] = r.latentShape;
      // diffusers: image_seq_len = (h // 2) * (w // 2), mu = calculate_shift(...) (ignored unless use_dynamic_shifting)
      const mu = calculateShift(Math.floor(h / 2) * Math.floor(w / 2), scheduler.config.shiftLine);
      scheduler.sigmaMin = 0;
      scheduler.setTimesteps(r.sigmas ? null : r.numInferenceSteps, { mu, sigmas: r.sigmas });
      let timesteps = Array.from(scheduler.timesteps);
      let latents: Float32Array;
      if (r.image) {
        const start = img2imgStartIndex(timesteps.length, r.strength);
        if (timesteps.length - start < 1) {
          throw new ZImageRequestError('strength', `strength ${r.strength} leaves no denoising step of ${timesteps.length}`);
        }
        timesteps = timesteps.slice(start * scheduler.order);
        scheduler.setBeginIndex(start * scheduler.order);
        latents = r.latents ? Float32Array.from(r.latents) : this.#noisedImageLatents(r, scheduler, timesteps[0]!);
      } else {
        latents = r.latents ? Float32Array.from(r.latents) : new TorchGenerator(r.seed).randn(r.latentShape);
      }
      latents = await this.#denoise(r, scheduler, timesteps, latents, pos, neg, opts, t1);
      const t2 = performance.now();
      throwIfAborted(opts.signal);
      const images = this.decode(latents, r.latentShape, opts.onProgress);
      const t3 = performance.now();
      return { ...images, request: r, latents, timesteps, timings: { encodeMs: t1 - t0, denoiseMs: t2 - t1, decodeMs: t3 - t2 } };
    } finally {
      for (const t of owned) t.free();
    }
  }

  /** The denoising loop; returns the final latents. */
  async #denoise(r: NormalisedZImageRequest, scheduler: FlowMatchEulerDiscreteScheduler, timesteps: number[],
    start: Float32Array, pos: Tensor[], neg: Tensor[], opts: ZImageGenerateOptions, t1: number): Promise<Float32Array> {
    const [n, c, h, w] = r.latentShape;
    const per = c * h * w;
    let latents = start;
    const noisePred = new Float32Array(n * per);
    for (let i = 0; i < timesteps.length; i++) {
      throwIfAborted(opts.signal);
      const t = timesteps[i]!;
      const tNorm = normalizedTimestep(t);
      const g = guidanceAt(r, tNorm);
      const applyCfg = g > 0;
      const outs = this.#predict(latents, r.latentShape, tNorm, applyCfg ? [...pos, ...neg] : pos, applyCfg ? 2 : 1);
      const posOut = outs.slice(0, n), negOut = applyCfg ? outs.slice(n) : undefined;
      for (let j = 0; j < n; j++) {
        const pred = noisePred.subarray(j * per, (j + 1) * per);
        if (negOut) guidedPrediction(posOut[j]!, negOut[j]!, g, r.cfgNormalization, pred);
        else pred.set(posOut[j]!);
      }
      // The transformer predicts the velocity toward the data (data - noise); the Euler step integrates
      // dx/dsigma = noise - data, hence diffusers' noise_pred = -pred.
      for (let k = 0; k < noisePred.length; k++) noisePred[k] = -noisePred[k]!;
      latents = scheduler.step(noisePred, t, latents);
      opts.onStepTensors?.(i, { pos: posOut, neg: negOut, latents: latents.slice() });
      const elapsed = (performance.now() - t1) / 1000;
      opts.onProgress?.({ phase: 'denoising', step: i + 1, total: timesteps.length, elapsed, eta: (elapsed / (i + 1)) * (timesteps.length - i - 1) });
      await new Promise<void>((resolve) => setImmediate(resolve)); // let cancellation and messages in
    }
    return latents;
  }

  /**
   * One transformer call: every image's latents (repeated `copies` times: conditional, then unconditional) with
   * its caption; returns the raw outputs on the host, in item order.
   */
  #predict(latents: Float32Array, shape: readonly number[], tNorm: number, captions: Tensor[], copies: number): Float32Array[] {
    const [n, c, h, w] = shape as [number, number, number, number];
    const per = c * h * w;
    return hostScoped(() => {
      const items = Array.from({ length: n }, (_, j) => fromFloat32(this.device, latents.subarray(j * per, (j + 1) * per), [c, 1, h, w]));
      const x = Array.from({ length: copies }, () => items).flat();
      const outs = this.transformer.forward(x, new Array<number>(x.length).fill(tNorm), captions);
      if (outs.length !== x.length) throw new Error(`sgld: the transformer returned ${outs.length} outputs for ${x.length} inputs`);
      return outs.map((o) => {
        if (o.numel !== per) throw new Error(`sgld: transformer output [${o.shape.join(', ')}] does not match latents [${c}, 1, ${h}, ${w}]`);
        return o.toFloat32Array();
      });
    });
  }

  /** Positive and (when CFG can run) negative embeddings, one per image; `owned` collects what to free. */
  #promptEmbeddings(r: NormalisedZImageRequest, opts: ZImageGenerateOptions, owned: Tensor[]): { pos: Tensor[]; neg: Tensor[] } {
    const take = (ts: Tensor[]): Tensor[] => { for (const t of ts) owned.push(Scope.detach(t)); return ts; };
    const pos = opts.promptEmbeds ?? take(this.encodePrompts([r.prompt], r.maxSequenceLength));
    let neg: Tensor[] = [];
    if (r.cfg) {
      if (opts.promptEmbeds && !opts.negativePromptEmbeds) {
        throw new ZImageRequestError('negative_prompt', 'prompt embeddings without negative prompt embeddings cannot run CFG');
      }
      neg = opts.negativePromptEmbeds ?? take(this.encodePrompts([r.negativePrompt], r.maxSequenceLength));
    }
    // num_images_per_prompt: each prompt's embeddings repeated for its images.
    const repeat = (ts: Tensor[]): Tensor[] => ts.flatMap((t) => new Array<Tensor>(r.numImagesPerPrompt).fill(t));
    return { pos: repeat(pos), neg: repeat(neg) };
  }

  /**
   * Image-to-image start (ZImageImg2ImgPipeline.prepare_latents): encode the image, sample the latent
   * distribution, normalise, repeat per image, then scale_noise to the first timestep. The generator draws the
   * posterior sample first and the noise second, as diffusers' does.
   */
  #noisedImageLatents(r: NormalisedZImageRequest, scheduler: FlowMatchEulerDiscreteScheduler, firstTimestep: number): Float32Array {
    const image = r.image!;
    const { m, lv, latentShape } = hostScoped(() => {
      const x = fromFloat32(this.device, pixelsToVaeInput(image.data, image.height, image.width), [1, 3, image.height, image.width], this.vae.dtype);
      const { mean, logvar } = this.vae.encode(x);
      return { m: mean.toFloat32Array(), lv: logvar.toFloat32Array(), latentShape: [...mean.shape] };
    });
    const [n, c, h, w] = r.latentShape;
    if (latentShape[1] !== c || latentShape[2] !== h || latentShape[3] !== w) {
      throw new Error(`sgld: the VAE encoded the image to [${latentShape.join(', ')}], the transformer expects [1, ${c}, ${h}, ${w}]`);
    }
    const gen = new TorchGenerator(r.seed);
    const sample = sampleDistribution(m, lv, gen.randn(latentShape));
    const single = normalizeImageLatents(sample, this.vae.config.scalingFactor, this.vae.config.shiftFactor);
    const imageLatents = new Float32Array(n * single.length);
    for (let j = 0; j < n; j++) imageLatents.set(single, j * single.length);
    const noise = gen.randn(r.latentShape);
    return scheduler.scaleNoise(imageLatents, new Array<number>(n).fill(firstTimestep), noise);
  }

  /** Latents [n, C, h, w] -> images in [0, 1] as [n, H, W, 3] (z / scaling + shift, decode, (x / 2 + 0.5).clamp(0, 1)). */
  decode(latents: Float32Array, shape: readonly number[], onProgress?: ProgressCallback): FloatFrames {
    const start = performance.now();
    onProgress?.({ phase: 'decoding', step: 0, total: 1, elapsed: 0 });
    const { v, imageShape } = hostScoped(() => {
      const image = this.vae.decode(this.vae.denormalizeLatents(fromFloat32(this.device, latents, shape, this.vae.dtype)));
      return { v: image.toFloat32Array(), imageShape: image.shape };
    });
    const [n, ch, hh, ww] = imageShape as [number, number, number, number];
    const plane = hh * ww;
    const data = new Float32Array(n * plane * ch);
    for (let b = 0; b < n; b++) for (let ci = 0; ci < ch; ci++) {
      const src = (b * ch + ci) * plane;
      for (let p = 0; p < plane; p++) {
        const x = Math.fround(Math.fround(v[src + p]! / 2) + 0.5);
        data[(b * plane + p) * ch + ci] = x < 0 ? 0 : x > 1 ? 1 : x;
      }
    }
    onProgress?.({ phase: 'decoding', step: 1, total: 1, elapsed: (performance.now() - start) / 1000 });
    return { frames: n, height: hh, width: ww, data };
  }

  /** Frees every weight and the devices this pipeline created. */
  dispose(): void {
    this.textEncoder?.free();
    this.transformer.free();
    this.vae.free();
    this.model?.close();
    for (const d of this.#ownedDevices) d.close();
  }

  #newScheduler(): FlowMatchEulerDiscreteScheduler {
    const s = createScheduler(this.schedulerConfig);
    if (!(s instanceof FlowMatchEulerDiscreteScheduler)) {
      throw new Error(`sgld: ZImagePipeline needs a FlowMatchEulerDiscreteScheduler, the checkpoint has ${s.className}`);
    }
    return s;
  }
}
