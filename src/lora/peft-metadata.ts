// The LoraConfig that diffusers writes into a LoRA file's safetensors metadata (`lora_adapter_metadata`: JSON
// with keys prefixed by the component, `transformer.r`, `transformer.lora_alpha`, ...). With it, PEFT scales a
// module by alpha / r, where r and alpha come from `rank_pattern` / `alpha_pattern` when a pattern matches the
// module name and from `r` / `lora_alpha` otherwise (use_rslora: alpha / sqrt(r)). Pattern keys are regular
// expressions matched against the end of the module path, as peft 0.17's get_pattern_key does:
// re.match(rf"(.*\.)?({key})$", module), first match in insertion order.
import { LoraError } from './errors.js';

export const METADATA_KEY = 'lora_adapter_metadata';

export interface PeftScalingConfig {
  r: number;
  loraAlpha: number;
  rankPattern: Record<string, number>;
  alphaPattern: Record<string, number>;
  useRslora: boolean;
  useDora: boolean;
}

function numberOr(v: unknown, fallback: number): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : fallback;
}

function numberMap(v: unknown): Record<string, number> {
  const out: Record<string, number> = {};
  if (v && typeof v === 'object') {
    for (const [k, x] of Object.entries(v)) if (typeof x === 'number' && Number.isFinite(x)) out[k] = x;
  }
  return out;
}

/**
 * The scaling part of the config for `component` ("transformer"), or undefined when the file carries none.
 * Configs without the component prefix (a bare PEFT adapter_config) are accepted too.
 */
export function readPeftScalingConfig(metadata: Readonly<Record<string, string>>, component = 'transformer'):
  PeftScalingConfig | undefined {
  const text = metadata[METADATA_KEY];
  if (text === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new LoraError('lora_load_failed', `the file's ${METADATA_KEY} metadata is not valid JSON (${(e as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object') return undefined;
  const all = parsed as Record<string, unknown>;
  const prefix = `${component}.`;
  const own = Object.keys(all).some((k) => k.startsWith(prefix))
    ? Object.fromEntries(Object.entries(all).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]))
    : all;
  if (typeof own.r !== 'number') return undefined;
  const r = own.r;
  return {
    r,
    // PEFT's LoraConfig default lora_alpha is 8; a config written by PEFT always has it.
    loraAlpha: numberOr(own.lora_alpha, 8),
    rankPattern: numberMap(own.rank_pattern),
    alphaPattern: numberMap(own.alpha_pattern),
    useRslora: own.use_rslora === true,
    useDora: own.use_dora === true,
  };
}

/** The value of the first pattern whose regex matches the end of `module` (PEFT's get_pattern_key). */
export function patternValue(patterns: Readonly<Record<string, number>>, module: string): number | undefined {
  for (const [key, value] of Object.entries(patterns)) {
    let re: RegExp;
    try {
      re = new RegExp(`^(?:.*\\.)?(?:${key})$`);
    } catch {
      // A Python-only regex construct: fall back to a literal suffix match on whole path components.
      if (module === key || module.endsWith(`.${key}`)) return value;
      continue;
    }
    if (re.test(module)) return value;
  }
  return undefined;
}

/** PEFT's (rank, alpha, scale) for `module` under `config`. */
export function peftScaling(config: PeftScalingConfig, module: string): { rank: number; alpha: number; scale: number } {
  const rank = patternValue(config.rankPattern, module) ?? config.r;
  const alpha = patternValue(config.alphaPattern, module) ?? config.loraAlpha;
  return { rank, alpha, scale: config.useRslora ? alpha / Math.sqrt(rank) : alpha / rank };
}
