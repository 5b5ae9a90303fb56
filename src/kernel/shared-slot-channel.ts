// Fixed-size slots in a SharedArrayBuffer, each with a version counter: one thread publishes bytes into a slot,
// others wait for a version and read a consistent copy. For handing over small things between the threads of a
// process group: the NCCL unique id (128 bytes, rank 0 to the others), or each rank's (pointer, size) pairs
// into native memory for the CPU backend's exchanges.
//
// Layout: Int32 header [magic, slots, slotBytes, 0]; per slot Int32 [sequence, length]; then the slots' data,
// slotBytes each (a multiple of 8, so BigInt64 views of a slot are aligned). A slot's sequence is odd while
// it is being written (a seqlock): readers retry a copy that overlapped a write. Version = sequence / 2.
import { waitUntil, type SharedWaitOptions } from './shared-wait.js';

const HEADER_WORDS = 4;
const SLOT_MAGIC = 0x534c4f54; // 'SLOT'

/** Shape of a new channel. */
export interface SlotChannelLayout {
  /** Number of slots (e.g. one per rank). */
  slots: number;
  /** Capacity of each slot in bytes (rounded up to a multiple of 8). */
  slotBytes: number;
}

/** Slots of bytes with versions, over shared memory. One publisher per slot at a time. */
export class SharedSlotChannel {
  readonly slots: number;
  readonly slotBytes: number;
  private readonly words: Int32Array;
  private readonly bytes: Uint8Array;
  private readonly dataOffset: number;

  private constructor(readonly buffer: SharedArrayBuffer) {
    const header = new Int32Array(buffer, 0, HEADER_WORDS);
    if (Atomics.load(header, 0) !== SLOT_MAGIC) throw new TypeError('buffer holds no SharedSlotChannel');
    this.slots = Atomics.load(header, 1);
    this.slotBytes = Atomics.load(header, 2);
    this.words = new Int32Array(buffer, 0, HEADER_WORDS + 2 * this.slots);
    this.dataOffset = 4 * (HEADER_WORDS + 2 * this.slots);
    this.bytes = new Uint8Array(buffer);
  }

  /** Bytes a channel of this layout needs. */
  static byteLength(layout: SlotChannelLayout): number {
    return 4 * (HEADER_WORDS + 2 * layout.slots) + layout.slots * roundUp8(layout.slotBytes);
  }

  /** A new channel with every slot at version 0 (empty). */
  static create(layout: SlotChannelLayout): SharedSlotChannel {
    if (!Number.isInteger(layout.slots) || layout.slots < 1) throw new RangeError('slots must be a positive integer');
    if (!Number.isInteger(layout.slotBytes) || layout.slotBytes < 1) throw new RangeError('slotBytes must be a positive integer');
    const buffer = new SharedArrayBuffer(SharedSlotChannel.byteLength(layout));
    const header = new Int32Array(buffer, 0, HEADER_WORDS);
    header[1] = layout.slots;
    header[2] = roundUp8(layout.slotBytes);
    Atomics.store(header, 0, SLOT_MAGIC);
    return new SharedSlotChannel(buffer);
  }

  /** The channel another thread created in `buffer`. */
  static attach(buffer: SharedArrayBuffer): SharedSlotChannel {
    return new SharedSlotChannel(buffer);
  }

  /** How many times `slot` was published (0: never). */
  version(slot: number): number {
    return Atomics.load(this.words, this.sequenceIndex(slot)) >>> 1;
  }

  /**
   * Copies `data`'s bytes into `slot` and wakes its waiters. Returns the slot's new version. Throws if the data
   * does not fit or another thread is publishing to the same slot.
   */
  publish(slot: number, data: ArrayBufferView): number {
    const at = this.sequenceIndex(slot);
    if (data.byteLength > this.slotBytes) {
      throw new RangeError(`${data.byteLength} bytes do not fit a ${this.slotBytes}-byte slot`);
    }
    const sequence = Atomics.load(this.words, at);
    if ((sequence & 1) === 1 || Atomics.compareExchange(this.words, at, sequence, sequence + 1) !== sequence) {
      throw new Error(`slot ${slot} is being published by another thread`);
    }
    this.bytes.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), this.dataOffset + slot * this.slotBytes);
    Atomics.store(this.words, at + 1, data.byteLength);
    Atomics.store(this.words, at, sequence + 2);
    Atomics.notify(this.words, at);
    return (sequence + 2) >>> 1;
  }

  /** A copy of the bytes last published to `slot` (empty before the first publish). */
  read(slot: number, options?: SharedWaitOptions): Uint8Array {
    const at = this.sequenceIndex(slot);
    const start = this.dataOffset + slot * this.slotBytes;
    for (;;) {
      const sequence = Atomics.load(this.words, at);
      if ((sequence & 1) === 1) {
        // A write is under way (a copy of at most slotBytes): wait for it to land.
        waitUntil(this.words, at, () => Atomics.load(this.words, at), () => (Atomics.load(this.words, at) & 1) === 0,
          `read of slot ${slot}`, options);
        continue;
      }
      const length = Atomics.load(this.words, at + 1);
      const copy = this.bytes.slice(start, start + length);
      if (Atomics.load(this.words, at) === sequence) return copy;
    }
  }

  /**
   * Blocks until `slot` reaches `version` (or later), then returns a copy of its bytes. Throws
   * {@link ChannelTimeoutError} when the deadline passes first, e.g. because the publisher died.
   */
  waitFor(slot: number, version: number, options?: SharedWaitOptions): Uint8Array {
    const at = this.sequenceIndex(slot);
    const reached = () => {
      const sequence = Atomics.load(this.words, at);
      return (sequence & 1) === 0 && sequence >>> 1 >= version;
    };
    waitUntil(this.words, at, () => Atomics.load(this.words, at), reached, `wait for version ${version} of slot ${slot}`, options);
    return this.read(slot, options);
  }

  private sequenceIndex(slot: number): number {
    if (!Number.isInteger(slot) || slot < 0 || slot >= this.slots) throw new RangeError(`slot ${slot} out of range 0..${this.slots - 1}`);
    return HEADER_WORDS + 2 * slot;
  }
}

function roundUp8(n: number): number {
  return Math.ceil(n / 8) * 8;
}
