// The kernel across threads: worker actors (ask/reply, order, transfers of large typed arrays, remote errors,
// talking to the parent, crash and restart), the shared-memory barrier and slot channel between 3 worker threads,
// and a stop that leaves nothing alive. Workers cost ~0.5 s each to start under tap's TS loader, so this file
// starts 7 in all: one echo actor (restarted twice by the crash tests), one that fails to start, and three ranks,
// plus one child process with one worker.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  ActorCrashedError, ActorSystem, AskTimeoutError, RemoteError, SharedBarrier, SharedSlotChannel, WorkerExitedError,
  type ActorContext, type ActorRef, type LifecycleEvent, type LogFields, type Logger,
} from '../../src/kernel/index.js';
import type { EchoMessage } from '../fixtures/kernel/echo-actor.js';
import type { RankMessage } from '../fixtures/kernel/rank-actor.js';

// Worker start-up under a loaded machine can take seconds: asks that wait for a (re)start get this long.
const START_MS = 60_000;
const resourcesAtStart = process.getActiveResourcesInfo();

const logLines: { level: string; message: string; fields: LogFields | undefined }[] = [];
const at = (level: string) => (message: string, fields?: LogFields) => void logLines.push({ level, message, fields });
const logger: Logger = { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
const system = new ActorSystem({ logger, askTimeoutMs: START_MS });
const events: LifecycleEvent[] = [];
system.onLifecycle((e) => events.push(e));
t.teardown(() => system.stop());

// The echo worker is the child of an in-thread actor that records what the worker tells it and answers its asks.
const fromWorker: unknown[] = [];
const host = system.spawn('host', () => ({
  preStart(ctx: ActorContext) {
    ctx.spawnWorker('echo', new URL('../fixtures/kernel/echo-actor.js', import.meta.url), ['first'],
      { restart: 'transient', backoff: { initialMs: 10 } });
  },
  receive(message: { from: string; value: unknown } | 'echo-ref', ctx: ActorContext) {
    if (message === 'echo-ref') return echoRef(ctx);
    fromWorker.push(message);
    return { answeredBy: ctx.path, doubled: (message.value as number) * 2 };
  },
}));
let echo: ActorRef<EchoMessage>;
function echoRef(ctx: ActorContext): ActorRef<EchoMessage> {
  const started = events.find((e) => e.type === 'started' && e.path === `${ctx.path}/echo`);
  return started!.actor;
}

async function waitForEvent(match: (e: LifecycleEvent) => boolean, timeoutMs = START_MS): Promise<LifecycleEvent> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = events.find(match);
    if (found !== undefined) return found;
    if (Date.now() > deadline) throw new Error('expected lifecycle event did not happen');
    await new Promise((r) => setTimeout(r, 5));
  }
}

t.before(async () => {
  echo = (await waitForEvent((e) => e.type === 'started' && e.path === 'host/echo')).actor;
});

t.test('ask/reply with a worker actor: values keep their types across the thread boundary', async (t) => {
  const info = await echo.ask<{ label: string; incarnation: number; threadId: number; path: string }>({ op: 'info' });
  t.match(info, { label: 'first', incarnation: 0, path: 'host/echo' });
  t.not(info.threadId, 0, 'runs in a worker thread');
  const value = {
    n: 1.5, big: -(2n ** 70n), s: 'héllo', list: [1, 'two', null], when: new Date(1234),
    i16: new Int16Array([-3, 7]), u64: new BigUint64Array([2n ** 64n - 1n]), map: new Map([[1, 'one']]), set: new Set(['a']),
  };
  const back = await echo.ask<typeof value>({ op: 'echo', value });
  t.same(back, value);
  t.ok(back.i16 instanceof Int16Array && back.u64 instanceof BigUint64Array, 'dtypes kept');
  t.ok(back.map instanceof Map && back.set instanceof Set && back.when instanceof Date);
  t.equal(typeof back.big, 'bigint');
});

t.test('tells and asks to a worker are handled in the order sent', async (t) => {
  for (let n = 0; n < 500; n++) echo.tell({ op: 'record', n });
  const recorded = await echo.ask<number[]>({ op: 'recorded' });
  t.same(recorded, Array.from({ length: 500 }, (_, n) => n));
});

