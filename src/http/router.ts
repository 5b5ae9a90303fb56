// A small path router over the raw (percent-encoded) path: literal segments, `{name}` parameters (one segment,
// percent-decoded) and a trailing `{name+}` parameter that takes the rest of the path (model ids contain '/').
// It tells "no such path" (404) from "path exists, other method" (405 with Allow) as spec 1.1 requires.
import type { AuthClass } from './auth.js';
import type { Reply } from './reply.js';
import type { RequestInfo } from './request.js';

export type Method = 'GET' | 'POST' | 'DELETE';

export interface RouteContext {
  info: RequestInfo;
  params: Record<string, string>;
  reply: Reply;
  /** The request body (POST); an empty buffer for methods without one. Rejects with 413 past the limit. */
  body(): Promise<Buffer>;
  /** This request's id (the `X-Request-Id` answer header), for log lines. */
  requestId: string;
  /** Adds fields (e.g. `job_id`) to the request's access log line. */
  annotate(fields: Record<string, unknown>): void;
}

export interface Route {
  method: Method;
  /** e.g. `/v1/videos/{video_id}/content`; also the `route` label of the HTTP metrics. */
  pattern: string;
  auth: AuthClass;
  handler(ctx: RouteContext): Promise<void> | void;
}

type Segment = { literal: string } | { param: string; rest: boolean };

interface CompiledRoute { route: Route; segments: Segment[] }

function compile(pattern: string): Segment[] {
  return pattern.split('/').slice(1).map((s, i, all) => {
    const m = /^\{(\w+)(\+?)\}$/.exec(s);
    if (!m) return { literal: s };
    if (m[2] && i !== all.length - 1) throw new Error(`router: rest parameter must be last in ${pattern}`);
    return { param: m[1]!, rest: m[2] === '+' };
  });
}

/** The parameters of `path` under `segments`, or null when it does not match (or does not decode). */
function matchSegments(segments: Segment[], path: string): Record<string, string> | null {
  const parts = path.split('/').slice(1);
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if ('literal' in seg) {
      if (parts[i] !== seg.literal) return null;
      continue;
    }
    const raw = seg.rest ? parts.slice(i).join('/') : parts[i];
    if (raw === undefined || raw === '') return null;
    try { params[seg.param] = decodeURIComponent(raw); } catch { return null; }
    if (seg.rest) return params;
  }
  return parts.length === segments.length ? params : null;
}

export type RouteMatch =
  | { kind: 'found'; route: Route; params: Record<string, string> }
  | { kind: 'method_not_allowed'; allow: Method[] }
  | { kind: 'not_found' };

export class Router {
  readonly #routes: CompiledRoute[] = [];

  add(...routes: Route[]): this {
    for (const route of routes) this.#routes.push({ route, segments: compile(route.pattern) });
    return this;
  }

  /** HEAD is served by the GET route of the path. */
  match(method: string, path: string): RouteMatch {
    const wanted = method === 'HEAD' ? 'GET' : method;
    const allow = new Set<Method>();
    for (const { route, segments } of this.#routes) {
      const params = matchSegments(segments, path);
      if (!params) continue;
      if (route.method === wanted) return { kind: 'found', route, params };
      allow.add(route.method);
    }
    return allow.size ? { kind: 'method_not_allowed', allow: [...allow] } : { kind: 'not_found' };
  }
}

/** Matches one pattern (for the WebSocket upgrade route). */
export function matchPattern(pattern: string, path: string): Record<string, string> | null {
  return matchSegments(compile(pattern), path);
}
