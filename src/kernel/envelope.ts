// What travels through a mailbox: the message, and for an ask the place its reply goes.
import type { EncodedMessage } from './codec.js';
import { AskTimeoutError } from './errors.js';

// setTimeout takes a signed 32-bit delay; a longer one fires at once, so such timeouts mean "never".
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The reply side of an ask: settles once (reply, error or timeout), whichever comes first. */
export class PendingReply {
  readonly promise: Promise<unknown>;
  private settle!: { resolve: (value: unknown) => void; reject: (error: unknown) => void };
  private timer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(actor: string, timeoutMs: number, private readonly onSettled?: () => void) {
    if (!(timeoutMs >= 0)) throw new RangeError(`ask timeout must be >= 0 ms, got ${timeoutMs}`);
    this.promise = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    if (timeoutMs <= MAX_TIMER_MS) {
      this.timer = setTimeout(() => this.reject(new AskTimeoutError(actor, timeoutMs)), timeoutMs);
    }
  }

  get settled(): boolean {
    return this.done;
  }

  resolve(value: unknown): void {
    if (this.finish()) this.settle.resolve(value);
  }

  reject(error: unknown): void {
    if (this.finish()) this.settle.reject(error);
  }

  private finish(): boolean {
    if (this.done) return false;
    this.done = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.onSettled?.();
    return true;
  }
}

/** One message in a mailbox. */
export interface Envelope {
  /** `signal`: a lifecycle event for `onChildEvent`, never dead-lettered. */
  kind: 'message' | 'signal';
  /** The message as sent (in-thread: the very object). */
  message: unknown;
  /** Present for an ask. */
  reply?: PendingReply;
  /** For a worker actor: the message encoded when it was sent (so transfers happen at send time). */
  encoded?: EncodedMessage;
}
