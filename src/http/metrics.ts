// Prometheus metrics (prom-client), one registry per server. The engine feeds them through its job events
// (queue time, end-to-end latency, denoising speed, outcomes) and its stats() at scrape time (queue depth,
// running jobs, jobs by status); the HTTP layer adds its own request counter and latency.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { EngineApi, JobEvent, JobKind, JobStatus } from '../actors/api.js';

/** Buckets for job times: diffusion jobs run from well under a second (tiny models) to many minutes. */
const JOB_SECONDS_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const HTTP_SECONDS_BUCKETS = [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120];
const STEPS_PER_SECOND_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100];

interface JobTiming { queuedAt: number; startedAt?: number; firstStep?: { step: number; at: number }; lastStep?: { step: number; at: number } }

/** Timings kept for jobs in flight; bounded so jobs whose last event never comes cannot grow it forever. */
const MAX_TRACKED_JOBS = 10_000;

export class HttpMetrics {
  readonly registry = new Registry();
  readonly #httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly #httpSeconds: Histogram<'method' | 'route'>;
  readonly #queueSeconds: Histogram<'kind'>;
  readonly #e2eSeconds: Histogram<'kind' | 'status'>;
  readonly #stepsPerSecond: Histogram<'kind'>;
  readonly #jobsFinished: Counter<'kind' | 'status'>;
  readonly #timings = new Map<string, JobTiming>();

  constructor(engine: EngineApi) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'sgld_' });
    this.#httpRequests = new Counter({ name: 'sgld_http_requests_total', help: 'HTTP requests answered, by route pattern and status (499: client went away)', labelNames: ['method', 'route', 'status'], registers });
    this.#httpSeconds = new Histogram({ name: 'sgld_http_request_duration_seconds', help: 'Time from request to complete answer', labelNames: ['method', 'route'], buckets: HTTP_SECONDS_BUCKETS, registers });
    this.#queueSeconds = new Histogram({ name: 'sgld_job_queue_time_seconds', help: 'Time a job waited in the queue before it started', labelNames: ['kind'], buckets: JOB_SECONDS_BUCKETS, registers });
    this.#e2eSeconds = new Histogram({ name: 'sgld_job_e2e_latency_seconds', help: 'Time from submission to completion or failure', labelNames: ['kind', 'status'], buckets: JOB_SECONDS_BUCKETS, registers });
    this.#stepsPerSecond = new Histogram({ name: 'sgld_denoise_steps_per_second', help: 'Denoising speed of each finished job', labelNames: ['kind'], buckets: STEPS_PER_SECOND_BUCKETS, registers });
    this.#jobsFinished = new Counter({ name: 'sgld_jobs_finished_total', help: 'Jobs that ended, by outcome', labelNames: ['kind', 'status'], registers });
    new Gauge({ name: 'sgld_queue_depth', help: 'Jobs waiting to start', registers, collect() { this.set(engine.stats().queued); } });
    new Gauge({ name: 'sgld_jobs_running', help: 'Jobs executing now', registers, collect() { this.set(engine.stats().running); } });
    new Gauge({
      name: 'sgld_jobs', help: 'Jobs in the store, by status', labelNames: ['status'], registers,
      collect() {
        const by = engine.stats().jobsByStatus;
        for (const status of Object.keys(by) as JobStatus[]) this.set({ status }, by[status]);
      },
    });
    new Gauge({
      name: 'sgld_engine_gauge', help: 'Further engine gauges (name label from EngineStats.extra)', labelNames: ['name'], registers,
      collect() {
        for (const [name, value] of Object.entries(engine.stats().extra ?? {})) this.set({ name }, value);
      },
    });
    new Gauge({
      name: 'sgld_ready', help: '1 when the model is loaded and the server accepts jobs', registers,
      collect() { this.set(engine.readiness() === 'ready' ? 1 : 0); },
    });
  }

  /** Starts timing one HTTP request; call the result with the final status. */
  startRequest(method: string): (route: string, status: number) => void {
    const start = process.hrtime.bigint();
    return (route, status) => {
      this.#httpRequests.inc({ method, route, status: String(status) });
      this.#httpSeconds.observe({ method, route }, Number(process.hrtime.bigint() - start) / 1e9);
    };
  }

  onJobEvent(ev: JobEvent): void {
    const kind: JobKind = ev.kind;
    let t = this.#timings.get(ev.id);
    if (!t) {
      if (this.#timings.size >= MAX_TRACKED_JOBS) this.#timings.delete(this.#timings.keys().next().value!);
      t = { queuedAt: ev.at };
      this.#timings.set(ev.id, t);
    }
    switch (ev.type) {
      case 'queued': t.queuedAt = ev.at; break;
      case 'started':
        t.startedAt = ev.at;
        this.#queueSeconds.observe({ kind }, (ev.at - t.queuedAt) / 1000);
        break;
      case 'step':
        t.firstStep ??= { step: ev.step, at: ev.at };
        t.lastStep = { step: ev.step, at: ev.at };
        break;
      case 'completed': case 'failed': {
        this.#e2eSeconds.observe({ kind, status: ev.type }, (ev.at - t.queuedAt) / 1000);
        this.#jobsFinished.inc({ kind, status: ev.type });
        const speed = stepsPerSecond(t);
        if (speed !== null) this.#stepsPerSecond.observe({ kind }, speed);
        this.#timings.delete(ev.id);
        break;
      }
      default: break;
    }
  }

  async render(): Promise<{ contentType: string; body: string }> {
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}

/** Steps per second between the first and last step events (from the start when only one step was seen). */
function stepsPerSecond(t: JobTiming): number | null {
  const { firstStep: a, lastStep: b } = t;
  if (!a || !b) return null;
  if (b.step > a.step && b.at > a.at) return ((b.step - a.step) * 1000) / (b.at - a.at);
  if (t.startedAt !== undefined && b.at > t.startedAt) return (b.step * 1000) / (b.at - t.startedAt);
  return null;
}
