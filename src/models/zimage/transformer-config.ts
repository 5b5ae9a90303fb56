// ZImageTransformer2DModel's config.json (diffusers v0.36), read and checked once. Defaults are diffusers'
// constructor defaults; Tongyi-MAI/Z-Image-Turbo's config sets every key (it differs from the defaults only in
// axes_lens, [1536, 512, 512] against [1024, 512, 512]).
import { ConfigError, ConfigReader } from '../config.js';

/** Width of the timestep embedding that drives adaLN: min(dim, 256) (diffusers ADALN_EMBED_DIM). */
export const ADALN_EMBED_DIM = 256;
/** Image and caption token runs are padded to multiples of this (diffusers SEQ_MULTI_OF). */
export const SEQ_MULTI_OF = 32;
/** The attention's q/k RMSNorm eps: diffusers builds Attention(eps=1e-5) whatever norm_eps says. */
export const QK_NORM_EPS = 1e-5;

export interface ZImageTransformerConfig {
  /** (patch, frame patch) pairs the checkpoint has embedders for, e.g. [[2, 1]] -> `all_x_embedder.2-1`. */
  patchSizes: [number, number][];
  inChannels: number;
  outChannels: number;
  dim: number;
  numLayers: number;
  numRefinerLayers: number;
  numHeads: number;
  headDim: number;
  normEps: number;
  qkNorm: boolean;
  capFeatDim: number;
  ropeTheta: number;
  tScale: number;
  /** RoPE widths of the head dim per axis (caption/frame, height, width); they sum to headDim. */
  axesDims: [number, number, number];
  /** Positions each axis's frequency table covers (ids must stay below these). */
  axesLens: [number, number, number];
  /** FeedForward hidden width: int(dim / 3 * 8) as diffusers computes it (10240 for dim 3840). */
  ffnHidden: number;
  /** min(dim, 256): the timestep embedding width. */
  adalnDim: number;
}

function positiveIntList(r: ConfigReader, key: string, fallback: number[]): number[] {
  const v = r.json[key] ?? fallback;
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x <= 0)) {
    throw new ConfigError(r.where, key, `must be a non-empty list of positive integers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

export function parseZImageTransformerConfig(json: Record<string, unknown>, where = 'transformer/config.json'): ZImageTransformerConfig {
  const r = new ConfigReader(json, where);
  const patch = positiveIntList(r, 'all_patch_size', [2]);
  const fPatch = positiveIntList(r, 'all_f_patch_size', [1]);
  if (patch.length !== fPatch.length) throw new ConfigError(where, 'all_f_patch_size', `has ${fPatch.length} entries, all_patch_size ${patch.length}`);
  const dim = r.positiveInt('dim', 3840);
  const heads = r.positiveInt('n_heads', 30);
  if (dim % heads !== 0) throw new ConfigError(where, 'n_heads', `${heads} does not divide dim ${dim}`);
  const headDim = dim / heads;
  // n_kv_heads is accepted and ignored, as diffusers ignores it: its Attention has n_heads key/value heads.
  r.positiveInt('n_kv_heads', heads);
  const axesDims = r.positiveIntTuple('axes_dims', 3, [32, 48, 48]) as [number, number, number];
  if (axesDims.some((d) => d % 2 !== 0) || axesDims[0] + axesDims[1] + axesDims[2] !== headDim) {
    throw new ConfigError(where, 'axes_dims', `must be even and sum to the head dim ${headDim}, got ${JSON.stringify(axesDims)}`);
  }
  const inChannels = r.positiveInt('in_channels', 16);
  return {
    patchSizes: patch.map((p, i) => [p, fPatch[i]!] as [number, number]),
    inChannels,
    outChannels: inChannels,
    dim,
    numLayers: r.positiveInt('n_layers', 30),
    numRefinerLayers: r.positiveInt('n_refiner_layers', 2),
    numHeads: heads,
    headDim,
    normEps: r.number('norm_eps', 1e-5),
    qkNorm: r.bool('qk_norm', true),
    capFeatDim: r.positiveInt('cap_feat_dim', 2560),
    ropeTheta: r.number('rope_theta', 256),
    tScale: r.number('t_scale', 1000),
    axesDims,
    axesLens: r.positiveIntTuple('axes_lens', 3, [1024, 512, 512]) as [number, number, number],
    ffnHidden: Math.trunc((dim / 3) * 8),
    adalnDim: Math.min(dim, ADALN_EMBED_DIM),
  };
}
