// The 2-D AutoencoderKL's building blocks (diffusers resnet.py ResnetBlock2D, attention_processor.py Attention
// as UNetMidBlock2D builds it, downsampling.py Downsample2D, upsampling.py Upsample2D). Each layer reads its
// weights by checkpoint key (`<prefix>.conv1.weight` ...), so the object tree mirrors the checkpoint. Tensors
// are NCHW; every forward returns a new tensor and frees its intermediates as soon as the next one exists, so a
// block holds at most its input, its shortcut and two working tensors at once.
import type { WeightStore } from '../weights.js';
import {
  Activation, activation, add, attention, contiguous, conv2d, groupNorm, linear, upsampleNearest,
} from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';

/** Every GroupNorm of these VAEs uses eps 1e-6 (diffusers passes resnet_eps=1e-6 throughout Encoder/Decoder). */
export const NORM_EPS = 1e-6;

/**
 * One link of a chain: y = fn(x), then x is freed unless it is the chain's input `keep` (the caller owns that)
 * or y shares its storage (a view, or an op that handed x back).
 */
export function advance(x: Tensor, keep: Tensor, fn: (x: Tensor) => Tensor): Tensor {
  const y = fn(x);
  if (x.storage !== keep.storage && x.storage !== y.storage) x.free();
  return y;
}

/** nn.Conv2d with square kernel `k`, stride 1 and `same` padding (k = 3: 1, k = 1: 0). */
export class Conv2d {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly pad: number;

  constructor(store: WeightStore, readonly key: string, readonly inDim: number, readonly outDim: number, readonly k: number) {
    this.weight = store.get(`${key}.weight`, [outDim, inDim, k, k]);
    this.bias = store.get(`${key}.bias`, [outDim]);
    this.pad = (k - 1) / 2;
  }

  forward(x: Tensor): Tensor {
    const p = this.pad;
    return conv2d(x, this.weight, this.bias, { pads: [p, p, p, p] });
  }
}

/** nn.GroupNorm(groups, channels, eps=1e-6, affine=True). */
export class GroupNorm {
  readonly weight: Tensor;
  readonly bias: Tensor;

  constructor(store: WeightStore, readonly key: string, readonly channels: number, readonly groups: number) {
    this.weight = store.get(`${key}.weight`, [channels]);
    this.bias = store.get(`${key}.bias`, [channels]);
  }

  forward(x: Tensor): Tensor {
    return groupNorm(contiguous(x), this.groups, this.weight, this.bias, NORM_EPS);
  }

  /** GroupNorm then SiLU, the pre-activation every conv of these VAEs gets. */
  forwardSilu(x: Tensor): Tensor {
    return activation(this.forward(x), Activation.SILU, true);
  }
}

/**
 * ResnetBlock2D without a time embedding (temb_channels=None, output_scale_factor 1): norm1 -> SiLU -> conv1 ->
 * norm2 -> SiLU -> conv2 (dropout is 0 at inference), plus the input, through a 1x1 conv_shortcut when the width
 * changes.
 */
export class ResnetBlock2D {
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly norm2: GroupNorm;
  readonly conv2: Conv2d;
  readonly convShortcut: Conv2d | null;

  constructor(store: WeightStore, readonly key: string, readonly inDim: number, readonly outDim: number, groups: number) {
    this.norm1 = new GroupNorm(store, `${key}.norm1`, inDim, groups);
    this.conv1 = new Conv2d(store, `${key}.conv1`, inDim, outDim, 3);
    this.norm2 = new GroupNorm(store, `${key}.norm2`, outDim, groups);
    this.conv2 = new Conv2d(store, `${key}.conv2`, outDim, outDim, 3);
    this.convShortcut = inDim !== outDim ? new Conv2d(store, `${key}.conv_shortcut`, inDim, outDim, 1) : null;
  }

  forward(x: Tensor): Tensor {
    return scoped(() => {
      let y = advance(x, x, (t) => this.norm1.forwardSilu(t));
      y = advance(y, x, (t) => this.conv1.forward(t));
      y = advance(y, x, (t) => this.norm2.forwardSilu(t));
      y = advance(y, x, (t) => this.conv2.forward(t));
      const shortcut = this.convShortcut ? this.convShortcut.forward(x) : x;
      return add(shortcut, y, y);
    });
  }
}

/** A linear projection stored either as nn.Linear [out, in] (diffusers' to_q ...) or as a 1x1 conv [out, in, 1, 1]. */
function projection(store: WeightStore, key: string, dim: number): { weight: Tensor; bias: Tensor } {
  // The linear shape is the expected one (sources that make up tensors, like benchmarks' random weights, use it).
  const shape = store.source.info(store.prefix + `${key}.weight`, [dim, dim]).shape;
  const weight = shape.length === 4
    ? store.get(`${key}.weight`, [dim, dim, 1, 1]).reshape([dim, dim])
    : store.get(`${key}.weight`, [dim, dim]);
  return { weight, bias: store.get(`${key}.bias`, [dim]) };
}

