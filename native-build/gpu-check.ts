// The TypeScript half of native-build/gpu-check.sh, for a machine with one CUDA GPU: a 'cuda' Device against the
// CPU backend on a few ops, then the nccl collectives with a world of one rank (the only GPU machines lent now
// have one GPU): the raw sgld_comm_* ABI, NcclCollectives (unique id through the group's SharedArrayBuffer,
// init, all-gather / broadcast / send-recv to itself, abort, destroy) and RankParallel.join's wiring.
// Prints one PASS or FAIL line per check and exits 1 when any failed. Runs as compiled JS (the device machine
// has no TypeScript loader) or here under `node --import @tapjs/typescript/import`, where it fails cleanly.
import { SharedBarrier, SharedSlotChannel } from '../src/kernel/index.js';
import { NcclCollectives } from '../src/parallel/nccl-collectives.js';
import { RankParallel } from '../src/parallel/rank-context.js';
import { buildTopologies } from '../src/parallel/topology.js';
import { Device } from '../src/runtime/device.js';
import type { DType } from '../src/runtime/dtype.js';
import { COMM_ID_BYTES, NativeError, type Ptr, Status, loadNativeLibrary } from '../src/runtime/native.js';
import * as ops from '../src/runtime/ops.js';
import { Tensor, scoped } from '../src/runtime/tensor.js';

let failures = 0;
let gpu: Device | null = null;  // set by the first check
const cpu = new Device({ backend: 'cpu' });

/** A check that found a wrong answer (its message says enough; other errors print their stack too). */
class CheckFailure extends Error {}

function check(name: string, body: () => string | void): void {
  const t0 = performance.now();
  try {
    const detail = body();
    console.log(`PASS ${name}${detail ? `: ${detail}` : ''} (${(performance.now() - t0).toFixed(0)} ms)`);
  } catch (error) {
    failures++;
    const e = error as Error;
    console.log(`FAIL ${name}: ${e instanceof CheckFailure || e instanceof NativeError ? e.message : e.stack ?? String(e)}`);
  }
}

function expect(ok: boolean, message: string): void {
  if (!ok) throw new CheckFailure(message);
}

/** The CUDA device, or a failure that points at the first check. */
function cuda(): Device {
  if (!gpu) throw new CheckFailure('no CUDA device (see the first check)');
  return gpu;
}

/** Deterministic uniform values in [-1, 1) (an LCG: reproducible across machines, no dependency). */
function random(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  });
}

/** Rounds to bf16 (nearest even), so both backends see the same inputs in a bf16 comparison. */
function toBf16Values(x: Float32Array): Float32Array {
  const u = new Uint32Array(Float32Array.from(x).buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i]! + 0x7fff + ((u[i]! >>> 16) & 1)) >>> 16) << 16;
  return new Float32Array(u.buffer);
}

/** max |a - b| / max |b|. */
function relativeError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return scale === 0 ? diff : diff / scale;
}

const sameValues = (a: Float32Array, b: Float32Array): boolean => a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

// ---- the library and the device ---------------------------------------------------------------------------

check('libsgld_cuda.so loads and sees a GPU', () => {
  const lib = loadNativeLibrary('cuda');
  const count: [number | null] = [null];
  lib.check(lib.fns.sgld_device_count(count), 'sgld_device_count');
  expect(count[0]! >= 1, `${count[0]} devices`);
  gpu = new Device({ backend: 'cuda', computeDType: 'f32' });
  return `${count[0]} device(s), ${lib.path}`;
});

check('NCCL loads', () => {
  const lib = loadNativeLibrary('cuda');
  const version: [number | null] = [null];
  lib.check(lib.fns.sgld_comm_version(version), 'sgld_comm_version');
  const v = version[0]!;
  return `NCCL ${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100} (code ${v})`;
});

