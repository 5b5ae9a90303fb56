// What every route module shares: the engine, the server's resolved options, metrics and the log.
import type { EngineApi } from '../actors/api.js';
import type { HttpMetrics } from './metrics.js';

/** Structured fields of a log line (`request_id`, `job_id`, `status`, ...). */
export type HttpLogFields = Record<string, unknown>;

export interface HttpLogger {
  /** Per-request access lines of probes; optional (dropped when absent). */
  debug?(message: string, fields?: HttpLogFields): void;
  info(message: string, fields?: HttpLogFields): void;
  warn(message: string, fields?: HttpLogFields): void;
  error(message: string, fields?: HttpLogFields): void;
}

export interface HttpServerOptions {
  /** Interface to listen on (spec 10.1 default 127.0.0.1). */
  host?: string;
  /** Port; 0 picks a free one (tests). Default 30000. A busy port is an error, never silently moved. */
  port?: number;
  apiKey?: string;
  adminApiKey?: string;
  /** Largest request body accepted (413 beyond). Default 100 MiB: two 50 MiB uploads. */
  maxBodyBytes?: number;
  /** Largest single uploaded or downloaded input file (413 beyond). Default 50 MiB (spec 13 suggestion). */
  maxUploadBytes?: number;
  /** Largest request head (request line + headers) accepted (431 beyond). Default 16 KiB. */
  maxHeaderBytes?: number;
  /** Time a client has to send its whole body (408 and the connection closed beyond). Default 60 s. */
  bodyTimeoutMs?: number;
  /**
   * Time a synchronous image request may wait for its job, queue included; beyond it the job is cancelled and the
   * answer is 504 `request_timeout`. 0: no limit (default).
   */
  requestTimeoutMs?: number;
  /** Largest decoded input image, in pixels (400 `image_too_large` beyond). Default 50 megapixels. */
  maxInputPixels?: number;
  /** Whether http(s) image URLs are fetched (else 400 remote_input_disabled). Default true. */
  remoteInputs?: boolean;
  /**
   * Whether image URLs may name loopback, private, link-local and other non-public addresses (checked on every
   * address the host resolves to, at connect time, on every redirect). Default false: 400 `url_not_allowed`.
   */
  allowPrivateUrls?: boolean;
  /** Time limit of one remote input download attempt (connect, headers and body). Default 10 s. */
  remoteFetchTimeoutMs?: number;
  /**
   * Folders `lora_path` of /v1/set_lora must lie in (after resolving links); others are 400
   * `lora_path_not_allowed`. An empty list refuses every path (only cached nicknames can be set). Undefined: any
   * path (the embedding default; `sgld serve` always passes its `--lora-dir` list).
   */
  loraRoots?: string[];
  /** Largest single WebSocket message accepted from a client. */
  maxWebSocketPayloadBytes?: number;
  logger?: HttpLogger;
}

export type ResolvedHttpOptions = Required<Omit<HttpServerOptions, 'apiKey' | 'adminApiKey' | 'logger' | 'loraRoots'>>
  & Pick<HttpServerOptions, 'apiKey' | 'adminApiKey' | 'loraRoots'>;

export const MIB = 1024 * 1024;

export function resolveOptions(o: HttpServerOptions): ResolvedHttpOptions {
  return {
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 30000,
    apiKey: o.apiKey || undefined,
    adminApiKey: o.adminApiKey || undefined,
    maxBodyBytes: o.maxBodyBytes ?? 100 * MIB,
    maxUploadBytes: o.maxUploadBytes ?? 50 * MIB,
    maxHeaderBytes: o.maxHeaderBytes ?? 16 * 1024,
    bodyTimeoutMs: o.bodyTimeoutMs ?? 60_000,
    requestTimeoutMs: o.requestTimeoutMs ?? 0,
    maxInputPixels: o.maxInputPixels ?? 50_000_000,
    remoteInputs: o.remoteInputs ?? true,
    allowPrivateUrls: o.allowPrivateUrls ?? false,
    remoteFetchTimeoutMs: o.remoteFetchTimeoutMs ?? 10_000,
    loraRoots: o.loraRoots,
    maxWebSocketPayloadBytes: o.maxWebSocketPayloadBytes ?? 16 * 1024,
  };
}

export interface ServerContext {
  engine: EngineApi;
  options: ResolvedHttpOptions;
  metrics: HttpMetrics;
  log: HttpLogger;
}

const line = (level: string, m: string, fields?: HttpLogFields): string =>
  JSON.stringify({ time: new Date().toISOString(), level, component: 'http', msg: m, ...fields });

/** The default log: one JSON line per message on stderr (probe access lines dropped). */
export const consoleLogger: HttpLogger = {
  info: (m, f) => console.error(line('info', m, f)),
  warn: (m, f) => console.error(line('warn', m, f)),
  error: (m, f) => console.error(line('error', m, f)),
};
