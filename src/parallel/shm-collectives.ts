// The `shm` collectives backend: CPU ranks are worker threads of one process, so a rank can read another rank's
// native buffers directly. An exchange is: publish descriptors (address, shape, strides, dtype) of the views
// this rank offers into its slot of the group's SharedSlotChannel; barrier; each rank copies what it needs from
// the peers' views into its own with the native strided copy (its own context, its own threads); barrier again,
// so no rank frees or overwrites a buffer a peer is still reading. Bytes cross memory once, with no staging.
import { SharedBarrier, SharedSlotChannel, type SharedWaitOptions } from '../kernel/index.js';
import type { Device } from '../runtime/device.js';
import { type DType, dtypeCode } from '../runtime/dtype.js';
import { Storage, Tensor, copyInto } from '../runtime/tensor.js';
import { CollectiveError, type Collectives } from './collectives.js';
import type { GroupSpec } from './topology.js';

const MAX_DIMS = 6;
/** Int64 words per descriptor: address, dtype, ndim, shape[6], strides[6]. */
const DESCRIPTOR_WORDS = 3 + 2 * MAX_DIMS;
const DTYPES: readonly DType[] = ['f32', 'f16', 'bf16', 'i32', 'i64', 'u8'];

export interface ShmOptions extends SharedWaitOptions {}

export class ShmCollectives implements Collectives {
  readonly rank: number;
  readonly size: number;
  readonly name: string;
  #bytesReceived = 0;
  readonly #barrier: SharedBarrier;
  readonly #slots: SharedSlotChannel;

  constructor(spec: GroupSpec, readonly device: Device, private readonly wait: ShmOptions = {}) {
    if (device.backend !== 'cpu') throw new Error(`shm collectives need CPU ranks (threads of one process), not ${device.backend}`);
    this.rank = spec.rank;
    this.size = spec.size;
    this.name = spec.name;
    this.#barrier = SharedBarrier.attach(spec.barrier);
    this.#slots = SharedSlotChannel.attach(spec.slots);
  }

  get bytesReceived(): number { return this.#bytesReceived; }

  barrier(): void {
    if (this.size > 1) this.#barrier.wait(this.wait);
  }

  allToAll(send: readonly Tensor[], recv: readonly Tensor[]): void {
    this.#expectPerMember('allToAll', send.length, recv.length);
    this.#exchange(send, (peer) => {
      for (let j = 0; j < this.size; j++) this.#pull(recv[j]!, j === this.rank ? send[j]! : peer(j)[this.rank]!);
    });
  }

  allGather(local: Tensor, out: readonly Tensor[]): void {
    this.#expectPerMember('allGather', out.length, out.length);
    this.#exchange([local], (peer) => {
      for (let j = 0; j < this.size; j++) this.#pull(out[j]!, j === this.rank ? local : peer(j)[0]!);
    });
  }

  broadcast(t: Tensor, root: number): void {
    this.#member('broadcast root', root);
    this.#exchange(this.rank === root ? [t] : [], (peer) => {
      if (this.rank !== root) this.#pull(t, peer(root)[0]!);
    });
  }

  sendRecv(send: Tensor, dst: number, recv: Tensor, src: number): void {
    this.#member('sendRecv dst', dst);
    this.#member('sendRecv src', src);
    this.#exchange([send], (peer) => this.#pull(recv, src === this.rank ? send : peer(src)[0]!));
  }

  broadcastValue(value: number, root: number): number {
    this.#member('broadcastValue root', root);
    if (this.size === 1) return value;
    if (this.rank === root) this.#slots.publish(this.rank, new Float64Array([value]));
    this.barrier();
    const v = this.rank === root ? value : new Float64Array(this.#slots.read(root, this.wait).buffer, 0, 1)[0]!; // read() copies
    this.barrier();
    return v;
  }

  abort(): void {
    this.#barrier.break();
  }

  close(): void {}

  /** Publish `offer`, wait for everyone's, run `pull` with a reader of peers' offers, wait until all pulled. */
  #exchange(offer: readonly Tensor[], pull: (peer: (j: number) => Tensor[]) => void): void {
    if (this.size === 1) {
      pull(() => { throw new CollectiveError(this.name, 'no peers in a group of one'); });
      return;
    }
    this.#slots.publish(this.rank, encodeDescriptors(offer));
    this.barrier();
    try {
      pull((j) => decodeDescriptors(this.#slots.read(j, this.wait), this.device));
    } finally {
      // Even when a copy failed: the peers must not wait for us forever (they are released; the error stays ours).
      this.barrier();
    }
  }

  #pull(dst: Tensor, src: Tensor): void {
    if (dst.shape.length !== src.shape.length || dst.shape.some((d, i) => d !== src.shape[i])) {
      throw new CollectiveError(this.name, `member ${this.rank} expects [${dst.shape.join(', ')}] but the peer offers [${src.shape.join(', ')}]`);
    }
    copyInto(dst, src);
    if (!ownedHere(src)) this.#bytesReceived += src.numel * src.itemSize;
  }

  #expectPerMember(op: string, a: number, b: number): void {
    if (a !== this.size || b !== this.size) throw new CollectiveError(this.name, `${op} needs one tensor per member (${this.size}), got ${a} and ${b}`);
  }

  #member(what: string, j: number): void {
    if (!Number.isInteger(j) || j < 0 || j >= this.size) throw new CollectiveError(this.name, `${what} ${j} is not a member of a group of ${this.size}`);
  }
}

/** Views decoded from a peer's descriptors live in a storage we must never free (it is the peer's). */
class PeerStorage extends Storage {
  override free(): void {}
}

const ownedHere = (t: Tensor): boolean => !(t.storage instanceof PeerStorage);

function encodeDescriptors(views: readonly Tensor[]): BigInt64Array {
  const words = new BigInt64Array(1 + views.length * DESCRIPTOR_WORDS);
  words[0] = BigInt(views.length);
  views.forEach((t, i) => {
    if (t.ndim > MAX_DIMS) throw new Error(`shm collectives: views of at most ${MAX_DIMS} dims, got ${t}`);
    const at = 1 + i * DESCRIPTOR_WORDS;
    words[at] = t.numel === 0 ? 0n : t.ptr;
    words[at + 1] = BigInt(dtypeCode(t.dtype));
    words[at + 2] = BigInt(t.ndim);
    t.shape.forEach((d, k) => { words[at + 3 + k] = BigInt(d); });
    t.strides.forEach((s, k) => { words[at + 3 + MAX_DIMS + k] = BigInt(s); });
  });
  return words;
}

function decodeDescriptors(bytes: Uint8Array, device: Device): Tensor[] {
  const words = new BigInt64Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 8); // a copy already (read())
  const n = Number(words[0]);
  return Array.from({ length: n }, (_, i) => {
    const at = 1 + i * DESCRIPTOR_WORDS;
    const dtype = DTYPES.find((d) => dtypeCode(d) === Number(words[at + 1]))!;
    const ndim = Number(words[at + 2]);
    const shape = Array.from({ length: ndim }, (_, k) => Number(words[at + 3 + k]));
    const strides = Array.from({ length: ndim }, (_, k) => Number(words[at + 3 + MAX_DIMS + k]));
    // The storage spans the view; its byte count is informational (nothing frees or bounds-checks it).
    return new Tensor(new PeerStorage(device, words[at]!, 0), dtype, shape, strides, 0);
  });
}
