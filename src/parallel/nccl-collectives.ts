// The `nccl` collectives backend: CUDA ranks (one worker thread per GPU) move tensors with NCCL, through the
// sgld_comm_* functions of the native library, queued on each rank's stream in order with its ops.
//
// Joining: every member reads the version of slot 0 of the group's SharedSlotChannel, all meet at the group's
// SharedBarrier, then member 0 makes an NCCL unique id and publishes it into slot 0 while the others wait for
// a version newer than the one they read; then everybody initialises the communicator. The barrier makes the
// version read older than the id, so a rank that rejoins a group (after a restart) never takes a stale id.
//
// NCCL moves contiguous bytes, while Collectives take views with any strides: a strided view is packed into a
// contiguous staging tensor before a send and a receive lands in one and is unpacked into the view afterwards.
// Staging tensors go back to the caching allocator right after their transfers are queued, which is safe
// because every later use of the block is queued on the same stream. Host-side steps (barrier,
// broadcastValue, the id hand-off) use the group's shared memory, as the shm backend does.
import { SharedBarrier, SharedSlotChannel, type SharedWaitOptions } from '../kernel/index.js';
import type { Device } from '../runtime/device.js';
import { COMM_ID_BYTES, type Ptr } from '../runtime/native.js';
import { Tensor, copyInto, copyTo } from '../runtime/tensor.js';
import { CollectiveError, type Collectives } from './collectives.js';
import type { GroupSpec } from './topology.js';

/**
 * One communicator's transfers: byte counts of contiguous device memory, queued on the device's stream.
 * {@link NativeCommTransport} is NCCL; tests on machines without a GPU substitute their own.
 */
export interface CommTransport {
  /** A fresh NCCL unique id (COMM_ID_BYTES bytes); member 0 calls it. */
  uniqueId(): Uint8Array;
  /** Joins the communicator; blocks until all `nranks` members have called it. */
  init(id: Uint8Array, nranks: number, rank: number): void;
  groupStart(): void;
  groupEnd(): void;
  send(buf: Ptr, bytes: number, peer: number): void;
  recv(buf: Ptr, bytes: number, peer: number): void;
  /** `recv` holds nranks * bytes; member j's `send` lands at j * bytes. */
  allGather(send: Ptr, recv: Ptr, bytes: number): void;
  broadcast(send: Ptr, recv: Ptr, bytes: number, root: number): void;
  destroy(): void;
  abort(): void;
}

/** NCCL through the device's native library (libsgld_cuda.so). */
export class NativeCommTransport implements CommTransport {
  #comm: Ptr | null = null;

  constructor(readonly device: Device) {
    if (device.backend !== 'cuda') {
      throw new Error(`nccl collectives need CUDA ranks, not ${device.backend}: CPU ranks exchange through the shm `
        + 'backend (ShmCollectives)');
    }
  }

  uniqueId(): Uint8Array {
    const id = new Uint8Array(COMM_ID_BYTES);
    this.#check(this.#fns.sgld_comm_unique_id(id), 'sgld_comm_unique_id');
    return id;
  }

  init(id: Uint8Array, nranks: number, rank: number): void {
    if (id.byteLength !== COMM_ID_BYTES) throw new Error(`an NCCL unique id has ${COMM_ID_BYTES} bytes, got ${id.byteLength}`);
    const out: [Ptr | null] = [null];
    this.#check(this.#fns.sgld_comm_init(this.device.ctx, id, nranks, rank, out), 'sgld_comm_init');
    this.#comm = out[0]!;
  }

