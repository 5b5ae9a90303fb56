// The 2-D AutoencoderKL's config.json (diffusers autoencoders/autoencoder_kl.py) read into typed fields. Only
// the variant built from DownEncoderBlock2D / UpDecoderBlock2D stages with SiLU is supported: the SD/SDXL/FLUX
// family, which includes Z-Image's VAE (FLUX's: 16 latent channels, no quant convs). Defaults are diffusers'
// class defaults.
import { ConfigError, ConfigReader } from '../config.js';

export interface AutoencoderKLConfig {
  inChannels: number;
  outChannels: number;
  /** Width of each stage, shallowest first; there are len - 1 down/up samplings by 2. */
  blockOutChannels: number[];
  /** Residual blocks per encoder stage (the decoder has one more per stage). */
  layersPerBlock: number;
  normNumGroups: number;
  latentChannels: number;
  /** The pipeline's latent normalisation: z_model = (z_vae - shiftFactor) * scalingFactor. */
  scalingFactor: number;
  /** 0 when the config has none (SD 1.x/SDXL VAEs); FLUX/Z-Image: 0.1159. */
  shiftFactor: number;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAddAttention: boolean;
  /** Image pixels per latent pixel along each axis: 2^(stages - 1). */
  scaleFactor: number;
}

/** The only block types this port builds; others (attention blocks per stage) exist in diffusers but not in these VAEs. */
const DOWN_BLOCK = 'DownEncoderBlock2D';
const UP_BLOCK = 'UpDecoderBlock2D';

/** diffusers' get_activation names for SiLU. */
const SILU_NAMES = ['silu', 'swish'];

function stringList(r: ConfigReader, key: string, fallback: string[]): string[] {
  const v = r.json[key] ?? fallback;
  if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) {
    throw new ConfigError(r.where, key, `must be a list of strings, got ${JSON.stringify(v)}`);
  }
  return v as string[];
}

function intList(r: ConfigReader, key: string, fallback: number[]): number[] {
  const v = r.json[key] ?? fallback;
  if (!Array.isArray(v) || v.length === 0 || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x <= 0)) {
    throw new ConfigError(r.where, key, `must be a non-empty list of positive integers, got ${JSON.stringify(v)}`);
  }
  return v as number[];
}

/** Parses an AutoencoderKL config.json; `where` names it in errors. Rejects what this port cannot run. */
export function parseAutoencoderKLConfig(json: Record<string, unknown>, where = 'vae/config.json'): AutoencoderKLConfig {
  const r = new ConfigReader(json, where);
  const blockOutChannels = intList(r, 'block_out_channels', [64]);
  const stages = blockOutChannels.length;
  const down = stringList(r, 'down_block_types', [DOWN_BLOCK]);
  const up = stringList(r, 'up_block_types', [UP_BLOCK]);
  if (down.length !== stages || down.some((b) => b !== DOWN_BLOCK)) {
    throw new ConfigError(where, 'down_block_types', `is ${JSON.stringify(down)}: expected ${stages} x "${DOWN_BLOCK}" (one per block_out_channels entry)`);
  }
  if (up.length !== stages || up.some((b) => b !== UP_BLOCK)) {
    throw new ConfigError(where, 'up_block_types', `is ${JSON.stringify(up)}: expected ${stages} x "${UP_BLOCK}" (one per block_out_channels entry)`);
  }
  const act = r.string('act_fn', 'silu');
  if (!SILU_NAMES.includes(act)) throw new ConfigError(where, 'act_fn', `is ${JSON.stringify(act)}: only silu is supported`);
  const normNumGroups = r.positiveInt('norm_num_groups', 32);
  for (const c of blockOutChannels) {
    if (c % normNumGroups !== 0) throw new ConfigError(where, 'norm_num_groups', `(${normNumGroups}) does not divide block width ${c}`);
  }
  const shift = r.json.shift_factor;
  if (shift !== undefined && shift !== null && (typeof shift !== 'number' || !Number.isFinite(shift))) {
    throw new ConfigError(where, 'shift_factor', `must be a number or null, got ${JSON.stringify(shift)}`);
  }
  const scalingFactor = r.number('scaling_factor', 0.18215);
  if (scalingFactor === 0) throw new ConfigError(where, 'scaling_factor', 'must not be 0');
  return {
    inChannels: r.positiveInt('in_channels', 3),
    outChannels: r.positiveInt('out_channels', 3),
    blockOutChannels: [...blockOutChannels],
    layersPerBlock: r.positiveInt('layers_per_block', 1),
    normNumGroups,
    latentChannels: r.positiveInt('latent_channels', 4),
    scalingFactor,
    shiftFactor: typeof shift === 'number' ? shift : 0,
    useQuantConv: r.bool('use_quant_conv', true),
    usePostQuantConv: r.bool('use_post_quant_conv', true),
    midBlockAddAttention: r.bool('mid_block_add_attention', true),
    scaleFactor: 2 ** (stages - 1),
  };
}
