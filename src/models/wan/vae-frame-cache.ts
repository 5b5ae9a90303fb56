// The causal convolutions' memory of earlier chunks (diffusers' `feat_cache`). The Wan VAE runs a video in
// chunks of frames (encode: 1, then 4 at a time; decode: one latent frame at a time); each causal conv keeps
// the last CACHE_T input frames it saw, and the next chunk's conv reads them in place of zero padding.
//
// diffusers keeps one list slot per conv, walked in call order; here each layer is its own key, which is the
// same thing without the counter. Cached tensors are owned by the cache (detached from every scope), so a
// chunk's scope can free all its intermediates while the cache survives.
import { cat, zeros } from '../../runtime/ops.js';
import { Scope, type Tensor } from '../../runtime/tensor.js';

/** Frames a causal conv remembers (diffusers CACHE_T; the 3-tap temporal kernels need two). */
export const CACHE_T = 2;

/**
 * Marks an upsample3d layer that skipped its time conv on the first chunk (diffusers stores the string "Rep").
 * Its next chunk runs the time conv with zero padding instead of cached frames.
 */
export const SKIPPED_FIRST_CHUNK: unique symbol = Symbol('SKIPPED_FIRST_CHUNK');

export type CacheEntry = Tensor | typeof SKIPPED_FIRST_CHUNK;

export class FrameCache {
  readonly #slots = new Map<object, CacheEntry>();

  get(owner: object): CacheEntry | undefined { return this.#slots.get(owner); }

  /** The cached frames of `owner`, when it holds frames (not a marker). */
  frames(owner: object): Tensor | undefined {
    const e = this.#slots.get(owner);
    return e === undefined || e === SKIPPED_FIRST_CHUNK ? undefined : e;
  }

  /** Replaces `owner`'s entry (a tensor owned by no scope, as `framesToCache` makes them) and frees the old one. */
  set(owner: object, entry: CacheEntry): void {
    const old = this.#slots.get(owner);
    if (old !== undefined && old !== SKIPPED_FIRST_CHUNK && old !== entry) old.free();
    this.#slots.set(owner, entry);
  }

  /** Frees every cached tensor (call when the encode/decode ends, also on error). */
  clear(): void {
    for (const e of this.#slots.values()) if (e !== SKIPPED_FIRST_CHUNK) e.free();
    this.#slots.clear();
  }
}

/** A contiguous tensor with its own storage that no scope will free. */
function ownedCopy(parts: Tensor[]): Tensor {
  // cat always copies, so the result never shares storage with an intermediate the chunk's scope frees.
  return Scope.detach(cat(parts, 2));
}

/**
 * What a causal conv caches after seeing input `x` [B, C, T, H, W], given what it cached before (diffusers'
 * rule): the last CACHE_T frames of x; when x has fewer, the previous entry's last frame goes in front, or a
 * zero frame after an upsample3d's skipped first chunk. With no previous entry, x's single frame alone.
 */
export function framesToCache(x: Tensor, previous: CacheEntry | undefined): Tensor {
  const t = x.shape[2]!;
  const tail = x.slice(2, Math.max(0, t - CACHE_T), t);
  if (t >= CACHE_T || previous === undefined) return ownedCopy([tail]);
  if (previous === SKIPPED_FIRST_CHUNK) {
    const shape = [...tail.shape];
    return ownedCopy([zeros(x.device, shape, x.dtype), tail]);
  }
  const pt = previous.shape[2]!;
  return ownedCopy([previous.slice(2, pt - 1, pt), tail]);
}
