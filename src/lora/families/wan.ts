// Wan 2.1 / 2.2 (WanTransformer3DModel): the original Wan repository's module names, used by ComfyUI LoRAs
// (`diffusion_model.blocks.0.self_attn.q`) and musubi-tuner / kohya LoRAs (`lora_unet_blocks_0_self_attn_q`),
// mapped onto diffusers names the way diffusers v0.36.0's `_convert_non_diffusers_wan_lora_to_diffusers` and
// `_convert_musubi_wan_lora_to_diffusers` do.
import { type LoraFamily, type RenameRule, applyRules } from './family.js';

const ATTN_PROJ: Record<string, string> = { q: 'to_q', k: 'to_k', v: 'to_v', o: 'to_out.0' };
const IMAGE_KV: Record<string, string> = { k_img: 'add_k_proj', v_img: 'add_v_proj' };
const EMBEDDER_LINEAR: Record<string, string> = { 0: 'linear_1', 2: 'linear_2' };

const one = (module: string) => [{ module }];

const RULES: readonly RenameRule[] = [
  [/^blocks\.(\d+)\.self_attn\.([qkvo])$/, (m) => one(`blocks.${m[1]}.attn1.${ATTN_PROJ[m[2]!]}`)],
  [/^blocks\.(\d+)\.cross_attn\.([qkvo])$/, (m) => one(`blocks.${m[1]}.attn2.${ATTN_PROJ[m[2]!]}`)],
  // Image-to-video cross-attention to the CLIP image tokens.
  [/^blocks\.(\d+)\.cross_attn\.(k_img|v_img)$/, (m) => one(`blocks.${m[1]}.attn2.${IMAGE_KV[m[2]!]}`)],
  [/^blocks\.(\d+)\.ffn\.0$/, (m) => one(`blocks.${m[1]}.ffn.net.0.proj`)],
  [/^blocks\.(\d+)\.ffn\.2$/, (m) => one(`blocks.${m[1]}.ffn.net.2`)],
  [/^time_projection\.1$/, () => one('condition_embedder.time_proj')],
  [/^head\.head$/, () => one('proj_out')],
  [/^text_embedding\.([02])$/, (m) => one(`condition_embedder.text_embedder.${EMBEDDER_LINEAR[m[1]!]}`)],
  [/^time_embedding\.([02])$/, (m) => one(`condition_embedder.time_embedder.${EMBEDDER_LINEAR[m[1]!]}`)],
  [/^img_emb\.proj\.1$/, () => one('condition_embedder.image_embedder.ff.net.0.proj')],
  [/^img_emb\.proj\.3$/, () => one('condition_embedder.image_embedder.ff.net.2')],
];

export const wanFamily: LoraFamily = {
  name: 'wan',
  pipelines: ['WanPipeline', 'WanImageToVideoPipeline', 'WanVideoToVideoPipeline', 'WanVACEPipeline'],
  phrases: [
    // original names
    'self_attn', 'cross_attn', 'k_img', 'v_img', 'time_projection', 'text_embedding', 'time_embedding', 'img_emb',
    // diffusers names (kohya files that flatten those)
    'to_q', 'to_k', 'to_v', 'to_out', 'add_k_proj', 'add_v_proj', 'proj_out', 'condition_embedder',
    'time_embedder', 'text_embedder', 'image_embedder', 'time_proj', 'linear_1', 'linear_2', 'patch_embedding',
  ],
  toDiffusers: (original) => applyRules(RULES, original),
};
