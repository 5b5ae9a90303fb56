// Request schemas, declared next to each route: one `Field` per wire field. A field's parser turns a present,
// non-null wire value into its typed value or throws the ApiError the spec names:
// - 422 for a missing required field or a value of the wrong type (SGLang's FastAPI schema validation),
// - 400 for a well-typed value that is out of range or not one of the allowed words (SGLang's explicit checks,
//   and sgld's stricter ones of spec section 12).
// JSON values are taken in pydantic's lax mode (the numeric string "2" is an integer); multipart text fields
// arrive as strings and go through the same parsers.
import { ApiError } from '../actors/api.js';
import { invalidField, missingField, schemaError } from './errors.js';

export type FieldSource = 'json' | 'form' | 'query';
type Parser<T> = (value: unknown, param: string, source: FieldSource) => T;

export class Field<T, Optional extends boolean> {
  private constructor(
    readonly parseValue: Parser<T>,
    readonly mode: 'required' | 'optional' | 'default',
    readonly fallback?: T,
  ) {}

  static of<T>(parse: Parser<T>): Field<T, true> { return new Field<T, true>(parse, 'optional'); }
  required(): Field<T, false> { return new Field<T, false>(this.parseValue, 'required'); }
  default(value: T): Field<T, false> { return new Field<T, false>(this.parseValue, 'default', value); }
  /** An extra check on the parsed value (throws the ApiError to send). */
  check(test: (value: T, param: string) => void): Field<T, Optional> {
    const parse = this.parseValue;
    return new Field<T, Optional>((v, p, s) => { const out = parse(v, p, s); test(out, p); return out; }, this.mode, this.fallback);
  }
  // (phantom use of Optional so the type parameter is kept)
  declare readonly _optional: Optional;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Schema = Record<string, Field<any, boolean>>;
export type Parsed<S extends Schema> = {
  [K in keyof S]: S[K] extends Field<infer T, infer O> ? (O extends true ? T | undefined : T) : never;
};

/** Parses `input` against `schema`; unknown members are ignored (spec 1.1). null counts as absent. */
export function parseFields<S extends Schema>(input: Record<string, unknown>, schema: S, source: FieldSource): Parsed<S> {
  const out: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(schema)) {
    const raw = input[name];
    if (raw === undefined || raw === null) {
      if (field.mode === 'required') throw missingField(name);
      out[name] = field.mode === 'default' ? field.fallback : undefined;
      continue;
    }
    out[name] = field.parseValue(raw, name, source);
  }
  return out as Parsed<S>;
}

// ---- value parsers ------------------------------------------------------------------------------------------------

const describe = (v: unknown): string => (typeof v === 'string' ? `'${v.length > 60 ? `${v.slice(0, 60)}...` : v}'` : JSON.stringify(v) ?? String(v));

function asString(v: unknown, param: string): string {
  if (typeof v !== 'string') throw schemaError(param, `${param} must be a string; got ${describe(v)}`);
  return v;
}

/** Longest text field accepted (prompts included): far beyond any text encoder's token window (512 for UMT5). */
export const MAX_TEXT_CHARS = 64 * 1024;

function asText(v: unknown, param: string, maxChars: number): string {
  const s = asString(v, param);
  if (s.length > maxChars) throw invalidField(param, `${param} has ${s.length} characters; this server accepts at most ${maxChars}`, 'text_too_long');
  return s;
}

function asInteger(v: unknown, param: string): number {
  let n: number | undefined;
  if (typeof v === 'number' && Number.isInteger(v)) n = v;
  else if (typeof v === 'string' && /^\s*[+-]?\d+\s*$/.test(v)) n = Number(v);
  if (n === undefined) throw schemaError(param, `${param} must be an integer; got ${describe(v)}`);
  // Beyond 2^53 a JSON number no longer names one integer (1e20 + 1 === 1e20): refuse rather than round.
  if (!Number.isSafeInteger(n)) throw invalidField(param, `${param} is out of range: ${describe(v)} is beyond +-${Number.MAX_SAFE_INTEGER}`, 'invalid_value');
  return n;
}

function asNumber(v: unknown, param: string): number {
  if (typeof v === 'number' && Number.isFinite(v)) return v;
  if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) return Number(v);
  throw schemaError(param, `${param} must be a number; got ${describe(v)}`);
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

