// The kernel's error types. Each has a stable `code` so callers can branch without string matching, and the
// ones that cross threads are rebuilt on the far side from a plain serialised form.

/** Base class of every error the kernel raises itself. */
export class KernelError extends Error {
  constructor(message: string, readonly code: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** An `ask` got no reply within its timeout. The message may still be processed later; its reply is dropped. */
export class AskTimeoutError extends KernelError {
  constructor(readonly actor: string, readonly timeoutMs: number) {
    super(`ask to ${actor} timed out after ${timeoutMs} ms`, 'ERR_ACTOR_ASK_TIMEOUT');
  }
}

/** Why an actor is no longer running (also carried by dead letters). */
export type StopReason =
  /** its parent, or `system.stop()`, stopped it */
  | 'requested'
  /** it stopped itself (`ctx.stop()`), and its restart policy does not restart it */
  | 'self'
  /** it crashed and its restart policy does not restart it */
  | 'crashed'
  /** it crashed more often than `maxRestarts` within `withinMs` */
  | 'restart-limit';

/** The actor was stopped (or is stopping) before it could handle the message. */
export class ActorStoppedError extends KernelError {
  constructor(readonly actor: string, readonly reason: StopReason) {
    super(`actor ${actor} is stopped (${reason})`, 'ERR_ACTOR_STOPPED');
  }
}

/**
 * The actor crashed while the message was in flight to it (being handled, queued, or posted to its worker).
 * `cause` is the crash: the fatal error, a {@link WorkerExitedError}, or the worker's uncaught error.
 */
export class ActorCrashedError extends KernelError {
  constructor(readonly actor: string, cause: unknown) {
    super(`actor ${actor} crashed: ${describe(cause)}`, 'ERR_ACTOR_CRASHED', { cause });
  }
}

/**
 * An error thrown by an actor in another thread, rebuilt from its serialised form: `remoteName`, `message`,
 * `code` and `stack` are the original's (the stack is the remote one, so it points at the actor's code).
 */
export class RemoteError extends Error {
  readonly remoteName: string;
  readonly code: string | undefined;
  constructor(serialised: SerialisedError) {
    super(serialised.message);
    this.name = 'RemoteError';
    this.remoteName = serialised.name;
    this.code = serialised.code;
    if (serialised.stack !== undefined) this.stack = serialised.stack;
  }
}

/**
 * Throw this (or any error with `fatal: true`) from an actor to crash it, so that its supervisor restarts it.
 * Other errors thrown by `receive` are replied to the asker (or logged, for a `tell`) and the actor goes on.
 */
export class FatalActorError extends KernelError {
  readonly fatal = true;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, 'ERR_ACTOR_FATAL', options);
  }
}

/** A worker actor's thread ended without being asked to (process.exit, terminate, out of memory...). */
export class WorkerExitedError extends KernelError {
  constructor(readonly actor: string, readonly exitCode: number) {
    super(`worker of ${actor} exited with code ${exitCode}`, 'ERR_ACTOR_WORKER_EXITED');
  }
}

/** A shared-memory wait (barrier, slot channel) passed its deadline: a peer is dead or too slow. */
export class ChannelTimeoutError extends KernelError {
  constructor(what: string, readonly timeoutMs: number) {
    super(`${what} timed out after ${timeoutMs} ms`, 'ERR_CHANNEL_TIMEOUT');
  }
}

/** A barrier was broken (a party timed out or called `break()`); it stays broken until `reset()`. */
export class BarrierBrokenError extends KernelError {
  constructor() {
    super('barrier is broken (a party timed out or broke it)', 'ERR_BARRIER_BROKEN');
  }
}

/** The default crash rule: an error is fatal when it says so with `fatal: true` (as {@link FatalActorError} does). */
export function isFatalError(error: unknown): boolean {
  return typeof error === 'object' && error !== null && (error as { fatal?: unknown }).fatal === true;
}

/** The plain form of an error that crosses threads. */
export interface SerialisedError {
  name: string;
  message: string;
  stack?: string;
  code?: string;
  fatal?: boolean;
}

/** Turns anything thrown into its plain form (strings and other non-errors become an `Error`-named message). */
export function serialiseError(error: unknown): SerialisedError {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    const out: SerialisedError = { name: error instanceof RemoteError ? error.remoteName : error.name, message: error.message };
    if (error.stack !== undefined) out.stack = error.stack;
    if (typeof code === 'string') out.code = code;
    else if (typeof code === 'number') out.code = String(code);
    if (isFatalError(error)) out.fatal = true;
    return out;
  }
  return { name: 'Error', message: describe(error) };
}

/** A one-line description of anything thrown, for messages and logs. */
export function describe(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error) ?? String(error);
  } catch {
    return String(error);
  }
}