  groupStart(): void { this.#check(this.#fns.sgld_comm_group_start(), 'sgld_comm_group_start'); }
  groupEnd(): void { this.#check(this.#fns.sgld_comm_group_end(), 'sgld_comm_group_end'); }

  send(buf: Ptr, bytes: number, peer: number): void {
    this.#check(this.#fns.sgld_comm_send(this.#live, this.device.ctx, buf, bytes, peer), 'sgld_comm_send');
  }

  recv(buf: Ptr, bytes: number, peer: number): void {
    this.#check(this.#fns.sgld_comm_recv(this.#live, this.device.ctx, buf, bytes, peer), 'sgld_comm_recv');
  }

  allGather(send: Ptr, recv: Ptr, bytes: number): void {
    this.#check(this.#fns.sgld_comm_all_gather(this.#live, this.device.ctx, send, recv, bytes), 'sgld_comm_all_gather');
  }

  broadcast(send: Ptr, recv: Ptr, bytes: number, root: number): void {
    this.#check(this.#fns.sgld_comm_broadcast(this.#live, this.device.ctx, send, recv, bytes, root), 'sgld_comm_broadcast');
  }

  destroy(): void { this.#release('sgld_comm_destroy'); }
  abort(): void { this.#release('sgld_comm_abort'); }

  #release(fn: 'sgld_comm_destroy' | 'sgld_comm_abort'): void {
    const comm = this.#comm;
    this.#comm = null;  // freed by the call whatever it answers
    if (comm !== null) this.#check(this.#fns[fn](comm), fn);
  }

  get #fns() { return this.device.lib.fns; }

  get #live(): Ptr {
    if (this.#comm === null) throw new Error('sgld: NCCL communicator used before init or after destroy/abort');
    return this.#comm;
  }

  #check(status: number, fn: string): void { this.device.lib.check(status, fn); }
}

export interface NcclOptions extends SharedWaitOptions {
  /** Moves the bytes; default: NCCL through the device's library ({@link NativeCommTransport}). */
  transport?: CommTransport;
}

// Slot-0 frames of the id hand-off: 'NCCL', a kind byte, 3 spare bytes, then the id or an error message.
const FRAME_MAGIC = [0x4e, 0x43, 0x43, 0x4c];
const FRAME_HEADER = 8;
const FRAME_ID = 1;
const FRAME_ERROR = 2;

export class NcclCollectives implements Collectives {
  readonly rank: number;
  readonly size: number;
  readonly name: string;
  #bytesReceived = 0;
  #released = false;
  readonly #barrier: SharedBarrier;
  readonly #slots: SharedSlotChannel;
  readonly #transport: CommTransport;
  readonly #wait: SharedWaitOptions;

  constructor(spec: GroupSpec, readonly device: Device, options: NcclOptions = {}) {
    const { transport, ...wait } = options;
    this.#transport = transport ?? new NativeCommTransport(device);
    this.#wait = wait;
    this.rank = spec.rank;
    this.size = spec.size;
    this.name = spec.name;
    this.#barrier = SharedBarrier.attach(spec.barrier);
    this.#slots = SharedSlotChannel.attach(spec.slots);
    this.#connect();
  }

  get bytesReceived(): number { return this.#bytesReceived; }

  /** Waits until this member's queued work (transfers included) is done, then for the other members. */
  barrier(): void {
    this.device.synchronize();
    if (this.size > 1) this.#barrier.wait(this.#wait);
  }

  allToAll(send: readonly Tensor[], recv: readonly Tensor[]): void {
    this.#expectPerMember('allToAll', send.length, recv.length);
    this.#onDevice(...send, ...recv);
    this.#staged((stage) => {
      const outgoing = send.map((t, j) => (j === this.rank ? t : stage.packed(t)));
      const incoming = recv.map((t, j) => (j === this.rank ? t : stage.landing(t)));
      this.#grouped(() => {
        for (let j = 0; j < this.size; j++) {
          if (j === this.rank) continue;
          this.#transport.send(outgoing[j]!.ptr, outgoing[j]!.byteLength, j);
          this.#transport.recv(incoming[j]!.ptr, incoming[j]!.byteLength, j);
        }
      });
      this.#copy(recv[this.rank]!, send[this.rank]!);  // our own piece never leaves the device
      recv.forEach((t, j) => { if (j !== this.rank) this.#bytesReceived += t.byteLength; });
    });
  }

  allGather(local: Tensor, out: readonly Tensor[]): void {
    this.#expectPerMember('allGather', out.length, out.length);
    this.#onDevice(local, ...out);
    const bytes = local.byteLength;
    this.#staged((stage) => {
      const src = stage.packed(local);
      if (out.every((t) => t.byteLength === bytes && t.dtype === local.dtype)) {
        // Equal pieces: one NCCL all-gather, straight into `out` when its pieces are consecutive blocks.
        const direct = consecutiveBlocks(out);
        const whole = direct ?? stage.scratch([this.size * local.numel], local);
        this.#transport.allGather(src.ptr, whole.ptr, bytes);
        if (!direct) out.forEach((t, j) => copyInto(t, whole.slice(0, j * local.numel, (j + 1) * local.numel).reshape(t.shape)));
      } else {
        // Uneven shards (a sequence the degree does not divide): every member sends its piece to each peer.
        const incoming = out.map((t, j) => (j === this.rank ? t : stage.landing(t)));
        this.#grouped(() => {
          for (let j = 0; j < this.size; j++) {
            if (j === this.rank) continue;
            this.#transport.send(src.ptr, bytes, j);
            this.#transport.recv(incoming[j]!.ptr, incoming[j]!.byteLength, j);
          }
        });
        this.#copy(out[this.rank]!, local);
      }
      out.forEach((t, j) => { if (j !== this.rank) this.#bytesReceived += t.byteLength; });
    });
  }

