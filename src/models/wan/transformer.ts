// WanTransformer3DModel (Wan 2.1 text-to-video DiT, diffusers v0.36), config-driven. Fields mirror the
// checkpoint keys: `condition_embedder.time_embedder.linear_1.weight` is
// `this.condition_embedder.time_embedder.linear_1.weight`, `blocks.7.attn1.to_out.0` is
// `this.blocks[7].attn1.to_out[0]`, so the loader is a walk over names and LoRA finds every weight in `store`.
//
// forward(latents [B, C, F, H, W], timestep [B], text [B, L, text_dim]):
//   tokens  = patch_embedding(latents)                                   [B, S, dim], S = F'H'W'
//   temb    = time_embedder(sinusoid(timestep))      (linear, SiLU, linear)
//   tproj   = time_proj(SiLU(temb))                  -> 6 modulation vectors per block
//   context = text_embedder(text)                    (linear, GELU-tanh, linear)
//   tokens  = blocks(tokens, context, tproj, rope(F', H', W'))
//   out     = proj_out(LN(tokens) * (1 + scale) + shift), (shift, scale) = scale_shift_table + temb
//   latents = unpatchify(out)                                            [B, C_out, F, H, W]
import type { Device } from '../../runtime/device.js';
import { Activation, add, contiguous, fromFloat32, linear, silu } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import type { SequenceParallel } from '../../parallel/sequence-parallel.js';
import { WeightStore, type WeightSource } from '../weights.js';
import { timestepSinusoid } from './embeddings.js';
import { WanRopeCache } from './rope.js';
import { WanTransformerBlock, modulatedLayerNorm } from './transformer-block.js';
import { parseWanTransformerConfig, type WanTransformerConfig } from './transformer-config.js';
import { Linear } from './transformer-layers.js';
import { patchGrid, patchify, unpatchify } from './transformer-patch.js';

export interface WanConditionEmbedder {
  time_embedder: { linear_1: Linear; linear_2: Linear };
  time_proj: Linear;
  text_embedder: { linear_1: Linear; linear_2: Linear };
}

export class WanTransformer3DModel {
  readonly config: WanTransformerConfig;
  readonly store: WeightStore;
  /** Conv3d weight [dim, C, pt, ph, pw] and bias [dim]; run as a linear layer over patches (transformer-patch.ts). */
  readonly patch_embedding: { weight: Tensor; bias: Tensor };
  readonly condition_embedder: WanConditionEmbedder;
  readonly blocks: WanTransformerBlock[];
  readonly proj_out: Linear;
  /** [1, 2, dim]: the output norm's (shift, scale) offsets, added to temb. */
  readonly scale_shift_table: Tensor;
  readonly #rope: WanRopeCache;

  /** `config` is the parsed transformer/config.json; `source` its weights (one file or a sharded index). */
  constructor(readonly device: Device, config: Record<string, unknown>, source: WeightSource) {
    const c = (this.config = parseWanTransformerConfig(config));
    const store = (this.store = new WeightStore(device, source));
    const dim = c.innerDim;
    try {
      const [pt, ph, pw] = c.patchSize;
      this.patch_embedding = {
        weight: store.get('patch_embedding.weight', [dim, c.inChannels, pt, ph, pw]),
        bias: store.get('patch_embedding.bias', [dim]),
      };
      this.condition_embedder = {
        time_embedder: {
          linear_1: new Linear(store, 'condition_embedder.time_embedder.linear_1', c.freqDim, dim),
          linear_2: new Linear(store, 'condition_embedder.time_embedder.linear_2', dim, dim),
        },
        time_proj: new Linear(store, 'condition_embedder.time_proj', dim, 6 * dim),
        text_embedder: {
          linear_1: new Linear(store, 'condition_embedder.text_embedder.linear_1', c.textDim, dim),
          linear_2: new Linear(store, 'condition_embedder.text_embedder.linear_2', dim, dim),
        },
      };
      this.blocks = Array.from({ length: c.numLayers }, (_, i) => new WanTransformerBlock(store, `blocks.${i}`, c));
      this.proj_out = new Linear(store, 'proj_out', dim, c.outChannels * pt * ph * pw);
      this.scale_shift_table = store.get('scale_shift_table', [1, 2, dim]);
    } catch (e) {
      store.free();
      throw e;
    }
    this.#rope = new WanRopeCache(device, c.attentionHeadDim, c.ropeMaxSeqLen);
  }