// ---- a few ops against the CPU backend --------------------------------------------------------------------
/** Runs `op` on both backends over the same inputs (rounded to bf16 first when dtype is bf16). */
function compareOp(name: string, dtype: DType, tolerance: number, shapes: number[][],
  op: (inputs: Tensor[]) => Tensor): void {
  check(`${name} (${dtype}) matches the CPU backend within ${tolerance}`, () => {
    const host = shapes.map((s, i) => {
      const x = random(s.reduce((a, b) => a * b, 1), 17 + i);
      return dtype === 'bf16' ? toBf16Values(x) : x;
    });
    const run = (device: Device, storage: DType): Float32Array => {
      let values: Float32Array = new Float32Array(0);
      scoped(() => { values = op(host.map((x, i) => ops.fromFloat32(device, x, shapes[i]!, storage))).toFloat32Array(); });
      return values;
    };
    const want = run(cpu, 'f32');
    const got = run(cuda(), dtype);
    const err = relativeError(got, want);
    expect(err <= tolerance, `relative error ${err.toExponential(2)} > ${tolerance}`);
    return `relative error ${err.toExponential(2)}`;
  });
}

for (const [dtype, tol] of [['f32', 1e-4], ['bf16', 2e-2]] as const) {
  compareOp('linear + bias + GELU (cuBLASLt)', dtype, tol, [[4, 96, 256], [384, 256], [384]],
    ([x, w, b]) => ops.linear(x!, w!, b!, ops.Activation.GELU_TANH));
  compareOp('attention 2 x 300 tokens x 4 heads x 64', dtype, tol, [[2, 300, 4, 64], [2, 300, 4, 64], [2, 300, 4, 64]],
    ([q, k, v]) => ops.attention(q!, k!, v!).out);
  compareOp('layer norm', dtype, tol, [[64, 512], [512], [512]], ([x, w, b]) => ops.layerNorm(x!, w!, b!, 1e-6));
  compareOp('transpose copy', dtype, 0, [[3, 40, 50]], ([x]) => ops.contiguous(x!.permute([2, 0, 1])));
}

// ---- collectives with a world of one ------------------------------------------------------------------------
const worldOfOne = () => buildTopologies({ dp: 1, cfg: 1, ulysses: 1, ring: 1 })[0]!;
const WAIT = { timeoutMs: 120_000 };

check('sgld_comm_* ABI: id, init, argument checks, grouped send/recv to itself, destroy', () => {
  const device = cuda();
  const { lib, ctx } = device;
  const f = lib.fns;
  const id = new Uint8Array(COMM_ID_BYTES);
  lib.check(f.sgld_comm_unique_id(id), 'sgld_comm_unique_id');
  expect(id.some((b) => b !== 0), 'the unique id is all zeros');
  const out: [Ptr | null] = [null];
  lib.check(f.sgld_comm_init(ctx, id, 1, 0, out), 'sgld_comm_init');
  const comm = out[0]!;
  try {
    const n = 1 << 20;
    const src = ops.fromFloat32(device, random(n, 5), [n], 'f32');
    const dst = ops.zeros(device, [n], 'f32');
    expect(f.sgld_comm_send(comm, ctx, src.ptr, n * 4, 1) === Status.INVALID, 'peer 1 of a communicator of 1 was accepted');
    expect(/peer 1 is not a member of a communicator of 1/.test(f.sgld_last_error()), `message: ${f.sgld_last_error()}`);
    lib.check(f.sgld_comm_group_start(), 'sgld_comm_group_start');
    lib.check(f.sgld_comm_send(comm, ctx, src.ptr, n * 4, 0), 'sgld_comm_send');
    lib.check(f.sgld_comm_recv(comm, ctx, dst.ptr, n * 4, 0), 'sgld_comm_recv');
    lib.check(f.sgld_comm_group_end(), 'sgld_comm_group_end');
    device.synchronize();
    expect(sameValues(dst.toFloat32Array(), src.toFloat32Array()), '4 MiB sent to itself arrived changed');
    src.free();
    dst.free();
  } finally {
    lib.check(f.sgld_comm_destroy(comm), 'sgld_comm_destroy');
  }
});

