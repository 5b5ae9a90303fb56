// The kernel in one thread: mailbox order, ask/reply, timeouts, supervision (restart, backoff, restart limit,
// policies), dead letters, stop order, the logger; the codec; the shared-memory primitives' single-thread
// behaviour (timeouts, broken state, slots). Threads are in kernel-workers.test.ts.
import { setTimeout as sleep } from 'node:timers/promises';
import t, { type Test } from 'tap';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import {
  ActorCrashedError, ActorStoppedError, ActorSystem, AskTimeoutError, BarrierBrokenError, ChannelTimeoutError,
  FatalActorError, OUT_OF_BAND_BYTES, RemoteError, SharedBarrier, SharedSlotChannel, decodeMessage, encodeMessage,
  transferListOf, type EncodedMessage,
  type Actor, type ActorContext, type DeadLetter, type LifecycleEvent, type LogFields, type Logger,
} from '../../src/kernel/index.js';

interface LogLine { level: string; message: string; fields: LogFields | undefined }

function capturingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (message: string, fields?: LogFields) => void lines.push({ level, message, fields });
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** A system with a captured log and recorded events, stopped when the test ends. */
function testSystem(t: Test, askTimeoutMs = 5000) {
  const logger = capturingLogger();
  const system = new ActorSystem({ logger, askTimeoutMs });
  const events: LifecycleEvent[] = [];
  const deadLetters: DeadLetter[] = [];
  system.onLifecycle((e) => events.push(e));
  system.onDeadLetter((d) => deadLetters.push(d));
  t.teardown(() => system.stop());
  /** Resolves with the first (already seen or future) event matching `match`. */
  const eventually = async (match: (e: LifecycleEvent) => boolean, timeoutMs = 3000): Promise<LifecycleEvent> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = events.find(match);
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error('expected lifecycle event did not happen');
      await sleep(2);
    }
  };
  return { system, logger, events, deadLetters, eventually };
}

type CounterMsg = { op: 'add'; n: number } | { op: 'get' } | { op: 'fail'; message: string } | { op: 'fatal' }
  | { op: 'slow'; ms: number } | { op: 'stop' };

/** Counts; records every lifecycle hook in `journal`. */
class Counter implements Actor<CounterMsg> {
  total = 0;
  constructor(private readonly journal: string[], private readonly label = 'counter') {}
  preStart(ctx: ActorContext) {
    this.journal.push(`${this.label}:preStart:${ctx.incarnation}`);
  }
  async receive(message: CounterMsg, ctx: ActorContext) {
    switch (message.op) {
      case 'add': this.total += message.n; return this.total;
      case 'get': return { total: this.total, incarnation: ctx.incarnation };
      case 'fail': throw new RangeError(message.message);
      case 'fatal': throw new FatalActorError('corrupted');
      case 'slow': await sleep(message.ms); return 'done';
      case 'stop': ctx.stop(); return 'bye';
    }
  }
  postStop(ctx: ActorContext) {
    this.journal.push(`${this.label}:postStop:${ctx.incarnation}`);
  }
}

t.test('messages are handled one at a time, in the order sent, even with async handlers', async (t) => {
  const { system } = testSystem(t);
  let inside = 0;
  let maxInside = 0;
  const seen: number[] = [];
  const ref = system.spawn('ordered', () => ({
    async receive(message: number | 'seen') {
      if (message === 'seen') return seen;
      inside++;
      maxInside = Math.max(maxInside, inside);
      // Uneven awaits: a concurrent mailbox would finish these out of order.
      if (message % 3 === 0) await sleep(1);
      else if (message % 3 === 1) await new Promise((r) => setImmediate(r));
      seen.push(message);
      inside--;
      return undefined;
    },
  }));
  for (let i = 0; i < 60; i++) ref.tell(i);
  const result = await ref.ask<number[]>('seen');
  t.same(result, Array.from({ length: 60 }, (_, i) => i), 'all 60 in order');
  t.equal(maxInside, 1, 'never two handlers at once');
});

