// A LoRA file turned into what the merger needs: per target Linear (by its diffusers module name, the key our
// WeightStores use), the down matrix A [rank, in], the up matrix B [out, rank] and the factor alpha / rank —
// whatever naming scheme, spelling and alpha convention the file used.
//
// Alpha, per layer, in this order:
//   - original / kohya names with an `.alpha` key: diffusers folds alpha / rank into A and B in the file's dtype
//     while converting (alpha-folding.ts); we do the same, so such a layer has scale 1.
//   - the file's PEFT LoraConfig metadata (lora_alpha, r, alpha_pattern, rank_pattern, use_rslora).
//   - a per-key `.alpha` next to lora_A / lora_B (ComfyUI honours these; diffusers ignores them).
//   - the caller's alpha override (set_lora `lora_alpha`), then alpha = rank (scale 1, PEFT's default).
import type { SafetensorsDType } from '../checkpoint/dtype.js';
import { alphaFoldFactors, foldInDType, type FoldDType } from './alpha-folding.js';
import { LoraError, listSome } from './errors.js';
import { type LoraFamily, type ModuleTarget, unflattenKohyaName } from './families/index.js';
import { type KeyRole, type Naming, type ParsedKey, isTextEncoderKey, namingOfBareGroup, parseLoraKey } from './key-names.js';
import { type PeftScalingConfig, peftScaling, readPeftScalingConfig } from './peft-metadata.js';

/** What the adapter builder reads: a safetensors file (SafetensorsFile) or anything shaped like one. */
export interface LoraTensorSource {
  names(): string[];
  info(name: string): { dtype: SafetensorsDType; shape: readonly number[] };
  readFloat32(name: string): Float32Array;
  readRaw(name: string): Uint8Array;
  readonly metadata: Readonly<Record<string, string>>;
}

export type AlphaSource = 'folded' | 'metadata' | 'key' | 'override' | 'rank';

/** One target Linear's low-rank update: delta W = scale * up @ down (and delta b = scale * bias). */
export interface LoraLayer {
  /** diffusers module path, e.g. `blocks.0.attn1.to_q` (weight key `<module>.weight`). */
  module: string;
  /** The file's keys this layer came from (for messages). */
  keys: string[];
  rank: number;
  inFeatures: number;
  outFeatures: number;
  /** A, [rank, in] row-major, exact values (after folding, when folded). Absent for a bias-only layer. */
  down?: Float32Array;
  /** B, [out, rank] row-major. */
  up?: Float32Array;
  /** Delta of the Linear's bias, [out] (`lora_B.bias` / `diff_b`). */
  bias?: Float32Array;
  alpha: number;
  alphaSource: AlphaSource;
  /** The factor applied at merge time (times the strength): alpha / rank, or 1 once folded into A and B. */
  scale: number;
}

export interface LoraAdapter {
  /** Which naming schemes the keys used. */
  namings: Naming[];
  layers: LoraLayer[];
  /** Things that were skipped or are unusual, in words (text-encoder keys, full-weight diffs, DoRA scales). */
  warnings: string[];
  /** Host memory the matrices hold, in bytes. */
  bytes: number;
}

export interface BuildOptions {
  /** alpha for layers whose file gives none (positive); otherwise alpha = rank. */
  alpha?: number;
}

interface KeyGroup {
  naming: Naming | 'bare';
  path: string;
  keys: Partial<Record<KeyRole, ParsedKey>>;
  all: ParsedKey[];
}

const FOLD_DTYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16', 'F64']);

/** Reads a 0-d (or 1-element) alpha exactly, as torch's `.item()` would give it. */
function readScalar(source: LoraTensorSource, key: string): number {
  const info = source.info(key);
  if (info.shape.reduce((a, b) => a * b, 1) !== 1) throw new LoraError('lora_load_failed', `${key} should hold one value, has shape [${info.shape.join(', ')}]`);
  if (info.dtype === 'F64') {
    const raw = source.readRaw(key);
    return new DataView(raw.buffer, raw.byteOffset, raw.byteLength).getFloat64(0, true);
  }
  const v = source.readFloat32(key)[0]!;
  if (!Number.isFinite(v)) throw new LoraError('lora_load_failed', `${key} is not a finite number`);
  return v;
}

