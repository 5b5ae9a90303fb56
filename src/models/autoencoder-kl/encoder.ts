// The 2-D AutoencoderKL's Encoder (diffusers autoencoders/vae.py): conv_in, one DownEncoderBlock2D per
// block_out_channels entry (layers_per_block residual blocks, then a stride-2 downsample on all but the last),
// the mid block, conv_norm_out -> SiLU -> conv_out to 2 * latent_channels (mean and log-variance).
import type { WeightStore } from '../weights.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import type { AutoencoderKLConfig } from './config.js';
import { Conv2d, Downsample2D, GroupNorm, MidBlock2D, ResnetBlock2D, advance } from './layers.js';

/** DownEncoderBlock2D: residual blocks, then at most one downsampler (`downsamplers.0`). */
export class DownEncoderBlock2D {
  readonly resnets: ResnetBlock2D[] = [];
  readonly downsamplers: Downsample2D[] = [];

  constructor(store: WeightStore, readonly key: string, inDim: number, outDim: number, layers: number, groups: number, downsample: boolean) {
    for (let r = 0; r < layers; r++) {
      this.resnets.push(new ResnetBlock2D(store, `${key}.resnets.${r}`, r === 0 ? inDim : outDim, outDim, groups));
    }
    if (downsample) this.downsamplers.push(new Downsample2D(store, `${key}.downsamplers.0`, outDim));
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const r of this.resnets) y = advance(y, x, (t) => r.forward(t));
    for (const d of this.downsamplers) y = advance(y, x, (t) => d.forward(t));
    return y;
  }
}

export class Encoder {
  readonly convIn: Conv2d;
  readonly downBlocks: DownEncoderBlock2D[] = [];
  readonly midBlock: MidBlock2D;
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(store: WeightStore, config: AutoencoderKLConfig, readonly key = 'encoder') {
    const widths = config.blockOutChannels;
    const groups = config.normNumGroups;
    this.convIn = new Conv2d(store, `${key}.conv_in`, config.inChannels, widths[0]!, 3);
    let inDim = widths[0]!;
    widths.forEach((outDim, i) => {
      const last = i === widths.length - 1;
      this.downBlocks.push(new DownEncoderBlock2D(store, `${key}.down_blocks.${i}`, inDim, outDim, config.layersPerBlock, groups, !last));
      inDim = outDim;
    });
    this.midBlock = new MidBlock2D(store, `${key}.mid_block`, inDim, groups, config.midBlockAddAttention);
    this.convNormOut = new GroupNorm(store, `${key}.conv_norm_out`, inDim, groups);
    this.convOut = new Conv2d(store, `${key}.conv_out`, inDim, 2 * config.latentChannels, 3);
  }

  /** Image [B, C_in, H, W] -> moments [B, 2 * latent_channels, H / 2^(stages-1), W / 2^(stages-1)]. */
  forward(x: Tensor): Tensor {
    return scoped(() => {
      let y = this.convIn.forward(x);
      for (const block of this.downBlocks) y = advance(y, x, (t) => block.forward(t));
      y = advance(y, x, (t) => this.midBlock.forward(t));
      y = advance(y, x, (t) => this.convNormOut.forwardSilu(t));
      return advance(y, x, (t) => this.convOut.forward(t));
    });
  }
}
