// Runs parallel layouts on a pool of real worker threads (one per CPU rank, each with the model loaded once):
// a layout of N ranks uses the first N workers, with fresh process groups.
import { Worker } from 'node:worker_threads';
import { type LayoutDegrees, buildTopologies, worldSize } from '../../src/parallel/topology.js';
import type { WanGenerateRequest } from '../../src/pipelines/wan/request.js';
import type { RankJob, RankReply } from './rank-worker.js';

const WORKER_URL = new URL('./rank-worker.ts', import.meta.url);

export type RankResult = Extract<RankReply, { ok: true }>;

export class RankPool {
  readonly #workers: Worker[];

  constructor(modelDir: string, size: number) {
    this.#workers = Array.from({ length: size }, () => new Worker(WORKER_URL, { workerData: { modelDir } }));
  }

  async run(degrees: LayoutDegrees, requests: WanGenerateRequest[]): Promise<RankResult[]> {
    const topologies = buildTopologies(degrees);
    if (worldSize(degrees) > this.#workers.length) throw new Error(`layout needs ${worldSize(degrees)} ranks, the pool has ${this.#workers.length}`);
    const replies = await Promise.all(topologies.map((topology, i) => new Promise<RankReply>((resolve, reject) => {
      const worker = this.#workers[i]!;
      const onError = (e: Error) => reject(e);
      worker.once('error', onError);
      worker.once('message', (m: RankReply) => { worker.off('error', onError); resolve(m); });
      worker.postMessage({ topology, requests } satisfies RankJob);
    })));
    const failed = replies.filter((r): r is Extract<RankReply, { ok: false }> => !r.ok);
    if (failed.length > 0) throw new Error(failed.map((f) => `rank ${f.rank}: ${f.error}`).join('; '));
    return replies as RankResult[];
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => new Promise<void>((resolve) => { w.once('exit', () => resolve()); w.postMessage('close'); })));
  }
}

/** max |a - b| / max |b|: the relative error the parallelism issue bounds (1e-5 in fp32). */
export function relativeError(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return Infinity;
  let diff = 0, scale = 0;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  return diff / scale;
}