t.test('ask returns what receive returned; a non-fatal throw rejects that ask only', async (t) => {
  const { system, events } = testSystem(t);
  const journal: string[] = [];
  const ref = system.spawn('counter', () => new Counter(journal));
  t.equal(await ref.ask({ op: 'add', n: 2 }), 2);
  const failure = await ref.ask({ op: 'fail', message: 'negative' }).catch((e: unknown) => e);
  t.ok(failure instanceof RangeError, 'the thrown error itself, by reference');
  t.equal((failure as Error).message, 'negative');
  t.same(await ref.ask({ op: 'get' }), { total: 2, incarnation: 0 }, 'state kept: the actor went on');
  t.equal(events.filter((e) => e.type === 'crashed').length, 0, 'no crash');
});

t.test('a tell whose handler throws is logged through the injected logger with the actor path', async (t) => {
  const { system, logger } = testSystem(t);
  const ref = system.spawn('counter', () => new Counter([]));
  ref.tell({ op: 'fail', message: 'told to fail' });
  await ref.ask({ op: 'get' });
  const line = logger.lines.find((l) => l.message === 'message handling failed');
  t.ok(line, 'logged');
  t.equal(line?.level, 'error');
  t.equal(line?.fields?.actor, 'counter');
  t.equal((line?.fields?.error as Error).message, 'told to fail');
});

t.test('an ask times out with AskTimeoutError; the actor still handles the message and later ones', async (t) => {
  const { system } = testSystem(t);
  let handled = 0;
  const ref = system.spawn('slow', () => ({
    async receive(ms: number) {
      await sleep(ms);
      return ++handled;
    },
  }));
  const error = await ref.ask(200, { timeoutMs: 30 }).catch((e: unknown) => e);
  t.ok(error instanceof AskTimeoutError, 'AskTimeoutError');
  t.equal((error as AskTimeoutError).code, 'ERR_ACTOR_ASK_TIMEOUT');
  t.equal((error as AskTimeoutError).actor, 'slow');
  t.equal((error as AskTimeoutError).timeoutMs, 30);
  t.equal(handled, 0, 'rejected while the 200 ms handler was still running');
  t.equal(await ref.ask(0), 2, 'the timed-out message was still handled, then the next one');
});

t.test('a fatal error crashes the actor: in-flight and queued asks get ActorCrashed, a fresh incarnation serves the next', async (t) => {
  const { system, events, deadLetters, eventually } = testSystem(t);
  const journal: string[] = [];
  const ref = system.spawn('counter', () => new Counter(journal), { backoff: { initialMs: 5 } });
  await ref.ask({ op: 'add', n: 5 });
  const crashing = ref.ask({ op: 'fatal' });
  const queued = ref.ask({ op: 'get' });
  ref.tell({ op: 'add', n: 1 });
  const [a, b] = await Promise.all([crashing.catch((e: unknown) => e), queued.catch((e: unknown) => e)]);
  t.ok(a instanceof ActorCrashedError, 'the ask that crashed it');
  t.ok((a as Error).cause instanceof FatalActorError, 'cause is the fatal error');
  t.ok(b instanceof ActorCrashedError, 'the ask queued behind it');
  t.same(await ref.ask({ op: 'get' }), { total: 0, incarnation: 1 }, 'served by incarnation 1 with fresh state');
  const crashed = await eventually((e) => e.type === 'crashed');
  t.match(crashed, { type: 'crashed', path: 'counter', incarnation: 0, willRestart: true, restartDelayMs: 5 });
  t.ok(events.some((e) => e.type === 'started' && e.incarnation === 1), 'started event of the restart');
  t.same(journal, ['counter:preStart:0', 'counter:postStop:0', 'counter:preStart:1'], 'postStop of the crashed incarnation ran');
  t.same(deadLetters.map((d) => [d.reason, d.ask]), [['crashed', true], ['crashed', false]], 'queued ask and tell reported as dead letters');
});