  /**
   * The denoiser's prediction for `latents` [B, in_channels, F, H, W] at `timestep` (one value per batch item, or
   * one for all; integer or fractional) given text states [B, L, text_dim]. Returns [B, out_channels, F, H, W]
   * (F/H/W rounded down to whole patches). Intermediates are freed before it returns.
   *
   * With `parallel`, this rank embeds and carries only its shard of the patch tokens through the blocks
   * (self-attention spans the group: src/parallel/sequence-parallel.ts), and the shards are gathered before
   * unpatchify, so every rank of the group returns the whole prediction.
   */
  forward(latents: Tensor, timestep: readonly number[], encoderHiddenStates: Tensor, parallel?: SequenceParallel | null): Tensor {
    const c = this.config;
    const [B, C] = latents.shape as [number, number];
    if (latents.ndim !== 5 || C !== c.inChannels) throw new Error(`WanTransformer3DModel: latents must be [B, ${c.inChannels}, F, H, W], got [${latents.shape.join(', ')}]`);
    if (timestep.length !== B && timestep.length !== 1) throw new Error(`WanTransformer3DModel: ${timestep.length} timesteps for a batch of ${B}`);
    const text = encoderHiddenStates;
    if (text.ndim !== 3 || text.shape[0] !== B || text.shape[2] !== c.textDim) {
      throw new Error(`WanTransformer3DModel: encoder_hidden_states must be [${B}, L, ${c.textDim}], got [${text.shape.join(', ')}]`);
    }
    const grid = patchGrid(latents.shape, c.patchSize);
    const fullRotary = this.#rope.get([grid.frames, grid.height, grid.width]);
    const dim = c.innerDim;
    const total = grid.frames * grid.height * grid.width;
    const shard = parallel && parallel.degree > 1 ? parallel.shard(total) : null;
    // RoPE rows of this rank's tokens (the tables are row-major per token, so a row slice is contiguous).
    const rotary = shard
      ? { cos: fullRotary.cos.slice(0, shard.offset, shard.offset + shard.size), sin: fullRotary.sin.slice(0, shard.offset, shard.offset + shard.size) }
      : fullRotary;
    const sharded = shard ? { parallel: parallel!, total } : undefined;

    return scoped(() => {
      // Patch embedding as one GEMM over patch rows (the conv weight viewed as [dim, C*pt*ph*pw]).
      const allPatches = patchify(latents, c.patchSize);
      const patches = shard ? contiguous(allPatches.slice(1, shard.offset, shard.offset + shard.size)) : allPatches;
      const pw = this.patch_embedding.weight;
      const x = linear(patches, pw.reshape([dim, pw.numel / dim]), this.patch_embedding.bias);

      // Timestep and text conditioning.
      const ce = this.condition_embedder;
      // One timestep for the whole batch when every item has the same one (CFG passes [t, t]): the modulation
      // rows then broadcast over the batch, and the blocks fold them into LayerNorm's affine parameters.
      const steps = timestep.every((v) => v === timestep[0]) ? [timestep[0]!] : timestep;
      const sinusoid = fromFloat32(this.device, timestepSinusoid(steps, c.freqDim), [steps.length, c.freqDim]);
      const temb = ce.time_embedder.linear_2.forward(ce.time_embedder.linear_1.forward(sinusoid, Activation.SILU));
      const tproj = ce.time_proj.forward(silu(temb)).reshape([steps.length, 6, dim]);
      const context = ce.text_embedder.linear_2.forward(ce.text_embedder.linear_1.forward(text, Activation.GELU_TANH));

      // Every block's modulation vectors, computed once: [Bt, 6, dim] each.
      const modulations = this.blocks.map((b) => add(b.scale_shift_table, tproj));
      for (let i = 0; i < this.blocks.length; i++) {
        scoped(() => this.blocks[i]!.forward(x, context, modulations[i]!, rotary, sharded));
      }

      // Output norm with the final shift/scale, projection, unpatchify.
      const outMod = add(this.scale_shift_table, temb.unsqueeze(1)); // [Bt, 2, dim]
      const normed = modulatedLayerNorm(x, outMod.slice(1, 1, 2), outMod.slice(1, 0, 1), c.eps);
      const projected = this.proj_out.forward(normed);
      return unpatchify(sharded ? sharded.parallel.gather(projected, total) : projected, grid, c.patchSize, c.outChannels);
    });
  }

  /** Releases the weights and cached RoPE tables. */
  free(): void {
    this.#rope.free();
    this.store.free();
  }
}

/** Builds the transformer from an opened Diffusers component (config + weights). */
export function wanTransformerFrom(device: Device, component: { config: Record<string, unknown>; weights?: WeightSource }): WanTransformer3DModel {
  if (!component.weights) throw new Error('WanTransformer3DModel: the transformer component has no weights');
  return new WanTransformer3DModel(device, component.config, component.weights);
}