function groupKeys(source: LoraTensorSource, warnings: string[]): KeyGroup[] {
  const groups = new Map<string, KeyGroup>();
  const unknown: string[] = [];
  const textEncoder: string[] = [];
  const skipped = { diff: [] as string[], dora: [] as string[], norm: [] as string[] };
  for (const key of source.names()) {
    if (isTextEncoderKey(key)) { textEncoder.push(key); continue; }
    const parsed = parseLoraKey(key);
    if (!parsed) { unknown.push(key); continue; }
    // diffusers drops these: full-weight diffs (it logs them and goes on), norm diffs (zeros in the files that
    // have them) and DoRA magnitudes (unsupported, with a warning).
    if (parsed.role === 'full_diff') { skipped.diff.push(key); continue; }
    if (parsed.role === 'dora') { skipped.dora.push(key); continue; }
    if (parsed.role === 'bias' && /(^|[._])norm/.test(parsed.path) && parsed.naming !== 'diffusers') { skipped.norm.push(key); continue; }
    const id = `${parsed.naming}:${parsed.path}`;
    let g = groups.get(id);
    if (!g) groups.set(id, (g = { naming: parsed.naming, path: parsed.path, keys: {}, all: [] }));
    if (g.keys[parsed.role]) {
      throw new LoraError('lora_load_failed', `keys ${g.keys[parsed.role]!.key} and ${key} both give the ${parsed.role} of ${parsed.path}`);
    }
    g.keys[parsed.role] = parsed;
    g.all.push(parsed);
  }
  if (unknown.length > 0) {
    throw new LoraError('lora_load_failed', `not a LoRA file we can read: ${unknown.length} of its ${source.names().length} keys are not LoRA weights (${listSome(unknown, 4)})`);
  }
  if (textEncoder.length) warnings.push(`ignored ${textEncoder.length} text-encoder keys (LoRAs apply to the transformer only): ${listSome(textEncoder, 3)}`);
  if (skipped.diff.length) warnings.push(`ignored ${skipped.diff.length} full-weight .diff keys, as diffusers does: ${listSome(skipped.diff, 3)}`);
  if (skipped.norm.length) warnings.push(`ignored ${skipped.norm.length} norm bias diffs, as diffusers does: ${listSome(skipped.norm, 3)}`);
  if (skipped.dora.length) warnings.push(`ignored ${skipped.dora.length} DoRA magnitude keys (DoRA is not supported; diffusers drops them too): ${listSome(skipped.dora, 3)}`);
  return [...groups.values()];
}

function shapeOf(source: LoraTensorSource, key: string): readonly number[] {
  return source.info(key).shape;
}

function floatDType(source: LoraTensorSource, key: string): FoldDType {
  const dtype = source.info(key).dtype;
  if (!FOLD_DTYPES.has(dtype)) throw new LoraError('lora_load_failed', `${key} has dtype ${dtype}; LoRA matrices must be float`);
  return dtype as FoldDType;
}

/** Rows [start, end) of a row-major [rows, cols] matrix. */
function rowBlock(m: Float32Array, cols: number, start: number, end: number): Float32Array {
  return m.slice(start * cols, end * cols);
}