t.test('isFatal decides which errors crash an in-thread actor', async (t) => {
  const { system } = testSystem(t);
  const ref = system.spawn('strict', () => new Counter([]), { isFatal: (e) => e instanceof RangeError, backoff: { initialMs: 1 } });
  await ref.ask({ op: 'add', n: 3 });
  t.ok(await ref.ask({ op: 'fail', message: 'x' }).catch((e: unknown) => e) instanceof ActorCrashedError);
  t.same(await ref.ask({ op: 'get' }), { total: 0, incarnation: 1 });
});

t.test('restarts back off exponentially; past maxRestarts the actor stops and its supervisor hears of it', async (t) => {
  const { system, events, deadLetters, eventually } = testSystem(t);
  const heard: LifecycleEvent[] = [];
  const supervisor = system.spawn('supervisor', () => ({
    preStart(ctx: ActorContext) {
      ctx.spawn('worker', () => new Counter([]), { restart: 'permanent', maxRestarts: 3, withinMs: 10_000, backoff: { initialMs: 4, factor: 2 } });
    },
    receive: () => undefined,
    onChildEvent(event: LifecycleEvent) {
      heard.push(event);
    },
  }));
  await supervisor.ask('ready?');
  const child = (await eventually((e) => e.type === 'started' && e.path === 'supervisor/worker')).actor;
  for (let i = 0; i < 4; i++) {
    await child.ask({ op: 'fatal' }).catch(() => undefined);
    if (i < 3) await eventually((e) => e.type === 'started' && e.path === 'supervisor/worker' && e.incarnation === i + 1);
  }
  const stopped = await eventually((e) => e.type === 'stopped' && e.path === 'supervisor/worker');
  t.match(stopped, { reason: 'restart-limit' });
  const crashes = events.filter((e): e is Extract<LifecycleEvent, { type: 'crashed' }> => e.type === 'crashed');
  t.same(crashes.map((c) => c.restartDelayMs ?? null), [4, 8, 16, null], 'delays 4, 8, 16 ms, then no restart');
  t.same(crashes.map((c) => c.willRestart), [true, true, true, false]);
  t.equal(child.status, 'stopped');
  const late = await child.ask({ op: 'get' }).catch((e: unknown) => e);
  t.ok(late instanceof ActorStoppedError, 'asks now fail with ActorStoppedError');
  t.equal((late as ActorStoppedError).reason, 'restart-limit');
  t.match(deadLetters.at(-1), { recipient: 'supervisor/worker', reason: 'stopped', ask: true });
  // The supervisor's onChildEvent runs in its mailbox: ask it something to be sure it caught up.
  await supervisor.ask('sync');
  t.same(heard.map((e) => e.type), ['started', 'crashed', 'started', 'crashed', 'started', 'crashed', 'started', 'crashed', 'stopped'],
    'the supervisor saw every start, crash and the final stop');
  t.equal(supervisor.status, 'running', 'the supervisor itself is unaffected');
});

t.test('the restart window forgets old crashes', async (t) => {
  const { system, eventually } = testSystem(t);
  const ref = system.spawn('flaky', () => new Counter([]), { maxRestarts: 1, withinMs: 40, backoff: { initialMs: 1 } });
  await ref.ask({ op: 'fatal' }).catch(() => undefined);
  await eventually((e) => e.type === 'started' && e.incarnation === 1);
  await sleep(60); // past the window: the first restart no longer counts
  await ref.ask({ op: 'fatal' }).catch(() => undefined);
  await eventually((e) => e.type === 'started' && e.incarnation === 2);
  t.equal(ref.status, 'running');
});

