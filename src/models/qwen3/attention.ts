// Qwen3 self-attention (transformers Qwen3Attention): projections, RMSNorm of every query and key head over its
// head_dim (before RoPE — Qwen3's addition to the Llama block), rotate-half RoPE, causal softmax attention
// scaled by 1/sqrt(head_dim) with grouped-query key/value heads, output projection.
//
// Grouped-query attention without repeating K/V. Query head h reads key/value head h / rep (rep = heads /
// kv_heads). The attention op addresses (batch, seq, head) by strides, so for ONE prompt we relabel: the op's
// batch is the kv group g (q stride rep*D, k/v stride D), its heads are the rep query heads of that group
// (q stride D, k/v stride 0: every query head of the group reads the same key head) and its sequence is the
// prompt's. Nothing is copied before attention; the output comes back as [groups, L, rep, D] and one strided
// copy puts it in [L, heads, D] order for o_proj. Materialising repeated K and V instead (transformers'
// repeat_kv) would copy two tensors of that size. A batch of prompts runs one call per prompt, since batch and
// group cannot share one stride; with rep = 1 (no grouping) the whole batch is one call.
import { attention, copyInto, empty, linear, rmsNorm, rope } from '../../runtime/ops.js';
import { Tensor } from '../../runtime/tensor.js';
import { Linear, NormWeights } from '../wan/transformer-layers.js';
import type { WeightStore } from '../weights.js';
import type { Qwen3Config } from './config.js';

export interface Qwen3AttentionInputs {
  /** Rotary tables [L, head_dim / 2] (rotate-half layout). */
  rope: { cos: Tensor; sin: Tensor };
  /** Causal bias view [1, 1, L, L]. */
  causal: Tensor;
  /** fp32 [B, L] padding key bias (0 / -inf), or null when no prompt is padded. */
  keyBias: Tensor | null;
}

export class Qwen3Attention {
  readonly q_proj: Linear;
  readonly k_proj: Linear;
  readonly v_proj: Linear;
  readonly o_proj: Linear;
  readonly q_norm: NormWeights;
  readonly k_norm: NormWeights;

  constructor(store: WeightStore, name: string, readonly config: Qwen3Config) {
    const { hiddenSize: hidden, numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D, attentionBias: bias } = config;
    this.q_proj = new Linear(store, `${name}.q_proj`, hidden, H * D, bias);
    this.k_proj = new Linear(store, `${name}.k_proj`, hidden, Hkv * D, bias);
    this.v_proj = new Linear(store, `${name}.v_proj`, hidden, Hkv * D, bias);
    this.o_proj = new Linear(store, `${name}.o_proj`, H * D, hidden, bias);
    this.q_norm = new NormWeights(store, `${name}.q_norm`, D, false);
    this.k_norm = new NormWeights(store, `${name}.k_norm`, D, false);
  }

  /** Self-attention of x [B, L, hidden]; returns o_proj's output [B, L, hidden]. */
  forward(x: Tensor, inputs: Qwen3AttentionInputs): Tensor {
    const { numAttentionHeads: H, numKeyValueHeads: Hkv, headDim: D, rmsNormEps: eps } = this.config;
    const [B, L] = x.shape as [number, number];
    // Per-head RMSNorm on [B, L, heads, D] rows, then RoPE (both return new contiguous tensors).
    const heads = (t: Tensor, n: number): Tensor => t.reshape([B, L, n, D]);
    const q = rope(rmsNorm(heads(this.q_proj.forward(x), H), this.q_norm.weight, eps), inputs.rope.cos, inputs.rope.sin, false);
    const k = rope(rmsNorm(heads(this.k_proj.forward(x), Hkv), this.k_norm.weight, eps), inputs.rope.cos, inputs.rope.sin, false);
    const v = heads(this.v_proj.forward(x), Hkv);
    const scale = 1 / Math.sqrt(D);
    let out: Tensor;
    if (H === Hkv) {
      out = attention(q, k, v, { scale, bias: inputs.causal, keyBias: inputs.keyBias }).out;
    } else {
      out = empty(x.device, [B, L, H, D], x.dtype);
      for (let b = 0; b < B; b++) {
        const grouped = attention(groupedQuery(q, b, Hkv), sharedKeyValue(k, b, H / Hkv), sharedKeyValue(v, b, H / Hkv), {
          scale, bias: inputs.causal, keyBias: inputs.keyBias ? inputs.keyBias.slice(0, b, b + 1) : null,
        }).out; // [groups, L, rep, D]
        copyInto(out.slice(0, b, b + 1).reshape([L, Hkv, H / Hkv, D]), grouped.permute([1, 0, 2, 3]));
        grouped.free();
      }
    }
    return linear(out.reshape([B, L, H * D]), this.o_proj.weight, this.o_proj.bias);
  }
}

/** Prompt b of q [B, L, H, D] as [groups, L, rep, D]: batch = kv group, heads = the group's query heads. */
function groupedQuery(q: Tensor, b: number, groups: number): Tensor {
  const [, L, H, D] = q.shape as [number, number, number, number];
  const rep = H / groups;
  return new Tensor(q.storage, q.dtype, [groups, L, rep, D], [rep * D, H * D, D, 1], q.offset + b * q.strides[0]!);
}

/** Prompt b of k or v [B, L, groups, D] as [groups, L, rep, D] with head stride 0 (shared by the group). */
function sharedKeyValue(t: Tensor, b: number, rep: number): Tensor {
  const [, L, groups, D] = t.shape as [number, number, number, number];
  return new Tensor(t.storage, t.dtype, [groups, L, rep, D], [D, groups * D, 0, 1], t.offset + b * t.strides[0]!);
}
