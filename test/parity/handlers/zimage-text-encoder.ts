// text_encoder cases of a ZImagePipeline fixture set: Qwen3 on the case's token ids and attention mask (from the
// goldens, so the tokenizer is not under test here), returning hidden_states[-2] over the full padded length and
// the pipeline's per-prompt prompt_embeds_i (rows where the mask is 1). prompt_embeds go through the pipeline's
// own path, encodeZImagePrompt, which encodes only the prompts' positions: the golden checks that shortcut too.
import { encodeZImagePrompt, qwen3ModelFrom } from '../../../src/models/qwen3/index.js';
import { cachedComponent, caseTokens } from '../case-io.js';
import type { CaseOutput, FamilyHandlers } from '../types.js';

export const family = 'ZImagePipeline';

export const handlers: FamilyHandlers = {
  text_encoder: (c, ctx) => {
    const encoder = cachedComponent(ctx, 'text_encoder', (device, model) => qwen3ModelFrom(device, model.component('text_encoder')));
    const tokens = caseTokens(c, ctx);
    const outputs: CaseOutput[] = [];
    const hiddenName = c.outputs.find((o) => o.name.endsWith('_hidden_states_m2'))?.name;
    if (hiddenName) {
      const hidden = encoder.forward(tokens);
      outputs.push({ name: hiddenName, values: hidden.toFloat32Array() });
      hidden.free();
    }
    encodeZImagePrompt(encoder, tokens).forEach((e, i) => {
      const name = c.outputs.find((o) => o.name.endsWith(`_prompt_embeds_${i}`))?.name;
      if (name) outputs.push({ name, values: e.toFloat32Array() });
      e.free();
    });
    return outputs;
  },
};