t.test('policies: permanent restarts a self-stopped actor, transient does not, temporary never restarts', async (t) => {
  const { system, eventually } = testSystem(t);
  const permanent = system.spawn('permanent', () => new Counter([]), { restart: 'permanent', backoff: { initialMs: 1 } });
  const transient = system.spawn('transient', () => new Counter([]), { restart: 'transient' });
  const temporary = system.spawn('temporary', () => new Counter([]), { restart: 'temporary' });
  t.equal(await permanent.ask({ op: 'stop' }), 'bye');
  t.equal(await transient.ask({ op: 'stop' }), 'bye');
  await temporary.ask({ op: 'fatal' }).catch(() => undefined);
  await eventually((e) => e.type === 'started' && e.path === 'permanent' && e.incarnation === 1);
  t.match(await eventually((e) => e.type === 'stopped' && e.path === 'transient'), { reason: 'self' });
  t.match(await eventually((e) => e.type === 'stopped' && e.path === 'temporary'), { reason: 'crashed' });
  t.same(await permanent.ask({ op: 'get' }), { total: 0, incarnation: 1 });
});

t.test('a throwing preStart counts as a crash and is retried', async (t) => {
  const { system } = testSystem(t);
  let attempts = 0;
  const ref = system.spawn('picky', () => ({
    preStart() {
      if (++attempts < 3) throw new Error(`attempt ${attempts} failed`);
    },
    receive: (m: string) => `${m} after ${attempts} starts`,
  }), { backoff: { initialMs: 1 } });
  t.equal(await ref.ask('hello'), 'hello after 3 starts', 'the message sent at spawn time waited for a good start');
});

t.test('messages to a stopped actor become dead letters with the reason; asks reject with ActorStoppedError', async (t) => {
  const { system, deadLetters } = testSystem(t);
  const ref = system.spawn('counter', () => new Counter([]));
  const slow = ref.ask({ op: 'slow', ms: 30 });
  const queued = ref.ask({ op: 'get' });
  ref.tell({ op: 'add', n: 1 });
  await sleep(5);
  await system.stopActor(ref);
  t.equal(await slow, 'done', 'the message being handled finished');
  const queuedError = await queued.catch((e: unknown) => e);
  t.ok(queuedError instanceof ActorStoppedError, 'queued ask rejected');
  t.equal((queuedError as ActorStoppedError).reason, 'requested');
  ref.tell({ op: 'add', n: 7 });
  const after = await ref.ask({ op: 'get' }).catch((e: unknown) => e);
  t.ok(after instanceof ActorStoppedError);
  t.same(deadLetters.map((d) => [d.recipient, d.reason, d.ask, d.message]), [
    ['counter', 'stopped', true, { op: 'get' }],
    ['counter', 'stopped', false, { op: 'add', n: 1 }],
    ['counter', 'stopped', false, { op: 'add', n: 7 }],
    ['counter', 'stopped', true, { op: 'get' }],
  ]);
});

t.test('a stop does not wait forever for a stuck handler: after stopTimeoutMs it goes on', async (t) => {
  const { system, logger } = testSystem(t);
  let postStopRan = false;
  const ref = system.spawn('stuck', () => ({
    receive: () => new Promise(() => undefined), // never settles
    postStop() {
      postStopRan = true;
    },
  }), { stopTimeoutMs: 40 });
  const stuck = ref.ask('work', { timeoutMs: 10_000 }).catch((e: unknown) => e);
  await sleep(5);
  await system.stopActor(ref);
  const error = await stuck;
  t.ok(error instanceof ActorStoppedError, 'the stuck ask is rejected');
  t.ok(postStopRan, 'postStop ran');
  t.equal(ref.status, 'stopped');
  t.ok(logger.lines.some((l) => l.level === 'warn' && l.message.includes('did not wait any longer')), 'logged');
});

t.test('without a listener, dead letters are logged (never silently dropped)', async (t) => {
  const logger = capturingLogger();
  const system = new ActorSystem({ logger });
  const ref = system.spawn('gone', () => new Counter([]));
  await system.stop();
  ref.tell({ op: 'add', n: 1 });
  t.match(logger.lines.find((l) => l.message === 'dead letter'), { level: 'warn', fields: { recipient: 'gone', reason: 'stopped' } });
});

