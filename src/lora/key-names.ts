// Reading one LoRA state-dict key: which naming scheme it uses (its prefix), which module it belongs to, and
// what the tensor is (down / up matrix, alpha, bias delta, or something we knowingly skip).
//
//   transformer.blocks.0.attn1.to_q.lora_A.weight          diffusers / PEFT (also base_model.model., or bare)
//   diffusion_model.blocks.0.self_attn.q.lora_down.weight   original repository names (ComfyUI)
//   lora_unet_blocks_0_self_attn_q.lora_down.weight         kohya / musubi-tuner (path flattened with `_`)

/** down = A [rank, in], up = B [out, rank], bias = a delta for the Linear's bias. */
export type KeyRole = 'down' | 'up' | 'alpha' | 'bias' | 'full_diff' | 'dora';

/** diffusers: module paths are ours already. original / kohya: the family's rename rules apply. */
export type Naming = 'diffusers' | 'original' | 'kohya';

export interface ParsedKey {
  key: string;
  /** `bare`: no prefix; the group's spelling decides (see namingOfBareGroup). */
  naming: Naming | 'bare';
  /** Spelled lora_A / lora_B (PEFT) rather than lora_down / lora_up. */
  peftSpelling: boolean;
  /** Module path in the key's own naming (kohya: still flattened). */
  path: string;
  role: KeyRole;
}

/** Suffix -> role; `explicit` spellings (lora_A/lora_B) mark a bare key as diffusers naming. */
const SUFFIXES: readonly { suffix: string; role: KeyRole; diffusersSpelling?: boolean }[] = [
  { suffix: '.lora_A.weight', role: 'down', diffusersSpelling: true },
  { suffix: '.lora_B.weight', role: 'up', diffusersSpelling: true },
  // PEFT state dicts saved with the adapter name still in them (diffusers strips `default.`).
  { suffix: '.lora_A.default.weight', role: 'down', diffusersSpelling: true },
  { suffix: '.lora_B.default.weight', role: 'up', diffusersSpelling: true },
  { suffix: '.lora_B.bias', role: 'bias', diffusersSpelling: true },
  { suffix: '.lora_down.weight', role: 'down' },
  { suffix: '.lora_up.weight', role: 'up' },
  { suffix: '.lora.down.weight', role: 'down' },
  { suffix: '.lora.up.weight', role: 'up' },
  { suffix: '.alpha', role: 'alpha' },
  { suffix: '.diff_b', role: 'bias' },
  { suffix: '.diff', role: 'full_diff' },
  { suffix: '.dora_scale', role: 'dora' },
  { suffix: '.lora_magnitude_vector', role: 'dora' },
];

const PREFIXES: readonly { prefix: string; naming: Naming }[] = [
  { prefix: 'transformer.', naming: 'diffusers' },
  { prefix: 'base_model.model.', naming: 'diffusers' },
  { prefix: 'model.diffusion_model.', naming: 'original' },
  { prefix: 'diffusion_model.', naming: 'original' },
  { prefix: 'lora_unet_', naming: 'kohya' },
];

/** Keys of text-encoder LoRAs; our pipelines apply LoRAs to their transformers only. */
const TEXT_ENCODER_PREFIXES = ['text_encoder.', 'text_encoder_2.', 'lora_te_', 'lora_te1_', 'lora_te2_', 'lora_te3_'];

export function isTextEncoderKey(key: string): boolean {
  return TEXT_ENCODER_PREFIXES.some((p) => key.startsWith(p));
}

/** The parsed key, or undefined when it matches no LoRA key pattern. */
export function parseLoraKey(key: string): ParsedKey | undefined {
  const s = SUFFIXES.find((x) => key.endsWith(x.suffix) && key.length > x.suffix.length);
  if (!s) return undefined;
  let rest = key.slice(0, -s.suffix.length);
  const p = PREFIXES.find((x) => rest.startsWith(x.prefix));
  if (p) rest = rest.slice(p.prefix.length);
  if (rest.length === 0) return undefined;
  return { key, naming: p ? p.naming : 'bare', peftSpelling: s.diffusersSpelling === true, path: rest, role: s.role };
}

/**
 * Keys without a prefix: lora_A / lora_B spelling means PEFT (diffusers) names, lora_down / lora_up the
 * original repository's names (what diffusers' Z-Image converter assumes for such files).
 */
export function namingOfBareGroup(keys: readonly ParsedKey[]): Naming {
  return keys.some((k) => k.peftSpelling) ? 'diffusers' : 'original';
}