t.test('a 1M-element Float32Array is transferred to the worker and back, not copied', async (t) => {
  const n = 1 << 20;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = Math.sin(i) * 1000;
  const expected = data.map((v) => Math.fround(v * 0.5));
  const reply = await echo.ask<{ data: Float32Array; receivedType: string; receivedLength: number }>(
    { op: 'scale', data, factor: 0.5 });
  t.equal(data.buffer.byteLength, 0, "the sender's buffer is detached (it was transferred)");
  t.equal(data.length, 0);
  t.equal(reply.receivedType, 'Float32Array', 'the worker received a Float32Array');
  t.equal(reply.receivedLength, n, 'of 1M elements');
  t.ok(reply.data instanceof Float32Array, 'the reply is a Float32Array');
  t.equal(reply.data.length, n);
  let mismatches = 0;
  for (let i = 0; i < n; i++) if (reply.data[i] !== expected[i]) mismatches++;
  t.equal(mismatches, 0, 'every value exact (x * 0.5 is exact in fp32)');
});

t.test('an error thrown by a worker actor rejects the ask with a RemoteError (name, message, code, stack)', async (t) => {
  const error = await echo.ask({ op: 'throw', message: 'value out of range', code: 'E_RANGE' }).catch((e: unknown) => e);
  t.ok(error instanceof RemoteError, 'RemoteError');
  const remote = error as RemoteError;
  t.equal(remote.remoteName, 'RangeError');
  t.equal(remote.message, 'value out of range');
  t.equal(remote.code, 'E_RANGE');
  t.match(remote.stack, /echo-actor\.ts/, "the stack is the worker's, pointing at the actor code");
  t.same(await echo.ask({ op: 'echo', value: 'still alive' }), 'still alive', 'not fatal: the actor goes on');
});

t.test('an ask to a busy worker times out with AskTimeoutError', async (t) => {
  const error = await echo.ask({ op: 'sleep', ms: 300 }, { timeoutMs: 40 }).catch((e: unknown) => e);
  t.ok(error instanceof AskTimeoutError);
  t.equal(await echo.ask({ op: 'echo', value: 1 }), 1, 'the late reply was dropped; the next ask is answered');
});

t.test("a worker actor tells and asks its parent through ctx.parent", async (t) => {
  t.equal(await echo.ask({ op: 'tellParent', value: 20 }), 'told');
  const answer = await echo.ask({ op: 'askParent', value: 21 });
  t.same(answer, { answeredBy: 'host', doubled: 42 }, 'the parent answered the worker');
  await host.ask('echo-ref');
  t.same(fromWorker, [{ from: 'host/echo', value: 20 }, { from: 'host/echo', value: 21 }]);
});

t.test('a worker that exits is restarted: the pending ask gets ActorCrashed, the next ask is served by the new thread', async (t) => {
  const before = await echo.ask<{ threadId: number }>({ op: 'info' });
  const exiting = echo.ask({ op: 'exit', code: 7 }).catch((e: unknown) => e);
  const queued = echo.ask({ op: 'echo', value: 'queued behind the exit' }).catch((e: unknown) => e);
  const [a, b] = await Promise.all([exiting, queued]);
  for (const error of [a, b]) {
    t.ok(error instanceof ActorCrashedError, 'rejected with ActorCrashedError');
    t.ok((error as Error).cause instanceof WorkerExitedError, 'caused by the exit');
    t.equal(((error as Error).cause as WorkerExitedError).exitCode, 7);
  }
  // Sent while the actor restarts: it waits for the new thread, and its large array is handed over at once.
  const data = new Float32Array(1 << 16).fill(3);
  const scaled = echo.ask<{ data: Float32Array }>({ op: 'scale', data, factor: 2 });
  t.equal(data.byteLength, 0, 'detached at send time, before the new thread exists');
  const after = await echo.ask<{ threadId: number; incarnation: number; label: string }>({ op: 'info' });
  t.same([...(await scaled).data.subarray(0, 3)], [6, 6, 6], 'the message sent during the restart was served');
  t.equal(after.incarnation, 1, 'incarnation 1');
  t.equal(after.label, 'first', 'constructed again with the same args');
  t.not(after.threadId, before.threadId, 'in a new thread');
  const crash = await waitForEvent((e) => e.type === 'crashed' && e.path === 'host/echo');
  t.match(crash, { willRestart: true, restartDelayMs: 10 });
  t.ok(logLines.some((l) => l.message === 'actor crashed' && l.fields?.actor === 'host/echo'), 'the crash was logged');
});

