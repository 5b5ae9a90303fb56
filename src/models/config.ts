// Reading a checkpoint's config.json into typed fields. Every model's constructor takes the parsed JSON; this
// reader turns a missing or ill-typed key into one error that names the config and the key, instead of a NaN
// that surfaces layers later as a shape mismatch.

export class ConfigError extends Error {
  constructor(readonly where: string, readonly key: string, message: string) {
    super(`${where}: "${key}" ${message}`);
    this.name = 'ConfigError';
  }
}

type Json = Record<string, unknown>;

const show = (v: unknown): string => (v === undefined ? 'missing' : JSON.stringify(v));

export class ConfigReader {
  /** `where` names the config in errors, e.g. "transformer/config.json". */
  constructor(readonly json: Json, readonly where: string) {
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      throw new ConfigError(where, '(root)', 'is not a JSON object');
    }
  }

  has(key: string): boolean {
    return this.json[key] !== undefined;
  }

  private value(key: string, fallback: unknown): unknown {
    const v = this.json[key];
    if (v !== undefined) return v;
    if (fallback !== undefined) return fallback;
    throw new ConfigError(this.where, key, 'is missing');
  }

  /** A positive integer (sizes, counts). */
  positiveInt(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw new ConfigError(this.where, key, `must be a positive integer, got ${show(v)}`);
    return v;
  }

  /** A finite number. */
  number(key: string, fallback?: number): number {
    const v = this.value(key, fallback);
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new ConfigError(this.where, key, `must be a number, got ${show(v)}`);
    return v;
  }

  bool(key: string, fallback?: boolean): boolean {
    const v = this.value(key, fallback);
    if (typeof v !== 'boolean') throw new ConfigError(this.where, key, `must be true or false, got ${show(v)}`);
    return v;
  }

  string(key: string, fallback?: string): string {
    const v = this.value(key, fallback);
    if (typeof v !== 'string') throw new ConfigError(this.where, key, `must be a string, got ${show(v)}`);
    return v;
  }

  /** A string, or null when the key is null or absent. */
  optionalString(key: string): string | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    if (typeof v !== 'string') throw new ConfigError(this.where, key, `must be a string or null, got ${show(v)}`);
    return v;
  }

  /** A positive integer, or null when the key is null or absent. */
  optionalPositiveInt(key: string): number | null {
    const v = this.json[key];
    if (v === undefined || v === null) return null;
    return this.positiveInt(key);
  }

  /** A list of exactly `length` positive integers. */
  positiveIntTuple(key: string, length: number, fallback?: number[]): number[] {
    const v = this.value(key, fallback);
    if (!Array.isArray(v) || v.length !== length || v.some((x) => typeof x !== 'number' || !Number.isInteger(x) || x <= 0)) {
      throw new ConfigError(this.where, key, `must be a list of ${length} positive integers, got ${show(v)}`);
    }
    return v as number[];
  }

  /** Throws unless the key's value (absent counts as null) is one of `allowed`; `why` says what is unsupported. */
  requireOneOf(key: string, allowed: readonly unknown[], why: string): void {
    const v = this.json[key] === undefined ? null : this.json[key];
    if (!allowed.includes(v)) throw new ConfigError(this.where, key, `is ${show(v)}: ${why}`);
  }
}