function buildGroup(source: LoraTensorSource, family: LoraFamily, g: KeyGroup, peft: PeftScalingConfig | undefined,
  options: BuildOptions): LoraLayer[] {
  const naming: Naming = g.naming === 'bare' ? namingOfBareGroup(g.all) : g.naming;
  const { down: downKey, up: upKey, alpha: alphaKey, bias: biasKey } = g.keys;
  const keys = g.all.map((k) => k.key);
  if (!!downKey !== !!upKey) {
    const [has, lacks] = downKey ? [downKey.key, 'up (lora_B / lora_up)'] : [upKey!.key, 'down (lora_A / lora_down)'];
    throw new LoraError('lora_load_failed', `${has} has no matching ${lacks} matrix`);
  }
  if (!downKey && !biasKey) {
    throw new LoraError('lora_load_failed', `${keys.join(', ')}: an alpha without LoRA matrices for ${g.path}`);
  }

  // Shapes: A [rank, in], B [out, rank].
  let rank = 0, inFeatures = 0, outFeatures = 0;
  let down: Float32Array | undefined, up: Float32Array | undefined;
  if (downKey && upKey) {
    const ds = shapeOf(source, downKey.key), us = shapeOf(source, upKey.key);
    if (ds.length !== 2 || us.length !== 2) {
      throw new LoraError('lora_load_failed', `${downKey.key} [${ds.join(', ')}] / ${upKey.key} [${us.join(', ')}]: only Linear LoRAs (2-D matrices) are supported`);
    }
    if (ds[0] !== us[1]) {
      throw new LoraError('lora_load_failed', `${downKey.key} [${ds.join(', ')}] and ${upKey.key} [${us.join(', ')}] disagree on the rank`);
    }
    [rank, inFeatures] = ds as [number, number];
    outFeatures = us[0]!;
    if (rank === 0) throw new LoraError('lora_load_failed', `${downKey.key} has rank 0`);
    down = source.readFloat32(downKey.key);
    up = source.readFloat32(upKey.key);
  }
  let bias: Float32Array | undefined;
  if (biasKey) {
    const bs = shapeOf(source, biasKey.key);
    if (bs.length !== 1 || (outFeatures && bs[0] !== outFeatures)) {
      throw new LoraError('lora_load_failed', `${biasKey.key} has shape [${bs.join(', ')}], expected [${outFeatures || 'out'}]`);
    }
    outFeatures ||= bs[0]!;
    bias = source.readFloat32(biasKey.key);
  }

  // Alpha and scale (see the file comment for the order).
  let alpha = rank, scale = 1, alphaSource: AlphaSource = 'rank';
  const fileAlpha = alphaKey ? readScalar(source, alphaKey.key) : undefined;
  if (down && up && naming !== 'diffusers' && fileAlpha !== undefined) {
    const f = alphaFoldFactors(fileAlpha, rank);
    down = foldInDType(down, f.down, floatDType(source, downKey!.key));
    up = foldInDType(up, f.up, floatDType(source, upKey!.key));
    alpha = fileAlpha; alphaSource = 'folded';
  } else if (peft && naming === 'diffusers' && down) {
    const p = peftScaling(peft, g.path);
    if (p.rank !== rank) {
      throw new LoraError('lora_load_failed', `${downKey!.key}: the file's LoraConfig gives rank ${p.rank} for ${g.path}, its matrices have rank ${rank}`);
    }
    alpha = p.alpha; scale = p.scale; alphaSource = 'metadata';
  } else if (fileAlpha !== undefined) {
    alpha = fileAlpha; scale = rank ? fileAlpha / rank : 1; alphaSource = 'key';
  } else if (options.alpha !== undefined && rank) {
    alpha = options.alpha; scale = options.alpha / rank; alphaSource = 'override';
  }

  // Where it goes in the model.
  let targets: ModuleTarget[];
  if (naming === 'diffusers') targets = [{ module: g.path }];
  else targets = family.toDiffusers(naming === 'kohya' ? unflattenKohyaName(g.path, family.phrases) : g.path);

  return targets.map((t) => {
    if (!t.rows) return { module: t.module, keys, rank, inFeatures, outFeatures, down, up, bias, alpha, alphaSource, scale };
    // A fused projection (e.g. qkv): this target takes one equal block of the up rows and of the bias.
    if (outFeatures % t.rows.parts !== 0) {
      throw new LoraError('lora_load_failed', `${keys[0]}: ${outFeatures} output rows do not split into ${t.rows.parts} equal parts for ${t.module}`);
    }
    const n = outFeatures / t.rows.parts, start = t.rows.index * n;
    return {
      module: t.module, keys, rank, inFeatures, outFeatures: n, down,
      up: up && rowBlock(up, rank, start, start + n), bias: bias && bias.slice(start, start + n),
      alpha, alphaSource, scale,
    };
  });
}

/** Reads every LoRA tensor of `source` into an adapter for a model of `family`. Throws LoraError. */
export function buildLoraAdapter(source: LoraTensorSource, family: LoraFamily, options: BuildOptions = {}): LoraAdapter {
  if (options.alpha !== undefined && !(options.alpha > 0 && Number.isFinite(options.alpha))) {
    throw new LoraError('invalid_argument', `lora_alpha must be a positive number, got ${options.alpha}`, 'lora_alpha');
  }
  const warnings: string[] = [];
  const groups = groupKeys(source, warnings);
  const peft = readPeftScalingConfig(source.metadata);
  if (peft?.useDora) throw new LoraError('lora_load_failed', 'DoRA adapters (use_dora) are not supported');
  const layers: LoraLayer[] = [];
  const byModule = new Map<string, LoraLayer>();
  for (const g of groups) {
    for (const layer of buildGroup(source, family, g, peft, options)) {
      const prev = byModule.get(layer.module);
      if (prev) throw new LoraError('lora_load_failed', `${listSome(prev.keys, 2)} and ${listSome(layer.keys, 2)} both target ${layer.module}`);
      byModule.set(layer.module, layer);
      layers.push(layer);
    }
  }
  if (layers.length === 0) throw new LoraError('lora_load_failed', 'the file has no LoRA weights for the transformer');
  const namings = [...new Set(groups.map((g) => (g.naming === 'bare' ? namingOfBareGroup(g.all) : g.naming)))];
  const seen = new Set<Float32Array>();
  let bytes = 0;
  for (const l of layers) {
    for (const m of [l.down, l.up, l.bias]) if (m && !seen.has(m)) { seen.add(m); bytes += m.byteLength; }
  }
  return { namings, layers, warnings, bytes };
}
