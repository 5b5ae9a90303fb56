// Sequence parallelism for a DiT's self-attention (docs/parallelism.md): each rank of a sequence-parallel group
// holds a shard of the latent tokens through every per-token layer (norms, projections, FFN, cross-attention),
// and only self-attention needs the whole sequence. Two ways to give it that, combined as USP:
//
//   Ulysses (DeepSpeed-Ulysses, Jacobs et al. 2023): an all-to-all turns [B, S/u, H, D] sequence shards into
//   [B, S, H/u, D] head shards; attention runs on whole sequences for a subset of heads; a second all-to-all turns
//   the output back. Heads split as evenly as they go (3 heads over 2 ranks: 2 + 1).
//
//   Ring attention (Liu et al. 2023): each rank keeps its queries and passes its K/V block around the ring; every
//   partial output is merged into the running one by log-sum-exp (the native attention returns it), so the result
//   is exact softmax attention over all keys.
//
//   USP (Fang & Zhao 2024): Ulysses inside a group of consecutive ranks, ring across those groups.
//
// Token counts that the degree does not divide are split unevenly (the first S mod sp shards get one more token),
// so there is no padding and no mask.
import { attention, attentionMerge } from '../runtime/ops.js';
import { Tensor, scoped } from '../runtime/tensor.js';
import type { Collectives } from './collectives.js';

/** `total` split into `parts` sizes differing by at most one, larger first. */
export function balancedSplit(total: number, parts: number): number[] {
  const base = Math.floor(total / parts), extra = total % parts;
  return Array.from({ length: parts }, (_, i) => base + (i < extra ? 1 : 0));
}

export function offsetsOf(sizes: readonly number[]): number[] {
  const out: number[] = [];
  let at = 0;
  for (const s of sizes) { out.push(at); at += s; }
  return out;
}

export class UlyssesHeadsError extends Error {
  constructor(heads: number, degree: number) {
    super(`--ulysses-degree ${degree} needs at least ${degree} attention heads (each Ulysses rank takes a share of the heads); this model has ${heads}`);
    this.name = 'UlyssesHeadsError';
  }
}

/** Where this rank's shard of a sequence lies. */
export interface SequenceShard {
  /** Shard sizes of every sp rank, in sp-rank order. */
  sizes: number[];
  offset: number;
  size: number;
}

export class SequenceParallel {
  readonly degree: number;

  /** `sp` spans the whole sequence-parallel group; `ulysses` and `ring` are its sub-groups (either may be of size 1). */
  constructor(readonly sp: Collectives, readonly ulysses: Collectives, readonly ring: Collectives) {
    this.degree = sp.size;
    if (ulysses.size * ring.size !== sp.size) throw new Error(`sequence parallel: ulysses ${ulysses.size} x ring ${ring.size} != sp ${sp.size}`);
  }

  /** This rank's shard of a sequence of `total` tokens. */
  shard(total: number): SequenceShard {
    const sizes = balancedSplit(total, this.degree);
    return { sizes, offset: offsetsOf(sizes)[this.sp.rank]!, size: sizes[this.sp.rank]! };
  }

  /** Checks once, before any work, that the heads can be shared by the Ulysses ranks. */
  checkHeads(heads: number): void {
    if (heads < this.ulysses.size) throw new UlyssesHeadsError(heads, this.ulysses.size);
  }

