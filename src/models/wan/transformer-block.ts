// One Wan DiT block (diffusers WanTransformerBlock, v0.36) and its attention (WanAttention):
//
//   shift, scale, gate, c_shift, c_scale, c_gate = scale_shift_table + timestep_proj      (per batch item)
//   x += gate   * to_out(selfattn(rope(rms_q(to_q(n))), rope(rms_k(to_k(n))), to_v(n)))   n = LN(x)*(1+scale)+shift
//   x +=          to_out(attn(rms_q(to_q(norm2(x))), rms_k(to_k(ctx)), to_v(ctx)))           cross-attention, no mask
//   x += c_gate * net.2(gelu_tanh(net.0.proj(LN(x)*(1+c_scale)+c_shift)))
//
// LN is LayerNorm without affine (FP32LayerNorm), norm2 LayerNorm with affine when cross_attn_norm, and rms_q/rms_k
// RMSNorm over all heads (dim = heads * head_dim) before the heads are split.
import { Activation, affine, attention, contiguous, gatedResidual, layerNorm, modulate, rmsNorm, rope } from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { SequenceParallel } from '../../parallel/sequence-parallel.js';
import type { WeightStore } from '../weights.js';
import type { WanTransformerConfig } from './transformer-config.js';
import { Linear, NormWeights } from './transformer-layers.js';

export interface RopeTensors { cos: Tensor; sin: Tensor }

/** Self-attention over a sequence sharded across ranks: this rank holds a shard of `total` tokens. */
export interface ShardedSequence { parallel: SequenceParallel; total: number }

export class WanAttention {
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  /** diffusers' to_out is [Linear, Dropout]; only index 0 has weights. */
  readonly to_out: readonly [Linear];
  readonly norm_q: NormWeights;
  readonly norm_k: NormWeights;

  constructor(store: WeightStore, name: string, readonly config: WanTransformerConfig) {
    const dim = config.innerDim;
    this.to_q = new Linear(store, `${name}.to_q`, dim, dim);
    this.to_k = new Linear(store, `${name}.to_k`, dim, dim);
    this.to_v = new Linear(store, `${name}.to_v`, dim, dim);
    this.to_out = [new Linear(store, `${name}.to_out.0`, dim, dim)];
    this.norm_q = new NormWeights(store, `${name}.norm_q`, dim, false);
    this.norm_k = new NormWeights(store, `${name}.norm_k`, dim, false);
  }

  /**
   * Attention of x [B, S, dim] over `context` [B, L, dim] (x itself for self-attention), RoPE on q and k when
   * tables are given (rows for x's tokens). With `sharded`, x is this rank's shard of a longer sequence and
   * self-attention spans every rank's shard. Returns to_out's output [B, S, dim], or, given `residual`
   * [B, S, dim], adds it there (inside the to_out GEMM) and returns `residual`.
   */
  forward(x: Tensor, context: Tensor | null, rotary: RopeTensors | null, sharded?: ShardedSequence, residual?: Tensor): Tensor {
    const { numAttentionHeads: H, attentionHeadDim: D, eps } = this.config;
    const kv = context ?? x;
    const [B, S] = x.shape as [number, number];
    const L = kv.shape[1]!;
    // Projections stay [B, seq, dim]; attention reads them as strided [B, seq, H, D] views, no permutes.
    let q = rmsNorm(this.to_q.forward(x), this.norm_q.weight, eps).reshape([B, S, H, D]);
    let k = rmsNorm(this.to_k.forward(kv), this.norm_k.weight, eps).reshape([B, L, H, D]);
    const v = this.to_v.forward(kv).reshape([B, L, H, D]);
    if (rotary) {
      q = rope(q, rotary.cos, rotary.sin, true);
      k = rope(k, rotary.cos, rotary.sin, true);
    }
    const scale = 1 / Math.sqrt(D);
    const out = sharded && !context
      ? sharded.parallel.attention(q, k, v, sharded.total, scale)
      : attention(q, k, v, { scale }).out;
    if (residual) return this.to_out[0].accumulateInto(out, residual);
    return this.to_out[0].forward(out.reshape([B, S, H * D]));
  }
}

