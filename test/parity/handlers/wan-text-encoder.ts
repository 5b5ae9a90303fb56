// text_encoder cases of a WanPipeline fixture set: UMT5 on the case's token ids and attention mask (from the
// goldens, so the tokenizer is not under test here), returning last_hidden_state (full padded length) and the
// pipeline's prompt_embeds (rows past each prompt's length zeroed). prompt_embeds go through the pipeline's own
// path, encodeWanPrompt, which encodes only the prompt's positions: the golden checks that shortcut too.
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { Device } from '../../../src/runtime/device.js';
import { encodeWanPrompt, UMT5Encoder } from '../../../src/models/umt5/index.js';
import type { CaseContext, CaseOutput, FamilyHandlers, ParityCase } from '../types.js';

export const family = 'WanPipeline';

let device: Device | undefined;
const encoders = new Map<string, UMT5Encoder>();

function encoderFor(modelDir: string): UMT5Encoder {
  let enc = encoders.get(modelDir);
  if (!enc) {
    device ??= new Device({ backend: 'cpu' });
    const component = openDiffusersModel(modelDir).component('text_encoder');
    enc = new UMT5Encoder(device, component.config, component.weights!);
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
  const ids = Array.from(ctx.goldens.readBigInt64(idsSpec.name), Number);
  const mask = Array.from(ctx.goldens.readBigInt64(maskSpec.name), Number);

  const encoder = encoderFor(ctx.modelDir);
  const tokens = { ids, mask, batch, length };
  const outputs: CaseOutput[] = [];
  for (const out of c.outputs) {
    const result = out.name.endsWith('_last_hidden_state') ? encoder.forward(tokens)
      : out.name.endsWith('_prompt_embeds') ? encodeWanPrompt(encoder, tokens, out.shape[1])
        : undefined;
    if (!result) continue;
    outputs.push({ name: out.name, values: result.toFloat32Array() });
    result.free();
  }
  return outputs;
}

export const handlers: FamilyHandlers = { text_encoder: textEncoder };