  /**
   * Self-attention of this rank's shard: q, k, v [B, S_r, H, D] (views with a dense head dim) of a sequence of
   * `total` tokens. Returns the output for the shard's queries, [B, S_r, H, D] contiguous.
   */
  attention(q: Tensor, k: Tensor, v: Tensor, total: number, scale: number): Tensor {
    const [B, S, H, D] = q.shape as [number, number, number, number];
    const shard = this.shard(total);
    if (S !== shard.size) throw new Error(`sequence parallel: rank ${this.sp.rank} holds ${S} tokens, its shard of ${total} is ${shard.size}`);
    this.checkHeads(H);
    return scoped(() => {
      const u = this.ulysses.size, ui = this.ulysses.rank;
      const ringIndex = this.ring.rank;
      // Shards of my Ulysses group (consecutive sp ranks) and the ring blocks they form.
      const groupSizes = shard.sizes.slice(ringIndex * u, ringIndex * u + u);
      const groupOffsets = offsetsOf(groupSizes);
      const blockSizes = Array.from({ length: this.ring.size }, (_, r) => shard.sizes.slice(r * u, r * u + u).reduce((a, b) => a + b, 0));
      const heads = balancedSplit(H, u), headOffsets = offsetsOf(heads);
      const block = blockSizes[ringIndex]!;

      // Ulysses: sequence shards of all heads -> my heads over my group's whole block.
      const toHeads = (x: Tensor): Tensor => {
        if (u === 1) return x;
        const y = Tensor.empty(x.device, [B, block, heads[ui]!, D], x.dtype);
        this.ulysses.allToAll(
          heads.map((h, j) => x.slice(2, headOffsets[j]!, headOffsets[j]! + h)),
          groupSizes.map((s, j) => y.slice(1, groupOffsets[j]!, groupOffsets[j]! + s)),
        );
        return y;
      };
      const qh = toHeads(q), kh = toHeads(k), vh = toHeads(v);
      const oh = this.ring.size === 1 ? attention(qh, kh, vh, { scale }).out : this.#ringAttention(qh, kh, vh, blockSizes, scale);
      if (u === 1) return oh;
      // And back: my heads over the block -> all heads of my shard.
      const out = Tensor.empty(q.device, [B, S, H, D], q.dtype);
      this.ulysses.allToAll(
        groupSizes.map((s, j) => oh.slice(1, groupOffsets[j]!, groupOffsets[j]! + s)),
        heads.map((h, j) => out.slice(2, headOffsets[j]!, headOffsets[j]! + h)),
      );
      return out;
    });
  }

  /** Ring attention over the ring group: my queries against every rank's K/V block, merged by log-sum-exp. */
  #ringAttention(q: Tensor, k: Tensor, v: Tensor, blockSizes: readonly number[], scale: number): Tensor {
    const R = this.ring.size, me = this.ring.rank;
    const next = (me + 1) % R, prev = (me + R - 1) % R;
    const [B, , h, D] = q.shape as [number, number, number, number];
    const first = attention(q, k, v, { scale, returnLse: true });
    const out = first.out, lse = first.lse!;
    let curK = k, curV = v;
    for (let step = 1; step < R; step++) {
      // At step s every rank holds the block of rank (me - s): what its predecessor held one step earlier.
      const owner = (me - step + R) % R;
      const nk = Tensor.empty(q.device, [B, blockSizes[owner]!, h, D], q.dtype);
      const nv = Tensor.empty(q.device, [B, blockSizes[owner]!, h, D], q.dtype);
      this.ring.sendRecv(curK, next, nk, prev);
      this.ring.sendRecv(curV, next, nv, prev);
      if (curK !== k) { curK.free(); curV.free(); }
      curK = nk; curV = nv;
      scoped(() => {
        const part = attention(q, curK, curV, { scale, returnLse: true });
        attentionMerge(out, lse, part.out, part.lse!);
      });
    }
    return out;
  }

  /** The whole sequence [B, total, C] from every rank's shard [B, S_r, C] (all ranks get it). */
  gather(local: Tensor, total: number): Tensor {
    const shard = this.shard(total);
    const [B, S, ...rest] = local.shape as [number, number, ...number[]];
    if (S !== shard.size) throw new Error(`sequence parallel: gather of ${S} tokens, the shard is ${shard.size}`);
    const full = Tensor.empty(local.device, [B, total, ...rest], local.dtype);
    const offsets = offsetsOf(shard.sizes);
    this.sp.allGather(local, shard.sizes.map((s, j) => full.slice(1, offsets[j]!, offsets[j]! + s)));
    return full;
  }
}