t.test('system.stop stops actors newest first, children before their parent, postStop hooks all run', async (t) => {
  const journal: string[] = [];
  const system = new ActorSystem({ logger: capturingLogger() });
  const parentBehaviour = (label: string): Actor => ({
    preStart(ctx) {
      ctx.spawn('a', () => new Counter(journal, `${label}/a`));
      ctx.spawn('b', () => new Counter(journal, `${label}/b`));
    },
    receive: () => 'ok',
    postStop() {
      journal.push(`${label}:postStop`);
    },
  });
  const first = system.spawn('first', () => parentBehaviour('first'));
  const second = system.spawn('second', () => parentBehaviour('second'));
  await Promise.all([first.ask('x'), second.ask('x')]);
  await sleep(5);
  await system.stop();
  t.same(journal.filter((j) => j.includes('postStop')), [
    'second/b:postStop:0', 'second/a:postStop:0', 'second:postStop',
    'first/b:postStop:0', 'first/a:postStop:0', 'first:postStop',
  ]);
  t.equal(first.status, 'stopped');
  t.throws(() => system.spawn('late', () => new Counter([])), { code: 'ERR_SYSTEM_STOPPED' });
});

t.test('a parent that crashes stops its children; its next incarnation spawns them again', async (t) => {
  const { system, eventually } = testSystem(t);
  const journal: string[] = [];
  const parent = system.spawn('parent', () => ({
    preStart(ctx: ActorContext) {
      ctx.spawn('child', () => new Counter(journal, 'child'));
    },
    receive(message: string) {
      if (message === 'fatal') throw new FatalActorError('parent broke');
      return 'ok';
    },
  }), { backoff: { initialMs: 1 } });
  await parent.ask('x');
  await parent.ask('fatal').catch(() => undefined);
  await eventually((e) => e.type === 'started' && e.path === 'parent' && e.incarnation === 1);
  await eventually((e) => e.type === 'started' && e.path === 'parent/child' && e.incarnation === 0 && journal.length >= 3);
  t.same(journal, ['child:preStart:0', 'child:postStop:0', 'child:preStart:0'], 'old child stopped, a new one started');
});

t.test('names are unique among siblings and the ref of a spawn works before preStart ends', async (t) => {
  const { system } = testSystem(t);
  const ref = system.spawn('slow-start', () => ({
    async preStart() {
      await sleep(20);
    },
    receive: (m: number) => m * 2,
  }));
  t.equal(ref.status, 'starting');
  t.throws(() => system.spawn('slow-start', () => new Counter([])), { code: 'ERR_ACTOR_NAME_TAKEN' });
  t.throws(() => system.spawn('a/b', () => new Counter([])), TypeError);
  t.equal(await ref.ask(21), 42);
  t.equal(ref.status, 'running');
});

// ---- codec -------------------------------------------------------------------------------------------------

/** Posts an encoded message through a real MessageChannel (so transfers really detach) and decodes it. */
async function viaChannel(encoded: EncodedMessage): Promise<unknown> {
  const { port1, port2 } = new MessageChannel();
  try {
    const received = new Promise<EncodedMessage>((resolve) => port2.once('message', resolve));
    port1.postMessage(encoded, transferListOf(encoded));
    return decodeMessage(await received);
  } finally {
    closePorts(port1, port2);
  }
}
function closePorts(...ports: MessagePort[]) {
  for (const port of ports) port.close();
}

