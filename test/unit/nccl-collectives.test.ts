// NcclCollectives without a GPU. The NCCL transport itself runs only on a CUDA machine (native-build/gpu-check.sh);
// here the TypeScript layer around it is tested: the unique-id hand-off through the group's SharedArrayBuffer,
// packing strided views into staging and unpacking them, grouped send/recv, the all-gather paths, byte
// counts, host barriers, abort and close. The bytes are moved by a stand-in transport over CPU device memory
// (ranks are threads of this process, so one can copy from another's buffers), built on the same shared-memory
// primitives as the shm backend. In two-rank cases member 1 runs in a worker thread started from this same file.
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { BarrierBrokenError, SharedBarrier, SharedSlotChannel } from '../../src/kernel/index.js';
import { NcclCollectives, type CommTransport } from '../../src/parallel/nccl-collectives.js';
import { type GroupSpec, buildTopologies } from '../../src/parallel/topology.js';
import { Device } from '../../src/runtime/device.js';
import { COMM_ID_BYTES, type Ptr } from '../../src/runtime/native.js';
import { Tensor } from '../../src/runtime/tensor.js';

/** Shared state of the stand-in: its own barrier and posting slots (not the group's), and a record of ids. */
interface StandInShared {
  barrier: SharedArrayBuffer;
  posts: SharedArrayBuffer;
  /** Each member's id as init received it: [scenario][rank][128 bytes]. */
  ids: SharedArrayBuffer;
}

const SCENARIOS = 4;
const WAIT = { timeoutMs: 30_000, spin: 0 };

function standInShared(size: number): StandInShared {
  return {
    barrier: SharedBarrier.create(size).buffer,
    posts: SharedSlotChannel.create({ slots: size, slotBytes: 4096 }).buffer,
    ids: new SharedArrayBuffer(SCENARIOS * size * COMM_ID_BYTES),
  };
}

type Op = { kind: 'send' | 'recv'; ptr: Ptr; bytes: number; peer: number };

/**
 * NCCL's semantics over CPU memory: the operations of a group are posted (send: address and size), then, after a
 * barrier, each receive copies from the matching send of its peer (the k-th receive from p takes p's k-th send to
 * this member), and a second barrier keeps the buffers alive until everyone copied.
 */
class StandInTransport implements CommTransport {
  readonly calls: string[] = [];
  #pending: Op[] | null = null;
  #rank = -1;
  readonly #barrier: SharedBarrier;
  readonly #posts: SharedSlotChannel;

  constructor(readonly device: Device, readonly shared: StandInShared, readonly scenario: number,
    readonly failUniqueId = false) {
    this.#barrier = SharedBarrier.attach(shared.barrier);
    this.#posts = SharedSlotChannel.attach(shared.posts);
  }

  uniqueId(): Uint8Array {
    this.calls.push('uniqueId');
    if (this.failUniqueId) throw new Error('stand-in: no NCCL here');
    return crypto.getRandomValues(new Uint8Array(COMM_ID_BYTES));
  }

  init(id: Uint8Array, nranks: number, rank: number): void {
    this.calls.push(`init ${nranks} ${rank}`);
    this.#rank = rank;
    new Uint8Array(this.shared.ids, (this.scenario * nranks + rank) * COMM_ID_BYTES, COMM_ID_BYTES).set(id);
    this.#barrier.wait(WAIT);  // like ncclCommInitRank: returns once every member called it
  }

  groupStart(): void { this.calls.push('groupStart'); this.#pending = []; }
  groupEnd(): void {
    this.calls.push('groupEnd');
    const ops = this.#pending!;
    this.#pending = null;
    this.#exchange(ops);
  }

  send(ptr: Ptr, bytes: number, peer: number): void { this.#queue({ kind: 'send', ptr, bytes, peer }); }
  recv(ptr: Ptr, bytes: number, peer: number): void { this.#queue({ kind: 'recv', ptr, bytes, peer }); }

  allGather(send: Ptr, recv: Ptr, bytes: number): void {
    this.calls.push(`allGather ${bytes}`);
    const n = this.#barrier.parties;
    this.#exchange(Array.from({ length: n }, (_, j): Op[] => [
      { kind: 'send', ptr: send, bytes, peer: j }, { kind: 'recv', ptr: recv + BigInt(j * bytes), bytes, peer: j },
    ]).flat());
  }

