// WanPipeline: prompt (+ negative prompt) -> UMT5 embeddings -> denoising with classifier-free guidance ->
// Wan VAE decode -> RGB frames. Mirrors diffusers' WanPipeline.__call__ step for step (the golden
// `pipeline/*` cases prove it), with a progress callback per step and cancellation between steps.
import { type DiffusersModel, openDiffusersModel } from '../../checkpoint/diffusers.js';
import { AutoencoderKLWan } from '../../models/wan/vae.js';
import { type WanTransformer3DModel, wanTransformerFrom } from '../../models/wan/transformer.js';
import { type UMT5Encoder, encodeWanPrompt, umt5EncoderFrom } from '../../models/umt5/index.js';
import { Device } from '../../runtime/device.js';
import { cat, fromFloat32 } from '../../runtime/ops.js';
import type { RankParallel } from '../../parallel/rank-context.js';
import { TorchGenerator } from '../../runtime/random.js';
import { Tensor, scoped } from '../../runtime/tensor.js';
import { type FlowScheduler, createScheduler } from '../../schedulers/index.js';
import { promptClean } from '../../text/prompt-clean.js';
import { TextTokenizer } from '../../text/tokenizer.js';
import { CancelledError, type FloatFrames, type ProgressCallback, throwIfAborted } from '../types.js';
import { type NormalisedWanRequest, type WanGenerateRequest, normaliseWanRequest } from './request.js';

export interface WanPipelineOptions {
  /** Device for the transformer and the VAE (default: a CPU device with all cores). */
  device?: Device;
  /** Device for the text encoder (`--text-encoder-cpu-offload` puts it on a CPU device); default: `device`. */
  textEncoderDevice?: Device;
}

export interface WanGenerateOptions {
  /** Precomputed prompt embeddings [1, L, text_dim] on the pipeline's device (diffusers' prompt_embeds). */
  promptEmbeds?: Tensor;
  /** Precomputed negative prompt embeddings (same shape); needed with promptEmbeds when CFG is on. */
  negativePromptEmbeds?: Tensor;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
  /** Per-step tensors for parity tests: noise predictions and latents after each step (host copies). */
  onStepTensors?: (step: number, t: { cond: Float32Array; uncond?: Float32Array; latents: Float32Array }) => void;
}

export interface WanGenerateResult extends FloatFrames {
  request: NormalisedWanRequest;
  /** Final latents before decoding, [1, 16, F', h, w] row-major. */
  latents: Float32Array;
  timings: { encodeMs: number; denoiseMs: number; decodeMs: number };
}

/**
 * The transformer's predictions for latents x [1, C, F, H, W] at timestep t: [2, ...] (conditional, then
 * unconditional) when `cfg`, else [1, ...]. `text` holds the prompt's embeddings (and the negative prompt's when
 * `cfg`). Without CFG parallelism both branches run as one batch of 2; with it this rank runs its own branch
 * (its text row) and the cfg group exchanges the two. Sequence shards follow `parallel.sequence`.
 */
export function noisePredictions(transformer: WanTransformer3DModel, x: Tensor, t: number, text: Tensor, cfg: boolean,
  parallel: RankParallel | null): Tensor {
  if (!cfg) return transformer.forward(x, [t], text.slice(0, 0, 1), parallel?.sequence);
  if (!parallel || parallel.cfg.size === 1) return transformer.forward(cat([x, x], 0), [t, t], text, parallel?.sequence);
  const own = transformer.forward(x, [t], text.slice(0, parallel.branch, parallel.branch + 1), parallel.sequence);
  const both = Tensor.empty(x.device, [2, ...own.shape.slice(1)], own.dtype);
  parallel.cfg.allGather(own, [both.slice(0, 0, 1), both.slice(0, 1, 2)]);
  return both;
}

export class WanPipeline {
  /**
   * The rank's process groups when it is one of several serving a request (src/parallel): the replica's leader
   * encodes the prompt and decodes; CFG branches and sequence shards are split as the layout says.
   */
  parallel: RankParallel | null = null;

  constructor(
    /** The opened checkpoint folder (undefined for pipelines assembled from components). */
    readonly model: DiffusersModel | undefined,
    readonly device: Device,
    readonly textDevice: Device,
    /** Absent when the pipeline is only ever given prompt embeddings (benchmarks). */
    readonly tokenizer: TextTokenizer | undefined,
    readonly textEncoder: UMT5Encoder | undefined,
    readonly transformer: WanTransformer3DModel,
    readonly vae: AutoencoderKLWan,
    readonly schedulerConfig: Record<string, unknown>,
    private readonly ownsDevices: Device[],
  ) {}

