// How ZImageTransformer2DModel lays a batch out as token sequences (diffusers v0.36 `patchify_and_embed` and
// `forward`). Per item:
//   caption: L tokens padded to a multiple of 32 (SEQ_MULTI_OF); the padding rows become `cap_pad_token`.
//   image:   (F/pF)(H/p)(W/p) patch tokens in (f, h, w) order, padded to a multiple of 32 with `x_pad_token`.
//   unified: [image tokens + their padding, caption tokens + their padding] — image first.
// The 32-padding is part of each item's sequence (its tokens attend and are attended to); only the padding that
// lines items of different lengths up in one batch tensor is masked out of attention.
//
// Rotary position ids (frame-or-caption axis, height, width):
//   caption row j (padding included):  (1 + j, 0, 0)
//   image token (f, h, w):             (capPadded + 1 + f, h, w)     capPadded = padded caption length
//   image padding rows:                (0, 0, 0)
import { SEQ_MULTI_OF } from './transformer-config.js';

const padded = (n: number): number => Math.ceil(n / SEQ_MULTI_OF) * SEQ_MULTI_OF;

export interface ItemLayout {
  /** The latent's [channels, frames, height, width]. */
  latentShape: [number, number, number, number];
  /** Patches along frames, rows, columns. */
  grid: [number, number, number];
  imageTokens: number;
  /** imageTokens rounded up to a multiple of 32. */
  imageLength: number;
  captionTokens: number;
  captionLength: number;
}

export interface BatchLayout {
  items: ItemLayout[];
  patchSize: number;
  framePatchSize: number;
  imageMax: number;
  captionMax: number;
  /** Longest imageLength + captionLength. */
  unifiedMax: number;
}

/** The layout of a batch of latents [C, F, H, W] and captions of `captionTokens` rows. */
export function planBatchLayout(latentShapes: readonly (readonly number[])[], captionTokens: readonly number[],
  patchSize: number, framePatchSize: number): BatchLayout {
  if (latentShapes.length === 0) throw new Error('zimage transformer: empty batch');
  if (latentShapes.length !== captionTokens.length) {
    throw new Error(`zimage transformer: ${latentShapes.length} latents but ${captionTokens.length} captions`);
  }
  const items = latentShapes.map((shape, i): ItemLayout => {
    if (shape.length !== 4) throw new Error(`zimage transformer: latent ${i} must be [C, F, H, W], got [${shape.join(', ')}]`);
    const [C, F, H, W] = shape as [number, number, number, number];
    if (F % framePatchSize || H % patchSize || W % patchSize || F === 0 || H === 0 || W === 0) {
      throw new Error(`zimage transformer: latent ${i} [${shape.join(', ')}] does not split into ${framePatchSize}x${patchSize}x${patchSize} patches`);
    }
    const L = captionTokens[i]!;
    // diffusers pads a caption by repeating its last row, which an empty caption does not have.
    if (!Number.isInteger(L) || L < 1) throw new Error(`zimage transformer: caption ${i} has ${L} tokens; at least one is needed`);
    const grid: [number, number, number] = [F / framePatchSize, H / patchSize, W / patchSize];
    const imageTokens = grid[0] * grid[1] * grid[2];
    return { latentShape: [C, F, H, W], grid, imageTokens, imageLength: padded(imageTokens), captionTokens: L, captionLength: padded(L) };
  });
  return {
    items, patchSize, framePatchSize,
    imageMax: Math.max(...items.map((it) => it.imageLength)),
    captionMax: Math.max(...items.map((it) => it.captionLength)),
    unifiedMax: Math.max(...items.map((it) => it.imageLength + it.captionLength)),
  };
}

/** A string that identifies the layout (cache key for position tables). */
export function layoutKey(l: BatchLayout): string {
  return `${l.patchSize}-${l.framePatchSize}:` + l.items.map((it) => `${it.grid.join('x')}/${it.captionTokens}`).join(',');
}

/** Position ids [imageLength, 3] (row-major) of an item's image tokens and their padding. */
export function imagePositionIds(item: ItemLayout): Int32Array {
  const ids = new Int32Array(item.imageLength * 3); // padding rows stay (0, 0, 0)
  const [Ft, Ht, Wt] = item.grid;
  let row = 0;
  for (let f = 0; f < Ft; f++) for (let h = 0; h < Ht; h++) for (let w = 0; w < Wt; w++) {
    ids[row * 3] = item.captionLength + 1 + f;
    ids[row * 3 + 1] = h;
    ids[row * 3 + 2] = w;
    row++;
  }
  return ids;
}

/** Position ids [captionLength, 3] of an item's caption tokens, padding rows included. */
export function captionPositionIds(item: ItemLayout): Int32Array {
  const ids = new Int32Array(item.captionLength * 3);
  for (let j = 0; j < item.captionLength; j++) ids[j * 3] = 1 + j;
  return ids;
}

/** fp32 [B, maxLen] key bias: 0 on each item's first lengths[b] keys, -inf after; null when no row is short. */
export function batchKeyBias(lengths: readonly number[], maxLen: number): Float32Array | null {
  if (lengths.every((n) => n === maxLen)) return null;
  const out = new Float32Array(lengths.length * maxLen);
  lengths.forEach((n, b) => out.fill(-Infinity, b * maxLen + n, (b + 1) * maxLen));
  return out;
}
