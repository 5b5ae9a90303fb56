// ZImageTransformer2DModel (Z-Image's single-stream DiT, "S3-DiT", diffusers v0.36), config-driven. Fields mirror
// the checkpoint keys: `noise_refiner.1.attention.to_q.weight` is `this.noise_refiner[1].attention.to_q.weight`,
// `all_x_embedder.2-1` is `this.all_x_embedder['2-1']`, so loading is a walk over names and LoRA finds every weight
// in `store`.
//
// forward(latents: [C, F, H, W] per item, t: per item, captions: [L_i, cap_feat_dim] per item) -> [C, F, H, W] each:
//   adaln   = t_embedder(t * t_scale)                                      [B, min(dim, 256)]
//   x       = all_x_embedder(patchify(latent_i)), padding rows -> x_pad_token     (image sequence)
//   x       = noise_refiner blocks (modulated by adaln)
//   c       = cap_embedder(caption_i) = Linear(RMSNorm(.)), padding rows -> cap_pad_token
//   c       = context_refiner blocks (no modulation)
//   u       = [x_i, c_i] per item                                          (unified sequence, image first)
//   u       = layers (modulated)
//   out_i   = unpatchify(all_final_layer(u_i)[:image tokens])      final: Linear(LN(u) * (1 + Linear(SiLU(adaln))))
// Items may differ in image size and caption length; each sequence is padded within an item to a multiple of 32
// with learned tokens and across the batch with masked rows (transformer-sequence.ts).
import type { Device } from '../../runtime/device.js';
import { copyInto, fromFloat32, layerNorm, linear, modulate, rmsNorm, silu, zeros } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { Linear, NormWeights } from '../wan/transformer-layers.js';
import { WeightStore, type WeightSource } from '../weights.js';
import { ZImageTimestepEmbedder } from './embeddings.js';
import { ZImageRope } from './rope.js';
import { type SequenceContext, ZImageTransformerBlock } from './transformer-block.js';
import { parseZImageTransformerConfig, type ZImageTransformerConfig } from './transformer-config.js';
import { blockModulations } from './transformer-modulation.js';
import { patchifyInto, unpatchify } from './transformer-patch.js';
import { type BatchLayout, batchKeyBias, planBatchLayout } from './transformer-sequence.js';

/** diffusers FinalLayer: LayerNorm(no affine, eps 1e-6), adaLN_modulation = [SiLU, Linear], linear. */
export interface ZImageFinalLayer {
  adaLN_modulation: readonly [null, Linear];
  linear: Linear;
}

/** FinalLayer's norm_final eps (hard-coded in diffusers). */
const FINAL_NORM_EPS = 1e-6;

export interface ZImageForwardOptions {
  /** Spatial patch size; one of the config's all_patch_size (default 2). */
  patchSize?: number;
  /** Frame patch size; paired with patchSize in the config (default 1). */
  framePatchSize?: number;
}

export class ZImageTransformer2DModel {
  readonly config: ZImageTransformerConfig;
  readonly store: WeightStore;
  /** Keyed `${patch}-${framePatch}` as in the checkpoint (`all_x_embedder.2-1`). */
  readonly all_x_embedder: Readonly<Record<string, Linear>>;
  readonly all_final_layer: Readonly<Record<string, ZImageFinalLayer>>;
  readonly noise_refiner: ZImageTransformerBlock[];
  readonly context_refiner: ZImageTransformerBlock[];
  readonly t_embedder: ZImageTimestepEmbedder;
  /** Sequential(RMSNorm(cap_feat_dim), Linear(cap_feat_dim, dim)). */
  readonly cap_embedder: readonly [NormWeights, Linear];
  /** [1, dim] learned rows that fill the 32-padding of the image and caption sequences. */
  readonly x_pad_token: Tensor;
  readonly cap_pad_token: Tensor;
  readonly layers: ZImageTransformerBlock[];
  readonly #rope: ZImageRope;

