// The fields of a Qwen3 config.json (transformers Qwen3Config) that the text encoder uses, read and checked once.
// Defaults are Qwen3Config's constructor defaults; Z-Image-Turbo's text_encoder/config.json (Qwen3-4B) sets every
// key we read.
import { ConfigReader } from '../config.js';

export interface Qwen3Config {
  vocabSize: number;
  hiddenSize: number;
  intermediateSize: number;
  numHiddenLayers: number;
  numAttentionHeads: number;
  /** Grouped-query attention: each key/value head serves numAttentionHeads / numKeyValueHeads query heads. */
  numKeyValueHeads: number;
  /** Per-head width; Qwen3 sets it explicitly (128 for Qwen3-4B, where hidden / heads would be 80). */
  headDim: number;
  rmsNormEps: number;
  ropeTheta: number;
  /** q/k/v/o projections carry biases (false for every released Qwen3). */
  attentionBias: boolean;
}

export function parseQwen3Config(json: Record<string, unknown>, where = 'text_encoder/config.json'): Qwen3Config {
  const r = new ConfigReader(json, where);
  // The MLP is SwiGLU with SiLU; another activation would need its own gated kernel choice.
  r.requireOneOf('hidden_act', ['silu'], 'only the SiLU MLP (SwiGLU) is supported');
  // Scaled RoPE variants (yarn, dynamic NTK, ...) change the frequencies; Qwen3-4B uses plain RoPE.
  r.requireOneOf('rope_scaling', [null], 'scaled RoPE variants are not supported');
  if (r.has('use_sliding_window') && r.bool('use_sliding_window')) {
    throw new Error(`${where}: "use_sliding_window" is true: sliding-window attention layers are not supported`);
  }
  const hiddenSize = r.positiveInt('hidden_size', 4096);
  const heads = r.positiveInt('num_attention_heads', 32);
  const kvHeads = r.positiveInt('num_key_value_heads', heads);
  if (heads % kvHeads !== 0) throw new Error(`${where}: ${heads} attention heads do not split into ${kvHeads} key/value groups`);
  const headDim = r.json.head_dim === null || r.json.head_dim === undefined ? Math.floor(hiddenSize / heads) : r.positiveInt('head_dim');
  if (headDim % 2 !== 0) throw new Error(`${where}: head_dim ${headDim} must be even for rotary embeddings`);
  return {
    vocabSize: r.positiveInt('vocab_size', 151936),
    hiddenSize,
    intermediateSize: r.positiveInt('intermediate_size', 22016),
    numHiddenLayers: r.positiveInt('num_hidden_layers', 32),
    numAttentionHeads: heads,
    numKeyValueHeads: kvHeads,
    headDim,
    rmsNormEps: r.number('rms_norm_eps', 1e-6),
    ropeTheta: r.number('rope_theta', 10000),
    attentionBias: r.bool('attention_bias', false),
  };
}