t.test('codec: every typed array dtype comes back with its type and values, also from an unaligned input', async (t) => {
  const value = {
    i8: new Int8Array([-128, 127]), u8: new Uint8Array([0, 255]), c8: new Uint8ClampedArray([3, 250]),
    i16: new Int16Array([-32768, 5]), u16: new Uint16Array([65535]), i32: new Int32Array([-(2 ** 31), 7]),
    u32: new Uint32Array([2 ** 32 - 1]), f32: new Float32Array([Math.PI, -0, Infinity]), f64: new Float64Array([Math.E, NaN]),
    i64: new BigInt64Array([-(2n ** 63n), 1n]), u64: new BigUint64Array([2n ** 64n - 1n]), dv: new DataView(new Uint8Array([9, 8, 7]).buffer),
    buffer: new Uint8Array([1, 2, 3]).buffer, empty: new Float32Array(0),
  };
  const encoded = encodeMessage(value);
  t.same(encoded.buffers, [], 'all small: inline');
  // Decode from a copy that starts at an odd offset: typed arrays must still come out aligned.
  const shifted = new Uint8Array(encoded.bytes.length + 1);
  shifted.set(encoded.bytes, 1);
  const back = decodeMessage({ bytes: shifted.subarray(1), buffers: [] }) as typeof value;
  for (const key of Object.keys(value) as (keyof typeof value)[]) {
    t.equal(Object.prototype.toString.call(back[key]), Object.prototype.toString.call(value[key]), `${key}: same type`);
  }
  t.same(back, value, 'same values');
  t.ok(Object.is(back.f32[1], -0), '-0 kept');
});

t.test('codec: bigint, Map, Set, Date and Error survive; undefined fields drop; functions are refused', async (t) => {
  const error = Object.assign(new TypeError('no such model'), { code: 'E_MODEL' });
  const back = decodeMessage(encodeMessage({
    id: 2n ** 100n, neg: -5n, map: new Map<unknown, unknown>([['a', 1], [2, new Int32Array([3])]]), set: new Set([1, 'x']),
    when: new Date(86_400_000), error, gone: undefined, list: [1, undefined],
  })) as Record<string, unknown>;
  t.equal(back.id, 2n ** 100n);
  t.equal(back.neg, -5n);
  t.same(back.map, new Map<unknown, unknown>([['a', 1], [2, new Int32Array([3])]]));
  t.same(back.set, new Set([1, 'x']));
  t.same(back.when, new Date(86_400_000));
  t.ok(back.error instanceof RemoteError, 'errors come back as RemoteError');
  t.match(back.error, { remoteName: 'TypeError', message: 'no such model', code: 'E_MODEL' });
  t.notOk('gone' in back, 'undefined field dropped');
  t.same(back.list, [1, null], 'undefined in an array becomes null (msgpack nil)');
  t.throws(() => encodeMessage({ f: () => 1 }), TypeError);
});

t.test(`codec: typed arrays of ${OUT_OF_BAND_BYTES} bytes and more travel out of band and are transferred`, async (t) => {
  const small = new Float32Array(OUT_OF_BAND_BYTES / 4 - 1).fill(1.5);
  const large = new Float32Array(OUT_OF_BAND_BYTES / 4).map((_, i) => i);
  const encoded = encodeMessage({ small, large, again: large });
  t.equal(encoded.buffers.length, 1, 'one out-of-band buffer (the large one, listed once though sent twice)');
  t.equal(encoded.buffers[0], large.buffer, 'the very buffer, not a copy');
  t.ok(encoded.bytes.length > small.byteLength && encoded.bytes.length < small.byteLength + 256, 'the small one is inline');
  const back = await viaChannel(encoded) as { small: Float32Array; large: Float32Array; again: Float32Array };
  t.equal(large.byteLength, 0, "sender's large array detached");
  t.equal(small.length, OUT_OF_BAND_BYTES / 4 - 1, "sender's small array untouched");
  t.ok(back.large instanceof Float32Array && back.large.length === OUT_OF_BAND_BYTES / 4);
  t.equal(back.large[12345], 12345);
  t.equal(back.again.buffer, back.large.buffer, 'both references share one buffer on arrival');
  t.equal(back.small[0], 1.5);
});

t.test('codec: a large view into a bigger buffer is copied out, leaving the rest of the sender\'s buffer alone', async (t) => {
  const whole = new Float64Array(3 * OUT_OF_BAND_BYTES / 8).map((_, i) => i);
  const middle = whole.subarray(OUT_OF_BAND_BYTES / 8, 2 * OUT_OF_BAND_BYTES / 8);
  const back = await viaChannel(encodeMessage(middle)) as Float64Array;
  t.equal(whole.length, 3 * OUT_OF_BAND_BYTES / 8, "sender's buffer not detached");
  t.ok(back instanceof Float64Array);
  t.equal(back.length, OUT_OF_BAND_BYTES / 8);
  t.equal(back[0], OUT_OF_BAND_BYTES / 8);
  t.equal(back.at(-1), 2 * OUT_OF_BAND_BYTES / 8 - 1);
});

