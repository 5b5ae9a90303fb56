// Per-job progress over WebSocket (spec 8, an sgld extension): `GET /v1/jobs/{job_id}/events` upgraded to a
// WebSocket. The engine's job events are published on the uWS topic `job/{id}`; a socket subscribes to its job's
// topic when it opens, first receives a snapshot of the job, then every event, and the server closes it (1000)
// after the final `done` message.
//
// Messages (JSON text):
//   {"type":"progress","event":"snapshot"|"queued"|"started"|"step"|"decoding"|"encoding","id","status","progress",
//    "step"?,"total_steps"?,"eta_s"?,"position"?}
//   {"type":"done","event":"completed"|"failed","id","status","progress","error"?}
import type { TemplatedApp, WebSocket, WebSocketBehavior } from 'uWebSockets.js';
import { ApiError, type JobEvent, type JobRecord, type JobStatus } from '../actors/api.js';
import type { Authenticator } from './auth.js';
import type { ServerContext } from './context.js';
import { toApiError } from './errors.js';
import { isJobIdSyntax } from './ids.js';
import { Reply } from './reply.js';
import { readRequest } from './request.js';
import { type Route, matchPattern } from './router.js';

export const EVENTS_PATTERN = '/v1/jobs/{job_id}/events';

/** Last events kept for jobs, so a socket opening between a job's lookup and its next event misses nothing. */
const MAX_REMEMBERED_JOBS = 2_000;

interface SocketData { jobId: string; job: JobRecord }

const topic = (id: string): string => `job/${id}`;
const isFinal = (status: JobStatus): boolean => status === 'completed' || status === 'failed';

function eventMessage(ev: JobEvent): Record<string, unknown> {
  const base = { id: ev.id, status: ev.status, progress: ev.progress };
  switch (ev.type) {
    case 'completed': return { type: 'done', event: 'completed', ...base };
    case 'failed': return { type: 'done', event: 'failed', ...base, error: ev.error };
    case 'step': return { type: 'progress', event: 'step', ...base, step: ev.step, total_steps: ev.total, eta_s: ev.eta };
    case 'queued': return { type: 'progress', event: 'queued', ...base, position: ev.position };
    default: return { type: 'progress', event: ev.type, ...base };
  }
}

function snapshotMessages(job: JobRecord, last: JobEvent | undefined): Record<string, unknown>[] {
  if (last && (last.type === 'completed' || last.type === 'failed')) return [eventMessage(last)];
  const status = last?.status ?? job.status, progress = Math.max(last?.progress ?? 0, job.progress);
  const snapshot = { type: 'progress', event: 'snapshot', id: job.id, status, progress };
  if (!isFinal(status)) return [snapshot];
  return [snapshot, { type: 'done', event: status, id: job.id, status, progress, ...(status === 'failed' ? { error: job.error } : {}) }];
}

export class ProgressHub {
  readonly #last = new Map<string, JobEvent>();
  readonly #sockets = new Map<string, Set<WebSocket<SocketData>>>();
  #app: TemplatedApp | null = null;

  constructor(private readonly server: ServerContext, private readonly auth: Authenticator) {}

  attach(app: TemplatedApp): void { this.#app = app; }

  /** Feed of the engine's events (all jobs). */
  onEvent(ev: JobEvent): void {
    this.#last.delete(ev.id);
    this.#last.set(ev.id, ev);
    if (this.#last.size > MAX_REMEMBERED_JOBS) this.#last.delete(this.#last.keys().next().value!);
    const app = this.#app;
    if (!app || !this.#sockets.has(ev.id)) return;
    app.publish(topic(ev.id), JSON.stringify(eventMessage(ev)), false);
    if (ev.type === 'completed' || ev.type === 'failed') {
      for (const ws of [...this.#sockets.get(ev.id) ?? []]) ws.end(1000, 'job finished');
    }
  }

  /** The plain-HTTP side of the path: without an upgrade it is a client mistake. */
  routes(): Route[] {
    return [{
      method: 'GET', pattern: EVENTS_PATTERN, auth: 'normal',
      handler: () => { throw new ApiError(426, 'This endpoint is a WebSocket: connect with an Upgrade: websocket request', { code: 'upgrade_required' }); },
    }];
  }

  behavior(): WebSocketBehavior<SocketData> {
    return {
      idleTimeout: 120,
      sendPingsAutomatically: true,
      maxPayloadLength: this.server.options.maxWebSocketPayloadBytes,
      upgrade: (res, req, context) => {
        const info = readRequest(req);
        const key = req.getHeader('sec-websocket-key');
        const protocol = req.getHeader('sec-websocket-protocol');
        const extensions = req.getHeader('sec-websocket-extensions');
        const reply = new Reply(res, false, {}, () => {});
        void (async () => {
          try {
            const params = matchPattern(EVENTS_PATTERN, info.path);
            this.auth.check('normal', info.headers);
            if (!params) throw ApiError.notFound(`No WebSocket endpoint at ${info.path}`, 'route_not_found');
            const job = isJobIdSyntax(params.job_id) ? await this.server.engine.getJob(params.job_id) : undefined;
            if (!job) throw ApiError.notFound('Job not found', 'job_not_found', 'job_id');
            if (reply.aborted) return;
            res.cork(() => res.upgrade<SocketData>({ jobId: job.id, job }, key, protocol, extensions, context));
          } catch (err) {
            reply.error(toApiError(err, (e) => this.server.log.error(`websocket upgrade: ${(e as Error).stack ?? e}`)));
          }
        })();
      },
      open: (ws) => {
        const { jobId, job } = ws.getUserData();
        let set = this.#sockets.get(jobId);
        if (!set) this.#sockets.set(jobId, set = new Set());
        set.add(ws);
        ws.subscribe(topic(jobId));
        const messages = snapshotMessages(job, this.#last.get(jobId));
        for (const m of messages) ws.send(JSON.stringify(m), false);
        if (messages[messages.length - 1]!.type === 'done') ws.end(1000, 'job finished');
      },
      close: (ws) => {
        const { jobId } = ws.getUserData();
        const set = this.#sockets.get(jobId);
        set?.delete(ws);
        if (set?.size === 0) this.#sockets.delete(jobId);
      },
    };
  }
}
