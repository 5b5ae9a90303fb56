// An incarnation that runs its behaviour in a worker thread, seen from the parent thread: it starts the thread
// (the host in worker-host.ts loads the actor module), correlates asks with replies by id, answers the worker's
// own tells/asks to its parent, and turns the thread's death into a crash.
import { Worker } from 'node:worker_threads';
import type { ActorRef, WorkerSpawnOptions } from './actor.js';
import type { ActorCell, Incarnation, IncarnationHooks } from './cell.js';
import { asError } from './cell.js';
import { decodeMessage, encodeMessage, transferListOf, type EncodedMessage } from './codec.js';
import type { Envelope } from './envelope.js';
import {
  ActorCrashedError, ActorStoppedError, RemoteError, WorkerExitedError, serialiseError,
} from './errors.js';
import { TIMED_OUT, withTimeout } from './timeout.js';
import type { FromWorker, Reply, ToWorker, WorkerBoot } from './worker-protocol.js';

const DEFAULT_STOP_TIMEOUT_MS = 5000;

// The host module next to this one: compiled, `worker-host.js`; under a TS loader the same URL maps to the .ts.
const HOST_URL = new URL('./worker-host.js', import.meta.url);

/** What a worker actor is made of (kept by the cell; every restart starts a thread from it). */
export interface WorkerSpec {
  moduleHref: string;
  args: readonly unknown[];
  options: WorkerSpawnOptions;
}

/** One life of a worker actor: one thread, from its start to its exit. */
export class WorkerIncarnation implements Incarnation {
  private worker: Worker | undefined;
  private exited: Promise<number> = Promise.resolve(0);
  /** `crashing`: the actor crashed and its thread runs postStop before it is terminated. */
  private state: 'starting' | 'running' | 'crashing' | 'stopping' | 'ended' = 'starting';
  private readonly pending = new Map<number, Envelope>();
  private nextId = 1;
  private selfStopping = false;
  private stopRequested = false;
  private readonly ready: { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void };

  constructor(
    private readonly cell: ActorCell,
    private readonly incarnation: number,
    private readonly spec: WorkerSpec,
    private readonly hooks: IncarnationHooks,
  ) {
    let resolve!: () => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<void>((res, rej) => ((resolve = res), (reject = rej)));
    this.ready = { promise, resolve, reject };
  }

  start(): Promise<void> {
    const { options } = this.spec;
    const args = encodeMessage(this.spec.args, { outOfBandBytes: Infinity });
    const boot: WorkerBoot = {
      path: this.cell.path,
      parentPath: this.cell.parentRef?.path,
      moduleHref: this.spec.moduleHref,
      exportName: options.exportName ?? 'default',
      args,
      askTimeoutMs: this.cell.system.askTimeoutMs,
      stopTimeoutMs: options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS,
      incarnation: this.incarnation,
    };
    const worker = new Worker(HOST_URL, {
      workerData: boot,
      transferList: transferListOf(args),
      name: this.cell.path,
      ...(options.execArgv !== undefined ? { execArgv: options.execArgv } : {}),
      ...(options.resourceLimits !== undefined ? { resourceLimits: options.resourceLimits } : {}),
      ...(options.env !== undefined ? { env: options.env } : {}),
    });
    this.worker = worker;
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
    worker.on('message', (message: FromWorker) => this.onMessage(message));
    worker.on('error', (error) => this.fail(asError(error)));
    worker.on('messageerror', (error) => this.cell.system.logger.error('undecodable message from worker', { actor: this.cell.path, error }));
    worker.once('exit', (code: number) => this.onExit(code));
    return this.ready.promise;
  }

  deliver(envelope: Envelope): void {
    if (envelope.kind !== 'message' || envelope.encoded === undefined) return; // its children live in the worker
    const payload = envelope.encoded;
    envelope.encoded = undefined;
    const id = envelope.reply !== undefined ? this.nextId++ : 0;
    try {
      if (envelope.reply !== undefined) {
        this.pending.set(id, envelope);
        this.post({ t: 'ask', id, p: payload }, payload);
      } else {
        this.post({ t: 'tell', p: payload }, payload);
      }
    } catch (error) {
      // Only a payload postMessage refuses gets here (its buffers were detached by someone else).
      this.pending.delete(id);
      if (envelope.reply !== undefined) envelope.reply.reject(error);
      else this.cell.system.logger.error('message could not be posted to the worker', { actor: this.cell.path, error });
    }
  }

  async stop(): Promise<Envelope[]> {
    this.stopRequested = true;
    const timeoutMs = this.spec.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
    if (this.state === 'starting') await withTimeout(this.ready.promise.catch(() => undefined), timeoutMs);
    if (this.state === 'starting' || this.state === 'running') {
      this.state = 'stopping';
      this.post({ t: 'stop' });
      // The host gives the current message stopTimeoutMs; postStop gets as long again.
      if (await withTimeout(this.exited, 2 * timeoutMs) === TIMED_OUT) {
        this.cell.system.logger.warn('worker did not stop in time; terminating it', { actor: this.cell.path, timeoutMs });
        await this.worker?.terminate();
      }
    }
    await this.exited;
    this.rejectPending(new ActorStoppedError(this.cell.path, 'requested'));
    return [];
  }

  private post(message: ToWorker, payload?: EncodedMessage): void {
    this.worker?.postMessage(message, payload === undefined ? [] : transferListOf(payload));
  }

