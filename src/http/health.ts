// Probes (spec 2.1) and Prometheus metrics: never behind a key.
import { ApiError, type Readiness } from '../actors/api.js';
import type { ServerContext } from './context.js';
import type { Route } from './router.js';

const NOT_READY: Record<Exclude<Readiness, 'ready'>, [string, string]> = {
  loading: ['The model is still loading.', 'model_loading'],
  failed: ['The model failed to load.', 'model_failed'],
  stopping: ['The server is shutting down.', 'shutting_down'],
};

export function notReadyError(state: Readiness): ApiError | null {
  if (state === 'ready') return null;
  const [message, code] = NOT_READY[state];
  return new ApiError(503, message, { code });
}

export function healthRoutes({ engine, metrics }: ServerContext): Route[] {
  return [
    {
      // Liveness: the process answers. Only a model that can never load makes it unhealthy.
      method: 'GET', pattern: '/health', auth: 'public',
      handler: ({ reply }) => {
        const state = engine.readiness();
        if (state === 'failed') reply.error(notReadyError(state)!);
        else reply.json(200, { status: 'ok' });
      },
    },
    {
      // SGLang's name for "could generate now"; answered without running a generation.
      method: 'GET', pattern: '/health_generate', auth: 'public',
      handler: ({ reply }) => {
        const err = notReadyError(engine.readiness());
        if (err) reply.error(err); else reply.json(200, { status: 'ok' });
      },
    },
    {
      method: 'GET', pattern: '/ready', auth: 'public',
      handler: ({ reply }) => {
        const err = notReadyError(engine.readiness());
        if (err) reply.error(err); else reply.json(200, { status: 'ready' });
      },
    },
    {
      method: 'GET', pattern: '/metrics', auth: 'public',
      handler: async ({ reply }) => {
        const { contentType, body } = await metrics.render();
        reply.send(200, body, { 'Content-Type': contentType });
      },
    },
  ];
}
