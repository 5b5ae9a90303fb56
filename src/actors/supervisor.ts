// The Supervisor: the engine behind `sgld serve` and the embedding API (EngineApi of api.ts). It owns the job store,
// a bounded FIFO of work (jobs and LoRA operations, so a LoRA merge never races a generation), the device ranks
// (one DeviceActor per rank in its worker thread, supervised by the kernel, grouped into replicas), the encoder
// pool, and the progress fan-out.
//
// Flow of a job: submit (validate against the model, admit or 429, record, `queued`) -> dispatched to a free
// replica (`in_progress`, `started`): every rank of it gets the request -> step events from the replica's leader
// (`step`, monotonic progress up to 95, `decoding`) -> all ranks answer, the leader with the frames, and the
// replica takes the next item while this job is encoded (`encoding`) and written -> `completed` (progress 100) or
// `failed` with an error code. Replicas run different jobs at once. A rank crash fails only the job its replica
// was running; the kernel restarts the rank with the model reloaded, and the LoRA state is replayed into it.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ActorCrashedError, ActorStoppedError, ActorSystem, RemoteError, WorkerExitedError, consoleLogger,
  type ActorRef, type LifecycleEvent, type Logger,
} from '../kernel/index.js';
import { imageContentType, imageExtension } from '../media/image.js';
import { OutputPublisher } from '../storage/index.js';
import {
  ApiError, type EngineApi, type EngineStats, type ImageFormat, type ImageJobParams, type ImageResult, type InputImage,
  type JobError, type JobEvent, type JobEventListener, type JobKind, type JobOutput, type JobPage, type JobRecord,
  type ListJobsQuery, type LoraListing, type LoraOpResult, type ModelInfo, type Readiness, type ServerInfo,
  type SetLoraParams, type VideoJobParams, type WeightsDigest,
} from './api.js';
import type {
  DeviceActorSpec, DeviceEvent, DeviceFault, DigestReply, GenerateReply, GenerationRun, LoraOperation, LoraReply,
} from './device-protocol.js';
import { EncoderPool } from './encoder-pool.js';
import {
  DEFAULT_MAX_QUEUED_REQUESTS, EMBEDDED_MODEL_DIR, type EngineOptions,
} from './engine-options.js';
import { JobEventHub } from './job-events.js';
import { DEFAULT_LIMITS, type EngineLimits, type JobPlan, planImageJob, planVideoJob } from './job-plan.js';
import { JobStore, outputFileName } from './job-store.js';
import { type ModelProfile, readModelProfile } from './model-profile.js';
import { type ParallelLayout, checkServableLayout, describeLayout, resolveParallelLayout } from './parallel-layout.js';
import { RankGroup } from './rank-group.js';
import { type FanOutResult, type RankSlot, Replicas } from './replicas.js';

const VERSION = (JSON.parse(readFileSync(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'package.json'), 'utf8')) as { version: string }).version;

/** Progress reserved for encoding and writing: denoising fills 0..95 (spec 5.5's example). */
const DENOISE_PROGRESS = 95;

/** A job between submission and its end, with what only the engine needs. */
interface LiveJob {
  id: string;
  kind: JobKind;
  plan: JobPlan;
  format: ImageFormat | 'mp4';
  level: number;
  fps: number | null;
  /** Int32Array(1) view of the SharedArrayBuffer the device polls between steps. */
  cancel: Int32Array;
  /** Test-only: the fault and the replica member that fails. */
  fault?: DeviceFault & { member: number };
  /** Whether the terminal event (completed / failed) has been emitted. */
  ended: boolean;
  decodingReported: boolean;
  /** Image jobs: the caller's result. */
  result?: { resolve(r: ImageResult): void; reject(e: unknown): void };
}

type WorkItem =
  | { kind: 'job'; id: string }
  | { kind: 'lora'; op: LoraOperation; resolve(listing: LoraListing): void; reject(error: unknown): void };

const nowS = (): number => Math.floor(Date.now() / 1000);

export class Supervisor implements EngineApi {
  readonly profile: ModelProfile;
  readonly layout: ParallelLayout;
  readonly #options: EngineOptions;
  readonly #info: ModelInfo;
  readonly #server: ServerInfo;
  readonly #limits: EngineLimits;
  readonly #maxQueued: number;
  readonly #log: Logger;
  readonly #store: JobStore;
  readonly #events: JobEventHub;
  readonly #pool: EncoderPool;
  readonly #publisher: OutputPublisher;
  readonly #system: ActorSystem;