  broadcast(t: Tensor, root: number): void {
    this.#member('broadcast root', root);
    this.#onDevice(t);
    this.#staged((stage) => {
      const buf = this.rank === root ? stage.packed(t) : stage.landing(t);
      this.#transport.broadcast(buf.ptr, buf.ptr, t.byteLength, root);
    });
    if (this.rank !== root) this.#bytesReceived += t.byteLength;
  }

  sendRecv(send: Tensor, dst: number, recv: Tensor, src: number): void {
    this.#member('sendRecv dst', dst);
    this.#member('sendRecv src', src);
    this.#onDevice(send, recv);
    this.#staged((stage) => {
      const outgoing = stage.packed(send), incoming = stage.landing(recv);
      this.#grouped(() => {
        this.#transport.send(outgoing.ptr, outgoing.byteLength, dst);
        this.#transport.recv(incoming.ptr, incoming.byteLength, src);
      });
    });
    if (src !== this.rank) this.#bytesReceived += recv.byteLength;
  }

  broadcastValue(value: number, root: number): number {
    this.#member('broadcastValue root', root);
    if (this.size === 1) return value;
    if (this.rank === root) this.#slots.publish(root, new Float64Array([value]));
    this.#barrier.wait(this.#wait);
    const v = this.rank === root ? value : new Float64Array(this.#slots.read(root, this.#wait).slice().buffer, 0, 1)[0]!;
    this.#barrier.wait(this.#wait);  // nobody publishes the next value before everyone read this one
    return v;
  }

  /** Breaks the group's barrier for every member and aborts this member's communicator. */
  abort(): void {
    this.#barrier.break();
    if (this.#released) return;
    this.#released = true;
    this.#transport.abort();
  }

  close(): void {
    if (this.#released) return;
    this.#released = true;
    this.#transport.destroy();
  }

  /** The id hand-off through slot 0 (see the top of this file), then NCCL's init. */
  #connect(): void {
    const before = this.#slots.version(0);
    if (this.size > 1) this.#barrier.wait(this.#wait);
    let id: Uint8Array;
    if (this.rank === 0) {
      try {
        id = this.#transport.uniqueId();
      } catch (error) {
        // Tell the others now instead of leaving them to their timeout.
        this.#slots.publish(0, frame(FRAME_ERROR, new TextEncoder().encode(String((error as Error).message ?? error))
          .subarray(0, this.#slots.slotBytes - FRAME_HEADER)));
        throw error;
      }
      this.#slots.publish(0, frame(FRAME_ID, id));
    } else {
      const { kind, body } = unframe(this.#slots.waitFor(0, before + 1, this.#wait), this.name);
      if (kind === FRAME_ERROR) throw new CollectiveError(this.name, `member 0 could not make the NCCL id: ${new TextDecoder().decode(body)}`);
      id = body;
    }
    this.#transport.init(id, this.size, this.rank);
  }

  /** Runs `issue` between group start and end; group end runs even when `issue` throws (NCCL needs the pair). */
  #grouped(issue: () => void): void {
    this.#transport.groupStart();
    let failure: { error: unknown } | null = null;
    try {
      issue();
    } catch (error) {
      failure = { error };
    }
    try {
      this.#transport.groupEnd();
    } catch (error) {
      failure ??= { error };
    }
    if (failure) throw failure.error;
  }

  /** Runs `fn` with a staging area, unpacks what landed in staging, and frees the staging tensors. */
  #staged(fn: (stage: Staging) => void): void {
    const stage = new Staging();
    try {
      fn(stage);
      stage.unpack();
    } finally {
      stage.free();
    }
  }

  #copy(dst: Tensor, src: Tensor): void {
    if (dst.numel !== src.numel || dst.shape.some((d, i) => d !== src.shape[i])) {
      throw new CollectiveError(this.name, `member ${this.rank}'s own piece [${src.shape.join(', ')}] does not fit [${dst.shape.join(', ')}]`);
    }
    copyInto(dst, src);
  }

  #onDevice(...ts: Tensor[]): void {
    for (const t of ts) if (t.device !== this.device) throw new CollectiveError(this.name, `${t} lives on another device than this member's`);
  }

  #expectPerMember(op: string, a: number, b: number): void {
    if (a !== this.size || b !== this.size) throw new CollectiveError(this.name, `${op} needs one tensor per member (${this.size}), got ${a} and ${b}`);
  }

  #member(what: string, j: number): void {
    if (!Number.isInteger(j) || j < 0 || j >= this.size) throw new CollectiveError(this.name, `${what} ${j} is not a member of a group of ${this.size}`);
  }
}

