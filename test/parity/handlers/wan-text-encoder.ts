// text_encoder cases of a WanPipeline fixture set: UMT5 on the case's token ids and attention mask (from the
// goldens, so the tokenizer is not under test here), returning last_hidden_state and the pipeline's
// prompt_embeds (rows past each prompt's length zeroed).
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { Device } from '../../../src/runtime/device.js';
import { sequenceLengths, UMT5Encoder, wanPromptEmbeds } from '../../../src/models/umt5/index.js';
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
  const hidden = encoder.forward({ ids, mask, batch, length });
  try {
    const outputs: CaseOutput[] = [];
    for (const out of c.outputs) {
      if (out.name.endsWith('_last_hidden_state')) {
        outputs.push({ name: out.name, values: hidden.toFloat32Array() });
      } else if (out.name.endsWith('_prompt_embeds')) {
        const embeds = wanPromptEmbeds(hidden, sequenceLengths(mask, batch, length), out.shape[1]);
        outputs.push({ name: out.name, values: embeds.toFloat32Array() });
        embeds.free();
      }
    }
    return outputs;
  } finally {
    hidden.free();
  }
}

export const handlers: FamilyHandlers = { text_encoder: textEncoder };
