// The Wan VAE's building blocks (diffusers autoencoder_kl_wan.py): causal 3-D convolution with a frame cache,
// the channel RMS norm, the residual block, the per-frame spatial attention block and the resampling layers.
// Each layer reads its weights by checkpoint key (`<prefix>.conv1.weight` ...), so the object tree mirrors the
// checkpoint. Tensors are NCTHW; every forward returns a new tensor and frees what it allocated on the way.
import type { WeightStore } from '../weights.js';
import {
  Activation, activation, add, attention, cat, channelNorm, contiguous, conv3d, linear,
} from '../../runtime/ops.js';
import { Scope, type Tensor, scoped } from '../../runtime/tensor.js';
import { type FrameCache, SKIPPED_FIRST_CHUNK, framesToCache } from './vae-frame-cache.js';
import { UpsampleConv } from './vae-upsample-conv.js';

type Triple = [number, number, number];

/** Frees `t` unless `other` shares its storage (a view, or contiguous() handing back its input). */
export function freeUnlessShared(t: Tensor, other: Tensor): void {
  if (t.storage !== other.storage) t.free();
}

/** One step of a chain: `fn(x)`, then frees `x` unless it is (a view of) `keep`, the caller's input, or of the result. */
export function step(x: Tensor, keep: Tensor, fn: (x: Tensor) => Tensor): Tensor {
  const y = fn(x);
  if (x.storage !== keep.storage) freeUnlessShared(x, y);
  return y;
}

/**
 * Conv3d whose temporal padding is causal: 2*p zero frames in front, none behind (WanCausalConv3d). With a
 * cache, the cached frames stand in for as many of those zero frames.
 */
export class CausalConv3d {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly frontPad: number;

  constructor(store: WeightStore, readonly key: string, readonly inDim: number, readonly outDim: number,
    readonly kernel: Triple, readonly padding: Triple = [0, 0, 0], readonly stride: Triple = [1, 1, 1]) {
    this.weight = store.get(`${key}.weight`, [outDim, inDim, ...kernel]);
    this.bias = store.get(`${key}.bias`, [outDim]);
    this.frontPad = 2 * padding[0];
  }

  /** The convolution of `x` with `cached` frames (if any, and if this conv pads in time) in front of it. */
  forward(x: Tensor, cached?: Tensor): Tensor {
    let input = x;
    let front = this.frontPad;
    if (cached !== undefined && front > 0) {
      input = cat([cached, x], 2);
      front -= cached.shape[2]!;
    }
    const [, ph, pw] = this.padding;
    const y = conv3d(input, this.weight, this.bias, { stride: this.stride, pads: [front, 0, ph, ph, pw, pw] });
    if (input !== x) input.free();
    return y;
  }

  /** forward() with this conv's frames from `cache`, then caches `x`'s last frames for the next chunk. */
  forwardCached(x: Tensor, cache: FrameCache): Tensor {
    const next = framesToCache(x, cache.get(this));
    try {
      const y = this.forward(x, cache.frames(this));
      cache.set(this, next);
      return y;
    } catch (e) {
      next.free();
      throw e;
    }
  }
}

/**
 * WanRMS_norm: x / max(||x||_channels, 1e-12) * sqrt(C) * gamma over dim 1 (F.normalize's default eps). None
 * of the Wan2.1 norms has a bias.
 */
export class ChannelRMSNorm {
  readonly gamma: Tensor;
  readonly scale: number;

  constructor(store: WeightStore, readonly key: string, readonly dim: number, gammaShape: number[]) {
    this.gamma = store.get(`${key}.gamma`, gammaShape);
    this.scale = Math.sqrt(dim);
  }

  forward(x: Tensor): Tensor {
    return channelNorm(contiguous(x), this.gamma, null, this.scale, 1e-12);
  }
}

/** norm -> SiLU -> causal conv, twice, plus a 1x1x1 shortcut conv when the width changes (WanResidualBlock). */
export class ResidualBlock {
  readonly norm1: ChannelRMSNorm;
  readonly conv1: CausalConv3d;
  readonly norm2: ChannelRMSNorm;
  readonly conv2: CausalConv3d;
  readonly convShortcut: CausalConv3d | null;