  /** Loads a Wan2.1 Diffusers folder (model_index.json `WanPipeline`). */
  static load(dir: string, options: WanPipelineOptions = {}): WanPipeline {
    const model = openDiffusersModel(dir);
    const owned: Device[] = [];
    const loaded: { free(): void }[] = [];
    try {
      if (model.pipelineClass !== 'WanPipeline') throw new Error(`sgld: ${dir} holds a ${model.pipelineClass}, not a WanPipeline`);
      if (model.components.has('transformer_2') || (model.options.boundary_ratio ?? null) !== null) {
        throw new Error(`sgld: ${dir} is a two-stage Wan2.2 pipeline (transformer_2 / boundary_ratio), which sgld does not run yet`);
      }
      const device = options.device ?? (owned.push(new Device()), owned[owned.length - 1]!);
      const textDevice = options.textEncoderDevice ?? device;
      const tokenizer = TextTokenizer.load(model.component('tokenizer').dir);
      const textEncoder = umt5EncoderFrom(textDevice, model.component('text_encoder'));
      loaded.push(textEncoder);
      const transformer = wanTransformerFrom(device, model.component('transformer'));
      loaded.push(transformer);
      const vae = AutoencoderKLWan.fromDiffusers(device, model);
      const schedulerConfig = model.component('scheduler').config;
      createScheduler(schedulerConfig); // validate now, not at the first request
      return new WanPipeline(model, device, textDevice, tokenizer, textEncoder, transformer, vae, schedulerConfig, owned);
    } catch (e) {
      for (const m of loaded) m.free();
      for (const d of owned) d.close();
      model.close();
      throw e;
    }
  }

  /** VAE/transformer geometry for request normalisation. */
  get geometry() {
    const tc = this.transformer.config;
    return {
      temporal: this.vae.config.scaleFactorTemporal,
      spatial: this.vae.config.scaleFactorSpatial,
      patch: tc.patchSize,
      latentChannels: tc.inChannels,
    };
  }

  /** prompt_embeds [n, maxSequenceLength, text_dim] for prompts, on the transformer's device. */
  encodePrompts(prompts: string[], maxSequenceLength: number): Tensor {
    if (!this.tokenizer || !this.textEncoder) throw new Error('sgld: this pipeline has no text encoder; pass prompt embeddings');
    const enc = this.tokenizer.encode(prompts.map((p) => promptClean(p)), {
      maxLength: maxSequenceLength, padding: 'max_length', truncation: true, addSpecialTokens: true,
    });
    const tokens = {
      ids: enc.inputIds.flat(), mask: enc.attentionMask.flat(), batch: prompts.length, length: maxSequenceLength,
    };
    const embeds = encodeWanPrompt(this.textEncoder, tokens, maxSequenceLength);
    if (this.textDevice === this.device) return embeds;
    // Text encoder offloaded to another device: move the (small) embeddings over through the host.
    const host = embeds.toFloat32Array();
    const shape = [...embeds.shape];
    embeds.free();
    return fromFloat32(this.device, host, shape);
  }

  /** Runs the whole pipeline for one request. */
  async generate(req: WanGenerateRequest, opts: WanGenerateOptions = {}): Promise<WanGenerateResult> {
    const r = normaliseWanRequest(req, this.geometry);
    const scheduler: FlowScheduler = createScheduler(this.schedulerConfig);
    const t0 = performance.now();
    const text = this.promptBatch(r, opts);
    const t1 = performance.now();
    try {
      scheduler.setTimesteps(r.numInferenceSteps);
      scheduler.setBeginIndex(0);
      const numel = r.latentShape.reduce((a, b) => a * b, 1);
      let latents: Float32Array;
      if (r.latents) {
        if (r.latents.length !== numel) throw new Error(`sgld: latents have ${r.latents.length} values, expected [${r.latentShape.join(', ')}]`);
        latents = Float32Array.from(r.latents);
      } else {
        latents = new TorchGenerator(r.seed).randn(r.latentShape);
      }
      latents = await this.denoise(r, scheduler, Array.from(scheduler.timesteps), latents, text, opts);
      const t2 = performance.now();
      throwIfAborted(opts.signal);
      const frames = this.decodeOnLeader(latents, r, opts.onProgress);
      const t3 = performance.now();
      return { ...frames, request: r, latents, timings: { encodeMs: t1 - t0, denoiseMs: t2 - t1, decodeMs: t3 - t2 } };
    } finally {
      text.free();
    }
  }

  /**
   * The text the transformer attends to: the prompt's embeddings, with the negative prompt's as a second batch
   * item when CFG is on (cond and uncond then run as one batch of 2: same latents, same timestep).
   */
  promptBatch(r: NormalisedWanRequest, opts: Pick<WanGenerateOptions, 'promptEmbeds' | 'negativePromptEmbeds' | 'onProgress' | 'signal'> = {}): Tensor {
    throwIfAborted(opts.signal);
    opts.onProgress?.({ phase: 'encoding_prompt', step: 0, total: 1, elapsed: 0 });
    const replica = this.parallel?.replica;
    if (replica && replica.size > 1 && replica.rank !== 0) {
      // The text encoder runs once per request, on the leader; the others receive its output.
      const text = Tensor.empty(this.device, [r.cfg ? 2 : 1, r.maxSequenceLength, this.transformer.config.textDim]);
      replica.broadcast(text, 0);
      return text;
    }
    const text = scoped(() => {
      const cond = opts.promptEmbeds ?? this.encodePrompts([r.prompt], r.maxSequenceLength);
      if (!r.cfg) return opts.promptEmbeds ? cat([cond], 0) : cond;
      const uncond = opts.negativePromptEmbeds ?? this.encodePrompts([r.negativePrompt], r.maxSequenceLength);
      return cat([cond, uncond], 0);
    });
    if (replica && replica.size > 1) replica.broadcast(text, 0);
    return text;
  }