t.test('a fatal error in a worker actor crashes and restarts it too', async (t) => {
  const error = await echo.ask({ op: 'fatal' }).catch((e: unknown) => e);
  t.ok(error instanceof ActorCrashedError);
  const cause = (error as Error).cause as RemoteError;
  t.ok(cause instanceof RemoteError);
  t.equal(cause.remoteName, 'FatalActorError');
  t.equal(cause.code, 'ERR_ACTOR_FATAL');
  t.match(await echo.ask({ op: 'info' }), { incarnation: 2 });
  await host.ask('echo-ref'); // the host has handled everything the worker told it
  t.ok(fromWorker.some((m) => (m as { value: unknown }).value === 'postStop of incarnation 1'),
    'postStop ran in the crashed thread before it was terminated');
});

t.test('a transient worker actor that stops itself stays stopped; its thread exits', async (t) => {
  t.equal(await echo.ask({ op: 'stopSelf' }), 'stopping', 'the reply to the message that stopped it arrives');
  t.match(await waitForEvent((e) => e.type === 'stopped' && e.path === 'host/echo'), { reason: 'self' });
  const late = await echo.ask({ op: 'info' }).catch((e: unknown) => e);
  t.match(late, { code: 'ERR_ACTOR_STOPPED', reason: 'self' });
});

t.test('a worker actor that cannot start is reported, and what was sent to it does not hang', async (t) => {
  t.throws(() => system.spawnWorker('bad-args', new URL('../fixtures/kernel/echo-actor.js', import.meta.url), [() => 1]),
    TypeError, 'args the codec cannot carry fail the spawn at once');
  const ref = system.spawnWorker('no-export', new URL('../fixtures/kernel/echo-actor.js', import.meta.url), [],
    { exportName: 'Missing', restart: 'temporary' });
  const waiting = ref.ask({ op: 'info' }).catch((e: unknown) => e);
  const crash = await waitForEvent((e) => e.type === 'crashed' && e.path === 'no-export');
  t.match((crash as Extract<LifecycleEvent, { type: 'crashed' }>).error, { remoteName: 'TypeError', message: /no export 'Missing'/ });
  t.match(await waitForEvent((e) => e.type === 'stopped' && e.path === 'no-export'), { reason: 'crashed' });
  const error = await waiting;
  t.match(error, { code: 'ERR_ACTOR_STOPPED', reason: 'crashed' }, 'the ask sent while it started is rejected');
});

t.test('SharedBarrier: 3 worker threads over 30 rounds, one rank late each round, nobody passes early', async (t) => {
  const { ranks } = await rankGroup(t);
  const results = await Promise.all(ranks.map((r) => r.ask<{ missing: unknown[]; rounds: number }>(
    { op: 'barrierRounds', rounds: 30, lateMs: 3 })));
  for (const [rank, result] of results.entries()) {
    t.same(result.missing, [], `rank ${rank} saw every mark of every round after the barrier`);
    t.equal(result.rounds, 30, `rank ${rank} counted 30 rounds`);
  }
});

t.test('SharedBarrier: a missing party breaks the barrier by timeout instead of hanging; reset repairs it', async (t) => {
  const { ranks, barrier } = await rankGroup(t);
  const started = Date.now();
  const outcomes = await Promise.all(ranks.slice(0, 2).map((r) => r.ask<string>({ op: 'lonelyWait', timeoutMs: 150 })));
  t.same(outcomes.sort(), ['BarrierBrokenError', 'ChannelTimeoutError'], 'one timed out, the other saw it broken');
  t.ok(Date.now() - started < 10_000, 'both came back');
  t.ok(barrier.broken);
  barrier.reset();
  const results = await Promise.all(ranks.map((r) => r.ask<{ missing: unknown[] }>({ op: 'barrierRounds', rounds: 3, lateMs: 1 })));
  t.same(results.map((r) => r.missing), [[], [], []], 'the repaired barrier works for all three');
});