  constructor(store: WeightStore, readonly key: string, readonly inDim: number, readonly outDim: number) {
    this.norm1 = new ChannelRMSNorm(store, `${key}.norm1`, inDim, [inDim, 1, 1, 1]);
    this.conv1 = new CausalConv3d(store, `${key}.conv1`, inDim, outDim, [3, 3, 3], [1, 1, 1]);
    this.norm2 = new ChannelRMSNorm(store, `${key}.norm2`, outDim, [outDim, 1, 1, 1]);
    this.conv2 = new CausalConv3d(store, `${key}.conv2`, outDim, outDim, [3, 3, 3], [1, 1, 1]);
    this.convShortcut = inDim !== outDim ? new CausalConv3d(store, `${key}.conv_shortcut`, inDim, outDim, [1, 1, 1]) : null;
  }

  forward(x: Tensor, cache: FrameCache): Tensor {
    return scoped(() => {
      const h = this.convShortcut ? this.convShortcut.forward(x) : x;
      let y = step(x, x, (t) => activation(this.norm1.forward(t), Activation.SILU, true));
      y = step(y, x, (t) => this.conv1.forwardCached(t, cache));
      y = step(y, x, (t) => activation(this.norm2.forward(t), Activation.SILU, true));
      y = step(y, x, (t) => this.conv2.forwardCached(t, cache));
      return add(y, h, y);
    });
  }
}

/**
 * Single-head self-attention over the spatial positions of each frame (WanAttentionBlock): RMS norm, 1x1 qkv
 * projection, softmax(q k^T / sqrt(C)) v, 1x1 output projection, residual. Frames do not see each other, so it
 * needs no cache.
 */
export class AttentionBlock {
  readonly norm: ChannelRMSNorm;
  readonly qkvWeight: Tensor;
  readonly qkvBias: Tensor;
  readonly projWeight: Tensor;
  readonly projBias: Tensor;

  constructor(store: WeightStore, readonly key: string, readonly dim: number) {
    this.norm = new ChannelRMSNorm(store, `${key}.norm`, dim, [dim, 1, 1]);
    // 1x1 Conv2d weights [out, in, 1, 1] are linear weights [out, in].
    this.qkvWeight = store.get(`${key}.to_qkv.weight`, [3 * dim, dim, 1, 1]).reshape([3 * dim, dim]);
    this.qkvBias = store.get(`${key}.to_qkv.bias`, [3 * dim]);
    this.projWeight = store.get(`${key}.proj.weight`, [dim, dim, 1, 1]).reshape([dim, dim]);
    this.projBias = store.get(`${key}.proj.bias`, [dim]);
  }

  forward(x: Tensor): Tensor {
    return scoped(() => {
      const [b, c, t, h, w] = x.shape as [number, number, number, number, number];
      const frames = b * t, positions = h * w;
      // Channels last: one row per position, so q/k/v are column blocks of one projection.
      const normed = this.norm.forward(x);
      const rows = contiguous(normed.permute([0, 2, 3, 4, 1]));
      freeUnlessShared(normed, rows);
      const qkv = linear(rows.reshape([frames, positions, c]), this.qkvWeight, this.qkvBias);
      freeUnlessShared(rows, qkv);
      const head = (i: number): Tensor => qkv.slice(2, i * c, (i + 1) * c).unsqueeze(2);
      const { out } = attention(head(0), head(1), head(2));
      qkv.free();
      const projected = linear(out.reshape([frames * positions, c]), this.projWeight, this.projBias);
      out.free();
      const back = projected.reshape([b, t, h, w, c]).permute([0, 4, 1, 2, 3]);
      return add(x, back);
    });
  }
}

/** WanMidBlock: residual block, attention block, residual block (shared by encoder and decoder). */
export class MidBlock {
  readonly resnets: [ResidualBlock, ResidualBlock];
  readonly attentions: [AttentionBlock];

  constructor(store: WeightStore, readonly key: string, dim: number) {
    this.resnets = [new ResidualBlock(store, `${key}.resnets.0`, dim, dim), new ResidualBlock(store, `${key}.resnets.1`, dim, dim)];
    this.attentions = [new AttentionBlock(store, `${key}.attentions.0`, dim)];
  }

  forward(x: Tensor, cache: FrameCache): Tensor {
    let y = step(x, x, (t) => this.resnets[0].forward(t, cache));
    y = step(y, x, (t) => this.attentions[0].forward(t));
    return step(y, x, (t) => this.resnets[1].forward(t, cache));
  }
}

export type ResampleMode = 'upsample2d' | 'upsample3d' | 'downsample2d' | 'downsample3d';

