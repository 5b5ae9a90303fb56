// Z-Image (ZImageTransformer2DModel): the original repository's module names that ComfyUI / kohya LoRAs use.
// diffusers v0.36.0 (`_convert_non_diffusers_z_image_lora_to_diffusers`) renames `attention.out` to
// `attention.to_out.0`; its single-file checkpoint converter additionally splits the fused `attention.qkv` and
// renames `final_layer` / `x_embedder` (patch 2, frame patch 1: `all_final_layer.2-1`, `all_x_embedder.2-1`).
// We apply all of these, so LoRAs trained against the original checkpoint load too. A fused-qkv LoRA splits
// exactly: the rows of `up` are [q; k; v], each block paired with the shared `down`.
import { type LoraFamily, type RenameRule, applyRules } from './family.js';

const RULES: readonly RenameRule[] = [
  [/^(.+)\.attention\.out$/, (m) => [{ module: `${m[1]}.attention.to_out.0` }]],
  [/^(.+)\.attention\.qkv$/, (m) => ['to_q', 'to_k', 'to_v'].map((p, index) => ({
    module: `${m[1]}.attention.${p}`, rows: { index, parts: 3 },
  }))],
  [/^final_layer\.(.+)$/, (m) => [{ module: `all_final_layer.2-1.${m[1]}` }]],
  [/^x_embedder$/, () => [{ module: 'all_x_embedder.2-1' }]],
];

export const zimageFamily: LoraFamily = {
  name: 'zimage',
  pipelines: ['ZImagePipeline', 'ZImageImg2ImgPipeline'],
  phrases: [
    'to_q', 'to_k', 'to_v', 'to_out', 'feed_forward', 'noise_refiner', 'context_refiner', 'adaLN_modulation',
    't_embedder', 'cap_embedder', 'all_final_layer', 'all_x_embedder', 'final_layer', 'x_embedder',
    'attention_norm1', 'attention_norm2', 'ffn_norm1', 'ffn_norm2', 'norm_q', 'norm_k', 'q_norm', 'k_norm',
  ],
  toDiffusers: (original) => applyRules(RULES, original),
};
