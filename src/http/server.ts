// The HTTP front of `sgld serve`: one uWS app, a router over every route of the spec, auth, body limits, the
// error envelope, metrics, and the progress WebSocket. `startHttpServer(engine, options)` is the whole surface.
import { randomUUID } from 'node:crypto';
import uWS from 'uWebSockets.js';
import type { EngineApi } from '../actors/api.js';
import { Authenticator, isPublicPath } from './auth.js';
import { readBody } from './body.js';
import { type HttpLogger, type HttpServerOptions, type ServerContext, consoleLogger, resolveOptions } from './context.js';
import { ApiError, toApiError } from './errors.js';
import { healthRoutes } from './health.js';
import { imageRoutes } from './images.js';
import { loraRoutes } from './loras.js';
import { HttpMetrics } from './metrics.js';
import { modelRoutes } from './models.js';
import { ProgressHub } from './progress.js';
import { Reply } from './reply.js';
import { type RequestInfo, readRequest } from './request.js';
import { Router } from './router.js';
import { videoRoutes } from './videos.js';

// app.close() exists in the native binary but not in the package's typings.
declare module 'uWebSockets.js' {
  interface TemplatedApp { close(): TemplatedApp }
}

export type { HttpServerOptions } from './context.js';

export interface HttpServer {
  /** The port actually bound (useful with port 0). */
  port: number;
  host: string;
  /** Closes the listen socket and every connection (WebSockets included) at once. */
  close(): Promise<void>;
}

/** Headers on every answer: the API is meant to be callable from browsers (SGLang allows every origin). */
const COMMON_HEADERS = { 'Access-Control-Allow-Origin': '*' };

/** Methods whose bodies are read. */
const BODY_METHODS = new Set(['POST', 'PUT', 'PATCH']);