  private onMessage(message: FromWorker): void {
    const { system, path } = this.cell;
    switch (message.t) {
      case 'ready':
        if (this.state === 'starting') this.state = 'running';
        this.ready.resolve();
        break;
      case 'startFailed':
      case 'fatal':
        this.fail(new RemoteError(message.error));
        break;
      case 'reply':
        this.settle(message);
        break;
      case 'tell':
        this.forwardToParent(message.p, undefined);
        break;
      case 'ask':
        this.forwardToParent(message.p, message.id);
        break;
      case 'selfStopped':
        this.selfStopping = true;
        if (!this.stopRequested) this.hooks.ending();
        break;
      case 'stopped':
        break; // the exit follows
      case 'deadLetter':
        system.deadLetter({
          recipient: message.recipient, message: safeDecode(message.p), ask: message.ask, reason: message.reason,
        });
        break;
      case 'log':
        system.logger[message.level](message.msg, { actor: path, ...message.fields });
        break;
    }
  }

  private settle(reply: Reply): void {
    const envelope = this.pending.get(reply.id);
    if (envelope === undefined) return;
    this.pending.delete(reply.id);
    if (reply.ok) {
      try {
        envelope.reply!.resolve(decodeMessage(reply.p));
      } catch (error) {
        envelope.reply!.reject(error);
      }
      return;
    }
    const path = this.cell.path;
    if (reply.failure === 'crashed') {
      // The crash notice ('fatal') follows this reply, once postStop ran in the thread. Act on the crash now,
      // so that a message the asker sends as soon as it sees the rejection waits for the next incarnation
      // instead of going to the dying thread; terminate the thread when the notice comes.
      const cause = new RemoteError(reply.error);
      this.fail(cause, true);
      envelope.reply!.reject(new ActorCrashedError(path, cause));
      return;
    }
    envelope.reply!.reject(reply.failure === 'stopped' ? new ActorStoppedError(path, 'requested') : new RemoteError(reply.error));
  }

  /** The worker actor's `ctx.parent.tell/ask`: handed to the parent actor here, the reply posted back. */
  private forwardToParent(payload: EncodedMessage, askId: number | undefined): void {
    const parent: ActorRef | undefined = this.cell.parentRef;
    const message = safeDecode(payload);
    if (parent === undefined) {
      this.cell.system.deadLetter({ recipient: `${this.cell.path}/..`, message, ask: askId !== undefined, reason: 'no-parent' });
      if (askId !== undefined) {
        this.post({ t: 'reply', id: askId, ok: false, error: serialiseError(new Error(`${this.cell.path} has no parent`)), failure: 'stopped' });
      }
      return;
    }
    if (askId === undefined) {
      parent.tell(message);
      return;
    }
    // The asker (in the worker) enforces its own timeout, so none here.
    parent.ask(message, { timeoutMs: Infinity }).then((value) => {
      let encoded: EncodedMessage;
      try {
        encoded = encodeMessage(value);
      } catch (error) {
        this.post({ t: 'reply', id: askId, ok: false, error: serialiseError(error) });
        return;
      }
      this.post({ t: 'reply', id: askId, ok: true, p: encoded }, encoded);
    }, (error: unknown) => {
      const failure = error instanceof ActorStoppedError && error.actor === parent.path ? 'stopped'
        : error instanceof ActorCrashedError && error.actor === parent.path ? 'crashed' : undefined;
      const serialised = serialiseError(failure === 'crashed' ? (error as Error).cause : error);
      this.post({ t: 'reply', id: askId, ok: false, error: serialised, ...(failure ? { failure } : {}) });
    });
  }

  /**
   * The thread died or the actor crashed: pending asks fail at once, the thread is ended, then the cell hears.
   * `graceful`: the actor crashed but its thread is still cleaning up (postStop); it is terminated when it
   * reports the crash, or after stopTimeoutMs.
   */
  private fail(error: Error, graceful = false): void {
    if (this.state === 'crashing') {
      if (!graceful) void this.worker?.terminate();
      return;
    }
    if (this.state === 'ended' || this.state === 'stopping') return;
    const wasStarting = this.state === 'starting';
    this.state = graceful ? 'crashing' : 'ended';
    if (!this.stopRequested) this.hooks.ending();
    this.rejectPending(new ActorCrashedError(this.cell.path, error));
    let grace: NodeJS.Timeout | undefined;
    if (graceful) grace = setTimeout(() => void this.worker?.terminate(), this.spec.options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS);
    else void this.worker?.terminate();
    // Only once the old thread is gone may a new one start (it may hold a device).
    void this.exited.then(() => {
      clearTimeout(grace);
      this.state = 'ended';
      if (wasStarting) this.ready.reject(error);
      else if (!this.stopRequested) this.hooks.crashed(error, []);
    });
  }

  private onExit(code: number): void {
    if (this.state === 'ended' || this.state === 'stopping' || this.state === 'crashing') return;
    if (this.selfStopping) {
      this.state = 'ended';
      this.rejectPending(new ActorStoppedError(this.cell.path, 'self'));
      if (!this.stopRequested) this.hooks.stoppedItself([]);
      return;
    }
    this.fail(new WorkerExitedError(this.cell.path, code));
  }

  private rejectPending(error: Error): void {
    const envelopes = [...this.pending.values()];
    this.pending.clear();
    for (const envelope of envelopes) envelope.reply?.reject(error);
  }
}

function safeDecode(payload: EncodedMessage): unknown {
  try {
    return decodeMessage(payload);
  } catch (error) {
    return { undecodable: serialiseError(error) };
  }
}
