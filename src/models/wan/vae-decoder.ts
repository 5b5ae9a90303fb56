// WanDecoder3d: conv_in from z_dim, the middle block, the up stages (num_res_blocks + 1 residual blocks each,
// then an upsample2d/3d between stages), norm_out -> SiLU -> conv_out to RGB. One call decodes one latent frame
// (or chunk); the FrameCache carries the causal context, and upsample3d's first-chunk rule makes the first latent
// frame decode to a single video frame and every later one to scale_factor_temporal frames.
import type { WeightStore } from '../weights.js';
import { Activation, activation } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { type WanVAEConfig, decoderDims } from './vae-config.js';
import type { FrameCache } from './vae-frame-cache.js';
import { CausalConv3d, ChannelRMSNorm, MidBlock, Resample, ResidualBlock, step } from './vae-layers.js';

/** WanUpBlock: residual blocks, then at most one upsampler (`upsamplers.0`). */
export class UpBlock {
  readonly resnets: ResidualBlock[] = [];
  readonly upsamplers: Resample[] = [];

  constructor(store: WeightStore, readonly key: string, inDim: number, outDim: number, numResBlocks: number,
    upsampleMode: 'upsample2d' | 'upsample3d' | null) {
    for (let r = 0; r <= numResBlocks; r++) {
      this.resnets.push(new ResidualBlock(store, `${key}.resnets.${r}`, r === 0 ? inDim : outDim, outDim));
    }
    if (upsampleMode) this.upsamplers.push(new Resample(store, `${key}.upsamplers.0`, outDim, upsampleMode));
  }

  /** Width of this block's output: the upsampler halves it (Wan2.1), otherwise out_dim. */
  get outDim(): number { return this.upsamplers[0]?.outDim ?? this.resnets[this.resnets.length - 1]!.outDim; }

  forward(x: Tensor, cache: FrameCache): Tensor {
    let y = x;
    for (const r of this.resnets) y = step(y, x, (t) => r.forward(t, cache));
    for (const u of this.upsamplers) y = step(y, x, (t) => u.forward(t, cache));
    return y;
  }
}

export class WanDecoder {
  readonly convIn: CausalConv3d;
  readonly midBlock: MidBlock;
  readonly upBlocks: UpBlock[] = [];
  readonly normOut: ChannelRMSNorm;
  readonly convOut: CausalConv3d;

  constructor(store: WeightStore, config: WanVAEConfig, readonly key = 'decoder') {
    const dims = decoderDims(config);
    // Temporal upsampling mirrors the encoder's downsampling, deepest stage first.
    const temporalUpsample = [...config.temporalDownsample].reverse();
    this.convIn = new CausalConv3d(store, `${key}.conv_in`, config.zDim, dims[0]!, [3, 3, 3], [1, 1, 1]);
    this.midBlock = new MidBlock(store, `${key}.mid_block`, dims[0]!);
    const stages = config.dimMult.length;
    let inDim = dims[0]!;
    try {
      for (let i = 0; i < stages; i++) {
        const outDim = dims[i + 1]!;
        const mode = i === stages - 1 ? null : temporalUpsample[i] ? 'upsample3d' : 'upsample2d';
        const block = new UpBlock(store, `${key}.up_blocks.${i}`, inDim, outDim, config.numResBlocks, mode);
        this.upBlocks.push(block);
        inDim = block.outDim;
      }
      this.normOut = new ChannelRMSNorm(store, `${key}.norm_out`, inDim, [inDim, 1, 1, 1]);
      this.convOut = new CausalConv3d(store, `${key}.conv_out`, inDim, config.outChannels, [3, 3, 3], [1, 1, 1]);
    } catch (e) {
      this.free();
      throw e;
    }
  }

  /** Frees the tensors the up blocks derived from their weights (the checkpoint's own are the WeightStore's). */
  free(): void {
    for (const block of this.upBlocks) for (const u of block.upsamplers) u.free();
  }

  /** One latent chunk [B, z_dim, T, h, w] -> video frames [B, out_channels, T', 8h, 8w] (unclamped). */
  forward(z: Tensor, cache: FrameCache): Tensor {
    return scoped(() => {
      const y = this.forwardLatentRes(z, cache);
      return step(y, z, (t) => this.forwardUpsampled(t, cache));
    });
  }

  /**
   * The first half of forward(): conv_in, the middle block and the first up block, which run at the latent
   * resolution (the first up block ends with an upsampler). Every layer is causal in time (frame caches) or works
   * frame by frame, so running it on several latent frames at once gives what running it frame by frame does,
   * and forwardUpsampled() may then take the result piece by piece.
   */
  forwardLatentRes(z: Tensor, cache: FrameCache): Tensor {
    return scoped(() => {
      let y = this.convIn.forwardCached(z, cache);
      y = step(y, z, (t) => this.midBlock.forward(t, cache));
      return step(y, z, (t) => this.upBlocks[0]!.forward(t, cache));
    });
  }

  /** The second half of forward(): the other up blocks, norm_out -> SiLU -> conv_out. */
  forwardUpsampled(x: Tensor, cache: FrameCache): Tensor {
    return scoped(() => {
      let y = x;
      for (const block of this.upBlocks.slice(1)) y = step(y, x, (t) => block.forward(t, cache));
      y = step(y, x, (t) => activation(this.normOut.forward(t), Activation.SILU, true));
      return step(y, x, (t) => this.convOut.forwardCached(t, cache));
    });
  }
}