check('NcclCollectives, one rank: id in slot 0, all-gather / broadcast / send-recv / all-to-all exact, close', () => {
  const device = cuda();
  const spec = worldOfOne().groups.ulysses;
  const c = new NcclCollectives(spec, device, WAIT);
  try {
    const frame = SharedSlotChannel.attach(spec.slots).read(0);
    expect(frame.byteLength === 8 + COMM_ID_BYTES && frame[0] === 0x4e, 'slot 0 holds no NCCL id frame');
    for (const dtype of ['f32', 'bf16'] as const) {
      scoped(() => {
        const x = ops.fromFloat32(device, random(6 * 40 * 64, 9), [6, 40, 64], dtype);
        const view = x.permute([1, 0, 2]);  // strided: packed before sending
        const want = ops.contiguous(view).toFloat32Array();
        const gathered = ops.zeros(device, [40, 6, 64], dtype);
        c.allGather(view, [gathered]);
        expect(sameValues(gathered.toFloat32Array(), want), `${dtype} allGather changed the values`);
        const ring = ops.zeros(device, [40, 6, 64], dtype);
        c.sendRecv(view, 0, ring.permute([0, 1, 2]), 0);
        expect(sameValues(ring.toFloat32Array(), want), `${dtype} sendRecv to itself changed the values`);
        const strided = ops.zeros(device, [6, 40, 64], dtype);
        c.sendRecv(view, 0, strided.permute([1, 0, 2]), 0);  // lands in staging, unpacked into the view
        expect(sameValues(strided.toFloat32Array(), x.toFloat32Array()), `${dtype} unpacking into a strided view`);
        c.broadcast(view, 0);
        expect(sameValues(ops.contiguous(view).toFloat32Array(), want), `${dtype} broadcast from itself`);
        const a2a = ops.zeros(device, [40, 6, 64], dtype);
        c.allToAll([view], [a2a]);
        expect(sameValues(a2a.toFloat32Array(), want), `${dtype} allToAll`);
      });
    }
    expect(c.broadcastValue(3.5, 0) === 3.5, 'broadcastValue');
    c.barrier();
    expect(c.bytesReceived === 0, `bytesReceived ${c.bytesReceived} with nobody else in the group`);
  } finally {
    c.close();
  }
});

check('NcclCollectives: 256 MiB all-gather to itself (ncclAllGather into consecutive blocks)', () => {
  const device = cuda();
  const c = new NcclCollectives(worldOfOne().groups.ring, device, WAIT);
  try {
    let detail = '';
    scoped(() => {
      const n = 64 << 20;
      const local = ops.full(device, [n], 1.25, 'f32');
      const out = ops.zeros(device, [n], 'f32');
      c.allGather(local, [out]);
      c.barrier();
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) c.allGather(local, [out]);
      c.barrier();
      const ms = (performance.now() - t0) / 5;
      const back = out.toFloat32Array();
      expect(back.every((v) => v === 1.25), 'values changed');
      detail = `${ms.toFixed(2)} ms per call (${(n * 4 / ms / 1e6).toFixed(0)} GB/s copied)`;
    });
    return detail;
  } finally {
    c.close();
  }
});

check('NcclCollectives.abort: breaks the barrier and aborts the communicator', () => {
  const spec = worldOfOne().groups.cfg;
  const c = new NcclCollectives(spec, cuda(), WAIT);
  c.abort();
  c.close();  // nothing left to destroy
  expect(SharedBarrier.attach(spec.barrier).broken, 'the group barrier is not broken after abort');
});

check('RankParallel.join on a CUDA rank builds nccl groups', () => {
  const parallel = RankParallel.join(worldOfOne(), cuda(), { timeoutMs: 120_000 });
  try {
    expect(parallel.replica instanceof NcclCollectives && parallel.cfg instanceof NcclCollectives, 'not the nccl backend');
    expect(parallel.leader && parallel.sequence === null, 'a world of one leads and has no sequence parallelism');
  } finally {
    parallel.close();
  }
});

(gpu as Device | null)?.close();
cpu.close();
console.log(failures === 0 ? 'gpu-check: all checks passed' : `gpu-check: ${failures} check(s) FAILED`);
process.exitCode = failures === 0 ? 0 : 1;
