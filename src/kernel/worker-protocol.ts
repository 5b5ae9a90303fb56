// The messages between a worker actor's cell (parent thread) and its host (the worker thread). Headers are
// structured-cloned; every actor payload is an EncodedMessage (msgpack + out-of-band buffers).
import type { DeadLetter } from './actor.js';
import type { EncodedMessage } from './codec.js';
import type { SerialisedError } from './errors.js';
import type { LogFields, LogLevel } from './logger.js';

/** What the host needs to construct the actor (the Worker's `workerData`). */
export interface WorkerBoot {
  /** Full path of the actor. */
  path: string;
  /** Path of its parent actor, when it has one. */
  parentPath: string | undefined;
  /** `file:` URL (or bare specifier) of the actor module. */
  moduleHref: string;
  exportName: string;
  /** Constructor arguments (encoded without transfers, so the same args serve every restart). */
  args: EncodedMessage;
  askTimeoutMs: number;
  /** How long a stop waits for the message being handled, ms. */
  stopTimeoutMs: number;
  /** Which incarnation of the actor this thread runs (0, then +1 per restart). */
  incarnation: number;
}

/** Why an ask failed on the far side, when the failure is the kernel's and not the actor's own error. */
export type ReplyFailure = 'stopped' | 'crashed';

/** The answer to an ask, in either direction. */
export type Reply =
  | { t: 'reply'; id: number; ok: true; p: EncodedMessage }
  | { t: 'reply'; id: number; ok: false; error: SerialisedError; failure?: ReplyFailure };

/** Parent thread -> worker. */
export type ToWorker =
  | { t: 'tell'; p: EncodedMessage }
  | { t: 'ask'; id: number; p: EncodedMessage }
  /** The answer to an ask the worker actor made of its parent. */
  | Reply
  | { t: 'stop' };

/** Worker -> parent thread. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'startFailed'; error: SerialisedError }
  | Reply
  /** The worker actor tells / asks its parent. */
  | { t: 'tell'; p: EncodedMessage }
  | { t: 'ask'; id: number; p: EncodedMessage }
  /** The actor crashed with a fatal error; the parent terminates the thread. */
  | { t: 'fatal'; error: SerialisedError }
  /** The actor stopped itself; the thread exits after this. */
  | { t: 'selfStopped' }
  /** Graceful stop done (postStop ran); the thread exits after this. */
  | { t: 'stopped' }
  | { t: 'deadLetter'; recipient: string; p: EncodedMessage; ask: boolean; reason: DeadLetter['reason'] }
  | { t: 'log'; level: LogLevel; msg: string; fields: LogFields };
