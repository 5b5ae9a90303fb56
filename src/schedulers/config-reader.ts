// Reads a scheduler_config.json key by key with diffusers' defaults, checks each value's type, and remembers
// which keys were read, so that every key of a config is either honoured, rejected, or reported as unknown.
import { SchedulerConfigError } from './types.js';

export type RawSchedulerConfig = Record<string, unknown>;

export class ConfigReader {
  private readonly seen = new Set<string>();

  constructor(readonly className: string, private readonly raw: RawSchedulerConfig) {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
      throw new SchedulerConfigError(className, null, 'the config must be a JSON object');
    }
    const declared = raw['_class_name'];
    if (declared !== undefined && declared !== className) {
      throw new SchedulerConfigError(className, '_class_name', `is ${JSON.stringify(declared)}, expected ${className}`);
    }
  }

  fail(key: string, message: string): never {
    throw new SchedulerConfigError(this.className, key, message);
  }

  private value(key: string): unknown {
    this.seen.add(key);
    return this.raw[key];
  }

  number(key: string, fallback: number, check: { integer?: boolean; min?: number } = {}): number {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a finite number, got ${JSON.stringify(v)}`);
    if (check.integer && !Number.isInteger(v)) this.fail(key, `must be an integer, got ${v}`);
    if (check.min !== undefined && v < check.min) this.fail(key, `must be at least ${check.min}, got ${v}`);
    return v;
  }

  /** A number that may also be null (diffusers' Optional[float]). */
  numberOrNull(key: string, fallback: number | null): number | null {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(key, `must be a number or null, got ${JSON.stringify(v)}`);
    return v;
  }

  /** A flag; null counts as false, as diffusers tests these with plain truthiness. */
  flag(key: string, fallback: boolean): boolean {
    const v = this.value(key);
    if (v === undefined) return fallback;
    if (v === null) return false;
    if (typeof v !== 'boolean') this.fail(key, `must be true or false, got ${JSON.stringify(v)}`);
    return v;
  }

  choice<T extends string>(key: string, fallback: T, allowed: readonly T[]): T {
    const v = this.value(key);
    if (v === undefined || v === null) return fallback;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) {
      this.fail(key, `must be one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}, got ${JSON.stringify(v)}`);
    }
    return v as T;
  }

  /** A raw value for keys with their own rules. */
  any(key: string): unknown {
    return this.value(key);
  }

  integerList(key: string): number[] {
    const v = this.value(key);
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) {
      this.fail(key, `must be a list of integers, got ${JSON.stringify(v)}`);
    }
    return v as number[];
  }

  /** Keys that were never read, except the `_`-prefixed bookkeeping keys diffusers writes. */
  unreadKeys(): string[] {
    return Object.keys(this.raw).filter((k) => !k.startsWith('_') && !this.seen.has(k));
  }
}
