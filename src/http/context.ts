// What every route module shares: the engine, the server's resolved options, metrics and the log.
import type { EngineApi } from '../actors/api.js';
import type { HttpMetrics } from './metrics.js';

export interface HttpLogger {
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
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
  /** Whether http(s) image URLs are fetched (else 400 remote_input_disabled). Default true. */
  remoteInputs?: boolean;
  /** Time limit of one remote input download attempt. Default 10 s. */
  remoteFetchTimeoutMs?: number;
  /** Largest single WebSocket message accepted from a client. */
  maxWebSocketPayloadBytes?: number;
  logger?: HttpLogger;
}

export type ResolvedHttpOptions = Required<Omit<HttpServerOptions, 'apiKey' | 'adminApiKey' | 'logger'>>
  & Pick<HttpServerOptions, 'apiKey' | 'adminApiKey'>;

export const MIB = 1024 * 1024;

export function resolveOptions(o: HttpServerOptions): ResolvedHttpOptions {
  return {
    host: o.host ?? '127.0.0.1',
    port: o.port ?? 30000,
    apiKey: o.apiKey || undefined,
    adminApiKey: o.adminApiKey || undefined,
    maxBodyBytes: o.maxBodyBytes ?? 100 * MIB,
    maxUploadBytes: o.maxUploadBytes ?? 50 * MIB,
    remoteInputs: o.remoteInputs ?? true,
    remoteFetchTimeoutMs: o.remoteFetchTimeoutMs ?? 10_000,
    maxWebSocketPayloadBytes: o.maxWebSocketPayloadBytes ?? 16 * 1024,
  };
}

export interface ServerContext {
  engine: EngineApi;
  options: ResolvedHttpOptions;
  metrics: HttpMetrics;
  log: HttpLogger;
}

/** The default log: one line per message on stderr. */
export const consoleLogger: HttpLogger = {
  info: (m) => console.error(`[sgld http] ${m}`),
  warn: (m) => console.error(`[sgld http] warning: ${m}`),
  error: (m) => console.error(`[sgld http] error: ${m}`),
};
