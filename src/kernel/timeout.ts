// Bounded waiting for promises that cannot be cancelled (a handler still running, a thread still exiting).

export const TIMED_OUT: unique symbol = Symbol('timed out');

/** Waits for `promise` at most `ms`; the timer never outlives the wait. */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
