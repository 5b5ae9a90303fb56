// Blocking waits on a SharedArrayBuffer word, with a deadline: spin briefly (cheap when the peer is running on
// another core), then sleep in Atomics.wait. Blocking: meant for worker threads, not a server's main thread.
import { ChannelTimeoutError } from './errors.js';

/** How long and how eagerly a shared-memory wait waits. */
export interface SharedWaitOptions {
  /** Give up with {@link ChannelTimeoutError} after this long, ms (default 30 000; `Infinity`: never). */
  timeoutMs?: number;
  /**
   * Polls of the word before sleeping (default 1000). Spinning pays when every party has a core of its own
   * (stack.md: a 2-thread barrier round fell from 9.5 to 0.4 µs); with more threads than cores set it to 0.
   */
  spin?: number;
}

/** Default deadline of shared-memory waits, ms. */
export const DEFAULT_WAIT_TIMEOUT_MS = 30_000;
/** Default polls before sleeping. */
export const DEFAULT_SPIN = 1000;

/**
 * Waits until `done()` is true, sleeping on `words[index]` while it still holds the value `current()` read.
 * `what` names the wait in the timeout error; `onTimeout` runs before the error is thrown and may return true
 * to report that the wait succeeded after all (a race with the deadline).
 */
export function waitUntil(
  words: Int32Array, index: number, current: () => number, done: () => boolean,
  what: string, options: SharedWaitOptions | undefined, onTimeout?: () => boolean,
): void {
  const timeoutMs = options?.timeoutMs ?? DEFAULT_WAIT_TIMEOUT_MS;
  const spin = options?.spin ?? DEFAULT_SPIN;
  for (let i = 0; i < spin; i++) if (done()) return;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const seen = current();
    if (done()) return;
    const remaining = deadline - performance.now();
    if (remaining <= 0) {
      if (onTimeout?.() === true) return;
      throw new ChannelTimeoutError(what, timeoutMs);
    }
    Atomics.wait(words, index, seen, remaining === Infinity ? undefined : remaining);
  }
}