/** Contiguous stand-ins for strided views during one collective. */
class Staging {
  readonly #owned: Tensor[] = [];
  readonly #unpack: { view: Tensor; landed: Tensor }[] = [];

  /** `t` itself when contiguous, else a contiguous copy of it (queued now, before the transfer). */
  packed(t: Tensor): Tensor {
    if (t.isContiguous) return t;
    return this.#own(copyTo(t, t.dtype));
  }

  /** Where to receive into `t`: itself when contiguous, else a buffer that unpack() copies into `t`. */
  landing(t: Tensor): Tensor {
    if (t.isContiguous) return t;
    const landed = this.#own(Tensor.empty(t.device, t.shape, t.dtype));
    this.#unpack.push({ view: t, landed });
    return landed;
  }

  /** A contiguous buffer of `shape` in `like`'s dtype, freed with the stage. */
  scratch(shape: readonly number[], like: Tensor): Tensor {
    return this.#own(Tensor.empty(like.device, shape, like.dtype));
  }

  unpack(): void {
    for (const { view, landed } of this.#unpack) copyInto(view, landed);
  }

  free(): void {
    for (const t of this.#owned) t.free();
  }

  #own(t: Tensor): Tensor {
    this.#owned.push(t);
    return t;
  }
}

/**
 * A flat contiguous view over `pieces` when they are contiguous blocks of one storage, each right after the
 * previous one (an all-gather can then land in place), else null.
 */
function consecutiveBlocks(pieces: readonly Tensor[]): Tensor | null {
  const first = pieces[0]!;
  let next = first.offset;
  for (const t of pieces) {
    if (t.storage !== first.storage || t.dtype !== first.dtype || !t.isContiguous || t.offset !== next) return null;
    next += t.numel;
  }
  return new Tensor(first.storage, first.dtype, [next - first.offset], [1], first.offset);
}

function frame(kind: number, body: Uint8Array): Uint8Array {
  const bytes = new Uint8Array(FRAME_HEADER + body.byteLength);
  bytes.set(FRAME_MAGIC, 0);
  bytes[4] = kind;
  bytes.set(body, FRAME_HEADER);
  return bytes;
}

function unframe(bytes: Uint8Array, group: string): { kind: number; body: Uint8Array } {
  const kind = bytes[4] ?? 0;
  if (bytes.byteLength < FRAME_HEADER || FRAME_MAGIC.some((b, i) => bytes[i] !== b) || (kind !== FRAME_ID && kind !== FRAME_ERROR)) {
    throw new CollectiveError(group, 'slot 0 holds no NCCL id from member 0 (is another backend using this group?)');
  }
  const body = bytes.subarray(FRAME_HEADER);
  if (kind === FRAME_ID && body.byteLength !== COMM_ID_BYTES) {
    throw new CollectiveError(group, `member 0 published a ${body.byteLength}-byte NCCL id, expected ${COMM_ID_BYTES}`);
  }
  return { kind, body };
}
