// The shapes an actor author and an actor user see: behaviours, their context, references, events.
import type { StopReason } from './errors.js';
import type { Logger } from './logger.js';
import type { SupervisionOptions } from './supervision.js';

/**
 * An actor's behaviour. `receive` handles one message at a time, in arrival order; when it returns a promise the
 * next message waits for it. Its return value (awaited) is the reply to an `ask`; a thrown error rejects that ask
 * (or is logged, for a `tell`) and the actor goes on, unless the error is fatal (see {@link FatalActorError}),
 * which crashes the actor: its supervisor then restarts it with a fresh behaviour, per its restart policy.
 */
export interface Actor<M = any, R = unknown> {
  /** Runs before the first message of each incarnation (after every restart too); a throw is a crash. */
  preStart?(ctx: ActorContext<M>): void | Promise<void>;
  /** Handles one message. */
  receive(message: M, ctx: ActorContext<M>): R | Promise<R>;
  /**
   * Runs once the actor stops or crashes with a fatal error, after its children stopped; errors are logged.
   * It cannot run when a worker actor's thread itself died (exit, uncaught error).
   */
  postStop?(ctx: ActorContext<M>): void | Promise<void>;
  /** Learns that one of its children started, crashed or stopped; runs in mailbox order with messages. */
  onChildEvent?(event: LifecycleEvent, ctx: ActorContext<M>): void | Promise<void>;
}

/** What an actor can do besides handling its message. One context per incarnation. */
export interface ActorContext<M = any> {
  /** This actor. */
  readonly self: ActorRef<M>;
  /** The actor that spawned this one (across threads for a worker actor); `undefined` for top-level actors. */
  readonly parent: ActorRef | undefined;
  /** Slash-separated names from the top level, e.g. `supervisor/device-0`. */
  readonly path: string;
  /** 0 for the first start, +1 for each restart. */
  readonly incarnation: number;
  /** The system's logger with `{actor: path}` bound. */
  readonly log: Logger;
  /** Spawns an in-thread child supervised by this actor (stopped before this actor stops or restarts). */
  spawn<CM, CR>(name: string, create: () => Actor<CM, CR>, options?: SpawnOptions): ActorRef<CM, CR>;
  /** Spawns a child in its own worker thread (see {@link ActorSystem.spawnWorker}). */
  spawnWorker<CM = unknown, CR = unknown>(
    name: string, module: string | URL, args?: readonly unknown[], options?: WorkerSpawnOptions,
  ): ActorRef<CM, CR>;
  /** Stops one of this actor's children: its current message finishes, queued ones become dead letters. */
  stopChild(child: ActorRef): Promise<void>;
  /** Stops this actor once the current message is handled (for a `transient` actor, for good). */
  stop(): void;
}

/** Options of a `tell`. */
export interface SendOptions {
  /**
   * ArrayBuffers to transfer to a worker actor whatever their size (detached here once sent). Typed arrays of
   * 64 KiB or more are transferred anyway; small ones are copied. Ignored in-thread (messages go by reference).
   */
  transfer?: readonly ArrayBuffer[];
}

/** Options of an `ask`. */
export interface AskOptions extends SendOptions {
  /** Rejects with {@link AskTimeoutError} after this long (default: the system's `askTimeoutMs`). `Infinity`: never. */
  timeoutMs?: number;
}

/** Where an actor is in its life, as known from this thread. */
export type ActorStatus = 'starting' | 'running' | 'restarting' | 'stopping' | 'stopped';

/** A handle to an actor: stays valid across restarts; messages to a stopped actor become dead letters. */
export interface ActorRef<M = any, R = unknown> {
  readonly path: string;
  readonly status: ActorStatus;
  /** Sends without waiting. Messages from one sender to one actor arrive in the order sent. */
  tell(message: M, options?: SendOptions): void;
  /**
   * Sends and waits for the reply (the value `receive` returned). Rejects with {@link AskTimeoutError},
   * {@link ActorStoppedError}, {@link ActorCrashedError}, the thrown error (in-thread) or a {@link RemoteError}
   * (from a worker actor).
   */
  ask<T = R>(message: M, options?: AskOptions): Promise<T>;
}

/** How to spawn an in-thread actor. */
export interface SpawnOptions extends SupervisionOptions {
  /**
   * Which errors thrown by `receive` crash the actor (default: {@link isFatalError}, i.e. errors marked
   * `fatal: true`). In-thread only: a worker actor always uses the default rule.
   */
  isFatal?: (error: unknown) => boolean;
  /**
   * How long a stop waits for the message being handled (or a pending preStart), ms (default 5000). After it,
   * the stop goes on: postStop runs and the late handler's reply is dropped (its ask gets ActorStoppedError).
   */
  stopTimeoutMs?: number;
}

/** How to spawn an actor in its own worker thread. */
export interface WorkerSpawnOptions extends SupervisionOptions {
  /** The module's export to construct with `new` (default `'default'`). */
  exportName?: string;
  /**
   * How long a stop waits for the message being handled, ms (default 5000); postStop then gets as long again
   * before the thread is terminated.
   */
  stopTimeoutMs?: number;
  /** Node flags of the thread (default: inherited, which is what lets a `.ts` module load under a TS loader). */
  execArgv?: string[];
  /** Heap limits of the thread. */
  resourceLimits?: import('node:worker_threads').ResourceLimits;
  /** Environment of the thread (default: a copy of this one's). */
  env?: Record<string, string | undefined>;
}

/** A change in a supervised actor's life, told to its parent's `onChildEvent` and to the system's listeners. */
export type LifecycleEvent =
  | {
    type: 'started';
    actor: ActorRef;
    path: string;
    /** 0 on first start, n after the n-th restart. */
    incarnation: number;
  }
  | {
    type: 'crashed';
    actor: ActorRef;
    path: string;
    incarnation: number;
    /** The fatal error, the worker's uncaught error, or a {@link WorkerExitedError}. */
    error: Error;
    /** Whether a restart is scheduled (otherwise a `stopped` event follows). */
    willRestart: boolean;
    /** Delay before that restart, ms. */
    restartDelayMs?: number;
  }
  | {
    type: 'stopped';
    actor: ActorRef;
    path: string;
    reason: StopReason;
  };

/** A message that could not be delivered. */
export interface DeadLetter {
  /** Path of the actor it was for. */
  recipient: string;
  message: unknown;
  /** Whether it was an `ask` (whose promise was rejected too). */
  ask: boolean;
  /** `stopped`: the actor was stopped or stopping; `crashed`: it was lost in a crash; `no-parent`: a worker actor
   *  without a parent told its parent. */
  reason: 'stopped' | 'crashed' | 'no-parent';
}