/** diffusers FeedForward(dim, inner_dim=ffn_dim, activation_fn="gelu-approximate"): net = [GELU(proj), Dropout, Linear]. */
export interface WanFeedForward { net: readonly [{ proj: Linear }, null, Linear] }

export class WanTransformerBlock {
  readonly attn1: WanAttention;
  readonly attn2: WanAttention;
  /** Cross-attention input norm (LayerNorm with affine) when cross_attn_norm; norm1/norm3 have no parameters. */
  readonly norm2: NormWeights | null;
  readonly ffn: WanFeedForward;
  /** [1, 6, dim]: added to the timestep projection to give this block's shift/scale/gate vectors. */
  readonly scale_shift_table: Tensor;

  constructor(store: WeightStore, name: string, readonly config: WanTransformerConfig) {
    const dim = config.innerDim;
    this.attn1 = new WanAttention(store, `${name}.attn1`, config);
    this.attn2 = new WanAttention(store, `${name}.attn2`, config);
    this.norm2 = config.crossAttnNorm ? new NormWeights(store, `${name}.norm2`, dim, true) : null;
    this.ffn = {
      net: [{ proj: new Linear(store, `${name}.ffn.net.0.proj`, dim, config.ffnDim) }, null, new Linear(store, `${name}.ffn.net.2`, config.ffnDim, dim)],
    };
    this.scale_shift_table = store.get(`${name}.scale_shift_table`, [1, 6, dim]);
  }

  /**
   * Updates x [B, S, dim] in place. `modulation` is [B, 6, dim] = scale_shift_table + timestep_proj (rows: shift,
   * scale, gate of attention, then of the FFN); `context` the embedded text [B, L, dim].
   */
  forward(x: Tensor, context: Tensor, modulation: Tensor, rotary: RopeTensors, sharded?: ShardedSequence): void {
    const eps = this.config.eps;
    const row = (i: number): Tensor => modulation.slice(1, i, i + 1); // [B, 1, dim] views, no copies
    const [shift, scale, gate, cShift, cScale, cGate] = [0, 1, 2, 3, 4, 5].map(row) as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];

    const n1 = modulatedLayerNorm(x, scale, shift, eps);
    gatedResidual(x, this.attn1.forward(n1, null, rotary, sharded), gate);

    // Without norm2, n2 is x itself: attn2 reads it for q before its to_out GEMM adds into it.
    const n2 = this.norm2 ? layerNorm(x, this.norm2.weight, this.norm2.bias, eps) : x;
    this.attn2.forward(n2, context, null, undefined, x);

    const n3 = modulatedLayerNorm(x, cScale, cShift, eps);
    const ff = this.ffn.net[2].forward(this.ffn.net[0].proj.forward(n3, Activation.GELU_TANH));
    gatedResidual(x, ff, cGate);
  }
}

/**
 * LN(x) * (1 + scale) + shift for x [B, S, dim] and scale/shift [Bm, 1, dim] views. When one modulation row
 * serves the whole batch (Bm = 1) it is a single LayerNorm whose affine weight is 1 + scale and bias is shift:
 * one pass over x instead of two, same float32 arithmetic (LayerNorm's v * w + b is modulate's fused
 * v * (1 + scale) + shift). Per-item rows take the two-pass path.
 */
export function modulatedLayerNorm(x: Tensor, scale: Tensor, shift: Tensor, eps: number): Tensor {
  if (scale.shape[0] !== 1) return modulate(layerNorm(x, null, null, eps), scale, shift, true);
  return layerNorm(x, affine(contiguous(scale), 1, 1), contiguous(shift), eps);
}
