// Progress fan-out: every job event goes, synchronously and in order, to the listeners that want it (all jobs, or
// one job id). A listener that throws is logged and kept; it never stops the others or the engine.
import type { JobEvent, JobEventListener } from './api.js';

export class JobEventHub {
  readonly #listeners = new Set<{ listener: JobEventListener; jobId?: string }>();

  constructor(private readonly onListenerError: (error: unknown) => void) {}

  subscribe(listener: JobEventListener, filter: { jobId?: string } = {}): () => void {
    const entry = { listener, ...(filter.jobId !== undefined ? { jobId: filter.jobId } : {}) };
    this.#listeners.add(entry);
    return () => { this.#listeners.delete(entry); };
  }

  emit(event: JobEvent): void {
    for (const { listener, jobId } of [...this.#listeners]) {
      if (jobId !== undefined && jobId !== event.id) continue;
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }
}
