// The Z-Image pipeline's prompt-embedding step (diffusers ZImagePipeline._encode_prompt): the text encoder's
// hidden_states[-2] for the padded batch, then for each prompt only the rows where its attention mask is 1 — a
// ragged list, one [tokens_i, hidden] tensor per prompt, which the transformer takes as caption features.
//
// Attention is causal, so with the tokenizer's right padding a real token never sees a later position: encoding
// only the first max_i(tokens_i) positions gives its rows exactly (the padded tail changes nothing they depend
// on). A 40-token prompt then costs 40 positions instead of max_sequence_length = 512.
import { copyInto, empty } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { sequenceLengths } from '../umt5/prompt-embeds.js';
import type { Qwen3Model, TokenBatch } from './model.js';

/** [start, end) runs of mask == 1 in one row. */
function maskRuns(mask: ArrayLike<number>, row: number, length: number): [number, number][] {
  const runs: [number, number][] = [];
  let start = -1;
  for (let i = 0; i <= length; i++) {
    const on = i < length && mask[row * length + i]! > 0;
    if (on && start < 0) start = i;
    if (!on && start >= 0) { runs.push([start, i]); start = -1; }
  }
  return runs;
}

/** Per prompt, the rows of `hidden` [B, L, D] where the mask is 1, as contiguous [n_i, D] tensors. */
export function maskedRows(hidden: Tensor, mask: ArrayLike<number>): Tensor[] {
  const [B, L, D] = hidden.shape as [number, number, number];
  const fullLength = mask.length / B; // the mask may be longer than hidden (trailing padding not encoded)
  const out: Tensor[] = [];
  for (let b = 0; b < B; b++) {
    const runs = maskRuns(mask, b, fullLength);
    const n = runs.reduce((s, [a, e]) => s + (e - a), 0);
    const rows = empty(hidden.device, [n, D], hidden.dtype);
    let at = 0;
    for (const [a, e] of runs) {
      if (e > L) throw new Error(`maskedRows: mask row ${b} has tokens at ${a}..${e - 1} beyond the ${L} encoded positions`);
      copyInto(rows.slice(0, at, at + e - a), hidden.slice(0, b, b + 1).reshape([L, D]).slice(0, a, e));
      at += e - a;
    }
    out.push(rows);
  }
  return out;
}

/** True when every mask row is ones then zeros. */
function isRightPadded(mask: ArrayLike<number>, batch: number, length: number): boolean {
  for (let b = 0; b < batch; b++) {
    const runs = maskRuns(mask, b, length);
    if (runs.length > 1 || (runs.length === 1 && runs[0]![0] !== 0)) return false;
  }
  return true;
}

/**
 * prompt_embeds of a tokenized batch: one [tokens_i, hidden] tensor per prompt (hidden_states[-2] rows where the
 * mask is 1, or whichever hidden state the encoder was built for). Right-padded batches encode only the first
 * max(tokens_i) positions (exact, see above); any other mask encodes the full length.
 */
export function encodeZImagePrompt(encoder: Qwen3Model, tokens: TokenBatch): Tensor[] {
  const { batch, length } = tokens;
  const lens = sequenceLengths(tokens.mask, batch, length);
  if (lens.some((n) => n === 0)) throw new Error('encodeZImagePrompt: a prompt has no tokens (all-zero attention mask row)');
  let input = tokens;
  const used = Math.max(...lens);
  if (used < length && isRightPadded(tokens.mask, batch, length)) {
    const ids: number[] = [], mask: number[] = [];
    for (let b = 0; b < batch; b++) {
      for (let i = 0; i < used; i++) { ids.push(tokens.ids[b * length + i]!); mask.push(tokens.mask[b * length + i]!); }
    }
    input = { ids, mask, batch, length: used };
  }
  return scoped(() => maskedRows(encoder.forward(input), input.mask));
}
