// A rank's live process groups, joined from the RankTopology its spawn spec carries: the collectives backend
// follows the device (CPU ranks: shm; CUDA ranks: nccl), and the sequence-parallel helper is built when the
// layout shards sequences.
import type { Device } from '../runtime/device.js';
import type { Collectives } from './collectives.js';
import { NcclCollectives } from './nccl-collectives.js';
import { SequenceParallel } from './sequence-parallel.js';
import { ShmCollectives } from './shm-collectives.js';
import type { GroupSpec, RankTopology } from './topology.js';

export interface JoinOptions {
  /** Longest wait for a peer in any collective, ms (a dead peer then fails this rank instead of hanging it). */
  timeoutMs?: number;
  /** Polls before sleeping in shared-memory waits: 0 when the ranks outnumber the cores. */
  spin?: number;
}

/** Default peer wait: long enough for the leader's text encoding or a slow step of a big model on CPU. */
export const DEFAULT_PEER_TIMEOUT_MS = 15 * 60_000;

type GroupKind = keyof RankTopology['groups'];

export class RankParallel {
  /** Every rank serving the same requests; its member 0 encodes the prompt, decodes, and answers. */
  readonly replica: Collectives;
  /** The two CFG branches of the same shard (size 1 without CFG parallelism). */
  readonly cfg: Collectives;
  readonly sequence: SequenceParallel | null;

  private constructor(readonly topology: RankTopology, private readonly groups: Record<GroupKind, Collectives>) {
    this.replica = groups.replica;
    this.cfg = groups.cfg;
    this.sequence = groups.sp.size > 1 ? new SequenceParallel(groups.sp, groups.ulysses, groups.ring) : null;
  }

  static join(topology: RankTopology, device: Device, options: JoinOptions = {}): RankParallel {
    const wait = { timeoutMs: options.timeoutMs ?? DEFAULT_PEER_TIMEOUT_MS, spin: options.spin ?? 0 };
    const make = (spec: GroupSpec): Collectives => {
      if (device.backend === 'cpu') return new ShmCollectives(spec, device, wait);
      if (device.backend === 'cuda') return new NcclCollectives(spec, device, wait);
      throw new Error(`collectives for ${device.backend} ranks are not available in this build`);
    };
    const g = topology.groups;
    return new RankParallel(topology, { replica: make(g.replica), cfg: make(g.cfg), sp: make(g.sp), ulysses: make(g.ulysses), ring: make(g.ring) });
  }

  /** True on the rank that encodes prompts, decodes latents and answers for its replica. */
  get leader(): boolean { return this.replica.rank === 0; }

  /** The CFG branch this rank computes when the branches are split (0: conditional, 1: unconditional). */
  get branch(): number { return this.cfg.rank; }

  /** Bytes received so far per kind of group (the benchmark prints them beside docs/parallelism.md's formulas). */
  bytesByGroup(): Record<GroupKind, number> {
    return Object.fromEntries(Object.entries(this.groups).map(([kind, c]) => [kind, c.bytesReceived])) as Record<GroupKind, number>;
  }

  /** Bytes received over every group so far. */
  bytesReceived(): number {
    return Object.values(this.groups).reduce((n, c) => n + c.bytesReceived, 0);
  }

  /** Breaks every group, so peers blocked in a collective fail instead of waiting for this rank. */
  abort(): void {
    for (const c of Object.values(this.groups)) c.abort();
  }

  close(): void {
    for (const c of Object.values(this.groups)) c.close();
  }
}
