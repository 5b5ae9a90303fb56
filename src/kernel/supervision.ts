// Restart policies (the Erlang/OTP child-spec vocabulary) and the bookkeeping that decides whether a crashed
// actor is restarted, and after how long.

/**
 * When a supervised actor is restarted:
 * - `permanent`: always, whether it crashed or stopped itself;
 * - `transient`: only when it crashed (a fatal error, or its worker died); stopping itself is final;
 * - `temporary`: never.
 */
export type RestartPolicy = 'permanent' | 'transient' | 'temporary';

/** Delay before restart number n (0-based within the window): `min(maxMs, initialMs * factor^n)`. */
export interface Backoff {
  /** Delay before the first restart, ms (default 100). */
  initialMs?: number;
  /** Largest delay, ms (default 10 000). */
  maxMs?: number;
  /** Growth per restart within the window (default 2). */
  factor?: number;
}

/** How a parent supervises one child. */
export interface SupervisionOptions {
  /** Default `'transient'`. */
  restart?: RestartPolicy;
  /** Restarts allowed within `withinMs` before the actor is stopped for good (default 3). */
  maxRestarts?: number;
  /** Window of the restart count, ms (default 60 000). */
  withinMs?: number;
  /** Delays between restarts. */
  backoff?: Backoff;
}

/** Resolved supervision settings, with the defaults filled in. */
export interface Supervision {
  restart: RestartPolicy;
  maxRestarts: number;
  withinMs: number;
  backoff: Required<Backoff>;
}

/** Fills in the defaults and checks the values. */
export function resolveSupervision(options: SupervisionOptions = {}): Supervision {
  const supervision: Supervision = {
    restart: options.restart ?? 'transient',
    maxRestarts: options.maxRestarts ?? 3,
    withinMs: options.withinMs ?? 60_000,
    backoff: {
      initialMs: options.backoff?.initialMs ?? 100,
      maxMs: options.backoff?.maxMs ?? 10_000,
      factor: options.backoff?.factor ?? 2,
    },
  };
  if (!['permanent', 'transient', 'temporary'].includes(supervision.restart)) {
    throw new TypeError(`unknown restart policy '${String(supervision.restart)}'`);
  }
  if (!(supervision.maxRestarts >= 0) || !(supervision.withinMs > 0)) {
    throw new RangeError('maxRestarts must be >= 0 and withinMs > 0');
  }
  return supervision;
}

/** The restart intensity of one actor: restarts within the sliding window, and the next delay. */
export class RestartTracker {
  private readonly times: number[] = [];

  constructor(private readonly supervision: Supervision) {}

  /** Whether a child that ended this way should come back under its policy (before the intensity limit). */
  wantsRestart(crashed: boolean): boolean {
    const policy = this.supervision.restart;
    return policy === 'permanent' || (policy === 'transient' && crashed);
  }

  /**
   * Records a restart at `now` and returns its delay in ms, or `undefined` when `maxRestarts` restarts already
   * happened within the window (the actor must then stop).
   */
  next(now: number): number | undefined {
    const { maxRestarts, withinMs, backoff } = this.supervision;
    while (this.times.length > 0 && now - this.times[0]! > withinMs) this.times.shift();
    if (this.times.length >= maxRestarts) return undefined;
    const delay = Math.min(backoff.maxMs, backoff.initialMs * backoff.factor ** this.times.length);
    this.times.push(now);
    return delay;
  }

  /** Restarts counted in the current window. */
  get count(): number {
    return this.times.length;
  }
}