/**
 * The mid block's self-attention over all spatial positions (diffusers Attention with heads = 1, dim_head =
 * channels, group_norm, residual_connection, rescale 1): x + to_out(softmax(q k^T / sqrt(C)) v) where q, k, v
 * are linear projections of GroupNorm(x) with one row per position. Checkpoints in the pre-0.14 layout name the
 * projections query/key/value/proj_attn (diffusers renames them on load); both are read.
 */
export class AttentionBlock {
  readonly groupNorm: GroupNorm;
  readonly toQ: { weight: Tensor; bias: Tensor };
  readonly toK: { weight: Tensor; bias: Tensor };
  readonly toV: { weight: Tensor; bias: Tensor };
  readonly toOut: { weight: Tensor; bias: Tensor };

  constructor(store: WeightStore, readonly key: string, readonly dim: number, groups: number) {
    const legacy = !store.source.has(store.prefix + `${key}.to_q.weight`) && store.source.has(store.prefix + `${key}.query.weight`);
    this.groupNorm = new GroupNorm(store, `${key}.group_norm`, dim, groups);
    this.toQ = projection(store, `${key}.${legacy ? 'query' : 'to_q'}`, dim);
    this.toK = projection(store, `${key}.${legacy ? 'key' : 'to_k'}`, dim);
    this.toV = projection(store, `${key}.${legacy ? 'value' : 'to_v'}`, dim);
    this.toOut = projection(store, `${key}.${legacy ? 'proj_attn' : 'to_out.0'}`, dim);
  }

  forward(x: Tensor): Tensor {
    return scoped(() => {
      const [b, c, h, w] = x.shape as [number, number, number, number];
      const positions = h * w;
      // Channels last: [B, C, HW] -> [B, HW, C], one row per position.
      const normed = this.groupNorm.forward(x);
      const rows = contiguous(normed.reshape([b, c, positions]).permute([0, 2, 1]));
      normed.free();
      const project = (p: { weight: Tensor; bias: Tensor }): Tensor => linear(rows, p.weight, p.bias).unsqueeze(2);
      const q = project(this.toQ), k = project(this.toK), v = project(this.toV);
      rows.free();
      const { out } = attention(q, k, v); // one head of width C: scale 1/sqrt(C)
      q.free(); k.free(); v.free();
      const projected = linear(out.reshape([b, positions, c]), this.toOut.weight, this.toOut.bias);
      out.free();
      // Back to [B, C, HW] as a strided view; the residual add writes a dense result.
      return add(contiguous(x).reshape([b, c, positions]), projected.permute([0, 2, 1])).reshape([b, c, h, w]);
    });
  }
}

/** UNetMidBlock2D (one layer): resnet, attention (unless mid_block_add_attention is false), resnet. */
export class MidBlock2D {
  readonly resnets: [ResnetBlock2D, ResnetBlock2D];
  readonly attentions: [AttentionBlock] | [];

  constructor(store: WeightStore, readonly key: string, dim: number, groups: number, addAttention: boolean) {
    this.resnets = [
      new ResnetBlock2D(store, `${key}.resnets.0`, dim, dim, groups),
      new ResnetBlock2D(store, `${key}.resnets.1`, dim, dim, groups),
    ];
    this.attentions = addAttention ? [new AttentionBlock(store, `${key}.attentions.0`, dim, groups)] : [];
  }

  forward(x: Tensor): Tensor {
    let y = advance(x, x, (t) => this.resnets[0].forward(t));
    for (const a of this.attentions) y = advance(y, x, (t) => a.forward(t));
    return advance(y, x, (t) => this.resnets[1].forward(t));
  }
}

/**
 * Downsample2D as the Encoder builds it (use_conv, padding=0): zero-pad one row at the bottom and one column on
 * the right (F.pad(x, (0, 1, 0, 1))), then a 3x3 conv with stride 2 and no padding.
 */
export class Downsample2D {
  readonly conv: { weight: Tensor; bias: Tensor };

  constructor(store: WeightStore, readonly key: string, readonly dim: number) {
    this.conv = {
      weight: store.get(`${key}.conv.weight`, [dim, dim, 3, 3]),
      bias: store.get(`${key}.conv.bias`, [dim]),
    };
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.conv.weight, this.conv.bias, { stride: [2, 2], pads: [0, 1, 0, 1] });
  }
}

/** Upsample2D (use_conv, interpolate): nearest-neighbour x2, then a 3x3 conv with padding 1. */
export class Upsample2D {
  readonly conv: Conv2d;

  constructor(store: WeightStore, readonly key: string, readonly dim: number) {
    this.conv = new Conv2d(store, `${key}.conv`, dim, dim, 3);
  }

  forward(x: Tensor): Tensor {
    const up = upsampleNearest(x, [2, 2]);
    const y = this.conv.forward(up);
    up.free();
    return y;
  }
}