  /** `config` is the parsed transformer/config.json; `source` its weights (one file or a sharded index). */
  constructor(readonly device: Device, config: Record<string, unknown>, source: WeightSource) {
    const c = (this.config = parseZImageTransformerConfig(config));
    const store = (this.store = new WeightStore(device, source));
    const dim = c.dim;
    try {
      const xEmb: Record<string, Linear> = {};
      const final: Record<string, ZImageFinalLayer> = {};
      for (const [p, pf] of c.patchSizes) {
        const key = `${p}-${pf}`;
        const patchDim = pf * p * p * c.inChannels;
        xEmb[key] = new Linear(store, `all_x_embedder.${key}`, patchDim, dim);
        final[key] = {
          adaLN_modulation: [null, new Linear(store, `all_final_layer.${key}.adaLN_modulation.1`, c.adalnDim, dim)],
          linear: new Linear(store, `all_final_layer.${key}.linear`, dim, pf * p * p * c.outChannels),
        };
      }
      this.all_x_embedder = xEmb;
      this.all_final_layer = final;
      this.noise_refiner = Array.from({ length: c.numRefinerLayers }, (_, i) => new ZImageTransformerBlock(store, `noise_refiner.${i}`, c, true));
      this.context_refiner = Array.from({ length: c.numRefinerLayers }, (_, i) => new ZImageTransformerBlock(store, `context_refiner.${i}`, c, false));
      this.t_embedder = new ZImageTimestepEmbedder(store, 't_embedder', c.adalnDim);
      this.cap_embedder = [new NormWeights(store, 'cap_embedder.0', c.capFeatDim, false), new Linear(store, 'cap_embedder.1', c.capFeatDim, dim)];
      this.x_pad_token = store.get('x_pad_token', [1, dim]);
      this.cap_pad_token = store.get('cap_pad_token', [1, dim]);
      this.layers = Array.from({ length: c.numLayers }, (_, i) => new ZImageTransformerBlock(store, `layers.${i}`, c, true));
    } catch (e) {
      store.free();
      throw e;
    }
    this.#rope = new ZImageRope(device, c.axesDims, c.axesLens, c.ropeTheta);
  }

  /**
   * The denoiser's prediction for each latent [C, F, H, W] (any strides: views of a batched tensor are fine) at
   * normalised time t (one per item, or one for all) given caption features [L_i, cap_feat_dim] (any strides).
   * Returns one [C, F, H, W] tensor per item. Intermediates are freed before it returns.
   */
  forward(latents: readonly Tensor[], t: readonly number[], captions: readonly Tensor[], options: ZImageForwardOptions = {}): Tensor[] {
    const c = this.config;
    const p = options.patchSize ?? 2, pf = options.framePatchSize ?? 1;
    const key = `${p}-${pf}`;
    const xEmbedder = this.all_x_embedder[key], finalLayer = this.all_final_layer[key];
    if (!xEmbedder || !finalLayer) throw new Error(`ZImageTransformer2DModel: no embedder for patch ${p} / frame patch ${pf} (checkpoint has ${Object.keys(this.all_x_embedder).join(', ')})`);
    const B = latents.length;
    if (t.length !== B && t.length !== 1) throw new Error(`ZImageTransformer2DModel: ${t.length} timesteps for ${B} latents`);
    latents.forEach((l, i) => {
      if (l.ndim !== 4 || l.shape[0] !== c.inChannels) throw new Error(`ZImageTransformer2DModel: latent ${i} must be [${c.inChannels}, F, H, W], got [${l.shape.join(', ')}]`);
    });
    captions.forEach((cap, i) => {
      if (cap.ndim !== 2 || cap.shape[1] !== c.capFeatDim) throw new Error(`ZImageTransformer2DModel: caption ${i} must be [L, ${c.capFeatDim}], got [${cap.shape.join(', ')}]`);
    });
    const layout = planBatchLayout(latents.map((l) => l.shape), captions.map((cap) => cap.shape[0]!), p, pf);
    const rope = this.#rope.get(layout);
    const times = t.length === B ? t : latents.map(() => t[0]!);

    return scoped(() => {
      const adaln = this.t_embedder.forward(this.device, times, c.tScale);
      // Every modulated block's scales and tanh gates, once per forward: noise_refiner first, then layers.
      const modulated = [...this.noise_refiner, ...this.layers];
      const mods = blockModulations(this.device, modulated.map((b) => b.adaLN_modulation![0]), adaln, c.dim);
      const refinerMods = mods.slice(0, this.noise_refiner.length), layerMods = mods.slice(this.noise_refiner.length);
      const bias = (lengths: number[], max: number): Tensor | null => {
        const host = batchKeyBias(lengths, max);
        return host ? fromFloat32(this.device, host, [B, max], 'f32') : null;
      };

      // Image sequence.
      const x = this.#embedImages(latents, layout, xEmbedder);
      const imageCtx: SequenceContext = { rope: rope.image, keyBias: bias(layout.items.map((it) => it.imageLength), layout.imageMax) };
      this.noise_refiner.forEach((block, i) => scoped(() => block.forward(x, imageCtx, refinerMods[i]!)));

      // Caption sequence.
      const cap = this.#embedCaptions(captions, layout);
      const captionCtx: SequenceContext = { rope: rope.caption, keyBias: bias(layout.items.map((it) => it.captionLength), layout.captionMax) };
      for (const block of this.context_refiner) scoped(() => block.forward(cap, captionCtx, null));

      // Unified sequence: each item's image run, then its caption run.
      const u = zeros(this.device, [B, layout.unifiedMax, c.dim], x.dtype);
      layout.items.forEach((it, b) => {
        const ub = u.slice(0, b, b + 1);
        copyInto(ub.slice(1, 0, it.imageLength), x.slice(0, b, b + 1).slice(1, 0, it.imageLength));
        copyInto(ub.slice(1, it.imageLength, it.imageLength + it.captionLength), cap.slice(0, b, b + 1).slice(1, 0, it.captionLength));
      });
      const unifiedCtx: SequenceContext = { rope: rope.unified, keyBias: bias(layout.items.map((it) => it.imageLength + it.captionLength), layout.unifiedMax) };
      this.layers.forEach((block, i) => scoped(() => block.forward(u, unifiedCtx, layerMods[i]!)));

      // Final layer on each item's image tokens, then unpatchify.
      const scale = finalLayer.adaLN_modulation[1].forward(silu(adaln)); // [B, dim]
      const normed = modulate(layerNorm(u, null, null, FINAL_NORM_EPS), scale, zeros(this.device, [B, c.dim], scale.dtype), true);
      return layout.items.map((it, b) => {
        const rows = normed.slice(0, b, b + 1).slice(1, 0, it.imageTokens).reshape([it.imageTokens, c.dim]);
        return unpatchify(linear(rows, finalLayer.linear.weight, finalLayer.linear.bias), it.latentShape, p, pf);
      });
    });
  }

