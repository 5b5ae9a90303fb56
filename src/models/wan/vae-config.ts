// The Wan VAE's config.json (diffusers AutoencoderKLWan) read into typed fields, and the channel widths the
// encoder and decoder derive from it. Defaults are diffusers' class defaults, which are the Wan2.1 VAE's values.

export interface WanVAEConfig {
  baseDim: number;
  decoderBaseDim: number;
  zDim: number;
  dimMult: number[];
  numResBlocks: number;
  /** Per down stage (len(dim_mult) - 1 entries): whether that stage also halves the frame count. */
  temporalDownsample: boolean[];
  inChannels: number;
  outChannels: number;
  /** Per latent channel statistics the pipelines use to (de)normalise latents. */
  latentsMean: number[];
  latentsStd: number[];
  scaleFactorSpatial: number;
  scaleFactorTemporal: number;
}

/** The 16-channel statistics diffusers ships as AutoencoderKLWan defaults (Wan2.1). */
const WAN21_LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
  0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921];
const WAN21_LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
  3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.916];

export class WanVAEConfigError extends Error {
  constructor(where: string, key: string, message: string) {
    super(`${where}: "${key}" ${message}`);
    this.name = 'WanVAEConfigError';
  }
}

type Json = Record<string, unknown>;

/** Parses an AutoencoderKLWan config.json; `where` names it in errors. Rejects what this port cannot run. */
export function parseWanVAEConfig(json: Json, where = 'vae/config.json'): WanVAEConfig {
  const fail = (key: string, msg: string): never => { throw new WanVAEConfigError(where, key, msg); };
  const get = (key: string, fallback: unknown): unknown => (json[key] === undefined || json[key] === null ? fallback : json[key]);
  const posInt = (key: string, fallback: number): number => {
    const v = get(key, fallback);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(key, `must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const list = <T>(key: string, fallback: T[], ok: (x: unknown) => boolean, what: string): T[] => {
    const v = get(key, fallback);
    if (!Array.isArray(v) || !v.every(ok)) fail(key, `must be a list of ${what}, got ${JSON.stringify(v)}`);
    return [...(v as T[])];
  };
  const isPosInt = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x > 0;
  const isNum = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x);

  if (get('is_residual', false) !== false) {
    fail('is_residual', 'is true: the Wan2.2 residual VAE (AvgDown3D/DupUp3D shortcuts, patchified 48-channel latents) is not supported yet');
  }
  const patch = get('patch_size', null);
  if (patch !== null && patch !== 1) fail('patch_size', `is ${JSON.stringify(patch)}: patchified (Wan2.2) VAEs are not supported yet`);
  const attnScales = list<number>('attn_scales', [], isNum, 'numbers');
  // diffusers' encoder would call an attention block with cache arguments it does not take, so no released
  // checkpoint uses them; refusing keeps us from guessing at semantics diffusers itself cannot run.
  if (attnScales.length > 0) fail('attn_scales', `is ${JSON.stringify(attnScales)}: attention inside the down/up stages is not supported (Wan2.1 uses [])`);

  const baseDim = posInt('base_dim', 96);
  const zDim = posInt('z_dim', 16);
  const dimMult = list<number>('dim_mult', [1, 2, 4, 4], isPosInt, 'positive integers');
  if (dimMult.length < 1) fail('dim_mult', 'must not be empty');
  const temporalDownsample = list<boolean>('temperal_downsample', [false, true, true], (x) => typeof x === 'boolean', 'booleans');
  if (temporalDownsample.length < dimMult.length - 1) {
    fail('temperal_downsample', `has ${temporalDownsample.length} entries, dim_mult needs ${dimMult.length - 1}`);
  }
  const latentsMean = list<number>('latents_mean', WAN21_LATENTS_MEAN, isNum, 'numbers');
  const latentsStd = list<number>('latents_std', WAN21_LATENTS_STD, isNum, 'numbers');
  if (latentsMean.length !== zDim) fail('latents_mean', `has ${latentsMean.length} values, z_dim is ${zDim}`);
  if (latentsStd.length !== zDim) fail('latents_std', `has ${latentsStd.length} values, z_dim is ${zDim}`);
  if (latentsStd.some((s) => s === 0)) fail('latents_std', 'contains 0');

  const stages = dimMult.length - 1;
  const temporalStages = temporalDownsample.slice(0, stages).filter(Boolean).length;
  return {
    baseDim,
    decoderBaseDim: posInt('decoder_base_dim', baseDim),
    zDim,
    dimMult,
    numResBlocks: posInt('num_res_blocks', 2),
    temporalDownsample: temporalDownsample.slice(0, stages),
    inChannels: posInt('in_channels', 3),
    outChannels: posInt('out_channels', 3),
    latentsMean,
    latentsStd,
    scaleFactorSpatial: 2 ** stages,
    scaleFactorTemporal: 2 ** temporalStages,
  };
}

/** Encoder widths: conv_in output, then one per stage (diffusers: dim * [1] + dim_mult). */
export const encoderDims = (c: WanVAEConfig): number[] => [1, ...c.dimMult].map((m) => c.baseDim * m);

/** Decoder widths: the deepest width first, then dim_mult reversed (diffusers: dim * [mult[-1]] + mult[::-1]). */
export const decoderDims = (c: WanVAEConfig): number[] =>
  [c.dimMult[c.dimMult.length - 1]!, ...[...c.dimMult].reverse()].map((m) => c.decoderBaseDim * m);

/** Video frames a latent of `latentFrames` frames decodes to (the first latent frame is one video frame). */
export const videoFramesFor = (c: WanVAEConfig, latentFrames: number): number => 1 + c.scaleFactorTemporal * (latentFrames - 1);
