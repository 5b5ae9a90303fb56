// text_encoder cases of a ZImagePipeline fixture set: Qwen3 on the case's token ids and attention mask (from the
// goldens, so the tokenizer is not under test here), returning hidden_states[-2] over the full padded length and
// the pipeline's per-prompt prompt_embeds_i (rows where the mask is 1). prompt_embeds go through the pipeline's
// own path, encodeZImagePrompt, which encodes only the prompts' positions: the golden checks that shortcut too.
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { encodeZImagePrompt, Qwen3Model } from '../../../src/models/qwen3/index.js';
import { Device } from '../../../src/runtime/device.js';
import type { CaseContext, CaseOutput, FamilyHandlers, ParityCase } from '../types.js';

export const family = 'ZImagePipeline';

let device: Device | undefined;
const encoders = new Map<string, Qwen3Model>();

function encoderFor(modelDir: string): Qwen3Model {
  let enc = encoders.get(modelDir);
  if (!enc) {
    device ??= new Device({ backend: 'cpu' });
    const component = openDiffusersModel(modelDir).component('text_encoder');
    enc = new Qwen3Model(device, component.config, component.weights!);
    encoders.set(modelDir, enc);
  }
  return enc;
}

function textEncoder(c: ParityCase, ctx: CaseContext): CaseOutput[] {
  if (!ctx.modelDir) throw new Error('text_encoder case without a model folder');
  const idsSpec = c.inputs.find((i) => i.name.endsWith('_input_ids'));
  const maskSpec = c.inputs.find((i) => i.name.endsWith('_attention_mask'));
  if (!idsSpec || !maskSpec) throw new Error('text_encoder case needs *_input_ids and *_attention_mask inputs');
  const [batch, length] = idsSpec.shape as [number, number];
  const tokens = {
    ids: Array.from(ctx.goldens.readBigInt64(idsSpec.name), Number),
    mask: Array.from(ctx.goldens.readBigInt64(maskSpec.name), Number),
    batch, length,
  };
  const encoder = encoderFor(ctx.modelDir);
  const outputs: CaseOutput[] = [];
  if (c.outputs.some((o) => o.name.endsWith('_hidden_states_m2'))) {
    const hidden = encoder.forward(tokens);
    outputs.push({ name: c.outputs.find((o) => o.name.endsWith('_hidden_states_m2'))!.name, values: hidden.toFloat32Array() });
    hidden.free();
  }
  const embeds = encodeZImagePrompt(encoder, tokens);
  embeds.forEach((e, i) => {
    const name = c.outputs.find((o) => o.name.endsWith(`_prompt_embeds_${i}`))?.name;
    if (name) outputs.push({ name, values: e.toFloat32Array() });
    e.free();
  });
  return outputs;
}

export const handlers: FamilyHandlers = { text_encoder: textEncoder };
