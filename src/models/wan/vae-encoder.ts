// WanEncoder3d: conv_in, the down stages (residual blocks, then a 2-D or 3-D downsample between stages, all
// in one flat `down_blocks` list as the checkpoint numbers them), the middle block, norm_out -> SiLU -> conv_out
// to 2 * z_dim channels (mean and log-variance). One call encodes one chunk of frames; the FrameCache carries
// the causal context from chunk to chunk.
import type { WeightStore } from '../weights.js';
import { Activation, activation } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { type WanVAEConfig, encoderDims } from './vae-config.js';
import type { FrameCache } from './vae-frame-cache.js';
import { CausalConv3d, ChannelRMSNorm, MidBlock, Resample, ResidualBlock, step } from './vae-layers.js';

export type DownLayer = ResidualBlock | Resample;

export class WanEncoder {
  readonly convIn: CausalConv3d;
  readonly downBlocks: DownLayer[] = [];
  readonly midBlock: MidBlock;
  readonly normOut: ChannelRMSNorm;
  readonly convOut: CausalConv3d;

  constructor(store: WeightStore, config: WanVAEConfig, readonly key = 'encoder') {
    const dims = encoderDims(config);
    this.convIn = new CausalConv3d(store, `${key}.conv_in`, config.inChannels, dims[0]!, [3, 3, 3], [1, 1, 1]);
    const stages = config.dimMult.length;
    for (let i = 0; i < stages; i++) {
      let inDim = dims[i]!;
      const outDim = dims[i + 1]!;
      for (let r = 0; r < config.numResBlocks; r++) {
        this.downBlocks.push(new ResidualBlock(store, `${key}.down_blocks.${this.downBlocks.length}`, inDim, outDim));
        inDim = outDim;
      }
      if (i !== stages - 1) {
        const mode = config.temporalDownsample[i] ? 'downsample3d' : 'downsample2d';
        this.downBlocks.push(new Resample(store, `${key}.down_blocks.${this.downBlocks.length}`, outDim, mode));
      }
    }
    const top = dims[dims.length - 1]!;
    this.midBlock = new MidBlock(store, `${key}.mid_block`, top);
    this.normOut = new ChannelRMSNorm(store, `${key}.norm_out`, top, [top, 1, 1, 1]);
    this.convOut = new CausalConv3d(store, `${key}.conv_out`, top, 2 * config.zDim, [3, 3, 3], [1, 1, 1]);
  }

  /** One chunk [B, C_in, T, H, W] -> [B, 2 * z_dim, T', H / 2^stages, W / 2^stages]. */
  forward(x: Tensor, cache: FrameCache): Tensor {
    return scoped(() => {
      let y = this.convIn.forwardCached(x, cache);
      for (const layer of this.downBlocks) y = step(y, x, (t) => layer.forward(t, cache));
      y = step(y, x, (t) => this.midBlock.forward(t, cache));
      y = step(y, x, (t) => activation(this.normOut.forward(t), Activation.SILU, true));
      return step(y, x, (t) => this.convOut.forwardCached(t, cache));
    });
  }
}
