// TEST DOUBLE of EngineApi for the HTTP layer's unit tests only (never shipped; the real engine is tested end to
// end in test/api). It really stores jobs, runs them one at a time with timed steps and real progress events, and
// writes real files: noise images from the seed encoded by sharp at the requested format and level, edits as the
// first input image resized, and MP4s through ffmpeg. Prompts containing "FAIL" make the job fail mid-way.
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import {
  ApiError, type EngineApi, type EngineStats, type ImageJobParams, type ImageResult, type JobEvent, type JobEventListener,
  type JobOutput, type JobRecord, type JobStatus, type ListJobsQuery, type LoraListing, type ModelInfo, type Readiness,
  type ServerInfo, type SetLoraParams, type TaskType, type VideoJobParams,
  type WeightsDigest,
} from '../../src/actors/api.js';
import { type RgbImage, encodeImage, imageContentType, imageExtension } from '../../src/media/image.js';
import { encodeMp4 } from '../../src/media/video.js';

export interface EngineDoubleOptions {
  /** null: outputs are not persisted (--output-path ""). */
  outputDir: string | null;
  taskType?: TaskType;
  supportsLora?: boolean;
  steps?: number;
  stepDelayMs?: number;
  /** Jobs that may wait in the queue (429 beyond). */
  queueCapacity?: number;
  cloudStorage?: boolean;
  inputSavePath?: string | null;
}

/** Deterministic noise from a seed (mulberry32), so identical requests give identical pixels. */
export function noiseImage(seed: number, width: number, height: number): RgbImage {
  let a = seed >>> 0;
  const data = new Uint8Array(width * height * 3);
  for (let i = 0; i < data.length; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    data[i] = ((t ^ (t >>> 14)) >>> 0) & 0xff;
  }
  return { width, height, data };
}

interface Running { abort: AbortController; done: Promise<void> }

export class EngineDouble implements EngineApi {
  readonly jobs = new Map<string, JobRecord>();
  readonly submitted: (ImageJobParams | VideoJobParams)[] = [];
  state: Readiness = 'ready';
  readonly #listeners = new Set<{ fn: JobEventListener; jobId?: string }>();
  readonly #running = new Map<string, Running>();
  #chain: Promise<void> = Promise.resolve();
  #queued = 0;
  #active = 0;
  readonly #tempDir = mkdtempSync(join(tmpdir(), 'sgld-http-double-'));
  readonly #lora = { loaded: new Map<string, string>(), merged: null as null | { names: string[]; strengths: number[] }, lastSet: null as null | { names: string[]; strengths: number[] } };
  readonly opts: Required<EngineDoubleOptions>;

  constructor(options: EngineDoubleOptions) {
    this.opts = {
      taskType: 'T2V', supportsLora: true, steps: 4, stepDelayMs: 5, queueCapacity: 100, cloudStorage: false, inputSavePath: null,
      ...options,
    };
  }

  model(): ModelInfo {
    return {
      id: 'Test/Tiny-Model', modelPath: '/models/test-tiny', numGpus: 1, tpSize: 1, dpSize: 1, taskType: this.opts.taskType,
      ditPrecision: 'bf16', vaePrecision: 'fp32', pipelineName: 'wan_pipeline', pipelineClass: 'WanPipeline', createdAt: 1_700_000_000,
      supportsLora: this.opts.supportsLora,
      defaults: { width: 64, height: 48, numFrames: 9, fps: 16, numInferenceSteps: this.opts.steps, guidanceScale: 5, negativePrompt: 'bad' },
    };
  }

  server(): ServerInfo {
    return { version: '0.0.0-test', outputPath: this.opts.outputDir, inputSavePath: this.opts.inputSavePath, cloudStorage: this.opts.cloudStorage };
  }

  readiness(): Readiness { return this.state; }

