// The device ranks of a parallel layout, grouped into replicas (spec 10.2: num_gpus = dp x cfg x ulysses x ring;
// a replica is the cfg x ulysses x ring ranks that serve one request together). Bookkeeping only, for the
// Supervisor: which rank is up, busy, or still has to catch up on the LoRA history; which replica can take a job;
// and the fan-out of one request to several ranks with their answers gathered. When a rank fails, its replica's
// process-group barriers are broken so the peers stop waiting for it; they are repaired before the next job.
import { ActorCrashedError, type ActorRef, SharedBarrier } from '../kernel/index.js';
import { type RankTopology, buildTopologies, groupBarriers } from '../parallel/topology.js';
import type { DeviceRequest } from './device-protocol.js';
import type { ParallelLayout } from './parallel-layout.js';

export interface RankSlot {
  readonly rank: number;
  readonly replica: number;
  /** Index in its replica; 0 is the leader (encodes, decodes, reports progress, answers with the pixels). */
  readonly member: number;
  readonly topology: RankTopology;
  ref: ActorRef<DeviceRequest> | undefined;
  /** Loaded and not crashed since. */
  up: boolean;
  /** Loaded at least once (a rank that never loaded will not load after a restart either). */
  loadedOnce: boolean;
  /** Asks in flight. */
  asks: number;
  /** Restarted: replays the LoRA history before it serves again. */
  needsReplay: boolean;
  replaying: boolean;
  /** The allocator's high-water mark last reported, bytes. */
  peakBytes: number;
}

/** One rank's answer to a fanned-out request, or its failure; failures in the order they happened. */
export interface FanOutResult<R> {
  answers: ({ ok: true; value: R } | { ok: false; error: unknown })[];
  failures: { slot: RankSlot; error: unknown }[];
}

export class Replicas {
  readonly ranks: readonly RankSlot[];
  readonly count: number;
  readonly #topologies: RankTopology[];
  /** Per replica: the job it runs (reserved from dispatch to its last answer). */
  readonly #jobs: (string | undefined)[];
  /** Per replica: its barriers were broken by a failure and need a reset before the next job. */
  readonly #broken: boolean[];

  constructor(layout: ParallelLayout) {
    this.#topologies = buildTopologies({ dp: layout.dp, cfg: layout.cfg, ulysses: layout.ulysses, ring: layout.ring });
    this.count = layout.dp;
    this.ranks = this.#topologies.map((topology) => ({
      rank: topology.coords.rank, replica: topology.coords.replica, member: topology.groups.replica.rank, topology,
      ref: undefined, up: false, loadedOnce: false, asks: 0, needsReplay: false, replaying: false, peakBytes: 0,
    }));
    this.#jobs = new Array<string | undefined>(this.count).fill(undefined);
    this.#broken = new Array<boolean>(this.count).fill(false);
  }

  /** The ranks of one replica, leader first. */
  ranksOf(replica: number): RankSlot[] {
    return this.ranks.filter((s) => s.replica === replica).sort((a, b) => a.member - b.member);
  }

  /** Up, idle and caught up on the LoRA history. */
  #ready(slot: RankSlot): boolean {
    return slot.up && slot.asks === 0 && !slot.needsReplay && !slot.replaying;
  }

  /**
   * Reserves a replica whose ranks are all ready and which runs no job, for `jobId`; repairs its barriers first if
   * a failure broke them (nobody waits on them now: every rank of it is idle). Undefined when none is free.
   */
  reserve(jobId: string): number | undefined {
    for (let r = 0; r < this.count; r++) {
      if (this.#jobs[r] !== undefined || !this.ranksOf(r).every((s) => this.#ready(s))) continue;
      if (this.#broken[r]) {
        for (const buffer of groupBarriers(this.#topologies, r)) SharedBarrier.attach(buffer).reset();
        this.#broken[r] = false;
      }
      this.#jobs[r] = jobId;
      return r;
    }
    return undefined;
  }

  release(replica: number): void {
    this.#jobs[replica] = undefined;
  }

  /** Replicas running a job now. */
  get running(): number {
    return this.#jobs.filter((j) => j !== undefined).length;
  }

  /** Every rank ready and no job anywhere: a LoRA operation may change the weights of all ranks. */
  allIdle(): boolean {
    return this.running === 0 && this.ranks.every((s) => this.#ready(s));
  }

  /** Something is in flight on a device (a job, a LoRA operation or a replay). */
  busy(): boolean {
    return this.running > 0 || this.ranks.some((s) => s.asks > 0 || s.replaying);
  }

  /**
   * Breaks every barrier of a replica's process groups: its ranks blocked in a collective (or entering one) fail
   * with BarrierBrokenError instead of waiting for a peer that died.
   */
  breakBarriers(replica: number): void {
    this.#broken[replica] = true;
    for (const buffer of groupBarriers(this.#topologies, replica)) SharedBarrier.attach(buffer).break();
  }

  /** A rank crashed (its restart, if any, reports `started` again). */
  markDown(slot: RankSlot): void {
    slot.up = false;
    this.breakBarriers(slot.replica);
  }

  /**
   * Asks every slot its message and waits for all of them. A failed ask breaks the slot's replica at once (so
   * peers stop waiting for it) and, when the rank crashed, marks it down.
   */
  async fanOut<R>(slots: readonly RankSlot[], message: (slot: RankSlot) => DeviceRequest): Promise<FanOutResult<R>> {
    const failures: FanOutResult<R>['failures'] = [];
    const answers = await Promise.all(slots.map(async (slot) => {
      slot.asks++;
      try {
        return { ok: true as const, value: await slot.ref!.ask<R>(message(slot), { timeoutMs: Infinity }) };
      } catch (error) {
        failures.push({ slot, error });
        if (error instanceof ActorCrashedError) this.markDown(slot);
        else this.breakBarriers(slot.replica);
        return { ok: false as const, error };
      } finally {
        slot.asks--;
      }
    }));
    return { answers, failures };
  }
}