  broadcast(send: Ptr, recv: Ptr, bytes: number, root: number): void {
    this.calls.push(`broadcast ${bytes} ${root}`);
    const n = this.#barrier.parties;
    const sends: Op[] = this.#rank === root ? Array.from({ length: n }, (_, j) => ({ kind: 'send', ptr: send, bytes, peer: j })) : [];
    this.#exchange([...sends, { kind: 'recv', ptr: recv, bytes, peer: root }]);
  }

  destroy(): void { this.calls.push('destroy'); }
  abort(): void { this.calls.push('abort'); }

  #queue(op: Op): void {
    if (!this.#pending) throw new Error('stand-in: send/recv outside a group');
    this.calls.push(`${op.kind} ${op.bytes} ${op.peer}`);
    this.#pending.push(op);
  }

  #exchange(ops: Op[]): void {
    const sends = ops.filter((o) => o.kind === 'send');
    this.#posts.publish(this.#rank, BigInt64Array.from(sends.flatMap((o) => [BigInt(o.peer), o.ptr, BigInt(o.bytes)])));
    this.#barrier.wait(WAIT);
    try {
      const taken = new Map<number, number>();
      for (const r of ops.filter((o) => o.kind === 'recv')) {
        const words = new BigInt64Array(this.#posts.read(r.peer).slice().buffer);
        const toMe = [];
        for (let i = 0; i < words.length; i += 3) if (Number(words[i]) === this.#rank) toMe.push({ ptr: words[i + 1]!, bytes: Number(words[i + 2]) });
        const k = taken.get(r.peer) ?? 0;
        taken.set(r.peer, k + 1);
        const s = toMe[k];
        if (!s) throw new Error(`stand-in: member ${r.peer} sends nothing more to ${this.#rank}`);
        if (s.bytes !== r.bytes) throw new Error(`stand-in: member ${r.peer} sends ${s.bytes} bytes, ${this.#rank} expects ${r.bytes}`);
        if (s.ptr !== r.ptr && r.bytes > 0) this.device.lib.check(this.device.lib.fns.sgld_copy_device(this.device.ctx, r.ptr, s.ptr, r.bytes), 'sgld_copy_device');
      }
    } finally {
      this.#barrier.wait(WAIT);
    }
  }
}

// ---- values of the two-rank scenario (both sides compute them) -----------------------------------------------
const SEQ = [3, 2];          // uneven sequence shards
const OFF = [0, 3];
const value = (rank: number, i: number): number => rank * 1000 + i;
const f32 = (n: number, rank: number, base = 0): Float32Array => Float32Array.from({ length: n }, (_, i) => value(rank, base + i));

interface RankResult {
  rank: number;
  allToAll: Float32Array;
  gatherUneven: Float32Array;
  gatherDirect: Float32Array;
  gatherStrided: Float32Array;
  broadcast: Float32Array;
  sendRecv: Float32Array;
  values: number[];
  bytesReceived: number;
  leakedBytes: number;
  calls: string[];
  rejoinCalls: string[];
  idFailure: string;
  abortOutcome: string;
  abortCalls: string[];
}

/** What one rank of two does (in its worker thread). */
function runRank(spec: GroupSpec, shared: StandInShared): RankResult {
  const r = spec.rank;
  const device = new Device({ backend: 'cpu', threads: 1 });
  const baseline = device.memoryStats().inUse;
  const transport = new StandInTransport(device, shared, 0);
  const c = new NcclCollectives(spec, device, { ...WAIT, transport });
  const own: Tensor[] = [];
  const keep = (t: Tensor): Tensor => { own.push(t); return t; };
  const up = (data: Float32Array, shape: number[]): Tensor => keep(Tensor.fromHost(device, data, shape, 'f32'));

  // Ulysses-style all-to-all: [B, S_r, H, D] head slices out, sequence slices of [B, S, H/2, D] in (both strided).
  const x = up(f32(2 * SEQ[r]! * 4 * 3, r), [2, SEQ[r]!, 4, 3]);
  const y = keep(Tensor.empty(device, [2, 5, 2, 3], 'f32'));
  c.allToAll([0, 1].map((j) => x.slice(2, 2 * j, 2 * j + 2)), [0, 1].map((j) => y.slice(1, OFF[j]!, OFF[j]! + SEQ[j]!)));

  // Uneven all-gather of [B, S_r, C] into strided sequence slices of [B, S, C].
  const local = up(f32(2 * SEQ[r]! * 3, r), [2, SEQ[r]!, 3]);
  const full = keep(Tensor.empty(device, [2, 5, 3], 'f32'));
  c.allGather(local, [0, 1].map((j) => full.slice(1, OFF[j]!, OFF[j]! + SEQ[j]!)));

  // Equal pieces that are consecutive blocks (CFG's [2, ...] from two [1, ...]): one all-gather, in place.
  const half = up(f32(4, r), [1, 4]);
  const both = keep(Tensor.empty(device, [2, 4], 'f32'));
  c.allGather(half, [both.slice(0, 0, 1), both.slice(0, 1, 2)]);

  // Equal pieces, all strided: packed for sending, gathered into scratch, unpacked.
  const base = up(f32(6, r), [2, 3]);
  const big = keep(Tensor.empty(device, [3, 2, 2], 'f32'));
  c.allGather(base.transpose(0, 1).unsqueeze(2), [0, 1].map((j) => big.slice(2, j, j + 1)));

  // Broadcast from member 1 into a transposed view.
  const b = up(r === 1 ? f32(12, 1, 500) : new Float32Array(12), [3, 4]);
  c.broadcast(b.transpose(0, 1), 1);

  // One ring step between strided views.
  const s = up(f32(6, r, 100), [2, 3]);
  const got = up(new Float32Array(6), [2, 3]);
  c.sendRecv(s.transpose(0, 1), (r + 1) % 2, got.transpose(0, 1), (r + 1) % 2);

  const values = [c.broadcastValue(7 + r, 1), c.broadcastValue(3 + r, 0)];
  c.barrier();
  const result = {
    rank: r, allToAll: y.toFloat32Array(), gatherUneven: full.toFloat32Array(), gatherDirect: both.toFloat32Array(),
    gatherStrided: big.toFloat32Array(), broadcast: b.toFloat32Array(), sendRecv: got.toFloat32Array(), values,
    bytesReceived: c.bytesReceived,
  };
  for (const t of own) t.free();
  const leakedBytes = device.memoryStats().inUse - baseline;
  c.close();
  c.close();  // a second close does nothing

  // A second communicator on the same group must take the new id, not the one left in slot 0.
  const rejoin = new StandInTransport(device, shared, 1);
  new NcclCollectives(spec, device, { ...WAIT, transport: rejoin }).close();

  // Member 0 cannot make an id: both fail at once, member 1 with member 0's reason.
  let idFailure = '';
  try {
    new NcclCollectives(spec, device, { ...WAIT, transport: new StandInTransport(device, shared, 2, r === 0) });
  } catch (error) {
    idFailure = (error as Error).message;
  }

  // Member 0 aborts: its communicator is aborted (not destroyed), member 1's next barrier fails.
  const aborting = new StandInTransport(device, shared, 3);
  const last = new NcclCollectives(spec, device, { ...WAIT, transport: aborting });
  let abortOutcome = 'no error';
  if (r === 0) {
    last.abort();
  } else {
    try {
      last.barrier();
    } catch (error) {
      abortOutcome = error instanceof BarrierBrokenError ? 'BarrierBrokenError' : String(error);
    }
  }
  last.close();
  device.close();
  return { ...result, leakedBytes, calls: transport.calls, rejoinCalls: rejoin.calls, idFailure, abortOutcome, abortCalls: aborting.calls };
}

if (!isMainThread) {
  const { spec, shared } = workerData as { spec: GroupSpec; shared: StandInShared };
  let reply: { ok: true; result: RankResult } | { ok: false; error: string };
  try {
    reply = { ok: true, result: runRank(spec, shared) };
  } catch (error) {
    reply = { ok: false, error: (error as Error).stack ?? String(error) };
  }
  parentPort!.postMessage(reply);
} else {
  await tests();
}

async function tests(): Promise<void> {
  const { default: t } = await import('tap');

  const groupOf = (ranks: number): GroupSpec[] => buildTopologies({ dp: 1, cfg: 1, ulysses: ranks, ring: 1 })
    .map((topology) => topology.groups.ulysses);

  t.test('a CPU device is refused with a pointer to the shm backend, before the group is touched', async (t) => {
    const device = new Device({ backend: 'cpu', threads: 1 });
    t.teardown(() => device.close());
    const [spec] = groupOf(1);
    t.throws(() => new NcclCollectives(spec!, device),
      /^nccl collectives need CUDA ranks, not cpu: CPU ranks exchange through the shm backend \(ShmCollectives\)$/);
    t.equal(SharedSlotChannel.attach(spec!.slots).version(0), 0, 'no id was published');
  });

  t.test('one member: id through slot 0, init, and every collective to itself through the transport', async (t) => {
    const device = new Device({ backend: 'cpu', threads: 1 });
    t.teardown(() => device.close());
    const [spec] = groupOf(1);
    const shared = standInShared(1);
    const transport = new StandInTransport(device, shared, 0);
    const c = new NcclCollectives(spec!, device, { ...WAIT, transport });
    t.same(transport.calls, ['uniqueId', 'init 1 0'], 'member 0 makes the id and joins a communicator of one');
    const slot = SharedSlotChannel.attach(spec!.slots).read(0);
    t.same([...slot.subarray(0, 5)], [0x4e, 0x43, 0x43, 0x4c, 1], "slot 0 holds an 'NCCL' id frame");
    t.same(slot.subarray(8), new Uint8Array(shared.ids, 0, COMM_ID_BYTES), 'and init got exactly the published id');

    const src = Tensor.fromHost(device, f32(12, 0), [3, 4], 'f32');
    const dst = Tensor.fromHost(device, new Float32Array(12), [4, 3], 'f32');
    c.sendRecv(src.transpose(0, 1), 0, dst, 0);  // strided send to itself
    const want = Float32Array.from({ length: 12 }, (_, i) => value(0, (i % 3) * 4 + Math.floor(i / 3)));
    t.same([...dst.toFloat32Array()], [...want], 'sendRecv to itself: the transposed view arrives exactly');
    t.same(transport.calls.slice(2), ['groupStart', 'send 48 0', 'recv 48 0', 'groupEnd'], 'as one grouped send and recv');

    const gathered = Tensor.fromHost(device, new Float32Array(12), [4, 3], 'f32');
    c.allGather(src.transpose(0, 1), [gathered]);
    t.same([...gathered.toFloat32Array()], [...want], 'allGather of one strided piece');
    const b = Tensor.fromHost(device, f32(12, 0, 50), [3, 4], 'f32');
    c.broadcast(b.slice(1, 1, 3), 0);
    t.same([...b.toFloat32Array()], [...f32(12, 0, 50)], 'broadcast from itself leaves its tensor as it was');
    const a2a = Tensor.fromHost(device, new Float32Array(12), [4, 3], 'f32');
    c.allToAll([src.transpose(0, 1)], [a2a]);
    t.same([...a2a.toFloat32Array()], [...want], 'allToAll: its own piece is a local copy');
    t.equal(c.broadcastValue(42, 0), 42, 'broadcastValue in a group of one');
    t.equal(c.bytesReceived, 0, 'nothing came from another member');
    t.throws(() => c.broadcast(b, 1), /broadcast root 1 is not a member of a group of 1/);
    t.throws(() => c.allToAll([a2a, a2a], [a2a, a2a]), /allToAll needs one tensor per member \(1\), got 2 and 2/);
    c.close();
    t.equal(transport.calls.filter((x) => x === 'destroy').length, 1, 'close destroys the communicator');
    for (const x of [src, dst, gathered, b, a2a]) x.free();
  });

  t.test('two members in two threads: uneven, strided and in-place exchanges, values, counts, rejoin, failures',
    async (t) => {
      const specs = groupOf(2);
      const shared = standInShared(2);
      // Member 1 in a worker thread; member 0 here, blocking this thread while it waits for member 1 (a worker
      // under the TS loader costs seconds to start, so one is started, not two).
      const member1 = new Promise<RankResult>((resolve, reject) => {
        const worker = new Worker(new URL(import.meta.url), { workerData: { spec: specs[1], shared } });
        worker.once('error', reject);
        worker.once('message', (m: { ok: true; result: RankResult } | { ok: false; error: string }) => {
          if (m.ok) resolve(m.result); else reject(new Error(m.error));
        });
      });
      member1.catch(() => undefined);  // if member 0 throws first, member 1's failure must not go unhandled
      const replies = [runRank(specs[0]!, shared), await member1];
      const ids = (scenario: number, rank: number): number[] => [...new Uint8Array(shared.ids, (scenario * 2 + rank) * COMM_ID_BYTES, COMM_ID_BYTES)];
      t.same(ids(0, 1), ids(0, 0), 'both members joined with the same id');
      t.ok(ids(0, 0).some((v) => v !== 0), 'a real (random) id, not zeros');
      t.same(ids(1, 1), ids(1, 0), 'a second communicator on the same group: same id on both');
      t.notSame(ids(1, 0), ids(0, 0), '...and it is the new id, not the one left in slot 0');

      for (const res of replies) {
        const r = res.rank;
        // y[b, OFF[j] + s, h, d] = X_j[b, s, 2r + h, d], X_j = value(j, ((b * SEQ[j] + s) * 4 + h) * 3 + d)
        const a2a: number[] = [];
        for (let b = 0; b < 2; b++) for (let j = 0; j < 2; j++) for (let s = 0; s < SEQ[j]!; s++) for (let h = 0; h < 2; h++) for (let d = 0; d < 3; d++) {
          a2a.push(value(j, ((b * SEQ[j]! + s) * 4 + 2 * r + h) * 3 + d));
        }
        t.same([...res.allToAll], a2a, `member ${r}: all-to-all turns sequence shards into head shards exactly`);
        const gather: number[] = [];
        for (let b = 0; b < 2; b++) for (let j = 0; j < 2; j++) for (let i = 0; i < SEQ[j]! * 3; i++) gather.push(value(j, b * SEQ[j]! * 3 + i));
        t.same([...res.gatherUneven], gather, `member ${r}: uneven all-gather (3 + 2 tokens) into strided slices`);
        t.same([...res.gatherDirect], [...f32(4, 0), ...f32(4, 1)], `member ${r}: equal consecutive pieces`);
        const strided: number[] = [];
        for (let i = 0; i < 3; i++) for (let k = 0; k < 2; k++) for (let j = 0; j < 2; j++) strided.push(value(j, k * 3 + i));
        t.same([...res.gatherStrided], strided, `member ${r}: equal strided pieces (packed, gathered, unpacked)`);
        t.same([...res.broadcast], [...f32(12, 1, 500)], `member ${r}: broadcast from member 1 into a transposed view`);
        t.same([...res.sendRecv], [...f32(6, 1 - r, 100)], `member ${r}: a ring step between transposed views`);
        t.same(res.values, [8, 3], `member ${r}: broadcastValue takes the root's value`);
        const other = 1 - r;
        const expected = 4 * (2 * SEQ[other]! * 2 * 3 + 2 * SEQ[other]! * 3 + 4 + 6 + (r === 1 ? 0 : 12) + 6);
        t.equal(res.bytesReceived, expected, `member ${r}: bytesReceived counts what came from the other member (${expected})`);
        t.equal(res.leakedBytes, 0, `member ${r}: every staging tensor went back`);
        t.equal(res.calls.filter((x) => x === 'destroy').length, 1, `member ${r}: two closes destroy once`);
        t.same(res.calls.filter((x) => x === 'uniqueId').length, r === 0 ? 1 : 0, `member ${r}: only member 0 makes an id`);
        t.same(res.calls.filter((x) => x.startsWith('allGather')), ['allGather 16', 'allGather 24'],
          `member ${r}: equal pieces use the all-gather, uneven ones do not`);
        t.same(res.rejoinCalls.filter((x) => x.startsWith('init')), [`init 2 ${r}`], `member ${r}: rejoined`);
        t.equal(res.idFailure, r === 0 ? 'stand-in: no NCCL here'
          : `${specs[1]!.name}: member 0 could not make the NCCL id: stand-in: no NCCL here`,
        `member ${r}: a failed id fails both members at once, with member 0's reason`);
        t.same(res.abortCalls.filter((x) => x === 'abort' || x === 'destroy'), [r === 0 ? 'abort' : 'destroy'],
          `member ${r}: abort aborts the communicator (close then does nothing more)`);
        t.equal(res.abortOutcome, r === 0 ? 'no error' : 'BarrierBrokenError', `member ${r}: the peer's barrier breaks`);
      }
    });
}