t.test('codec: the transfer option moves small buffers too; SharedArrayBuffers are shared, never copied', async (t) => {
  const small = new Int32Array([1, 2, 3]);
  const sab = new SharedArrayBuffer(16);
  const shared = new Int32Array(sab, 4, 2);
  const encoded = encodeMessage({ small, shared, sab }, { transfer: [small.buffer] });
  const back = await viaChannel(encoded) as { small: Int32Array; shared: Int32Array; sab: SharedArrayBuffer };
  t.equal(small.byteLength, 0, 'listed buffer transferred (detached here)');
  t.same([...back.small], [1, 2, 3]);
  t.ok(back.sab instanceof SharedArrayBuffer);
  t.equal(back.shared.byteOffset, 4);
  back.shared[0] = 42;
  t.equal(new Int32Array(sab)[1], 42, 'a write on the receiving side lands in the same memory');
});

// ---- shared memory, one thread (the 3-thread runs are in kernel-workers.test.ts) ---------------------------

t.test('SharedBarrier: a lone party times out, breaking the barrier; reset repairs it', async (t) => {
  const barrier = SharedBarrier.create(2);
  const started = performance.now();
  t.throws(() => barrier.wait({ timeoutMs: 40, spin: 10 }), ChannelTimeoutError);
  t.ok(performance.now() - started >= 35, 'waited for its deadline');
  t.ok(barrier.broken);
  t.throws(() => barrier.wait({ timeoutMs: 1000 }), BarrierBrokenError, 'later waits fail at once');
  const attached = SharedBarrier.attach(barrier.buffer);
  t.ok(attached.broken, 'another view sees the same state');
  attached.reset();
  t.notOk(barrier.broken);
  const solo = SharedBarrier.create(1);
  t.equal(solo.wait(), 0);
  t.equal(solo.wait(), 0);
  t.equal(solo.rounds, 2);
  t.throws(() => SharedBarrier.attach(new SharedArrayBuffer(16)), TypeError);
  t.throws(() => SharedBarrier.create(0), RangeError);
});

t.test('SharedSlotChannel: publish bumps the version, reads return copies, waits time out', async (t) => {
  const channel = SharedSlotChannel.create({ slots: 2, slotBytes: 130 });
  t.equal(channel.slotBytes, 136, 'rounded up to 8 bytes');
  t.equal(channel.version(0), 0);
  t.equal(channel.read(0).length, 0, 'empty before the first publish');
  const id = new Uint8Array(128).map((_, i) => (i * 37) & 255);
  t.equal(channel.publish(0, id), 1);
  const other = SharedSlotChannel.attach(channel.buffer);
  const got = other.waitFor(0, 1, { timeoutMs: 100 });
  t.same([...got], [...id], '128 bytes through the slot');
  got[0] = 99;
  t.equal(other.read(0)[0], 0, 'reads are copies');
  t.equal(channel.publish(1, new BigInt64Array([0x7fff_0000_1234n, 4096n])), 1);
  t.same([...new BigInt64Array(other.read(1).buffer)], [0x7fff_0000_1234n, 4096n]);
  t.equal(channel.publish(0, new Uint8Array([1])), 2);
  t.same([...other.waitFor(0, 1)], [1], 'waitFor returns the latest');
  const started = performance.now();
  t.throws(() => other.waitFor(1, 2, { timeoutMs: 30, spin: 0 }), ChannelTimeoutError, 'no publisher: timeout, not a hang');
  t.ok(performance.now() - started >= 25);
  t.throws(() => channel.publish(0, new Uint8Array(137)), RangeError);
  t.throws(() => channel.read(2), RangeError);
});
