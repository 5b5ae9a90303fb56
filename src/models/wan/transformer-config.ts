// WanTransformer3DModel's config.json (diffusers), read and checked once. Defaults are diffusers' constructor
// defaults; the real Wan2.1-T2V checkpoints set every key.
import { ConfigReader } from '../config.js';

export interface WanTransformerConfig {
  patchSize: [number, number, number];
  numAttentionHeads: number;
  attentionHeadDim: number;
  /** num_attention_heads * attention_head_dim, the model width. */
  innerDim: number;
  inChannels: number;
  outChannels: number;
  textDim: number;
  freqDim: number;
  ffnDim: number;
  numLayers: number;
  crossAttnNorm: boolean;
  eps: number;
  ropeMaxSeqLen: number;
}

export function parseWanTransformerConfig(json: Record<string, unknown>, where = 'transformer/config.json'): WanTransformerConfig {
  const r = new ConfigReader(json, where);
  // Image conditioning (I2V / FLF2V: image_dim, added_kv_proj_dim) adds an image embedder and extra K/V
  // projections that this model does not have yet.
  r.requireOneOf('image_dim', [null], 'image-conditioned (I2V) Wan transformers are not supported yet');
  r.requireOneOf('added_kv_proj_dim', [null], 'image-conditioned (I2V) Wan transformers are not supported yet');
  r.requireOneOf('pos_embed_seq_len', [null], 'image position embeddings (FLF2V) are not supported yet');
  // diffusers 0.36 normalises q and k with RMSNorm over all heads whatever this says; we accept only the value
  // the real checkpoints carry, so a config meaning something else fails loudly.
  r.requireOneOf('qk_norm', ['rms_norm_across_heads'], 'only "rms_norm_across_heads" is supported');
  const heads = r.positiveInt('num_attention_heads', 40);
  const headDim = r.positiveInt('attention_head_dim', 128);
  if (headDim % 2 !== 0) throw new Error(`${where}: "attention_head_dim" ${headDim} must be even for rotary embeddings`);
  const inChannels = r.positiveInt('in_channels', 16);
  const outChannels = r.has('out_channels') && r.json.out_channels !== null ? r.positiveInt('out_channels') : inChannels;
  return {
    patchSize: r.positiveIntTuple('patch_size', 3, [1, 2, 2]) as [number, number, number],
    numAttentionHeads: heads,
    attentionHeadDim: headDim,
    innerDim: heads * headDim,
    inChannels,
    outChannels,
    textDim: r.positiveInt('text_dim', 4096),
    freqDim: r.positiveInt('freq_dim', 256),
    ffnDim: r.positiveInt('ffn_dim', 13824),
    numLayers: r.positiveInt('num_layers', 40),
    crossAttnNorm: r.bool('cross_attn_norm', true),
    eps: r.number('eps', 1e-6),
    ropeMaxSeqLen: r.positiveInt('rope_max_seq_len', 1024),
  };
}
