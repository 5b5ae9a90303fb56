// The 2-D AutoencoderKL's Decoder (diffusers autoencoders/vae.py, norm_type "group"): conv_in from the latent
// channels to the deepest width, the mid block, one UpDecoderBlock2D per stage in reverse width order
// (layers_per_block + 1 residual blocks, then nearest x2 + conv on all but the last), conv_norm_out -> SiLU ->
// conv_out to RGB. The output is not clamped; the pipelines' postprocess does that.
import type { WeightStore } from '../weights.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import type { AutoencoderKLConfig } from './config.js';
import { Conv2d, GroupNorm, MidBlock2D, ResnetBlock2D, Upsample2D, advance } from './layers.js';

/** UpDecoderBlock2D: residual blocks, then at most one upsampler (`upsamplers.0`). */
export class UpDecoderBlock2D {
  readonly resnets: ResnetBlock2D[] = [];
  readonly upsamplers: Upsample2D[] = [];

  constructor(store: WeightStore, readonly key: string, inDim: number, outDim: number, layers: number, groups: number, upsample: boolean) {
    for (let r = 0; r < layers; r++) {
      this.resnets.push(new ResnetBlock2D(store, `${key}.resnets.${r}`, r === 0 ? inDim : outDim, outDim, groups));
    }
    if (upsample) this.upsamplers.push(new Upsample2D(store, `${key}.upsamplers.0`, outDim));
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const r of this.resnets) y = advance(y, x, (t) => r.forward(t));
    for (const u of this.upsamplers) y = advance(y, x, (t) => u.forward(t));
    return y;
  }
}

export class Decoder {
  readonly convIn: Conv2d;
  readonly midBlock: MidBlock2D;
  readonly upBlocks: UpDecoderBlock2D[] = [];
  readonly convNormOut: GroupNorm;
  readonly convOut: Conv2d;

  constructor(store: WeightStore, config: AutoencoderKLConfig, readonly key = 'decoder') {
    const widths = [...config.blockOutChannels].reverse();
    const groups = config.normNumGroups;
    this.convIn = new Conv2d(store, `${key}.conv_in`, config.latentChannels, widths[0]!, 3);
    this.midBlock = new MidBlock2D(store, `${key}.mid_block`, widths[0]!, groups, config.midBlockAddAttention);
    let inDim = widths[0]!;
    widths.forEach((outDim, i) => {
      const last = i === widths.length - 1;
      this.upBlocks.push(new UpDecoderBlock2D(store, `${key}.up_blocks.${i}`, inDim, outDim, config.layersPerBlock + 1, groups, !last));
      inDim = outDim;
    });
    this.convNormOut = new GroupNorm(store, `${key}.conv_norm_out`, inDim, groups);
    this.convOut = new Conv2d(store, `${key}.conv_out`, inDim, config.outChannels, 3);
  }

  /** Latents [B, latent_channels, h, w] -> image [B, out_channels, h * 2^(stages-1), w * 2^(stages-1)]. */
  forward(z: Tensor): Tensor {
    return scoped(() => {
      let y = this.convIn.forward(z);
      y = advance(y, z, (t) => this.midBlock.forward(t));
      for (const block of this.upBlocks) y = advance(y, z, (t) => block.forward(t));
      y = advance(y, z, (t) => this.convNormOut.forwardSilu(t));
      return advance(y, z, (t) => this.convOut.forward(t));
    });
  }
}