t.test('SharedSlotChannel: rank 0 hands 128 bytes to two waiting ranks, then all swap (pointer, size) slots', async (t) => {
  const { ranks } = await rankGroup(t);
  const uniqueId = new Uint8Array(randomBytes(128));
  const results = await Promise.all(ranks.map((r, rank) => r.ask<{ uniqueId: Uint8Array; peers: bigint[][] }>(
    rank === 0 ? { op: 'exchange', uniqueId, publishDelayMs: 100 } : { op: 'exchange', publishDelayMs: 0 })));
  const expectedPeers = [0, 1, 2].map((r) => [0x7f00_0000_0000n + BigInt(r) * 0x10_0000n, BigInt(4096 * (r + 1))]);
  for (const [rank, result] of results.entries()) {
    t.same([...result.uniqueId], [...uniqueId], `rank ${rank} has the 128-byte id`);
    t.same(result.peers, expectedPeers, `rank ${rank} read every rank's pointer and size`);
  }
});

t.test('system.stop stops every worker gracefully and leaves no handle behind', async (t) => {
  await system.stop();
  t.same(['host', 'rank-0', 'rank-1', 'rank-2'].map((path) => events.some((e) => e.type === 'stopped' && e.path === path && e.reason === 'requested')),
    [true, true, true, true], 'the host and the three ranks were stopped');
  // Give the event loop a turn to drop closed handles, then compare with what existed before the first spawn
  // (tap's own handles may come and go, so: no kind of resource may have grown).
  await new Promise((r) => setImmediate(r));
  const count = (list: string[]) => list.reduce((m, r) => m.set(r, (m.get(r) ?? 0) + 1), new Map<string, number>());
  const before = count(resourcesAtStart);
  const grown = [...count(process.getActiveResourcesInfo())].filter(([kind, n]) => n > (before.get(kind) ?? 0));
  t.same(grown, [], 'no worker, message port or timer left behind');
  t.notOk(logLines.some((l) => l.message.includes('did not stop in time')), 'no worker needed terminating');
});

t.test('a process whose system was stopped (a worker, an in-flight ask, a pending restart) exits on its own', async (t) => {
  // Run in a fresh process with the TS loader: no process.exit there, so any handle left behind keeps it alive.
  const script = fileURLToPath(new URL('../fixtures/kernel/exits-on-its-own.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void child.kill('SIGKILL'));
  let output = '';
  let stoppedAt = 0;
  child.stdout.on('data', (chunk: Buffer) => {
    output += chunk.toString();
    if (stoppedAt === 0 && output.includes('stopped')) stoppedAt = Date.now();
  });
  const code = await new Promise<number | null>((resolve) => {
    const limit = setTimeout(() => resolve(null), 120_000);
    child.once('exit', (c) => {
      clearTimeout(limit);
      resolve(c);
    });
  });
  t.equal(code, 0, 'exited with code 0');
  t.match(output, /stopped \{"inFlight":"slept","flaky":"stopped","echo":"stopped"\}/,
    'the in-flight ask was answered before the stop completed');
  const lingered = Date.now() - stoppedAt;
  t.ok(stoppedAt > 0 && lingered < 3000, `exited ${lingered} ms after system.stop() returned (a 60 s restart timer was pending)`);
});

// ---- the rank group: 3 worker threads sharing a barrier, a slot channel and a marks array, started once ----

interface RankGroup { ranks: ActorRef<RankMessage>[]; barrier: SharedBarrier }
let group: Promise<RankGroup> | undefined;
function rankGroup(_t: unknown): Promise<RankGroup> {
  group ??= (async () => {
    const parties = 3;
    const barrier = SharedBarrier.create(parties);
    const channel = SharedSlotChannel.create({ slots: 1 + parties, slotBytes: 128 });
    const marks = new SharedArrayBuffer(4 * parties * 64);
    const ranks = Array.from({ length: parties }, (_, rank) => system.spawnWorker<RankMessage>(`rank-${rank}`,
      new URL('../fixtures/kernel/rank-actor.js', import.meta.url), [rank, barrier.buffer, channel.buffer, marks]));
    return { ranks, barrier };
  })();
  return group;
}
