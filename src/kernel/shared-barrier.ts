// A reusable barrier for threads of one process, in a SharedArrayBuffer (the shape checked in stack.md), plus
// a broken state so that one dead or late party cannot hang the others forever.
//
// Words (Int32): [arrived, generation, parties, magic]. Each round that completes adds 2 to the generation;
// breaking the barrier adds 1, so an odd generation means broken, and a waiter of round g that sees g + 1 knows
// its own round was the one broken. Trip and break both move the generation by compare-exchange from g, so
// exactly one of them wins a race between the last arrival and a timeout.
import { BarrierBrokenError } from './errors.js';
import { waitUntil, type SharedWaitOptions } from './shared-wait.js';

const ARRIVED = 0;
const GENERATION = 1;
const PARTIES = 2;
const MAGIC = 3;
const BARRIER_MAGIC = 0x42415252; // 'BARR'

/** A barrier over shared memory: create it once, send `buffer` to the other threads, `attach` there. */
export class SharedBarrier {
  /** Bytes a barrier occupies in a buffer. */
  static readonly BYTES = 16;

  private readonly words: Int32Array;

  private constructor(readonly buffer: SharedArrayBuffer, readonly byteOffset: number) {
    this.words = new Int32Array(buffer, byteOffset, SharedBarrier.BYTES / 4);
  }

  /** A new barrier for `parties` threads, in a buffer of its own or at `byteOffset` (4-aligned) of `buffer`. */
  static create(parties: number, buffer?: SharedArrayBuffer, byteOffset = 0): SharedBarrier {
    if (!Number.isInteger(parties) || parties < 1) throw new RangeError(`parties must be a positive integer, got ${parties}`);
    const barrier = new SharedBarrier(buffer ?? new SharedArrayBuffer(SharedBarrier.BYTES), byteOffset);
    Atomics.store(barrier.words, ARRIVED, 0);
    Atomics.store(barrier.words, GENERATION, 0);
    Atomics.store(barrier.words, PARTIES, parties);
    Atomics.store(barrier.words, MAGIC, BARRIER_MAGIC);
    return barrier;
  }

  /** The barrier created in `buffer` at `byteOffset` by another thread. */
  static attach(buffer: SharedArrayBuffer, byteOffset = 0): SharedBarrier {
    const barrier = new SharedBarrier(buffer, byteOffset);
    if (Atomics.load(barrier.words, MAGIC) !== BARRIER_MAGIC) throw new TypeError('no SharedBarrier at this offset');
    return barrier;
  }

  get parties(): number {
    return Atomics.load(this.words, PARTIES);
  }

  /** Completed rounds (mod 2^30). */
  get rounds(): number {
    return (Atomics.load(this.words, GENERATION) >>> 1) & 0x3fffffff;
  }

  get broken(): boolean {
    return (Atomics.load(this.words, GENERATION) & 1) === 1;
  }

  /**
   * Blocks until all parties called `wait` for this round. Returns the arrival index (parties - 1 for the one
   * that completed the round). Throws {@link ChannelTimeoutError} on its deadline (breaking the barrier for
   * everyone) and {@link BarrierBrokenError} if the barrier is or becomes broken.
   */
  wait(options?: SharedWaitOptions): number {
    const w = this.words;
    const generation = Atomics.load(w, GENERATION);
    if ((generation & 1) === 1) throw new BarrierBrokenError();
    const arrival = Atomics.add(w, ARRIVED, 1);
    const parties = Atomics.load(w, PARTIES);
    if (arrival === parties - 1) {
      Atomics.store(w, ARRIVED, 0);
      if (Atomics.compareExchange(w, GENERATION, generation, (generation + 2) | 0) !== generation) {
        throw new BarrierBrokenError(); // broken by a timeout just before the round completed
      }
      Atomics.notify(w, GENERATION);
      return arrival;
    }
    const passed = () => Atomics.load(w, GENERATION) !== generation;
    waitUntil(w, GENERATION, () => generation, passed, `barrier wait (${arrival + 1} of ${parties} arrived)`, options,
      () => {
        // Deadline: break this round unless it completed (or broke) in the meantime.
        if (Atomics.compareExchange(w, GENERATION, generation, (generation + 1) | 0) !== generation) return true;
        Atomics.notify(w, GENERATION);
        return false;
      });
    if (Atomics.load(w, GENERATION) === ((generation + 1) | 0)) throw new BarrierBrokenError();
    return arrival;
  }

  /** Breaks the barrier: every waiter, now and later, gets {@link BarrierBrokenError} until `reset()`. */
  break(): void {
    const w = this.words;
    for (;;) {
      const generation = Atomics.load(w, GENERATION);
      if ((generation & 1) === 1) return;
      if (Atomics.compareExchange(w, GENERATION, generation, (generation + 1) | 0) === generation) break;
    }
    Atomics.notify(w, GENERATION);
  }

  /** Repairs a broken barrier for a new round. Only call it while no thread waits on it. */
  reset(): void {
    const w = this.words;
    Atomics.store(w, ARRIVED, 0);
    const generation = Atomics.load(w, GENERATION);
    Atomics.store(w, GENERATION, ((generation | 1) + 1) | 0);
  }
}
