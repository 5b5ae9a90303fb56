// One Z-Image block (diffusers ZImageTransformerBlock, v0.36) with its attention (ZSingleStreamAttnProcessor)
// and SwiGLU feed-forward. With modulation (noise_refiner, main layers):
//
//   x += tanh(gate_msa) * attention_norm2(attn(attention_norm1(x) * (1 + scale_msa)))
//   x += tanh(gate_mlp) * ffn_norm2(w2(silu(w1(n)) * w3(n)))          n = ffn_norm1(x) * (1 + scale_mlp)
//
// and without (context_refiner) the same with scale 0 and gate 1. All four norms are RMSNorm (norm_eps, affine).
// Attention: to_q/to_k/to_v (no bias), per-head RMSNorm of q and k (eps 1e-5), 3-axis interleaved RoPE, softmax
// with 1/sqrt(head_dim) and the batch's key mask, to_out.0 (no bias). The projections stay [B, S, dim]; attention
// reads them as [B, S, H, D] views, so nothing is permuted.
import { Activation, add, attention, gatedResidual, modulate, mul, rmsNorm, rope } from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { Linear, NormWeights } from '../wan/transformer-layers.js';
import type { WeightStore } from '../weights.js';
import { QK_NORM_EPS, type ZImageTransformerConfig } from './transformer-config.js';
import type { BlockModulation } from './transformer-modulation.js';
import type { RopeTables } from './rope.js';

/** What every block of one sequence (image, caption or unified) shares within a forward. */
export interface SequenceContext {
  /** Rotary tables [B * S, head_dim / 2] for the batch tensor's rows. */
  rope: RopeTables;
  /** fp32 [B, S] key bias masking the batch padding, or null when every item fills S. */
  keyBias: Tensor | null;
}

export class ZImageAttention {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  /** diffusers' to_out is [Linear, Dropout]; only index 0 has weights. */
  readonly to_out: readonly [Linear];
  readonly norm_q: NormWeights | null;
  readonly norm_k: NormWeights | null;

  constructor(store: WeightStore, name: string, readonly config: ZImageTransformerConfig) {
    const { dim, headDim } = config;
    this.to_q = new Linear(store, `${name}.to_q`, dim, dim, false);
    this.to_k = new Linear(store, `${name}.to_k`, dim, dim, false);
    this.to_v = new Linear(store, `${name}.to_v`, dim, dim, false);
    this.to_out = [new Linear(store, `${name}.to_out.0`, dim, dim, false)];
    this.norm_q = config.qkNorm ? new NormWeights(store, `${name}.norm_q`, headDim, false) : null;
    this.norm_k = config.qkNorm ? new NormWeights(store, `${name}.norm_k`, headDim, false) : null;
  }

  /** Self-attention of x [B, S, dim]; returns to_out's output [B, S, dim]. */
  forward(x: Tensor, ctx: SequenceContext): Tensor {
    const { numHeads: H, headDim: D } = this.config;
    const [B, S] = x.shape as [number, number];
    // q/k: per-head norm, then RoPE over the batch as one [1, B*S] sequence (the tables have a row per token).
    const rotated = (proj: Linear, norm: NormWeights | null): Tensor => {
      let t = proj.forward(x).reshape([1, B * S, H, D]);
      if (norm) t = rmsNorm(t, norm.weight, QK_NORM_EPS);
      return rope(t, ctx.rope.cos, ctx.rope.sin, true).reshape([B, S, H, D]);
    };
    const q = rotated(this.to_q, this.norm_q);
    const k = rotated(this.to_k, this.norm_k);
    const v = this.to_v.forward(x).reshape([B, S, H, D]);
    const out = attention(q, k, v, { scale: 1 / Math.sqrt(D), keyBias: ctx.keyBias }).out;
    return this.to_out[0].forward(out.reshape([B, S, H * D]));
  }
}

/** SwiGLU FeedForward: w2(silu(w1(x)) * w3(x)), no biases, hidden int(dim / 3 * 8). */
export class ZImageFeedForward {
  readonly w1: Linear;
  readonly w2: Linear;
  readonly w3: Linear;

  constructor(store: WeightStore, name: string, dim: number, hidden: number) {
    this.w1 = new Linear(store, `${name}.w1`, dim, hidden, false);
    this.w2 = new Linear(store, `${name}.w2`, hidden, dim, false);
    this.w3 = new Linear(store, `${name}.w3`, dim, hidden, false);
  }

  /** SiLU fused into the w1 GEMM, the product with w3(x) taken in place. */
  forward(x: Tensor): Tensor {
    const inner = this.w1.forward(x, Activation.SILU);
    mul(inner, this.w3.forward(x), inner);
    return this.w2.forward(inner);
  }
}

export class ZImageTransformerBlock {
  readonly attention: ZImageAttention;
  readonly feed_forward: ZImageFeedForward;
  readonly attention_norm1: NormWeights;
  readonly attention_norm2: NormWeights;
  readonly ffn_norm1: NormWeights;
  readonly ffn_norm2: NormWeights;
  /** Sequential(Linear(adaln_dim, 4 * dim)) of the modulated blocks; null for the context refiner. */
  readonly adaLN_modulation: readonly [Linear] | null;

  constructor(store: WeightStore, name: string, readonly config: ZImageTransformerConfig, modulation: boolean) {
    const { dim } = config;
    this.attention = new ZImageAttention(store, `${name}.attention`, config);
    this.feed_forward = new ZImageFeedForward(store, `${name}.feed_forward`, dim, config.ffnHidden);
    this.attention_norm1 = new NormWeights(store, `${name}.attention_norm1`, dim, false);
    this.attention_norm2 = new NormWeights(store, `${name}.attention_norm2`, dim, false);
    this.ffn_norm1 = new NormWeights(store, `${name}.ffn_norm1`, dim, false);
    this.ffn_norm2 = new NormWeights(store, `${name}.ffn_norm2`, dim, false);
    this.adaLN_modulation = modulation ? [new Linear(store, `${name}.adaLN_modulation.0`, config.adalnDim, 4 * dim)] : null;
  }

  /** Updates x [B, S, dim] in place; `mod` (from blockModulations) for the modulated blocks. */
  forward(x: Tensor, ctx: SequenceContext, mod: BlockModulation | null): void {
    const eps = this.config.normEps;
    if ((mod === null) !== (this.adaLN_modulation === null)) throw new Error('ZImageTransformerBlock: modulation given to a block without adaLN, or missing');
    let n = rmsNorm(x, this.attention_norm1.weight, eps);
    if (mod) n = modulate(n, mod.scaleMsa, mod.zeroShift, true);
    const a = rmsNorm(this.attention.forward(n, ctx), this.attention_norm2.weight, eps);
    if (mod) gatedResidual(x, a, mod.gateMsa);
    else add(x, a, x);

    let h = rmsNorm(x, this.ffn_norm1.weight, eps);
    if (mod) h = modulate(h, mod.scaleMlp, mod.zeroShift, true);
    const f = rmsNorm(this.feed_forward.forward(h), this.ffn_norm2.weight, eps);
    if (mod) gatedResidual(x, f, mod.gateMlp);
    else add(x, f, x);
  }
}
