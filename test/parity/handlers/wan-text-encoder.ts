// text_encoder cases of a WanPipeline fixture set: UMT5 on the case's token ids and attention mask (from the
// goldens, so the tokenizer is not under test here), returning last_hidden_state (full padded length) and the
// pipeline's prompt_embeds (rows past each prompt's length zeroed). prompt_embeds go through the pipeline's own
// path, encodeWanPrompt, which encodes only the prompt's positions: the golden checks that shortcut too.
import { encodeWanPrompt, umt5EncoderFrom } from '../../../src/models/umt5/index.js';
import { cachedComponent, caseTokens } from '../case-io.js';
import type { CaseOutput, FamilyHandlers } from '../types.js';

export const family = 'WanPipeline';

export const handlers: FamilyHandlers = {
  text_encoder: (c, ctx) => {
    const encoder = cachedComponent(ctx, 'text_encoder', (device, model) => umt5EncoderFrom(device, model.component('text_encoder')));
    const tokens = caseTokens(c, ctx);
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
  },
};
