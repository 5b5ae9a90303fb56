// JobStore: every job record, in submission order, with an on-disk index under --output-path so that jobs and
// their outputs survive a restart (spec 5.5, 7). The index is rewritten whole, atomically (temp file + rename),
// after every change of status; writes are serialised and coalesced, so a burst of changes costs one or two
// writes and a crash at any moment leaves the previous or the new index, never half of one.
//
// Ids are checked against the UUID form before they touch the filesystem (no traversal through an id), and files
// are only ever deleted inside the output directory.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { rename, rm, writeFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import type { JobPage, JobRecord, JobStatus, ListJobsQuery } from './api.js';

/** The index file's name inside the output directory. */
export const INDEX_FILE = 'sgld-jobs.json';
const INDEX_VERSION = 1;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** Whether `id` has the form of a job id (a canonical lower-case UUID). */
export const isJobId = (id: unknown): id is string => typeof id === 'string' && UUID.test(id);

export interface JobStoreOpenReport {
  /** Jobs read from the index. */
  loaded: number;
  /** Jobs that were queued or running when the previous server stopped: now failed / server_restarted. */
  interrupted: string[];
}

/** File name of output `index` of a job with `n` outputs: `{id}.{ext}`, or `{id}_{i}.{ext}` (spec 7). */
export function outputFileName(id: string, index: number, n: number, extension: string): string {
  if (!isJobId(id)) throw new Error(`sgld: ${id} is not a job id`);
  return n === 1 ? `${id}.${extension}` : `${id}_${index}.${extension}`;
}

export class JobStore {
  readonly #jobs = new Map<string, JobRecord>();
  #dirty = false;
  #writing: Promise<void> | undefined;
  #writeError: Error | undefined;

  private constructor(
    /** Absolute output directory, or null when persistence is disabled. */
    readonly outputPath: string | null,
  ) {}

  /**
   * Opens the store: creates the output directory, reads its index, and marks the jobs a previous server left
   * queued or running as failed with code `server_restarted`.
   */
  static open(outputPath: string | null): { store: JobStore; report: JobStoreOpenReport } {
    const store = new JobStore(outputPath === null ? null : resolve(outputPath));
    const report: JobStoreOpenReport = { loaded: 0, interrupted: [] };
    if (store.outputPath === null) return { store, report };
    mkdirSync(store.outputPath, { recursive: true });
    const indexPath = join(store.outputPath, INDEX_FILE);
    if (!existsSync(indexPath)) return { store, report };
    let parsed: { version?: unknown; jobs?: unknown };
    try {
      parsed = JSON.parse(readFileSync(indexPath, 'utf8')) as typeof parsed;
    } catch (e) {
      throw new Error(`sgld: the job index ${indexPath} is not valid JSON (${(e as Error).message}); move it away to start with an empty store`);
    }
    if (parsed.version !== INDEX_VERSION || !Array.isArray(parsed.jobs)) {
      throw new Error(`sgld: ${indexPath} is not a version ${INDEX_VERSION} job index`);
    }
    for (const job of parsed.jobs as JobRecord[]) {
      if (!isJobId(job?.id)) continue; // a hand-edited entry: never let it name files
      if (job.status === 'queued' || job.status === 'in_progress') {
        job.status = 'failed';
        job.error = { code: 'server_restarted', message: 'The server stopped before this job finished; submit it again.' };
        report.interrupted.push(job.id);
      }
      store.#jobs.set(job.id, job);
    }
    report.loaded = store.#jobs.size;
    if (report.interrupted.length > 0) store.#persist();
    return { store, report };
  }

  get persisted(): boolean { return this.outputPath !== null; }

  get size(): number { return this.#jobs.size; }

  /** The record (the live object: callers change it through `update`), or undefined for unknown / malformed ids. */
  get(id: string): JobRecord | undefined {
    return isJobId(id) ? this.#jobs.get(id) : undefined;
  }

  add(job: JobRecord): void {
    if (!isJobId(job.id)) throw new Error(`sgld: ${job.id} is not a job id`);
    this.#jobs.set(job.id, job);
    this.#persist();
  }

  /** Applies `change` to the job and persists (pass `persist: false` for progress-only changes). */
  update(id: string, change: (job: JobRecord) => void, options: { persist?: boolean } = {}): JobRecord | undefined {
    const job = this.get(id);
    if (!job) return undefined;
    change(job);
    if (options.persist ?? true) this.#persist();
    return job;
  }

  /** Removes the record and deletes its output files; returns the record as it was. */
  async remove(id: string): Promise<JobRecord | undefined> {
    const job = this.get(id);
    if (!job) return undefined;
    this.#jobs.delete(id);
    this.#persist();
    await Promise.all(job.outputs.map((o) => (o.path ? this.deleteFile(o.path) : undefined)));
    return job;
  }

  /** Absolute path of output `index` of a job with `n` outputs (outputFileName) in the output directory. */
  outputFile(id: string, index: number, n: number, extension: string): string {
    if (this.outputPath === null) throw new Error('sgld: outputs are not persisted');
    return join(this.outputPath, outputFileName(id, index, n, extension));
  }

  /** Deletes a file if it lies inside the output directory (a tampered index cannot name others). */
  async deleteFile(path: string): Promise<void> {
    if (this.outputPath === null || !resolve(path).startsWith(this.outputPath + sep)) return;
    await rm(path, { force: true });
  }

  list(query: ListJobsQuery): JobPage {
    // Map order is submission order; the stable sort keeps it for equal createdAt.
    const all = [...this.#jobs.values()].filter((j) => j.kind === query.kind).sort((a, b) => a.createdAt - b.createdAt);
    if (query.order === 'desc') all.reverse();
    let start = 0;
    if (query.after !== undefined) {
      const at = all.findIndex((j) => j.id === query.after);
      if (at < 0) return { data: [], hasMore: false };
      start = at + 1;
    }
    const data = all.slice(start, start + query.limit);
    return { data, hasMore: start + query.limit < all.length };
  }

  countByStatus(): Record<JobStatus, number> {
    const counts: Record<JobStatus, number> = { queued: 0, in_progress: 0, completed: 0, failed: 0 };
    for (const j of this.#jobs.values()) counts[j.status]++;
    return counts;
  }

  /** Waits until the index on disk holds every change made so far. Rejects if the last write failed. */
  async flush(): Promise<void> {
    while (this.#writing) await this.#writing;
    if (this.#writeError) throw this.#writeError;
  }

  #persist(): void {
    if (this.outputPath === null) return;
    this.#dirty = true;
    this.#writing ??= this.#writeLoop().finally(() => { this.#writing = undefined; });
  }

  async #writeLoop(): Promise<void> {
    const indexPath = join(this.outputPath!, INDEX_FILE);
    const temp = `${indexPath}.${process.pid}.tmp`;
    while (this.#dirty) {
      this.#dirty = false;
      const text = JSON.stringify({ version: INDEX_VERSION, jobs: [...this.#jobs.values()] });
      try {
        await writeFile(temp, text);
        await rename(temp, indexPath);
        this.#writeError = undefined;
      } catch (e) {
        // Kept for flush(); the next change tries again.
        this.#writeError = new Error(`sgld: could not write the job index ${indexPath}: ${(e as Error).message}`);
      }
    }
  }
}