  /** all_x_embedder over every item's patch rows [B, imageMax, patch dim] (zeros where no patch), pad tokens set. */
  #embedImages(latents: readonly Tensor[], layout: BatchLayout, embedder: Linear): Tensor {
    const { patchSize: p, framePatchSize: pf } = layout;
    const B = latents.length;
    const patchDim = pf * p * p * this.config.inChannels;
    const rows = zeros(this.device, [B, layout.imageMax, patchDim], this.device.computeDType);
    layout.items.forEach((it, b) => patchifyInto(rows.slice(0, b, b + 1).slice(1, 0, it.imageTokens).reshape([it.imageTokens, patchDim]), latents[b]!, p, pf));
    const x = linear(rows, embedder.weight, embedder.bias);
    layout.items.forEach((it, b) => fillRows(x, b, it.imageTokens, it.imageLength, this.x_pad_token));
    return x;
  }

  /** cap_embedder over every caption [B, captionMax, cap_feat_dim] (zeros past each caption), pad tokens set. */
  #embedCaptions(captions: readonly Tensor[], layout: BatchLayout): Tensor {
    const c = this.config;
    const B = captions.length;
    const feats = zeros(this.device, [B, layout.captionMax, c.capFeatDim], this.device.computeDType);
    layout.items.forEach((it, b) => copyInto(feats.slice(0, b, b + 1).slice(1, 0, it.captionTokens).reshape([it.captionTokens, c.capFeatDim]), captions[b]!));
    const [norm, proj] = this.cap_embedder;
    const cap = linear(rmsNorm(feats, norm.weight, c.normEps), proj.weight, proj.bias);
    layout.items.forEach((it, b) => fillRows(cap, b, it.captionTokens, it.captionLength, this.cap_pad_token));
    return cap;
  }

  /** Releases the weights and cached RoPE tables. */
  free(): void {
    this.#rope.free();
    this.store.free();
  }
}

/** Rows [from, to) of item b of x [B, S, dim] := token [1, dim]. */
function fillRows(x: Tensor, b: number, from: number, to: number, token: Tensor): void {
  if (to > from) copyInto(x.slice(0, b, b + 1).slice(1, from, to), token.unsqueeze(0).expand([1, to - from, x.shape[2]!]));
}

/** Builds the transformer from an opened Diffusers component (config + weights). */
export function zImageTransformerFrom(device: Device, component: { config: Record<string, unknown>; weights?: WeightSource }): ZImageTransformer2DModel {
  if (!component.weights) throw new Error('ZImageTransformer2DModel: the transformer component has no weights');
  return new ZImageTransformer2DModel(device, component.config, component.weights);
}
