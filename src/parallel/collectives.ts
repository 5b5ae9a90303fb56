// The collectives a process group offers, whatever moves the bytes: `shm` (CPU ranks: worker threads of one
// process reading each other's native buffers) or `nccl` (CUDA ranks). Every operation is collective: all
// members of the group call it, in the same order, with matching shapes.
//
// Tensors are views with any strides: a Ulysses all-to-all sends head slices of a [B, S, H, D] projection and
// receives into sequence slices of another, with no packing by the caller (a backend that needs contiguous
// buffers packs for itself).
import type { Tensor } from '../runtime/tensor.js';

export interface Collectives {
  /** This member's index in the group. */
  readonly rank: number;
  readonly size: number;
  /** The group's name (logs and errors). */
  readonly name: string;
  /** Bytes this member received from the others so far (its own data never counts). */
  readonly bytesReceived: number;

  barrier(): void;
  /** recv[j] <- member j's send[rank] for every j (recv[rank] <- own send[rank]); shapes pairwise equal. */
  allToAll(send: readonly Tensor[], recv: readonly Tensor[]): void;
  /** out[j] <- member j's `local` for every j (out[rank] <- own local). */
  allGather(local: Tensor, out: readonly Tensor[]): void;
  /** Every member's `t` <- member root's `t`. */
  broadcast(t: Tensor, root: number): void;
  /**
   * Sends `send` to member dst and receives member src's send into `recv`. Every member calls it with its own
   * dst/src; one ring step is dst = rank + 1, src = rank - 1 everywhere.
   */
  sendRecv(send: Tensor, dst: number, recv: Tensor, src: number): void;
  /** Member root's number for everyone (a small host value: a cancel decision, a size). */
  broadcastValue(value: number, root: number): number;
  /** Breaks the group for every member (their waits throw); used when this member fails mid-collective. */
  abort(): void;
  close(): void;
}

/** Thrown when a collective is called with shapes that cannot match across the group. */
export class CollectiveError extends Error {
  constructor(group: string, message: string) {
    super(`${group}: ${message}`);
    this.name = 'CollectiveError';
  }
}
