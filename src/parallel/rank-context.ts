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

export class RankParallel {
  private constructor(
    readonly topology: RankTopology,
    /** Every rank serving the same requests; its member 0 encodes the prompt, decodes, and answers. */
    readonly replica: Collectives,
    /** The two CFG branches of the same shard (size 1 without CFG parallelism). */
    readonly cfg: Collectives,
    readonly sequence: SequenceParallel | null,
    private readonly all: Collectives[],
  ) {}

  static join(topology: RankTopology, device: Device, options: JoinOptions = {}): RankParallel {
    const wait = { timeoutMs: options.timeoutMs ?? DEFAULT_PEER_TIMEOUT_MS, spin: options.spin ?? 0 };
    const make = (spec: GroupSpec): Collectives => {
      if (device.backend === 'cpu') return new ShmCollectives(spec, device, wait);
      if (device.backend === 'cuda') return new NcclCollectives(spec, device, wait);
      throw new Error(`collectives for ${device.backend} ranks are not available in this build`);
    };
    const g = topology.groups;
    const replica = make(g.replica), cfg = make(g.cfg), sp = make(g.sp), ulysses = make(g.ulysses), ring = make(g.ring);
    const sequence = sp.size > 1 ? new SequenceParallel(sp, ulysses, ring) : null;
    return new RankParallel(topology, replica, cfg, sequence, [replica, cfg, sp, ulysses, ring]);
  }

  /** True on the rank that encodes prompts, decodes latents and answers for its replica. */
  get leader(): boolean { return this.replica.rank === 0; }

  /** The CFG branch this rank computes when the branches are split (0: conditional, 1: unconditional). */
  get branch(): number { return this.cfg.rank; }

  /** Bytes received so far per kind of group (the benchmark prints them beside docs/parallelism.md's formulas). */
  bytesByGroup(): Record<'replica' | 'cfg' | 'sp' | 'ulysses' | 'ring', number> {
    const [replica, cfg, sp, ulysses, ring] = this.all.map((c) => c.bytesReceived) as [number, number, number, number, number];
    return { replica, cfg, sp, ulysses, ring };
  }

  /** Bytes received over every group so far. */
  bytesReceived(): number {
    return this.all.reduce((n, c) => n + c.bytesReceived, 0);
  }

  /** Breaks every group, so peers blocked in a collective fail instead of waiting for this rank. */
  abort(): void {
    for (const c of this.all) c.abort();
  }

  close(): void {
    for (const c of this.all) c.close();
  }
}
