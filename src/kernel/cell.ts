// One supervised actor as seen from its parent's thread: its status, the messages waiting while it (re)starts,
// its children, and the restart decisions. What runs the behaviour is an Incarnation (in-thread or a worker),
// replaced by a fresh one on every restart; the ActorRef stays the same.
import type {
  ActorRef, ActorStatus, AskOptions, DeadLetter, LifecycleEvent, SendOptions,
} from './actor.js';
import { detachTransfers, encodeMessage } from './codec.js';
import type { Envelope } from './envelope.js';
import { PendingReply } from './envelope.js';
import { ActorCrashedError, ActorStoppedError, describe, type StopReason } from './errors.js';
import type { Logger } from './logger.js';
import { RestartTracker, type Supervision } from './supervision.js';

/** What an incarnation reports to its cell, at most once, and only when the cell did not ask it to stop. */
export interface IncarnationHooks {
  /** It began to end on its own (crash or self-stop): new messages must wait for the next incarnation. */
  ending(): void;
  /** It crashed; its resources are released (postStop ran, or its thread exited). */
  crashed(error: Error, unprocessed: Envelope[]): void;
  /** It stopped itself (`ctx.stop()`); its resources are released. */
  stoppedItself(unprocessed: Envelope[]): void;
}

/** One life of an actor, from start to stop or crash. */
export interface Incarnation {
  /** Resolves once the actor can take messages; rejects (after cleanup) if it could not start. */
  start(): Promise<void>;
  deliver(envelope: Envelope): void;
  /** Graceful stop: the current message finishes, then postStop. Resolves with the messages never handled. */
  stop(): Promise<Envelope[]>;
}

/** Builds the incarnations of one actor. */
export interface Props {
  readonly kind: 'local' | 'worker';
  incarnate(cell: ActorCell, incarnation: number, hooks: IncarnationHooks): Incarnation;
}

/** The parts of the actor system a cell uses. */
export interface SystemCore {
  readonly logger: Logger;
  readonly askTimeoutMs: number;
  deadLetter(letter: DeadLetter): void;
  publish(event: LifecycleEvent): void;
  /** Removes a stopped top-level cell. */
  forget(cell: ActorCell): void;
}

/** One supervised actor, living in its parent's thread. */
export class ActorCell {
  readonly ref: ActorRef;
  readonly children: ActorCell[] = [];
  private state: ActorStatus = 'starting';
  private incarnation: Incarnation | undefined;
  private incarnationNumber: number;
  private waiting: Envelope[] = [];
  private restartTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  private stopReason: StopReason = 'requested';
  private readonly restarts: RestartTracker;

  constructor(
    readonly system: SystemCore,
    readonly parent: ActorCell | undefined,
    /** The parent as the actor sees it (`ctx.parent`): a cell's ref, or a link to another thread. */
    readonly parentRef: ActorRef | undefined,
    readonly name: string,
    readonly path: string,
    private readonly props: Props,
    supervision: Supervision,
    /** Number of the first incarnation (a worker's host continues its cell's count). */
    firstIncarnation = 0,
  ) {
    this.incarnationNumber = firstIncarnation - 1;
    this.ref = new CellRef(this);
    this.restarts = new RestartTracker(supervision);
  }

  get status(): ActorStatus {
    return this.state;
  }

  /** Starts the next incarnation; messages wait in the cell until it is ready. */
  start(): void {
    const number = ++this.incarnationNumber;
    let incarnation: Incarnation;
    const ended = (error: Error | undefined, unprocessed: Envelope[]) => {
      void this.incarnationEnded(incarnation, error, unprocessed);
    };
    let started: Promise<void>;
    try {
      incarnation = this.props.incarnate(this, number, {
        ending: () => {
          if (this.incarnation === incarnation && this.stopping === undefined && this.state === 'running') this.state = 'restarting';
        },
        crashed: (error, unprocessed) => ended(error, unprocessed),
        stoppedItself: (unprocessed) => ended(undefined, unprocessed),
      });
      this.incarnation = incarnation;
      started = incarnation.start();
    } catch (error) {
      // E.g. a Worker that cannot be constructed: a failed start like any other (and never a throw from a
      // restart timer).
      incarnation = this.incarnation = new NeverStarted();
      started = Promise.reject(error);
    }
    started.then(() => {
      if (this.incarnation !== incarnation || this.stopping !== undefined) return;
      this.state = 'running';
      const waiting = this.waiting;
      this.waiting = [];
      for (const envelope of waiting) incarnation.deliver(envelope);
      this.system.publish({ type: 'started', actor: this.ref, path: this.path, incarnation: number });
      this.signalParent({ type: 'started', actor: this.ref, path: this.path, incarnation: number });
    }, (error: unknown) => {
      if (this.incarnation !== incarnation || this.stopping !== undefined) return;
      void this.incarnationEnded(incarnation, asError(error), []);
    });
  }

  /** Accepts a message from a ref: delivers it, keeps it until the actor is ready, or dead-letters it. */
  post(envelope: Envelope, options?: SendOptions): void {
    if (this.state === 'stopping' || this.state === 'stopped') {
      this.undeliverable(envelope, 'stopped');
      return;
    }
    if (this.props.kind === 'worker' && envelope.kind === 'message') {
      // Encoded and detached now: the sender's large buffers are handed over when it sends, not when the
      // message reaches the thread (which may be after a restart).
      envelope.encoded = encodeMessage(envelope.message, options?.transfer ? { transfer: options.transfer } : {});
      detachTransfers(envelope.encoded);
    }
    if (this.state === 'running') this.incarnation!.deliver(envelope);
    else this.waiting.push(envelope);
  }

