// Logging seam of the kernel: actors' errors, crashes, restarts and unhandled dead letters go through a Logger
// that the embedding app injects. The default writes one JSON object per line to stderr.
import { serialiseError } from './errors.js';

/** Severity, lowest first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Structured context of a log line (actor path, error, ...). Errors are serialised by the default logger. */
export type LogFields = Record<string, unknown>;

/** Where the kernel writes what happens. Every method must not throw. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
}

const LEVEL_RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/**
 * A logger writing `{"time","level","msg",...fields}` lines to stderr, dropping levels below `minLevel`
 * (default `'info'`). Errors in fields become `{name, message, code, stack}`.
 */
export function consoleLogger(minLevel: LogLevel = 'info'): Logger {
  const write = (level: LogLevel) => (message: string, fields?: LogFields) => {
    if (LEVEL_RANK[level] < LEVEL_RANK[minLevel]) return;
    const line = { time: new Date().toISOString(), level, msg: message, ...toPlainFields(fields) };
    try {
      process.stderr.write(`${JSON.stringify(line)}\n`);
    } catch {
      // A logger must never take an actor down (e.g. a closed stderr).
    }
  };
  return { debug: write('debug'), info: write('info'), warn: write('warn'), error: write('error') };
}

/** A logger that adds `bound` (e.g. `{actor: path}`) to every line of `base`. */
export function withFields(base: Logger, bound: LogFields): Logger {
  const merged = (fields?: LogFields) => (fields === undefined ? bound : { ...bound, ...fields });
  return {
    debug: (m, f) => base.debug(m, merged(f)),
    info: (m, f) => base.info(m, merged(f)),
    warn: (m, f) => base.warn(m, merged(f)),
    error: (m, f) => base.error(m, merged(f)),
  };
}

/**
 * Fields reduced to JSON-like data (errors serialised, bigints as strings, typed arrays summarised), so they can
 * be printed or posted to another thread.
 */
export function toPlainFields(fields: LogFields | undefined): LogFields {
  if (fields === undefined) return {};
  const out: LogFields = {};
  for (const [key, value] of Object.entries(fields)) out[key] = toPlain(value, 0);
  return out;
}

function toPlain(value: unknown, depth: number): unknown {
  if (value instanceof Error) return serialiseError(value);
  if (typeof value === 'bigint') return value.toString();
  if (typeof value === 'function' || typeof value === 'symbol') return String(value);
  if (value === null || typeof value !== 'object') return value;
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}(${value.byteLength} bytes)`;
  if (depth >= 4) return '[object]';
  if (Array.isArray(value)) return value.map((v) => toPlain(v, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = toPlain(v, depth + 1);
  return out;
}