  close(): void { rmSync(this.#tempDir, { recursive: true, force: true }); }

  // ---- events ----

  subscribe(fn: JobEventListener, filter?: { jobId?: string }): () => void {
    const entry = { fn, jobId: filter?.jobId };
    this.#listeners.add(entry);
    return () => { this.#listeners.delete(entry); };
  }

  #emit(job: JobRecord, event: Record<string, unknown> & { type: JobEvent['type'] }): void {
    const ev = { id: job.id, kind: job.kind, status: job.status, progress: job.progress, at: Date.now(), ...event } as JobEvent;
    for (const l of this.#listeners) if (!l.jobId || l.jobId === job.id) l.fn(ev);
  }

  // ---- jobs ----

  #checkSize(width: number, height: number): void {
    if (width % 16 || height % 16) throw ApiError.badRequest(`size ${width}x${height} is not supported: sides must be multiples of 16`, 'size', 'invalid_size');
  }

  #admit(): void {
    if (this.state !== 'ready') throw ApiError.unavailable();
    if (this.#queued >= this.opts.queueCapacity) throw ApiError.queueFull('The job queue is full; retry later.', 1);
  }

  #record(kind: 'image' | 'video', p: ImageJobParams | VideoJobParams, width: number, height: number, extra: Partial<JobRecord>): JobRecord {
    const job: JobRecord = {
      id: randomUUID(), kind, model: p.model ?? this.model().id, prompt: p.prompt, status: 'queued', progress: 0,
      createdAt: Math.floor(Date.now() / 1000), startedAt: null, completedAt: null, size: `${width}x${height}`,
      numFrames: 1, fps: null, seconds: null, n: p.n, format: 'png', persisted: this.opts.outputDir !== null,
      outputs: [], error: null, peakMemoryMb: null, inferenceTimeS: null, ...extra,
    };
    this.jobs.set(job.id, job);
    this.submitted.push(p);
    return job;
  }

  /** Queues `work` after the jobs before it; emits the lifecycle events around it. */
  #enqueue(job: JobRecord, work: (signal: AbortSignal) => Promise<JobOutput[]>): Promise<void> {
    const abort = new AbortController();
    this.#queued++;
    this.#emit(job, { type: 'queued', position: this.#queued - 1 });
    const done = this.#chain.then(async () => {
      this.#queued--;
      if (abort.signal.aborted) {
        job.status = 'failed';
        job.error = { code: 'cancelled', message: 'the job was cancelled' };
        this.#emit(job, { type: 'failed', error: job.error });
        this.#running.delete(job.id);
        throw new Error('cancelled');
      }
      this.#active++;
      const t0 = Date.now();
      try {
        job.status = 'in_progress';
        job.startedAt = Math.floor(t0 / 1000);
        this.#emit(job, { type: 'started' });
        const total = this.opts.steps;
        for (let step = 1; step <= total; step++) {
          await new Promise((r) => setTimeout(r, this.opts.stepDelayMs));
          if (abort.signal.aborted) throw new Error('cancelled');
          if (job.prompt.includes('FAIL') && step === 2) throw new Error('the test double was told to fail');
          job.progress = Math.max(job.progress, Math.floor((95 * step) / total));
          this.#emit(job, { type: 'step', step, total, eta: ((total - step) * this.opts.stepDelayMs) / 1000 });
        }
        this.#emit(job, { type: 'decoding' });
        this.#emit(job, { type: 'encoding' });
        job.outputs = await work(abort.signal);
        job.status = 'completed';
        job.progress = 100;
        job.completedAt = Math.floor(Date.now() / 1000);
        job.inferenceTimeS = (Date.now() - t0) / 1000;
        this.#emit(job, { type: 'completed', job: structuredClone(job) });
      } catch (err) {
        job.status = 'failed';
        job.error = abort.signal.aborted ? { code: 'cancelled', message: 'the job was cancelled' } : { code: 'generation_failed', message: (err as Error).message };
        this.#emit(job, { type: 'failed', error: job.error });
        throw err;
      } finally {
        this.#active--;
        this.#running.delete(job.id);
      }
    });
    this.#chain = done.catch(() => {});
    this.#running.set(job.id, { abort, done });
    return done;
  }

  #outputPath(job: JobRecord, i: number, ext: string): string {
    const dir = this.opts.outputDir ?? this.#tempDir;
    return join(dir, job.n > 1 ? `${job.id}_${i}.${ext}` : `${job.id}.${ext}`);
  }

  async submitImageJob(p: ImageJobParams, options: { signal?: AbortSignal } = {}): Promise<{ id: string; result: Promise<ImageResult> }> {
    const first = p.inputs[0]?.image;
    const width = p.width ?? first?.width ?? this.model().defaults.width;
    const height = p.height ?? first?.height ?? this.model().defaults.height;
    this.#checkSize(width, height);
    this.#admit();
    const job = this.#record('image', p, width, height, { format: p.format });
    const images: Uint8Array[] = [];
    const done = this.#enqueue(job, async () => {
      const outputs: JobOutput[] = [];
      for (let i = 0; i < p.n; i++) {
        const seed = Array.isArray(p.seed) ? p.seed[i]! : p.seed + i;
        const pixels = first
          ? await resizeRgb(first, width, height)
          : noiseImage(seed, width, height);
        const bytes = await encodeImage(pixels, p.format, p.level);
        const path = this.#outputPath(job, i, imageExtension(p.format));
        await writeFile(path, bytes);
        images.push(bytes);
        outputs.push({ index: i, path: this.opts.outputDir === null ? null : path, cloudUrl: null, contentType: imageContentType(p.format), bytes: bytes.byteLength, width, height });
        if (this.opts.outputDir === null) rmSync(path, { force: true });
      }
      return outputs;
    });
    options.signal?.addEventListener('abort', () => this.#running.get(job.id)?.abort.abort());
    const result = done.then((): ImageResult => ({ job: structuredClone(job), images, revisedPrompt: p.prompt }));
    result.catch(() => {});
    return { id: job.id, result };
  }

  async submitVideoJob(p: VideoJobParams): Promise<JobRecord> {
    const width = p.width ?? p.reference?.image.width ?? this.model().defaults.width;
    const height = p.height ?? p.reference?.image.height ?? this.model().defaults.height;
    this.#checkSize(width, height);
    this.#admit();
    // Wan's temporal stride: 4k+1 frames (rounded down, at least 1).
    const numFrames = Math.max(1, Math.floor((p.numFrames - 1) / 4) * 4 + 1);
    const job = this.#record('video', p, width, height, {
      format: 'mp4', numFrames, fps: p.fps, seconds: String(Math.round(numFrames / p.fps)),
    });
    const snapshot = structuredClone(job);
    this.#enqueue(job, async () => {
      const outputs: JobOutput[] = [];
      for (let i = 0; i < p.n; i++) {
        const seed = Array.isArray(p.seed) ? p.seed[i]! : p.seed + i;
        const frames = Array.from({ length: Math.min(numFrames, 5) }, (_, f) => noiseImage(seed * 31 + f, width, height));
        const path = this.#outputPath(job, i, 'mp4');
        await encodeMp4(frames, path, { fps: p.fps, level: p.level });
        outputs.push({ index: i, path, cloudUrl: null, contentType: 'video/mp4', bytes: statSync(path).size, width, height });
      }
      return outputs;
    }).catch(() => {});
    return snapshot;
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    const job = this.jobs.get(id);
    return job && structuredClone(job);
  }

  async listJobs(q: ListJobsQuery): Promise<{ data: JobRecord[]; hasMore: boolean }> {
    let all = [...this.jobs.values()].filter((j) => j.kind === q.kind);
    if (q.order === 'desc') all = all.reverse();
    let start = 0;
    if (q.after !== undefined) {
      const i = all.findIndex((j) => j.id === q.after);
      if (i < 0) return { data: [], hasMore: false };
      start = i + 1;
    }
    const data = all.slice(start, start + q.limit).map((j) => structuredClone(j));
    return { data, hasMore: start + q.limit < all.length };
  }

  async deleteJob(id: string): Promise<JobRecord | undefined> {
    const job = this.jobs.get(id);
    if (!job) return undefined;
    const before = structuredClone(job);
    this.jobs.delete(id);
    this.#running.get(id)?.abort.abort();
    for (const o of job.outputs) if (o.path) rmSync(o.path, { force: true });
    return before;
  }

  // ---- LoRA: the spec 6 rules that surface over HTTP (conflict, not set, unknown nickname) on one module ----

  async setLora(p: SetLoraParams): Promise<{ message?: string }> {
    for (const e of p.entries) {
      if (e.target === 'transformer_2' || e.target === 'critic') throw ApiError.badRequest(`This pipeline has no module "${e.target}"`, 'target', 'target_not_available');
      if (e.path === null && !this.#lora.loaded.has(e.nickname)) {
        throw ApiError.badRequest(`Adapter ${e.nickname} not found in the pipeline. Please provide lora_path to load it.`, 'lora_path', 'lora_not_loaded');
      }
    }
    const names = p.entries.map((e) => e.nickname);
    const merged = this.#lora.merged;
    if (merged && [...merged.names].sort().join() !== [...names].sort().join()) {
      throw ApiError.conflict(`LoRA '${merged.names.join(',')}' is currently merged in transformer. Call /v1/unmerge_lora_weights before setting a new LoRA.`, 'lora_already_merged');
    }
    for (const e of p.entries) if (e.path !== null) this.#lora.loaded.set(e.nickname, e.path);
    this.#lora.merged = this.#lora.lastSet = { names, strengths: p.entries.map((e) => e.strength) };
    return {};
  }

  async mergeLora(p: { target: string; strength: number }): Promise<{ message?: string }> {
    if (p.target === 'transformer_2' || p.target === 'critic') throw ApiError.badRequest(`This pipeline has no module "${p.target}"`, 'target', 'target_not_available');
    if (!this.#lora.lastSet) throw ApiError.conflict('No LoRA adapter was set on transformer; call /v1/set_lora first', 'lora_not_set');
    this.#lora.merged = { names: this.#lora.lastSet.names, strengths: this.#lora.lastSet.names.map(() => p.strength) };
    return {};
  }

  async unmergeLora(): Promise<{ message?: string }> {
    this.#lora.merged = null;
    return {};
  }

  async weightsDigest(): Promise<WeightsDigest> {
    return { ranks: [{ rank: 0, modules: {} }] }; // the HTTP front never calls it; the real engine is tested in test/api
  }

  async listLoras(): Promise<LoraListing> {
    const m = this.#lora.merged;
    return {
      loaded_adapters: [...this.#lora.loaded].map(([nickname, path]) => ({ nickname, path })),
      active: m ? {
        transformer: [{
          nickname: m.names.join(','), path: m.names.map((n) => this.#lora.loaded.get(n)).join(','),
          merged: true, mode: 'merged', strength: m.strengths[0]!, strengths: m.strengths,
        }],
      } : {},
    };
  }

  stats(): EngineStats {
    const jobsByStatus: Record<JobStatus, number> = { queued: 0, in_progress: 0, completed: 0, failed: 0 };
    for (const j of this.jobs.values()) jobsByStatus[j.status]++;
    return { queued: this.#queued, running: this.#active, jobsByStatus };
  }

  /** Resolves when every job submitted so far has finished. */
  async idle(): Promise<void> {
    await Promise.allSettled([...this.#running.values()].map((r) => r.done));
    await this.#chain;
  }
}

async function resizeRgb(img: RgbImage, width: number, height: number): Promise<RgbImage> {
  if (img.width === width && img.height === height) return img;
  const data = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 } })
    .resize(width, height, { fit: 'fill' }).raw().toBuffer();
  return { width, height, data: new Uint8Array(data) };
}
