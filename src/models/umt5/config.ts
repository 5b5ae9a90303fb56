// The fields of a (U)MT5 config.json that the encoder uses, read and checked once.
import { type ActivationCode, Activation } from '../../runtime/ops.js';
import { ConfigReader } from '../config.js';

export interface UMT5Config {
  vocabSize: number;
  dModel: number;
  /** Per-head width (d_kv); the attention's inner width is numHeads * dKv, which need not equal dModel. */
  dKv: number;
  numHeads: number;
  dFf: number;
  numLayers: number;
  relativeAttentionNumBuckets: number;
  relativeAttentionMaxDistance: number;
  layerNormEpsilon: number;
  /** "gated-gelu" -> wi_0 (activated) * wi_1; otherwise a single wi. */
  isGatedAct: boolean;
  /** The FFN activation as a native activation code. */
  denseActivation: ActivationCode;
}

/** transformers' ACT2FN names we can run natively; gelu_new is GELU with the tanh approximation. */
const ACTIVATIONS: Record<string, ActivationCode> = {
  gelu_new: Activation.GELU_TANH,
  gelu_pytorch_tanh: Activation.GELU_TANH,
  gelu: Activation.GELU_ERF,
  relu: Activation.RELU,
  silu: Activation.SILU,
};

/**
 * Parses config.json of a T5-family encoder. `feed_forward_proj` decides the FFN as transformers does:
 * "gated-X" is gated with activation X, and "gated-gelu" means gelu_new (T5 v1.1 / UMT5).
 */
export function parseUMT5Config(json: Record<string, unknown>, where = 'text_encoder/config.json'): UMT5Config {
  const r = new ConfigReader(json, where);
  const ffProj = r.string('feed_forward_proj', 'relu');
  const parts = ffProj.split('-');
  const isGated = parts[0] === 'gated';
  if (parts.length > 2 || (parts.length === 2 && !isGated)) {
    throw new Error(`${where}: "feed_forward_proj" is ${JSON.stringify(ffProj)}; expected "ACT" or "gated-ACT"`);
  }
  const actName = ffProj === 'gated-gelu' ? 'gelu_new' : parts[parts.length - 1]!;
  const denseActivation = ACTIVATIONS[actName];
  if (denseActivation === undefined) throw new Error(`${where}: activation ${JSON.stringify(actName)} (from feed_forward_proj) is not supported`);
  const dModel = r.positiveInt('d_model');
  const numHeads = r.positiveInt('num_heads');
  return {
    vocabSize: r.positiveInt('vocab_size'),
    dModel,
    dKv: r.positiveInt('d_kv', Math.floor(dModel / numHeads)),
    numHeads,
    dFf: r.positiveInt('d_ff'),
    numLayers: r.positiveInt('num_layers'),
    relativeAttentionNumBuckets: r.positiveInt('relative_attention_num_buckets', 32),
    relativeAttentionMaxDistance: r.positiveInt('relative_attention_max_distance', 128),
    layerNormEpsilon: r.number('layer_norm_epsilon', 1e-6),
    isGatedAct: isGated,
    denseActivation,
  };
}