  #state: Readiness = 'loading';
  #loadError: Error | undefined;
  #readyWaiters: { resolve(): void; reject(e: Error): void }[] = [];
  /** The device ranks and their replicas. */
  readonly #replicas: Replicas;
  /** The in-thread parent of the ranks (stopping it stops them all). */
  #rankGroup: ActorRef | undefined;
  /** Every rank loaded the model at least once. */
  #loaded = false;
  /** Settles when the startup LoRA (if any) is merged. */
  #startup: Promise<unknown> = Promise.resolve();
  readonly #queue: WorkItem[] = [];
  /** A LoRA operation is being applied on the ranks: nothing else is dispatched meanwhile. */
  #loraRunning = false;
  readonly #live = new Map<string, LiveJob>();
  /** Encodes and writes in progress (they run while the device already works on the next item). */
  readonly #finishing = new Set<Promise<void>>();
  /** Successful LoRA operations, replayed into a restarted device. */
  readonly #loraHistory: LoraOperation[] = [];
  #loraListing: LoraListing = { loaded_adapters: [], active: {} };
  /** Running mean of job durations on the device, seconds (for Retry-After), and how many it has seen. */
  #meanJobSeconds = 0;
  #timedJobs = 0;
  #stopping: Promise<void> | undefined;

  /**
   * Reads the model's configs, checks the parallel layout and opens the job store (all synchronous, so errors
   * surface here); then starts the device rank and the encoder pool. `ready()` says when the model is loaded.
   */
  constructor(options: EngineOptions = {}) {
    this.#options = options;
    this.#log = options.logger ?? consoleLogger();
    const modelPath = options.modelPath ?? EMBEDDED_MODEL_DIR;
    this.profile = readModelProfile(resolve(modelPath));
    this.layout = resolveParallelLayout(options);
    checkServableLayout(this.layout, this.profile.family);
    this.#limits = { ...DEFAULT_LIMITS, ...options.limits };
    this.#maxQueued = options.maxQueuedRequests ?? DEFAULT_MAX_QUEUED_REQUESTS;
    if (!Number.isInteger(this.#maxQueued) || this.#maxQueued < 0) throw new Error(`sgld: max queued requests must be a non-negative integer, got ${this.#maxQueued}`);
    const backend = options.backend ?? 'cpu';
    const defaultPrecision = backend === 'cpu' ? 'fp32' : 'bf16';
    const { strength: _requestOnly, ...defaults } = this.profile.defaults;
    this.#info = {
      id: options.servedModelName || options.modelId || modelPath,
      modelPath,
      numGpus: this.layout.numGpus,
      tpSize: this.layout.tp,
      dpSize: this.layout.dp,
      taskType: this.profile.taskType,
      ditPrecision: options.ditPrecision ?? defaultPrecision,
      vaePrecision: options.vaePrecision ?? 'fp32',
      pipelineName: this.profile.pipelineName,
      pipelineClass: this.profile.pipelineClass,
      createdAt: nowS(),
      supportsLora: true,
      defaults,
    };
    const outputPath = options.outputPath === '' || options.outputPath === null ? null : resolve(options.outputPath ?? 'outputs');
    const inputSavePath = options.inputSavePath === '' || options.inputSavePath === null ? null : resolve(options.inputSavePath ?? join('inputs', 'uploads'));
    this.#publisher = new OutputPublisher(options.cloudStorage, this.#log);
    this.#server = { version: VERSION, outputPath, inputSavePath, cloudStorage: this.#publisher.enabled };
    const { store, report } = JobStore.open(outputPath);
    this.#store = store;
    if (report.interrupted.length > 0) {
      this.#log.warn('jobs cut off by the previous shutdown are marked failed (server_restarted)', { count: report.interrupted.length, ids: report.interrupted });
    }
    this.#events = new JobEventHub((error) => this.#log.error('a job event listener threw', { error }));
    this.#pool = new EncoderPool(options.encoderThreads !== undefined ? { maxThreads: options.encoderThreads } : {});
    this.#system = new ActorSystem({ logger: this.#log, askTimeoutMs: 60_000 });
    this.#replicas = new Replicas(this.layout, this.#log);
    if (options.startupLora) {
      // Queued before anything else, so the first job already runs with it (spec 6.5).
      const l = options.startupLora;
      this.#startup = this.#enqueueLora({ op: 'set', entries: [{ nickname: l.nickname ?? 'default', path: l.path, target: 'all', strength: l.scale ?? 1, ...(l.alpha !== undefined ? { alpha: l.alpha } : {}) }] })
        .catch((error: unknown) => this.#fail(new Error(`the startup LoRA ${l.path} could not be set: ${(error as Error).message}`)));
    }
    this.#startDevices(backend);
  }

  // ---- EngineApi: facts --------------------------------------------------------------------------------------------

  model(): ModelInfo { return this.#info; }
  server(): ServerInfo { return this.#server; }
  readiness(): Readiness { return this.#state; }

  /** Resolves once the model is loaded (and the startup LoRA merged); rejects if that failed. */
  ready(): Promise<void> {
    if (this.#state === 'ready') return Promise.resolve();
    if (this.#state === 'failed') return Promise.reject(this.#loadError ?? new Error('sgld: the engine failed to start'));
    if (this.#state === 'stopping') return Promise.reject(new Error('sgld: the engine is stopping'));
    return new Promise((resolve, reject) => this.#readyWaiters.push({ resolve, reject }));
  }

  /** Why the engine failed, when readiness() is `failed`. */
  get failure(): Error | undefined { return this.#loadError; }

  stats(): EngineStats {
    return {
      queued: this.#queue.filter((w) => w.kind === 'job').length,
      running: this.#replicas.running,
      jobsByStatus: this.#store.countByStatus(),
      extra: Object.fromEntries(this.#replicas.ranks.map((s) => [`device_peak_memory_bytes:${s.rank}`, s.peakBytes])),
    };
  }

  // ---- EngineApi: jobs -------------------------------------------------------------------------------------------

  async submitImageJob(params: ImageJobParams, options: { signal?: AbortSignal } = {}): Promise<{ id: string; result: Promise<ImageResult> }> {
    this.#admit();
    const plan = await planImageJob(this.profile, params, this.#limits);
    this.#admit(); // again: the resize above awaited
    const { job, live } = this.#record('image', params, plan, params.format, params.level, null);
    const result = new Promise<ImageResult>((resolve, reject) => { live.result = { resolve, reject }; });
    result.catch(() => undefined); // the caller may never await it (e.g. it went away)
    if (options.signal) {
      const cancel = (): void => this.#cancel(job.id, 'the client went away');
      if (options.signal.aborted) cancel();
      else options.signal.addEventListener('abort', cancel, { once: true });
    }
    await this.#saveInputs(job.id, params.inputs);
    return { id: job.id, result };
  }

  async submitVideoJob(params: VideoJobParams): Promise<JobRecord> {
    this.#admit();
    const plan = planVideoJob(this.profile, params, this.#limits);
    const { job, queued } = this.#record('video', params, plan, 'mp4', params.level, params.fps);
    await this.#saveInputs(job.id, params.reference ? [params.reference] : []);
    return queued;
  }

  async getJob(id: string): Promise<JobRecord | undefined> {
    const job = this.#store.get(id);
    return job && structuredClone(job);
  }

  async listJobs(query: ListJobsQuery): Promise<JobPage> {
    const page = this.#store.list(query);
    return { data: page.data.map((j) => structuredClone(j)), hasMore: page.hasMore };
  }

  async deleteJob(id: string): Promise<JobRecord | undefined> {
    const job = this.#store.get(id);
    if (!job) return undefined;
    const before = structuredClone(job);
    this.#cancel(id, 'the job was deleted');
    await this.#store.remove(id);
    return before;
  }

  subscribe(listener: JobEventListener, filter?: { jobId?: string }): () => void {
    return this.#events.subscribe(listener, filter);
  }

  /** Resolves with the job's record once it completed or failed (undefined if it is unknown or was deleted). */
  waitForJob(id: string): Promise<JobRecord | undefined> {
    const job = this.#store.get(id);
    if (!job || job.status === 'completed' || job.status === 'failed') return Promise.resolve(job && structuredClone(job));
    return new Promise((resolve) => {
      const stop = this.subscribe((e) => {
        if (e.type !== 'completed' && e.type !== 'failed') return;
        stop();
        resolve(this.getJob(id));
      }, { jobId: id });
    });
  }

  // ---- EngineApi: LoRA -------------------------------------------------------------------------------------------

  async setLora(params: SetLoraParams): Promise<LoraOpResult> {
    const mode = params.mergeMode ?? this.#options.loraMergeMode ?? 'auto';
    if (mode === 'dynamic') {
      throw ApiError.badRequest('merge_mode "dynamic" is not supported: sgld merges adapters into the weights (use "auto" or "merge")', 'merge_mode', 'unsupported_merge_mode');
    }
    await this.#enqueueLora({ op: 'set', entries: params.entries.map((e) => ({ ...e })) });
    return {};
  }

  async mergeLora(params: { target: string; strength: number }): Promise<LoraOpResult> {
    await this.#enqueueLora({ op: 'merge', target: params.target, strength: params.strength });
    return {};
  }

  async unmergeLora(params: { target: string }): Promise<LoraOpResult> {
    await this.#enqueueLora({ op: 'unmerge', target: params.target });
    return {};
  }

  /** Answered from the state after the last LoRA operation, so it never waits behind a generation. */
  async listLoras(): Promise<LoraListing> {
    return structuredClone(this.#loraListing);
  }

  async weightsDigest(): Promise<WeightsDigest> {
    // Straight to every rank's mailbox: it runs after what the rank is doing now (a job, a LoRA operation).
    const result = await this.#replicas.fanOut<DigestReply>(this.#replicas.ranks, () => ({ type: 'digest' }));
    if (result.failures.length > 0) throw new ApiError(500, `weights digest failed: ${describeError(result.failures[0]!.error)}`, { code: 'digest_failed' });
    return { ranks: result.answers.map((a, i) => ({ rank: this.#replicas.ranks[i]!.rank, modules: a.ok ? a.value.modules : {} })) };
  }

  // ---- shutdown --------------------------------------------------------------------------------------------------

  /**
   * Stops accepting work (readiness `stopping`: 503), lets queued and running jobs finish for up to
   * `drainTimeoutMs`, fails what is left (code `server_shutdown`), stops the device and the encoder pool, and
   * writes the job index. Idempotent.
   */
  stop(options: { drainTimeoutMs?: number } = {}): Promise<void> {
    this.#stopping ??= this.#stopNow(options.drainTimeoutMs ?? 30_000);
    return this.#stopping;
  }

  async #stopNow(drainTimeoutMs: number): Promise<void> {
    const wasFailed = this.#state === 'failed';
    this.#state = 'stopping';
    for (const w of this.#readyWaiters.splice(0)) w.reject(new Error('sgld: the engine is stopping'));
    if (this.#loaded && !wasFailed) await this.#drain(drainTimeoutMs); // before the load nothing was admitted
    // What is left when the drain time ran out fails now; the device stops between steps.
    for (const item of this.#queue.splice(0)) this.#abandon(item, 'server_shutdown', 'The server shut down before this job ran.');
    for (const live of [...this.#live.values()]) {
      Atomics.store(live.cancel, 0, 1);
      this.#failJob(live, 'server_shutdown', 'The server shut down while this job ran.');
    }
    await this.#system.stop();
    await Promise.allSettled([...this.#finishing]);
    await this.#pool.close();
    await this.#store.flush();
  }

  async #drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && (this.#queue.length > 0 || this.#loraRunning || this.#replicas.busy() || this.#finishing.size > 0)) {
      await new Promise((r) => setTimeout(r, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
  }

  // ---- the device ranks -----------------------------------------------------------------------------------------

  /**
   * One DeviceActor per rank, all children of one RankGroup. The ranks share this machine's cores: with several,
   * each gets max(1, floor(threads / ranks)) op threads (threads: --threads, or the core count), and shared-memory
   * waits stop spinning when the ranks outnumber the cores.
   */
  #startDevices(backend: 'cpu' | 'cuda'): void {
    const ranks = this.#replicas.ranks.length;
    const cores = availableParallelism();
    const threads = ranks === 1 ? this.#options.threads ?? 0 : Math.max(1, Math.floor((this.#options.threads || cores) / ranks));
    const specs: DeviceActorSpec[] = this.#replicas.ranks.map((slot) => ({
      modelPath: resolve(this.#info.modelPath), rank: slot.rank, topology: slot.topology, backend, threads,
      ...(ranks > cores ? { spin: 0 } : {}),
      allowFaults: (this.#options.faultInjection?.length ?? 0) > 0,
    }));
    if (ranks > 1) {
      this.#log.info(`--num-gpus ${ranks} (${describeLayout(this.layout)}): ${ranks} ${backend.toUpperCase()} ranks in ${this.layout.dp} `
        + `replica${this.layout.dp === 1 ? '' : 's'} of ${ranks / this.layout.dp}`, { ranks, replicas: this.layout.dp, threadsPerRank: threads });
    }
    const supervision = {
      restart: 'transient' as const, maxRestarts: this.#options.maxDeviceRestarts ?? 5, withinMs: 60_000,
      backoff: { initialMs: 100, maxMs: 2000 }, stopTimeoutMs: 10_000,
    };
    this.#rankGroup = this.#system.spawn('ranks', () => new RankGroup(specs, {
      spawned: (rank, device) => { this.#replicas.ranks[rank]!.ref = device; },
      event: (event) => this.#onDeviceEvent(event),
      lifecycle: (rank, event) => this.#onRankLifecycle(this.#replicas.ranks[rank]!, event),
    }, supervision), { restart: 'temporary' });
  }

  #onRankLifecycle(slot: RankSlot, event: LifecycleEvent): void {
    if (event.type === 'started') {
      this.#replicas.started(slot, event.incarnation);
      if (!slot.loadedOnce) {
        slot.loadedOnce = true;
        if (!this.#loaded && this.#replicas.ranks.every((s) => s.loadedOnce)) {
          this.#loaded = true;
          this.#log.info('model loaded', { model: this.#info.modelPath, pipeline: this.profile.pipelineClass, ranks: this.#replicas.ranks.length });
          void this.#startup.then(() => this.#markReady());
        }
      } else {
        this.#log.warn('device restarted with the model reloaded', { rank: slot.rank, incarnation: event.incarnation });
        // Its weights are the checkpoint's again: it takes work only once the LoRA history is replayed into it.
        slot.needsReplay = true;
      }
      this.#pump();
    } else if (event.type === 'crashed') {
      this.#replicas.ended(slot);
      if (!slot.loadedOnce) {
        // A model that failed to load once will fail again: no retries.
        this.#fail(new Error(`the model failed to load${this.#replicas.ranks.length > 1 ? ` on rank ${slot.rank}` : ''}: ${event.error.message}`));
        if (this.#rankGroup) void this.#system.stopActor(this.#rankGroup);
      }
    } else if (event.type === 'stopped' && this.#state !== 'stopping') {
      this.#fail(new Error(`the device${this.#replicas.ranks.length > 1 ? ` rank ${slot.rank}` : ''} stopped (${event.reason}); no job can run`));
    }
  }

  #onDeviceEvent(event: DeviceEvent): void {
    if (event.type === 'loaded') {
      this.#log.info(`pipeline loaded on rank ${event.rank}`, { seconds: Number(event.seconds.toFixed(2)), pipeline: event.pipelineClass });
      return;
    }
    if (this.#replicas.ranks[event.rank]?.member !== 0) return; // progress is the replica leader's
    const live = this.#live.get(event.jobId);
    const job = this.#store.get(event.jobId);
    if (!live || !job || live.ended) return;
    if (event.phase === 'denoising') {
      const done = event.run * event.total + event.step, all = event.runs * event.total;
      const perStep = event.step > 0 ? event.elapsed / event.step : 0;
      const progress = Math.max(job.progress, Math.floor((DENOISE_PROGRESS * done) / all));
      this.#store.update(job.id, (j) => { j.progress = progress; }, { persist: false });
      this.#emit(job, { type: 'step', step: done, total: all, eta: event.step > 0 ? perStep * (all - done) : null });
    } else if (event.phase === 'decoding' && event.run === event.runs - 1 && !live.decodingReported) {
      live.decodingReported = true;
      this.#emit(job, { type: 'decoding' });
    }
  }

  // ---- admission and records -------------------------------------------------------------------------------------

  /** Throws 503 while not ready and 429 when the queue is full. */
  #admit(): void {
    if (this.#state === 'loading') throw ApiError.unavailable('The model is still loading.', 'model_loading');
    if (this.#state === 'failed') throw ApiError.unavailable('The model failed to load.', 'model_failed');
    if (this.#state === 'stopping') throw ApiError.unavailable('The server is shutting down.', 'shutting_down');
    const queued = this.#queue.filter((w) => w.kind === 'job').length;
    if (queued >= this.#maxQueued) {
      const waitS = Math.max(1, ((queued + 1) * (this.#meanJobSeconds || 5)) / this.#replicas.count);
      throw ApiError.queueFull(`The job queue is full (${queued} jobs waiting); retry later.`, waitS);
    }
  }

  #record(kind: JobKind, params: ImageJobParams | VideoJobParams, plan: JobPlan, format: ImageFormat | 'mp4', level: number, fps: number | null) {
    const job: JobRecord = {
      id: randomUUID(), kind, model: params.model || this.#info.id, prompt: params.prompt,
      status: 'queued', progress: 0, createdAt: nowS(), startedAt: null, completedAt: null,
      size: `${plan.width}x${plan.height}`, numFrames: plan.numFrames, fps,
      seconds: fps === null ? null : String(Math.round(plan.numFrames / fps)),
      n: plan.n, format, persisted: this.#store.persisted, outputs: [], error: null, peakMemoryMb: null, inferenceTimeS: null,
    };
    const fault = this.#options.faultInjection?.find((rule) => rule.prompt === params.prompt);
    const live: LiveJob = {
      id: job.id, kind, plan, format, level, fps, cancel: new Int32Array(new SharedArrayBuffer(4)), ended: false, decodingReported: false,
      ...(fault ? { fault: { kind: fault.kind, atStep: fault.atStep ?? 1, member: fault.member ?? 0 } } : {}),
    };
    this.#store.add(job);
    this.#live.set(job.id, live);
    const queued = structuredClone(job); // as submitted: the job may start before the caller sees it
    const position = this.#queue.filter((w) => w.kind === 'job').length + this.#replicas.running;
    this.#queue.push({ kind: 'job', id: job.id });
    this.#emit(job, { type: 'queued', position });
    this.#pump();
    return { job, live, queued };
  }

  /** Saves inputs as `{job id}_{index}_{file name}` under --input-save-path (spec 3.2). */
  async #saveInputs(id: string, inputs: readonly InputImage[]): Promise<void> {
    const dir = this.#server.inputSavePath;
    if (dir === null || inputs.length === 0) return;
    try {
      await mkdir(dir, { recursive: true });
      await Promise.all(inputs.map((input, i) => {
        const name = basename(input.filename || `input_${i}`).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 128);
        return writeFile(join(dir, `${id}_${i}_${name}`), input.data);
      }));
    } catch (error) {
      this.#log.warn('could not save the inputs of a job', { job: id, error });
    }
  }

  /** Cancels a queued job at once, or asks the device to stop a running one between steps. */
  #cancel(id: string, why: string): void {
    const live = this.#live.get(id);
    if (!live || live.ended) return;
    const at = this.#queue.findIndex((w) => w.kind === 'job' && w.id === id);
    if (at >= 0) this.#queue.splice(at, 1);
    else Atomics.store(live.cancel, 0, 1); // running: the device stops before its next step
    // Its end is reported now; a late answer from the device is ignored.
    this.#failJob(live, 'cancelled', `Cancelled: ${why}.`);
  }

  // ---- the work queue --------------------------------------------------------------------------------------------

  #enqueueLora(op: LoraOperation): Promise<LoraListing> {
    if (this.#state === 'failed') return Promise.reject(ApiError.unavailable('The model failed to load.', 'model_failed'));
    if (this.#state === 'stopping') return Promise.reject(ApiError.unavailable('The server is shutting down.', 'shutting_down'));
    return new Promise((resolve, reject) => {
      this.#queue.push({ kind: 'lora', op, resolve, reject });
      this.#pump();
    });
  }

  /**
   * Dispatches what can run now, in FIFO order: jobs to free replicas (several at once with dp > 1); a LoRA
   * operation at the head waits until every replica is idle and every rank caught up, and holds everything behind
   * it. Restarted ranks replay the LoRA history first.
   */
  #pump(): void {
    if (this.#loraRunning) return;
    for (const slot of this.#replicas.ranks) {
      if (slot.alive && !slot.dying && slot.needsReplay && slot.asks === 0 && !slot.replaying) {
        void this.#replayLora(slot).catch((error: unknown) => this.#log.error('LoRA replay failed unexpectedly', { error })).finally(() => this.#pump());
      }
    }
    while (this.#queue.length > 0) {
      const head = this.#queue[0]!;
      if (head.kind === 'lora') {
        if (!this.#replicas.allIdle()) return;
        this.#queue.shift();
        this.#loraRunning = true;
        void this.#runLora(head).catch((error: unknown) => this.#log.error('LoRA operation failed unexpectedly', { error })).finally(() => {
          this.#loraRunning = false;
          this.#pump();
        });
        return;
      }
      const live = this.#live.get(head.id);
      if (!live || live.ended) {
        this.#queue.shift();
        continue;
      }
      const replica = this.#replicas.reserve(head.id);
      if (replica === undefined) return;
      this.#queue.shift();
      void this.#runJob(live, replica).catch((error: unknown) => this.#log.error('job dispatch failed unexpectedly', { error })).finally(() => {
        this.#replicas.release(replica);
        this.#pump();
      });
    }
  }

  /**
   * Applies a LoRA operation on every rank (all ranks must hold the same weights); the answer is the leader's of
   * replica 0, and ranks that disagree make the engine fail. It answers only after the jobs dispatched before it
   * have completed (encoded and written), so a client sees its effect ordered after them.
   */
  async #runLora(item: Extract<WorkItem, { kind: 'lora' }>): Promise<void> {
    const ahead = [...this.#finishing];
    const answerAfterAhead = (answer: () => void): void => void Promise.allSettled(ahead).then(answer);
    const result = await this.#replicas.fanOut<LoraReply>(this.#replicas.ranks, () => ({ type: 'lora', op: item.op }));
    const replies = result.answers.flatMap((a) => (a.ok ? [a.value] : []));
    if (replies.length === 0) {
      const error = result.failures[0]!.error;
      answerAfterAhead(() => item.reject(new ApiError(500, `The LoRA operation failed on the device: ${describeError(error)}`, { code: 'lora_failed', cause: error })));
      return;
    }
    const reply = replies[0]!; // rank 0's when it answered (ranks are in order)
    if (replies.some((r) => loraOutcome(r) !== loraOutcome(reply))) {
      const error = new Error(`the device ranks disagree after a LoRA ${item.op.op}: their weights can no longer be trusted to match`);
      this.#fail(error);
      answerAfterAhead(() => item.reject(new ApiError(500, error.message, { code: 'lora_failed' })));
      return;
    }
    if (!reply.ok) {
      answerAfterAhead(() => item.reject(new ApiError(reply.status, reply.message, { code: reply.code, param: reply.param })));
      return;
    }
    // Ranks that crashed meanwhile replay the history, this operation included.
    this.#loraHistory.push(item.op);
    this.#loraListing = reply.listing;
    for (const warning of reply.warnings) this.#log.warn('LoRA', { warning });
    answerAfterAhead(() => item.resolve(reply.listing));
  }

  /** Brings a restarted rank back to the LoRA state the others have. */
  async #replayLora(slot: RankSlot): Promise<void> {
    slot.replaying = true;
    try {
      for (const op of this.#loraHistory) {
        const { answers: [answer] } = await this.#replicas.fanOut<LoraReply>([slot], () => ({ type: 'lora', op }));
        if (!answer!.ok) return; // crashed again: it replays after its next restart
        if (!answer!.value.ok) this.#log.error('a LoRA operation could not be replayed after a device restart', { rank: slot.rank, op: op.op, message: answer!.value.message });
      }
      slot.needsReplay = false;
    } finally {
      slot.replaying = false;
    }
  }

  /**
   * Runs a job on every rank of a replica (the same request and cancel flag for all) and waits for all of them.
   * The leader's answer carries the pixels. A failed rank fails the job once; its replica restarts as a whole and
   * is free again when its ranks are all back (reloaded and caught up on the LoRA history).
   */
  async #runJob(live: LiveJob, replica: number): Promise<void> {
    const id = live.id;
    const job = this.#store.get(id);
    if (!job) return;
    const t0 = performance.now();
    this.#store.update(id, (j) => { j.status = 'in_progress'; j.startedAt = nowS(); });
    this.#emit(job, { type: 'started' });
    const slots = this.#replicas.ranksOf(replica);
    const limitMs = this.#options.jobTimeoutMs ?? 0;
    const deadline = limitMs > 0 ? setTimeout(() => {
      if (live.ended) return;
      Atomics.store(live.cancel, 0, 1); // the ranks stop before their next step; the replica is then free
      this.#failJob(live, 'job_timeout', `The job ran longer than the server's limit of ${limitMs / 1000} s (--job-timeout) and was stopped.`);
    }, limitMs) : undefined;
    const result: FanOutResult<GenerateReply> = await this.#replicas.fanOut<GenerateReply>(slots, (slot) => {
      const fault = live.fault && live.fault.member === slot.member ? { kind: live.fault.kind, atStep: live.fault.atStep } : undefined;
      return {
        type: 'generate', jobId: id, runs: slot.member === 0 ? live.plan.runs : copyRuns(live.plan.runs),
        cancel: live.cancel.buffer as SharedArrayBuffer, ...(fault ? { fault } : {}),
      };
    }).finally(() => clearTimeout(deadline));
    result.answers.forEach((a, i) => { if (a.ok) slots[i]!.peakBytes = Math.max(slots[i]!.peakBytes, a.value.peakBytes); });
    if (result.failures.length > 0) {
      const [code, message] = replicaFailure(result.failures.map((f) => f.error));
      this.#failJob(live, code, message);
      return;
    }
    const reply = (result.answers[0] as { value: GenerateReply }).value;
    this.#noteDuration((performance.now() - t0) / 1000);
    if (reply.status === 'cancelled' || live.ended) {
      this.#failJob(live, 'cancelled', 'Cancelled.');
      return;
    }
    reply.peakBytes = Math.max(...slots.map((s) => s.peakBytes));
    // The replica is free for the next item while this job's outputs are encoded and written.
    const finishing = this.#finish(live, reply).catch((error: unknown) => {
      this.#failJob(live, 'encoding_failed', `Encoding the outputs failed: ${describeError(error)}`);
    });
    this.#finishing.add(finishing);
    void finishing.finally(() => this.#finishing.delete(finishing));
  }

  async #finish(live: LiveJob, reply: GenerateReply): Promise<void> {
    const job = this.#store.get(live.id);
    if (!job || live.ended) return;
    this.#emit(job, { type: 'encoding' });
    const { width, height, frames } = reply;
    const perOutput = width * height * 3 * frames;
    const pixels = reply.pixels!;
    const outputs: JobOutput[] = [];
    const images: Uint8Array[] = [];
    const written: string[] = [];
    /** Videos of a job that persists nothing, kept only until the cloud upload has read them. */
    const uploadOnly: string[] = [];
    try {
      for (let i = 0; i < live.plan.n; i++) {
        const data = pixels.subarray(i * perOutput, (i + 1) * perOutput);
        let path: string | null = null, bytes: number, contentType: string;
        if (live.format === 'mp4') {
          contentType = 'video/mp4';
          const target = this.#store.persisted ? this.#store.outputFile(live.id, i, live.plan.n, 'mp4')
            : join(await mkdtemp(join(tmpdir(), 'sgld-video-')), outputFileName(live.id, i, live.plan.n, 'mp4'));
          const partial = `${target}.part`;
          bytes = await this.#pool.encodeVideo({ width, height, frames, data }, partial, { fps: live.fps!, level: live.level });
          if (this.#store.persisted) {
            await rename(partial, target);
            path = target;
            written.push(target);
          } else if (this.#publisher.enabled) {
            await rename(partial, target); // under its spec 7 name: the upload's key is the file name
            path = target;
            uploadOnly.push(target);
          } else {
            await rm(dirname(partial), { recursive: true, force: true });
          }
        } else {
          contentType = imageContentType(live.format);
          const encoded = await this.#pool.encodeImage({ width, height, data }, live.format, live.level);
          bytes = encoded.byteLength;
          images.push(encoded);
          if (this.#store.persisted) {
            path = this.#store.outputFile(live.id, i, live.plan.n, imageExtension(live.format));
            await writeFile(`${path}.part`, encoded);
            await rename(`${path}.part`, path);
            written.push(path);
          }
        }
        outputs.push({ index: i, path, cloudUrl: null, contentType, bytes, width, height });
      }
    } catch (error) {
      await Promise.all(written.map((p) => this.#store.deleteFile(p)));
      await Promise.all(uploadOnly.map((p) => rm(dirname(p), { recursive: true, force: true })));
      throw error;
    }
    await this.#publisher.publish(live.id, outputs, images);  // spec 7: cloud upload; never rejects
    for (const o of outputs) {
      // Persistence is off: a video the upload could not take is not kept either.
      if (o.path !== null && uploadOnly.includes(o.path)) o.path = null;
    }
    await Promise.all(uploadOnly.map((p) => rm(dirname(p), { recursive: true, force: true })));
    if (live.ended || !this.#store.get(live.id)) {
      // Deleted or cancelled while encoding: nothing of it stays.
      await Promise.all(written.map((p) => this.#store.deleteFile(p)));
      return;
    }
    const done = this.#store.update(live.id, (j) => {
      j.status = 'completed';
      j.progress = 100;
      j.completedAt = nowS();
      j.outputs = outputs;
      j.inferenceTimeS = Number(reply.denoiseSeconds.toFixed(3));
      j.peakMemoryMb = Number((reply.peakBytes / (1024 * 1024)).toFixed(1));
    })!;
    live.ended = true;
    this.#live.delete(live.id);
    const snapshot = structuredClone(done);
    this.#emit(done, { type: 'completed', job: snapshot });
    live.result?.resolve({ job: snapshot, images, revisedPrompt: done.prompt });
  }

  // ---- endings ---------------------------------------------------------------------------------------------------

  #failJob(live: LiveJob, code: string, message: string): void {
    if (live.ended) return;
    live.ended = true;
    this.#live.delete(live.id);
    const error: JobError = { code, message };
    const job = this.#store.update(live.id, (j) => { j.status = 'failed'; j.error = error; });
    const event: JobEvent = {
      type: 'failed', error, id: live.id, kind: live.kind, status: 'failed', progress: job?.progress ?? 0, at: Date.now(),
    };
    this.#events.emit(event);
    live.result?.reject(new ApiError(code === 'cancelled' ? 499 : code === 'job_timeout' ? 504 : 500, message, { code }));
  }

  /** A queued item that will never run. */
  #abandon(item: WorkItem, code: string, message: string): void {
    if (item.kind === 'job') {
      const live = this.#live.get(item.id);
      if (live) this.#failJob(live, code, message);
    } else if (item.kind === 'lora') {
      item.reject(ApiError.unavailable(message, code));
    }
  }

  /** The engine cannot serve: readiness `failed`, waiters rejected, queued work abandoned. */
  #fail(error: Error): void {
    if (this.#state === 'failed' || this.#state === 'stopping') return;
    this.#state = 'failed';
    this.#loadError = error;
    this.#log.error('the engine cannot serve', { error: error.message });
    for (const w of this.#readyWaiters.splice(0)) w.reject(error);
    for (const item of this.#queue.splice(0)) this.#abandon(item, 'model_failed', error.message);
  }

  #markReady(): void {
    if (this.#state !== 'loading') return;
    this.#state = 'ready';
    for (const w of this.#readyWaiters.splice(0)) w.resolve();
  }

  #emit(job: JobRecord, event: { type: 'queued'; position: number } | { type: 'started' } | { type: 'step'; step: number; total: number; eta: number | null }
    | { type: 'decoding' } | { type: 'encoding' } | { type: 'completed'; job: JobRecord }): void {
    this.#events.emit({ ...event, id: job.id, kind: job.kind, status: job.status, progress: job.progress, at: Date.now() } as JobEvent);
  }

  #noteDuration(seconds: number): void {
    this.#timedJobs++;
    // A mean over the last ~20 jobs: later jobs weigh more once 20 were seen.
    this.#meanJobSeconds += (seconds - this.#meanJobSeconds) / Math.min(this.#timedJobs, 20);
  }
}

/**
 * The job error of a replica whose asks failed (in the order they failed): the first rank that failed is the cause;
 * peers that then found their process groups broken only followed it.
 */
function replicaFailure(errors: readonly unknown[]): [string, string] {
  const followed = (e: unknown): boolean => e instanceof ActorCrashedError && (e.cause as { code?: string } | undefined)?.code === 'ERR_BARRIER_BROKEN';
  return deviceFailure(errors.find((e) => !followed(e)) ?? errors[0]);
}

/** What must agree between ranks after a LoRA operation: the outcome and the resulting listing. */
function loraOutcome(reply: LoraReply): string {
  return JSON.stringify(reply.ok ? reply.listing : [reply.status, reply.code, reply.param]);
}

/** The runs for one more rank: large inputs are transferred to the rank they are sent to, so each rank gets its own. */
function copyRuns(runs: readonly GenerationRun[]): GenerationRun[] {
  return runs.map((r) => (r.image ? { ...r, image: { ...r.image, data: r.image.data.slice() } } : r));
}

/** The job error of a failed device ask: a thread that died, a crash inside the pipeline, or a stopped device. */
function deviceFailure(error: unknown): [string, string] {
  const cause = error instanceof ActorCrashedError ? error.cause : error;
  if (cause instanceof WorkerExitedError) return ['device_crashed', `The device worker died while running this job (${cause.message}); it is being restarted.`];
  if (error instanceof ActorCrashedError) return ['generation_failed', `Generation failed: ${describeError(cause)}`];
  if (error instanceof ActorStoppedError) return ['device_unavailable', 'The device stopped before this job finished.'];
  return ['generation_failed', `Generation failed: ${describeError(error)}`];
}

function describeError(error: unknown): string {
  if (error instanceof RemoteError || error instanceof Error) return error.message;
  return String(error);
}
