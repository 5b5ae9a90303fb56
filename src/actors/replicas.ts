// The device ranks of a parallel layout, grouped into replicas (spec 10.2: num_gpus = dp x cfg x ulysses x ring;
// a replica is the cfg x ulysses x ring ranks that serve one request together). Bookkeeping for the Supervisor:
// which rank is up, busy, or still has to catch up on the LoRA history; which replica can take a job; the fan-out
// of one request to several ranks with their answers gathered; and the recovery of a replica when a rank fails.
//
// Recovery: when a rank fails, its replica's process-group barriers are broken so the peers stop waiting for it
// (those inside a collective fail with BarrierBrokenError and crash), and every other rank of the replica is told
// to restart once it is idle, so the whole replica reloads and rejoins its groups together (NCCL communicators
// must be rebuilt by all members; on CPU it keeps the rule simple). When every old incarnation has ended, the
// barriers are reset; the new incarnations wait for that before they join (DeviceActor), so none joins a broken
// group or is woken by the reset.
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
  /** An incarnation runs: started, and not crashed or stopped since. */
  alive: boolean;
  /** The incarnation that started last. */
  incarnation: number;
  /** Its ask failed with a crash: the incarnation is gone, its `crashed` event is on the way. */
  dying: boolean;
  /** Told to restart (a peer failed); cleared when it crashed. */
  restartTold: boolean;
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

/** Every slot's answer to a fanned-out request, in slot order, and the failures in the order they happened. */
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
  /** Per replica under recovery: the ranks whose incarnation has still to end. */
  readonly #recovering: (Set<RankSlot> | undefined)[];

  constructor(layout: ParallelLayout, private readonly log: { warn(message: string, fields?: Record<string, unknown>): void }) {
    this.#topologies = buildTopologies({ dp: layout.dp, cfg: layout.cfg, ulysses: layout.ulysses, ring: layout.ring });
    this.count = layout.dp;
    this.ranks = this.#topologies.map((topology) => ({
      rank: topology.coords.rank, replica: topology.coords.replica, member: topology.groups.replica.rank, topology,
      ref: undefined, alive: false, incarnation: -1, dying: false, restartTold: false, loadedOnce: false, asks: 0,
      needsReplay: false, replaying: false, peakBytes: 0,
    }));
    this.#jobs = new Array<string | undefined>(this.count).fill(undefined);
    this.#recovering = new Array<Set<RankSlot> | undefined>(this.count).fill(undefined);
  }

  /** The ranks of one replica, leader first. */
  ranksOf(replica: number): RankSlot[] {
    return this.ranks.filter((s) => s.replica === replica).sort((a, b) => a.member - b.member);
  }

  /** Running, idle and caught up on the LoRA history. */
  #ready(slot: RankSlot): boolean {
    return slot.alive && !slot.dying && slot.asks === 0 && !slot.needsReplay && !slot.replaying;
  }

  #usable(replica: number): boolean {
    return this.#recovering[replica] === undefined && this.ranksOf(replica).every((s) => this.#ready(s));
  }

  /** Reserves a free replica (all its ranks ready, no job, not recovering) for `jobId`; undefined when none is. */
  reserve(jobId: string): number | undefined {
    for (let r = 0; r < this.count; r++) {
      if (this.#jobs[r] !== undefined || !this.#usable(r)) continue;
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

  /** Every replica free: a LoRA operation may change the weights of all ranks. */
  allIdle(): boolean {
    return this.running === 0 && Array.from({ length: this.count }, (_, r) => this.#usable(r)).every(Boolean);
  }

  /** Something is in flight on a device (a job, a LoRA operation or a replay). */
  busy(): boolean {
    return this.running > 0 || this.ranks.some((s) => s.asks > 0 || s.replaying);
  }

  /** A rank's new incarnation started (its model loaded, its groups joined). */
  started(slot: RankSlot, incarnation: number): void {
    slot.alive = true;
    slot.incarnation = incarnation;
  }

  /** A rank's incarnation ended by a crash (or stopped): its replica recovers, if it was not already. */
  ended(slot: RankSlot): void {
    slot.alive = false;
    slot.dying = false;
    slot.restartTold = false;
    this.#recover(slot.replica);
    const pending = this.#recovering[slot.replica];
    pending?.delete(slot);
    if (pending !== undefined && pending.size === 0) {
      // Every old incarnation is gone, so nobody waits on these barriers: repair them for the new ones.
      for (const buffer of groupBarriers(this.#topologies, slot.replica)) SharedBarrier.attach(buffer).reset();
      this.#recovering[slot.replica] = undefined;
    }
  }

  /**
   * Starts the recovery of a replica after a failure of one of its ranks: breaks its barriers (its ranks blocked in
   * a collective, or entering one, fail instead of waiting for a peer that died) and tells its idle running ranks
   * to restart; busy ones are told when their ask settles.
   */
  #recover(replica: number): void {
    if (this.#recovering[replica] === undefined) {
      this.#recovering[replica] = new Set(this.ranksOf(replica).filter((s) => s.alive));
      for (const buffer of groupBarriers(this.#topologies, replica)) SharedBarrier.attach(buffer).break();
    }
    this.#tellRestarts(replica);
  }

  #tellRestarts(replica: number): void {
    for (const slot of this.#recovering[replica] ?? []) {
      if (!slot.alive || slot.dying || slot.restartTold || slot.asks > 0 || slot.ref === undefined) continue;
      slot.restartTold = true;
      this.log.warn('restarting a rank whose replica peer failed', { rank: slot.rank, replica });
      // Addressed to the incarnation that runs now: should it die first, its successor ignores the message.
      slot.ref.tell({ type: 'restart', incarnation: slot.incarnation });
    }
  }

  /**
   * Asks every slot its message and waits for all of them. An ask that fails with a crash starts the recovery of
   * the slot's replica at once (so peers stop waiting for it); any other failure (the engine stopping) only
   * breaks its barriers.
   */
  async fanOut<R>(slots: readonly RankSlot[], message: (slot: RankSlot) => DeviceRequest): Promise<FanOutResult<R>> {
    const failures: FanOutResult<R>['failures'] = [];
    const answers = await Promise.all(slots.map(async (slot) => {
      slot.asks++;
      try {
        return { ok: true as const, value: await slot.ref!.ask<R>(message(slot), { timeoutMs: Infinity }) };
      } catch (error) {
        failures.push({ slot, error });
        if (error instanceof ActorCrashedError) {
          slot.dying = true;
          this.#recover(slot.replica);
        } else {
          for (const buffer of groupBarriers(this.#topologies, slot.replica)) SharedBarrier.attach(buffer).break();
        }
        return { ok: false as const, error };
      } finally {
        slot.asks--;
        if (this.#recovering[slot.replica] !== undefined) this.#tellRestarts(slot.replica);
      }
    }));
    return { answers, failures };
  }
}