function asBoolean(v: unknown, param: string): boolean {
  if (typeof v === 'boolean') return v;
  if (v === 0 || v === 1) return v === 1;
  if (typeof v === 'string') {
    const w = v.trim().toLowerCase();
    if (TRUE_WORDS.has(w)) return true;
    if (FALSE_WORDS.has(w)) return false;
  }
  throw schemaError(param, `${param} must be a boolean; got ${describe(v)}`);
}

interface RangeOptions {
  min?: number;
  max?: number;
  /** Status for an out-of-range value: 400 (default, sgld's explicit checks) or 422 (FastAPI's ge/le). */
  rangeStatus?: 400 | 422;
  code?: string;
}

function checkRange(n: number, param: string, o: RangeOptions, what: string): number {
  const low = o.min !== undefined && n < o.min, high = o.max !== undefined && n > o.max;
  if (!low && !high) return n;
  const bounds = o.min !== undefined && o.max !== undefined ? `between ${o.min} and ${o.max}`
    : o.min !== undefined ? `>= ${o.min}` : `<= ${o.max}`;
  const message = `${param} must be ${what} ${bounds}; got ${n}`;
  const code = o.code ?? 'invalid_value';
  throw o.rangeStatus === 422 ? schemaError(param, message, code) : invalidField(param, message, code);
}

export const field = {
  /** A string of at most `maxChars` characters (default MAX_TEXT_CHARS; 400 `text_too_long` beyond). */
  string: (o: { maxChars?: number } = {}) => Field.of<string>((v, p) => asText(v, p, o.maxChars ?? MAX_TEXT_CHARS)),
  /** A string that must be one of `words` (400 otherwise); `caseInsensitive` lower-cases first. */
  oneOf: <W extends string>(words: readonly W[], options: { code?: string; caseInsensitive?: boolean } = {}) =>
    Field.of<W>((v, p) => {
      let s = asString(v, p);
      if (options.caseInsensitive) s = s.toLowerCase();
      if (!(words as readonly string[]).includes(s)) {
        throw invalidField(p, `${p} must be one of ${words.map((w) => `'${w}'`).join(', ')}; got ${describe(v)}`, options.code ?? 'invalid_value');
      }
      return s as W;
    }),
  integer: (o: RangeOptions = {}) => Field.of<number>((v, p) => checkRange(asInteger(v, p), p, o, 'an integer')),
  number: (o: RangeOptions = {}) => Field.of<number>((v, p) => checkRange(asNumber(v, p), p, o, 'a number')),
  boolean: () => Field.of<boolean>((v, p) => asBoolean(v, p)),
  /** An integer, or a list of integers (JSON array, or JSON text in a form field). */
  integerOrList: () => Field.of<number | number[]>((v, p, source) => {
    let value = v;
    if (source !== 'json' && typeof v === 'string' && v.trim().startsWith('[')) {
      try { value = JSON.parse(v); } catch { throw schemaError(p, `${p} must be an integer or a list of integers; got ${describe(v)}`); }
    }
    if (Array.isArray(value)) {
      if (value.length === 0) throw invalidField(p, `${p} must not be an empty list`);
      return value.map((x, i) => asInteger(x, `${p}[${i}]`));
    }
    return asInteger(value, p);
  }),
  /** A JSON object (or JSON text of one in a form field). */
  object: () => Field.of<Record<string, unknown>>((v, p, source) => {
    let value = v;
    if (source !== 'json' && typeof v === 'string') {
      try { value = JSON.parse(v); } catch { throw invalidField(p, `${p} is not valid JSON`, 'invalid_json'); }
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) throw schemaError(p, `${p} must be an object`);
    return value as Record<string, unknown>;
  }),
  /** Anything present (accepted and ignored, or handled by the route). */
  any: () => Field.of<unknown>((v) => v),
};

/** A per-output list (e.g. `seed`) must have one entry per output. */
export function checkListLength(values: readonly unknown[], param: string, expected: number): void {
  if (values.length !== expected) {
    throw new ApiError(400, `${param} has ${values.length} items but n is ${expected}; give one per output`, { param, code: 'length_mismatch' });
  }
}
