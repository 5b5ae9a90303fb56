// The Wan pipeline's prompt-embedding step (diffusers WanPipeline._get_t5_prompt_embeds): each prompt keeps the
// encoder rows of its real tokens, rows from sum(attention_mask) on become zeros, and the sequence is padded with
// zero rows to max_sequence_length. The transformer's cross-attention then sees exact zeros, not the encoder's
// outputs at padding positions.
import { copyInto, zeros } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import type { TokenBatch, UMT5Encoder } from './encoder.js';

/** Number of mask entries > 0 in each row of a row-major [batch, length] mask. */
export function sequenceLengths(mask: ArrayLike<number>, batch: number, length: number): number[] {
  if (mask.length !== batch * length) throw new Error(`sequenceLengths: ${mask.length} mask values for [${batch}, ${length}]`);
  const lens: number[] = [];
  for (let b = 0; b < batch; b++) {
    let n = 0;
    for (let i = 0; i < length; i++) if (mask[b * length + i]! > 0) n++;
    lens.push(n);
  }
  return lens;
}

/**
 * prompt_embeds [B, maxSequenceLength, D] from last_hidden_state [B, L, D]: row i of item b is the encoder's row
 * when i < seqLens[b], else zero. `maxSequenceLength` defaults to L (the tokenizer already pads to it).
 */
export function wanPromptEmbeds(lastHiddenState: Tensor, seqLens: readonly number[], maxSequenceLength = lastHiddenState.shape[1]!): Tensor {
  const [B, L, D] = lastHiddenState.shape as [number, number, number];
  if (lastHiddenState.ndim !== 3 || seqLens.length !== B) throw new Error(`wanPromptEmbeds: ${seqLens.length} lengths for hidden states [${lastHiddenState.shape.join(', ')}]`);
  return scoped(() => {
    const out = zeros(lastHiddenState.device, [B, maxSequenceLength, D], lastHiddenState.dtype);
    for (let b = 0; b < B; b++) {
      const keep = Math.min(seqLens[b]!, L, maxSequenceLength);
      if (keep > 0) copyInto(out.slice(0, b, b + 1).slice(1, 0, keep), lastHiddenState.slice(0, b, b + 1).slice(1, 0, keep));
    }
    return out;
  });
}

/** True when every row of the mask is ones then zeros (the tokenizer's right padding). */
function isRightPadded(mask: ArrayLike<number>, batch: number, length: number): boolean {
  for (let b = 0; b < batch; b++) {
    let padding = false;
    for (let i = 0; i < length; i++) {
      const on = mask[b * length + i]! > 0;
      if (padding && on) return false;
      if (!on) padding = true;
    }
  }
  return true;
}

/**
 * The pipeline's prompt_embeds [B, maxSequenceLength, d_model] for a tokenized batch, encoding only the first
 * max(sum(mask)) positions. With right padding this is exact, not an approximation: padded keys are masked out
 * of every real token's attention, the relative bias depends on positions that do not move, and the rows of
 * padded positions are replaced by zeros anyway. A 20-token prompt then costs 20 positions instead of 512.
 */
export function encodeWanPrompt(encoder: UMT5Encoder, tokens: TokenBatch, maxSequenceLength = tokens.length): Tensor {
  const { batch, length } = tokens;
  const lens = sequenceLengths(tokens.mask, batch, length);
  const used = Math.max(1, ...lens);
  let input = tokens;
  if (used < length && isRightPadded(tokens.mask, batch, length)) {
    const take = <T extends ArrayLike<number>>(xs: T): number[] => {
      const out: number[] = [];
      for (let b = 0; b < batch; b++) for (let i = 0; i < used; i++) out.push(xs[b * length + i]!);
      return out;
    };
    input = { ids: take(tokens.ids), mask: take(tokens.mask), batch, length: used };
  }
  return scoped(() => wanPromptEmbeds(encoder.forward(input), lens, maxSequenceLength));
}