/**
 * WanResample. Spatial part: nearest x2 then 3x3 conv (up; to half the width; computed as two row phases of the
 * input upsampled along x only, see UpsampleConv), or zero pad right/bottom by one then 3x3 stride-2 conv (down). The 2-D
 * convs run as conv3d with a 1-frame kernel on all frames at once.
 * Temporal part (the 3d modes): upsample3d doubles the frames with a causal (3,1,1) conv to 2C channels whose
 * halves become the even and odd frames, skipped on the first chunk so the first frame stays single;
 * downsample3d halves them with a stride-2 (3,1,1) conv over the previous chunk's last frame plus this chunk.
 */
export class Resample {
  readonly weight: Tensor;
  readonly bias: Tensor;
  readonly timeConv: CausalConv3d | null = null;
  readonly outDim: number;
  /** The up modes' nearest x2 + 3x3 conv, computed on the low-resolution input. */
  readonly #upsampleConv: UpsampleConv | null = null;

  constructor(store: WeightStore, readonly key: string, readonly dim: number, readonly mode: ResampleMode) {
    const up = mode.startsWith('up');
    this.outDim = up ? Math.floor(dim / 2) : dim;
    // nn.Sequential(upsample | zero pad, Conv2d): the conv is `resample.1`.
    this.weight = store.get(`${key}.resample.1.weight`, [this.outDim, dim, 3, 3]).reshape([this.outDim, dim, 1, 3, 3]);
    this.bias = store.get(`${key}.resample.1.bias`, [this.outDim]);
    if (up) this.#upsampleConv = new UpsampleConv(this.weight.reshape([this.outDim, dim, 3, 3]), this.bias);
    if (mode === 'upsample3d') this.timeConv = new CausalConv3d(store, `${key}.time_conv`, dim, 2 * dim, [3, 1, 1], [1, 0, 0]);
    if (mode === 'downsample3d') this.timeConv = new CausalConv3d(store, `${key}.time_conv`, dim, dim, [3, 1, 1], [0, 0, 0], [2, 1, 1]);
  }

  forward(x: Tensor, cache: FrameCache): Tensor {
    return scoped(() => {
      let y = x;
      if (this.mode === 'upsample3d') y = this.#doubleFrames(x, cache);
      if (this.#upsampleConv) {
        const conv = this.#upsampleConv;
        y = step(y, x, (t) => conv.forward(t));
      } else {
        // ZeroPad2d((0, 1, 0, 1)) then the stride-2 conv: one extra zero column right and row below.
        y = step(y, x, (t) => conv3d(t, this.weight, this.bias, { stride: [1, 2, 2], pads: [0, 0, 0, 1, 0, 1] }));
      }
      if (this.mode === 'downsample3d') y = step(y, x, (t) => this.#halveFrames(t, cache));
      return y;
    });
  }

  /** Frees what the layer derived from its weights (the folded upsample kernels). */
  free(): void {
    this.#upsampleConv?.free();
  }

  #doubleFrames(x: Tensor, cache: FrameCache): Tensor {
    const conv = this.timeConv!;
    const previous = cache.get(conv);
    if (previous === undefined) {
      cache.set(conv, SKIPPED_FIRST_CHUNK);
      return x;
    }
    const next = framesToCache(x, previous);
    let y: Tensor;
    try {
      y = conv.forward(x, cache.frames(conv));
    } catch (e) {
      next.free();
      throw e;
    }
    cache.set(conv, next);
    // [B, 2C, T, H, W] -> [B, 2, C, T, H, W] -> [B, C, T, 2, H, W]: frame 2i from the first half, 2i+1 the second.
    const [b, c2, t, h, w] = y.shape as [number, number, number, number, number];
    const c = c2 / 2;
    const interleaved = contiguous(y.reshape([b, 2, c, t, h, w]).permute([0, 2, 3, 1, 4, 5])).reshape([b, c, 2 * t, h, w]);
    freeUnlessShared(y, interleaved);
    return interleaved;
  }

  #halveFrames(x: Tensor, cache: FrameCache): Tensor {
    const conv = this.timeConv!;
    const previous = cache.frames(conv);
    const t = x.shape[2]!;
    // Only the last frame is ever read back (diffusers caches the whole first chunk but uses [-1:]).
    const last = Scope.detach(cat([x.slice(2, t - 1, t)], 2));
    if (previous === undefined) {
      cache.set(conv, last);
      return x;
    }
    try {
      const input = cat([previous.slice(2, previous.shape[2]! - 1, previous.shape[2]!), x], 2);
      const y = conv.forward(input);
      input.free();
      cache.set(conv, last);
      return y;
    } catch (e) {
      last.free();
      throw e;
    }
  }
}
