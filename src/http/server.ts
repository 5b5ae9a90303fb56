// The HTTP front of `sgld serve`: one uWS app, a router over every route of the spec, auth, body limits, the
// error envelope, metrics, and the progress WebSocket. `startHttpServer(engine, options)` is the whole surface.
import uWS from 'uWebSockets.js';
import type { EngineApi } from '../actors/api.js';
import { Authenticator, isPublicPath } from './auth.js';
import { readBody } from './body.js';
import { type HttpServerOptions, type ServerContext, consoleLogger, resolveOptions } from './context.js';
import { ApiError, toApiError } from './errors.js';
import { healthRoutes } from './health.js';
import { imageRoutes } from './images.js';
import { loraRoutes } from './loras.js';
import { HttpMetrics } from './metrics.js';
import { modelRoutes } from './models.js';
import { ProgressHub } from './progress.js';
import { Reply } from './reply.js';
import { readRequest } from './request.js';
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
      log.error(`job event ${ev.type} of ${ev.id}: ${(err as Error).stack ?? err}`);
    }
  });

  app.ws('/*', progress.behavior());
  app.any('/*', (res, req) => {
    const info = readRequest(req);
    const finishTiming = metrics.startRequest(info.method);
    let routeLabel = 'unmatched';
    const reply = new Reply(res, info.method === 'HEAD', COMMON_HEADERS, (status) => finishTiming(routeLabel, status));
    const body = BODY_METHODS.has(info.method) ? readBody(res, resolved.maxBodyBytes, info.headers['content-length']) : null;
    let bodyComplete = body === null;
    body?.then(() => { bodyComplete = true; }, () => {});

    void (async () => {
      try {
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
        await match.route.handler({ info, params: match.params, reply, body: () => body ?? Promise.resolve(Buffer.alloc(0)) });
        if (!reply.sent && !reply.aborted) throw new Error(`handler of ${info.method} ${match.route.pattern} sent no answer`);
      } catch (err) {
        if (reply.aborted) return;
        const apiError = toApiError(err, (e) => log.error(`${info.method} ${info.path}: ${(e as Error).stack ?? e}`));
        if (reply.sent) { log.error(`${info.method} ${info.path} failed after answering: ${apiError.message}`); return; }
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

function preflight(reply: Reply, headers: Record<string, string>): void {
  reply.send(204, '', {
    'Access-Control-Allow-Methods': 'GET, POST, DELETE, OPTIONS',
    'Access-Control-Allow-Headers': headers['access-control-request-headers'] ?? 'Authorization, Content-Type, x-api-key',
    'Access-Control-Max-Age': '600',
  });
}
