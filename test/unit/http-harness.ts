// Shared setup of the HTTP unit tests: the server on 127.0.0.1:0 in front of the engine test double, plus small
// request helpers. Everything started is torn down with the test.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'tap';
import { type HttpServer, type HttpServerOptions, startHttpServer } from '../../src/http/server.js';
import { EngineDouble, type EngineDoubleOptions } from './http-engine-double.js';

export interface Harness {
  engine: EngineDouble;
  server: HttpServer;
  base: string;
  outputDir: string | null;
  logs: string[];
  /** fetch relative to the server. */
  fetch(path: string, init?: RequestInit): Promise<Response>;
  /** JSON POST (body serialised). */
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<Response>;
}

export async function startHarness(
  t: Test,
  engineOptions: Partial<EngineDoubleOptions> = {},
  serverOptions: HttpServerOptions = {},
): Promise<Harness> {
  const outputDir = engineOptions.outputDir === null ? null : mkdtempSync(join(tmpdir(), 'sgld-http-out-'));
  const engine = new EngineDouble({ ...engineOptions, outputDir });
  const logs: string[] = [];
  const logger = { info: (m: string) => logs.push(m), warn: (m: string) => logs.push(m), error: (m: string) => logs.push(`ERROR ${m}`) };
  const server = await startHttpServer(engine, { host: '127.0.0.1', port: 0, logger, ...serverOptions });
  const base = `http://127.0.0.1:${server.port}`;
  t.teardown(async () => {
    await engine.idle();
    await server.close();
    engine.close();
    if (outputDir) rmSync(outputDir, { recursive: true, force: true });
  });
  return {
    engine, server, base, outputDir, logs,
    fetch: (path, init) => fetch(base + path, init),
    post: (path, body, headers = {}) => fetch(base + path, {
      method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
    }),
  };
}

export interface ErrorEnvelope {
  error: { message: string; type: string; param: string | null; code: string | null };
  detail: string;
}

/** Asserts an error answer of spec 1.4 with the given status, type, param and (when given) code. */
export async function expectError(
  t: Test, res: Response, status: number,
  want: { type?: string; param?: string | null; code?: string | null; message?: RegExp },
): Promise<ErrorEnvelope> {
  const text = await res.text();
  t.equal(res.status, status, `status ${status} (body: ${text.slice(0, 200)})`);
  t.match(res.headers.get('content-type') ?? '', /application\/json/);
  const body = JSON.parse(text) as ErrorEnvelope;
  t.equal(body.detail, body.error.message, 'detail duplicates error.message');
  t.equal(typeof body.error.message, 'string');
  if (want.type !== undefined) t.equal(body.error.type, want.type, 'error.type');
  if (want.param !== undefined) t.equal(body.error.param, want.param, 'error.param');
  if (want.code !== undefined) t.equal(body.error.code, want.code, 'error.code');
  if (want.message) t.match(body.error.message, want.message, 'error.message');
  return body;
}