  /** Stops this actor: children first (newest first), then the running incarnation; idempotent. */
  stop(reason: StopReason = 'requested'): Promise<void> {
    if (this.stopping === undefined) {
      if (this.state === 'stopped') return Promise.resolve();
      this.stopping = this.stopNow(reason);
    }
    return this.stopping;
  }

  /** This cell or one of its descendants, by ref. */
  find(ref: ActorRef): ActorCell | undefined {
    if (this.ref === ref) return this;
    for (const child of this.children) {
      const found = child.find(ref);
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** Stops the children, newest first. */
  async stopChildren(): Promise<void> {
    for (const child of [...this.children].reverse()) await child.stop('requested');
  }

  private async stopNow(reason: StopReason): Promise<void> {
    this.stopReason = reason;
    this.state = 'stopping';
    if (this.restartTimer !== undefined) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    await this.stopChildren();
    const incarnation = this.incarnation;
    this.incarnation = undefined;
    if (incarnation !== undefined) {
      try {
        for (const envelope of await incarnation.stop()) this.undeliverable(envelope, 'stopped');
      } catch (error) {
        this.system.logger.error('actor did not stop cleanly', { actor: this.path, error });
      }
    }
    this.finish(reason);
  }

  private async incarnationEnded(incarnation: Incarnation, error: Error | undefined, unprocessed: Envelope[]) {
    if (incarnation !== this.incarnation || this.stopping !== undefined) return;
    this.incarnation = undefined;
    this.state = 'restarting'; // messages sent from now on wait for the next incarnation, if there is one
    const crashed = error !== undefined;
    for (const envelope of unprocessed) this.undeliverable(envelope, crashed ? 'crashed' : 'stopped', error);
    await this.stopChildren(); // they belonged to the incarnation that ended
    if (this.stopping !== undefined) return;
    const wanted = this.restarts.wantsRestart(crashed);
    const delay = wanted ? this.restarts.next(Date.now()) : undefined;
    const number = this.incarnationNumber;
    if (crashed) {
      this.system.logger.error('actor crashed', {
        actor: this.path, incarnation: number, error, willRestart: delay !== undefined, restartDelayMs: delay,
      });
      const event: LifecycleEvent = {
        type: 'crashed', actor: this.ref, path: this.path, incarnation: number, error, willRestart: delay !== undefined,
        ...(delay !== undefined ? { restartDelayMs: delay } : {}),
      };
      this.system.publish(event);
      this.signalParent(event);
    }
    if (delay === undefined) {
      this.finish(!crashed && !wanted ? 'self' : wanted ? 'restart-limit' : 'crashed');
      return;
    }
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      if (this.stopping === undefined) this.start();
    }, delay);
  }

  private finish(reason: StopReason): void {
    this.stopReason = reason;
    this.state = 'stopped';
    const waiting = this.waiting;
    this.waiting = [];
    for (const envelope of waiting) this.undeliverable(envelope, 'stopped');
    if (this.parent !== undefined) {
      const at = this.parent.children.indexOf(this);
      if (at >= 0) this.parent.children.splice(at, 1);
    } else {
      this.system.forget(this);
    }
    if (reason === 'self') this.system.logger.info('actor stopped itself', { actor: this.path });
    else if (reason !== 'requested') this.system.logger.warn('actor stopped', { actor: this.path, reason });
    const event: LifecycleEvent = { type: 'stopped', actor: this.ref, path: this.path, reason };
    this.system.publish(event);
    this.signalParent(event);
  }

  /** Rejects an ask and reports the message as a dead letter. Lifecycle signals are dropped. */
  undeliverable(envelope: Envelope, reason: 'stopped' | 'crashed', cause?: unknown): void {
    if (envelope.kind === 'signal') return;
    envelope.reply?.reject(reason === 'crashed'
      ? new ActorCrashedError(this.path, cause)
      : new ActorStoppedError(this.path, this.state === 'stopped' || this.state === 'stopping' ? this.stopReason : 'requested'));
    this.system.deadLetter({ recipient: this.path, message: envelope.message, ask: envelope.reply !== undefined, reason });
  }

  /**
   * Lifecycle events go to the parent's current incarnation (queued while it starts). An incarnation that is
   * ending hands them back unhandled, and signals are never dead-lettered, so a new incarnation never hears
   * about the children of the old one.
   */
  private signalParent(event: LifecycleEvent): void {
    const parent = this.parent;
    if (parent === undefined || parent.stopping !== undefined) return;
    parent.incarnation?.deliver({ kind: 'signal', message: event });
  }
}

/** Stands in for an incarnation whose construction threw. */
class NeverStarted implements Incarnation {
  start(): Promise<void> {
    return Promise.reject(new Error('never started'));
  }
  deliver(): void {}
  stop(): Promise<Envelope[]> {
    return Promise.resolve([]);
  }
}

class CellRef implements ActorRef {
  constructor(private readonly cell: ActorCell) {}

  get path(): string {
    return this.cell.path;
  }

  get status(): ActorStatus {
    return this.cell.status;
  }

  tell(message: unknown, options?: SendOptions): void {
    this.cell.post({ kind: 'message', message }, options);
  }

  ask<T>(message: unknown, options?: AskOptions): Promise<T> {
    const reply = new PendingReply(this.cell.path, options?.timeoutMs ?? this.cell.system.askTimeoutMs);
    try {
      this.cell.post({ kind: 'message', message, reply }, options);
    } catch (error) {
      reply.reject(error);
    }
    return reply.promise as Promise<T>;
  }

  toString(): string {
    return `ActorRef(${this.cell.path})`;
  }
}

/** Anything thrown, as an Error (lifecycle events and crash causes are always Errors). */
export function asError(error: unknown): Error {
  return error instanceof Error ? error : new Error(describe(error));
}