  /**
   * The denoising loop of diffusers' Wan pipelines from `latents` over `timesteps` (all of the schedule, or its
   * tail for image-to-image): transformer on cond (+ uncond), guidance, scheduler step; progress per step and
   * cancellation between steps. Returns the final latents.
   */
  async denoise(r: NormalisedWanRequest, scheduler: FlowScheduler, timesteps: readonly number[], latents: Float32Array,
    text: Tensor, opts: Pick<WanGenerateOptions, 'onProgress' | 'signal' | 'onStepTensors'> = {}): Promise<Float32Array> {
    const start = performance.now();
    const numel = latents.length;
    const noisePred = new Float32Array(numel);
    for (let i = 0; i < timesteps.length; i++) {
      this.#stopIfCancelled(opts.signal);
      const t = timesteps[i]!;
      const out = scoped(() => noisePredictions(this.transformer, fromFloat32(this.device, latents, r.latentShape), t, text, r.cfg, this.parallel));
      const pred = out.toFloat32Array();
      out.free();
      const cond = pred.subarray(0, numel);
      if (r.cfg) {
        const uncond = pred.subarray(numel, 2 * numel);
        // diffusers: noise_uncond + guidance_scale * (noise_pred - noise_uncond), in float32
        const g = Math.fround(r.guidanceScale);
        for (let j = 0; j < numel; j++) noisePred[j] = Math.fround(uncond[j]! + Math.fround(g * Math.fround(cond[j]! - uncond[j]!)));
      } else noisePred.set(cond);
      latents = scheduler.step(noisePred, t, latents, latents);
      opts.onStepTensors?.(i, { cond: cond.slice(), uncond: r.cfg ? pred.slice(numel) : undefined, latents: latents.slice() });
      const elapsed = (performance.now() - start) / 1000;
      opts.onProgress?.({ phase: 'denoising', step: i + 1, total: timesteps.length, elapsed, eta: (elapsed / (i + 1)) * (timesteps.length - i - 1) });
      await new Promise<void>((resolve) => setImmediate(resolve)); // let cancellation and messages in
    }
    return latents;
  }

  /**
   * Cancellation between steps. Ranks serving one request must stop at the same step (a rank that stopped
   * alone would leave its peers waiting in a collective), so the leader's signal decides for all of them.
   */
  #stopIfCancelled(signal: AbortSignal | undefined): void {
    const replica = this.parallel?.replica;
    if (!replica || replica.size === 1) return throwIfAborted(signal);
    if (replica.broadcastValue(signal?.aborted ? 1 : 0, 0) !== 0) throw new CancelledError();
  }

  /** decode() on the replica's leader; the other ranks return no frames (VAE decode runs on one rank). */
  decodeOnLeader(latents: Float32Array, r: NormalisedWanRequest, onProgress?: ProgressCallback): FloatFrames {
    if (this.parallel && !this.parallel.leader) return { frames: 0, height: 0, width: 0, data: new Float32Array(0) };
    return this.decode(latents, r, onProgress);
  }

  /** Latents -> frames in [0, 1] as [F, H, W, 3] (diffusers' postprocess_video with output_type "np"). */
  decode(latents: Float32Array, r: NormalisedWanRequest, onProgress?: ProgressCallback): FloatFrames {
    const start = performance.now();
    const video = scoped(() => {
      const z = this.vae.denormalizeLatents(fromFloat32(this.device, latents, r.latentShape, this.vae.dtype));
      return this.vae.decode(z, (done, total) => onProgress?.({ phase: 'decoding', step: done, total, elapsed: (performance.now() - start) / 1000 }));
    });
    const [, c, f, h, w] = video.shape as [number, number, number, number, number];
    const v = video.toFloat32Array();
    video.free();
    // [1, C, F, H, W] in [-1, 1] -> [F, H, W, C] in [0, 1]: (x / 2 + 0.5).clamp(0, 1)
    const data = new Float32Array(f * h * w * c);
    const plane = h * w;
    for (let fi = 0; fi < f; fi++) for (let ci = 0; ci < c; ci++) {
      const src = (ci * f + fi) * plane;
      for (let p = 0; p < plane; p++) {
        const x = Math.fround(Math.fround(v[src + p]! / 2) + 0.5);
        data[(fi * plane + p) * c + ci] = x < 0 ? 0 : x > 1 ? 1 : x;
      }
    }
    return { frames: f, height: h, width: w, data };
  }

  /** Frees every weight and the devices this pipeline created. */
  dispose(): void {
    this.textEncoder?.free();
    this.transformer.free();
    this.vae.free();
    this.model?.close();
    for (const d of this.ownsDevices) d.close();
  }
}