export async function startHttpServer(engine: EngineApi, options: HttpServerOptions = {}): Promise<HttpServer> {
  // The uWS republish silently falls back to a slow pure-JS server on Node versions it has no binary for.
  if (typeof uWS.getParts !== 'function') throw new Error('sgld: uWebSockets.js has no native binary for this Node version (Node 20 is required)');
  const resolved = resolveOptions(options);
  const log = options.logger ?? consoleLogger;
  const metrics = new HttpMetrics(engine);
  const server: ServerContext = { engine, options: resolved, metrics, log };
  const auth = new Authenticator(resolved);
  const progress = new ProgressHub(server, auth);
  const router = new Router().add(
    ...healthRoutes(server), ...modelRoutes(server), ...imageRoutes(server), ...videoRoutes(server),
    ...loraRoutes(server), ...progress.routes(),
  );

  const app = uWS.App();
  progress.attach(app);
  const unsubscribe = engine.subscribe((ev) => {
    try {
      metrics.onJobEvent(ev);
      progress.onEvent(ev);
    } catch (err) {
      log.error(`a job event listener threw: ${(err as Error).stack ?? err}`, { job_id: ev.id, event: ev.type });
    }
  });

  app.ws('/*', progress.behavior());
  app.any('/*', (res, req) => {
    const info = readRequest(req);
    const requestId = requestIdOf(info.headers);
    const started = performance.now();
    const finishTiming = metrics.startRequest(info.method);
    let routeLabel = 'unmatched';
    const logFields: Record<string, unknown> = { request_id: requestId };
    const reply = new Reply(res, info.method === 'HEAD', { ...COMMON_HEADERS, 'X-Request-Id': requestId }, (status) => {
      finishTiming(routeLabel, status);
      accessLog(log, info, routeLabel, status, performance.now() - started, logFields);
    });
    const reading = BODY_METHODS.has(info.method)
      ? readBody(res, { maxBytes: resolved.maxBodyBytes, timeoutMs: resolved.bodyTimeoutMs }, info.headers['content-length'])
      : null;
    const body = reading?.body ?? null;
    if (reading) reply.onAbort(reading.onAbort);
    let bodyComplete = body === null;
    body?.then(() => { bodyComplete = true; }, () => {});

    void (async () => {
      try {
        if (info.headBytes > resolved.maxHeaderBytes) {
          throw new ApiError(431, `The request head (${info.headBytes} bytes of request line and headers) is larger than the limit of ${resolved.maxHeaderBytes} bytes`, { code: 'headers_too_large' });
        }
        if (info.method === 'OPTIONS') { preflight(reply, info.headers); return; }
        const match = router.match(info.method, info.path);
        // Auth before 404/405 (as SGLang's middleware): probes are open, a route says what it needs.
        auth.check(isPublicPath(info.path) ? 'public' : match.kind === 'found' ? match.route.auth : 'normal', info.headers);
        if (match.kind === 'not_found') throw ApiError.notFound(`No route for ${info.method} ${info.path}`, 'route_not_found');
        if (match.kind === 'method_not_allowed') {
          throw new ApiError(405, `Method ${info.method} is not allowed on ${info.path}; allowed: ${match.allow.join(', ')}`, {
            code: 'method_not_allowed', headers: { Allow: match.allow.join(', ') },
          });
        }
        routeLabel = match.route.pattern;
        await match.route.handler({
          info, params: match.params, reply, requestId,
          body: () => body ?? Promise.resolve(Buffer.alloc(0)),
          annotate: (fields) => Object.assign(logFields, fields),
        });
        if (!reply.sent && !reply.aborted) throw new Error(`handler of ${info.method} ${match.route.pattern} sent no answer`);
      } catch (err) {
        if (reply.aborted) return;
        const apiError = toApiError(err, (e) => log.error(`internal error in ${info.method} ${routeLabel}: ${(e as Error).stack ?? e}`, { request_id: requestId }));
        if (reply.sent) { log.error(`${info.method} ${routeLabel} failed after answering: ${apiError.message}`, { request_id: requestId }); return; }
        if (apiError.status >= 400 && apiError.status < 500) Object.assign(logFields, { error_code: apiError.code, param: apiError.param });
        // Answering before the body was read: drop the connection so the unread rest is not parsed as a request.
        reply.error(apiError, !bodyComplete);
      }
    })();
  });

  const listenSocket = await new Promise<uWS.us_listen_socket>((resolve, reject) => {
    app.listen(resolved.host, resolved.port, (ls) => {
      if (ls) resolve(ls);
      else reject(new Error(`sgld: cannot listen on ${resolved.host}:${resolved.port} (port in use or address not available)`));
    });
  });
  const port = uWS.us_socket_local_port(listenSocket);
  let closed = false;
  return {
    port,
    host: resolved.host,
    close: async () => {
      if (closed) return;
      closed = true;
      unsubscribe();
      app.close();
    },
  };
}

/** A client's own `X-Request-Id` when it is a short token, else a fresh UUID. */
function requestIdOf(headers: Record<string, string>): string {
  const given = headers['x-request-id'];
  return given !== undefined && /^[\w.:-]{1,128}$/.test(given) ? given : randomUUID();
}

/** One structured line per answered request; probes only at debug level, server faults as warnings. */
function accessLog(log: HttpLogger, info: RequestInfo, route: string, status: number, ms: number, fields: Record<string, unknown>): void {
  const line = { ...fields, method: info.method, route, path: info.path, status, ms: Math.round(ms * 10) / 10 };
  if (isPublicPath(info.path) && status < 500) log.debug?.('request', line);
  else if (status >= 500) log.warn('request', line);
  else log.info('request', line);
}

function preflight(reply: Reply, headers: Record<string, string>): void {
  reply.send(204, '', {
    'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
    'Access-Control-Allow-Headers': headers['access-control-request-headers'] ?? 'Authorization, Content-Type, x-api-key',
    'Access-Control-Max-Age': '600',
  });
}
