// The contract between the HTTP front (src/http/) and the engine (the Supervisor actor and what it owns: job queue,
// job store with its on-disk index, device actors, encoder pool, LoRA manager). The HTTP layer parses and
// validates wire requests (docs: /work/shared/spec/http-api.md) into the normalised parameters below and calls an
// `EngineApi`; the engine never sees wire names or HTTP objects, and the HTTP layer never sees tensors.
//
// Division of labour:
// - HTTP: types and ranges of every field (400 / 422), defaults that do not depend on the model (n = 1,
//   seed = 1024, fps = 24, seconds = 4), output format and quality level (spec 4), decoding of input images,
//   `url` vs `b64_json`, response shapes, content streaming, auth, metrics, WebSocket fan-out.
// - Engine: everything that depends on the model (allowed sizes, frame rounding, model defaults for steps /
//   guidance / negative prompt / size), admission (queue full, loading), running, encoding and writing outputs,
//   the job records and their persistence, LoRA state.
//
// Job records are plain JSON-serialisable data (the engine persists them as they are). Errors a caller can see
// are `ApiError`s; the engine throws them for the situations it detects (queue full 429, bad size 400, LoRA
// conflict 409, ...). Anything else it throws becomes a 500 `server_error`.
import type { RgbImage } from '../media/image.js';

// ---- errors -----------------------------------------------------------------------------------------------------

/** OpenAI error types (spec 1.4), plus `rate_limit_error` for 429 (what the OpenAI API itself uses). */
export type ApiErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error';

export interface ApiErrorOptions {
  /** Defaults from the status: 401 authentication_error, 403 permission_error, 404 not_found_error,
   *  429 rate_limit_error, 5xx server_error, every other 4xx invalid_request_error. */
  type?: ApiErrorType;
  /** The request field at fault, by its wire name (`size`, `n`, `image`, `lora_nickname`); null if none. */
  param?: string | null;
  /** Stable machine code (`invalid_size`, `video_not_found`, `lora_already_merged`, ...); null if none. */
  code?: string | null;
  /** Extra response headers (e.g. `Retry-After` on 429/503). */
  headers?: Record<string, string>;
  cause?: unknown;
}

export function defaultErrorType(status: number): ApiErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

/**
 * An error a client may see. The HTTP layer renders every one as the envelope of spec 1.4:
 * `{"error":{message,type,param,code},"detail":message}` with `status`.
 */
export class ApiError extends Error {
  readonly type: ApiErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(readonly status: number, message: string, options: ApiErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ApiError';
    this.type = options.type ?? defaultErrorType(status);
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  /** 400: semantically invalid input (the engine's model-specific checks: size, task, LoRA target, ...). */
  static badRequest(message: string, param: string | null = null, code: string | null = null): ApiError {
    return new ApiError(400, message, { param, code });
  }
  /** 404: unknown id or an output that is not there. */
  static notFound(message: string, code: string | null = null, param: string | null = null): ApiError {
    return new ApiError(404, message, { param, code });
  }
  /** 409: state conflict (LoRA). */
  static conflict(message: string, code: string | null = null, param: string | null = null): ApiError {
    return new ApiError(409, message, { param, code });
  }
  /** 429: the job queue is full; `retryAfterS` becomes a Retry-After header. */
  static queueFull(message = 'The job queue is full; retry later.', retryAfterS?: number): ApiError {
    return new ApiError(429, message, {
      code: 'queue_full',
      headers: retryAfterS === undefined ? {} : { 'Retry-After': String(Math.ceil(retryAfterS)) },
    });
  }
  /** 503: the model is still loading (or the engine is shutting down). */
  static unavailable(message = 'The model is still loading.', code = 'model_loading'): ApiError {
    return new ApiError(503, message, { code });
  }
}

// ---- model and server ---------------------------------------------------------------------------------------------

/** Task types of spec 2.2 (the ones sgld's pipelines can have). */
export type TaskType = 'T2V' | 'I2V' | 'TI2V' | 'T2I' | 'I2I' | 'TI2I';
export type Precision = 'bf16' | 'fp16' | 'fp32';
export type ImageFormat = 'png' | 'jpeg' | 'webp';

/** What the engine serves: feeds /models, /v1/models, /model_info, /server_info and the HTTP defaults. */
export interface ModelInfo {
  /** Served model name: --served-model-name, else --model-id, else --model-path (spec 2.3). */
  id: string;
  /** --model-path as given. */
  modelPath: string;
  numGpus: number;
  tpSize: number;
  dpSize: number;
  taskType: TaskType;
  ditPrecision: Precision;
  vaePrecision: Precision;
  /** e.g. `wan_pipeline`; absent when unknown. */
  pipelineName?: string;
  /** e.g. `WanPipeline`; absent when unknown. */
  pipelineClass?: string;
  /** Epoch seconds when the model card was built (spec 2.3 `created`). */
  createdAt: number;
  /** Whether the pipeline accepts LoRA operations (else LoRA routes answer 400 lora_not_supported). */
  supportsLora: boolean;
  /** Model defaults (spec 5.2 examples); informational for the HTTP layer except where noted. */
  defaults: {
    width: number;
    height: number;
    numFrames: number;
    fps: number;
    numInferenceSteps: number;
    guidanceScale: number;
    /** null: the model has no negative prompt (FLUX, Z-Image). */
    negativePrompt: string | null;
    /** Image format when the request names none (spec 4.1 step 2); absent: the generic JPEG default. */
    imageFormat?: ImageFormat;
  };
}

/** Server-level facts the HTTP layer needs. */
export interface ServerInfo {
  /** sgld's version (package.json). */
  version: string;
  /** Absolute --output-path, or null when persistence is disabled (`--output-path ""`, spec 7). */
  outputPath: string | null;
  /** Absolute --input-save-path, or null when disabled. JSON `input_reference` paths must lie inside it. */
  inputSavePath: string | null;
  /** True when cloud storage (spec 7) is configured, so `url` responses work without persistence. */
  cloudStorage: boolean;
}

export type Readiness = 'loading' | 'ready' | 'failed' | 'stopping';

// ---- jobs --------------------------------------------------------------------------------------------------------

export type JobKind = 'image' | 'video';
/** The only states a stored job has (spec 5.5). */
export type JobStatus = 'queued' | 'in_progress' | 'completed' | 'failed';

export interface JobError {
  /** `generation_failed`, `server_restarted`, `cancelled`, ... */
  code: string;
  message: string;
}

/** One output file of a job (index = the `variant` of content routes). */
export interface JobOutput {
  index: number;
  /** Absolute path while the file is on local disk; null when not persisted or removed after a cloud upload. */
  path: string | null;
  /** The cloud URL after a successful upload (spec 7), else null. */
  cloudUrl: string | null;
  /** `image/png`, `image/jpeg`, `image/webp`, `video/mp4`. */
  contentType: string;
  /** File size in bytes. */
  bytes: number;
  width: number;
  height: number;
}

/** A job as the engine stores it (and persists in its on-disk index). Times are epoch seconds. */
export interface JobRecord {
  id: string;
  kind: JobKind;
  /** Request `model`, else the served model name. */
  model: string;
  prompt: string;
  status: JobStatus;
  /** 0..100, never decreases; 100 exactly when completed; a failed job keeps its last value. */
  progress: number;
  createdAt: number;
  startedAt: number | null;
  completedAt: number | null;
  /** Final `WxH` actually used (after model defaults), known from submission on. */
  size: string;
  /** Final frame count (1 for images). */
  numFrames: number;
  /** Output frame rate (videos), null for images. */
  fps: number | null;
  /** `String(round(numFrames / fps))` for videos (spec 5.2), null for images. */
  seconds: string | null;
  /** Outputs requested. */
  n: number;
  /** `png` / `jpeg` / `webp` / `mp4`. */
  format: ImageFormat | 'mp4';
  /** False when outputs are not persisted (`--output-path ""`): content routes then answer 404. */
  persisted: boolean;
  /** Filled when the job completes, in output order (length n). */
  outputs: JobOutput[];
  error: JobError | null;
  peakMemoryMb: number | null;
  inferenceTimeS: number | null;
}

/** An input image (edits inputs, image-to-video reference), decoded by the HTTP layer before submission. */
export interface InputImage {
  /** The bytes as received (saved under --input-save-path as `{job id}_{index}_{filename}`). */
  data: Uint8Array;
  /** Original file name (a URL input gets a name like `url_0.png`). */
  filename: string;
  contentType: string;
  /** Decoded pixels (alpha flattened onto white). */
  image: RgbImage;
  source: 'upload' | 'url' | 'path';
}

/** Options shared by image and video jobs. Absent optional fields mean "the model's default". */
export interface GenerationParams {
  prompt: string;
  /** undefined: model default; null: explicitly none. */
  negativePrompt?: string | null;
  /** Request `model` (echoed in the job record), not checked against the served name. */
  model?: string;
  /** 1..10. */
  n: number;
  /** Explicit output size; absent: model default (edits: the pipeline decides, usually from the input). */
  width?: number;
  height?: number;
  /** One seed for the whole job, or one per output (then length n). Default 1024 applied by HTTP. */
  seed: number | number[];
  /** Device whose RNG draws the initial noise (spec 3.1). */
  generatorDevice: 'cuda' | 'cpu';
  numInferenceSteps?: number;
  guidanceScale?: number;
  trueCfgScale?: number;
  maxSequenceLength?: number;
  flowShift?: number;
  enableTeacache: boolean;
}

export interface ImageJobParams extends GenerationParams {
  /** Fully resolved file format (spec 4.1, using ModelInfo.defaults.imageFormat). */
  format: ImageFormat;
  /** 0..100 quality level (spec 4.2, already resolved from output_quality / output_compression). */
  level: number;
  /** OpenAI's `quality` field, passed to the model if it defines one. */
  quality?: string;
  /** Edits: input images in order (files, then URLs). Empty for generations. */
  inputs: InputImage[];
  /** Edits: image-to-image strength when the model uses it. */
  strength?: number;
  /** Edits extension (spec 3.2 `num_frames`, default 1). */
  numFrames?: number;
}

export interface VideoJobParams extends GenerationParams {
  /** Output frame rate (request fps, else 24). */
  fps: number;
  /** Requested frame count: request num_frames, else fps * seconds (spec 5.2); the model may round it. */
  numFrames: number;
  /** Second expert's guidance (Wan2.2 MoE). */
  guidanceScale2?: number;
  /** 0..100 quality level (spec 4.2; default 50 for videos). */
  level: number;
  /** Image-to-video conditioning image. */
  reference?: InputImage;
}

export interface ImageResult {
  /** The completed job (status completed, outputs filled). */
  job: JobRecord;
  /** The encoded file bytes of each output, in order (read before any cloud upload: b64_json always works). */
  images: Uint8Array[];
  /** The prompt actually used. */
  revisedPrompt: string;
  /** Only for models that count tokens. */
  usage?: Record<string, number> | null;
}

export interface ListJobsQuery {
  kind: JobKind;
  /** Job id; items strictly after it in `order`. An unknown id gives an empty page. */
  after?: string;
  /** 1..100. */
  limit: number;
  /** By createdAt (ties by submission order). */
  order: 'asc' | 'desc';
}

export interface JobPage {
  data: JobRecord[];
  hasMore: boolean;
}

// ---- progress events ---------------------------------------------------------------------------------------------

interface JobEventBase {
  id: string;
  kind: JobKind;
  /** The job's status and progress after this event. */
  status: JobStatus;
  progress: number;
  /** Epoch milliseconds when the event happened. */
  at: number;
}

/**
 * What a job reports, in this order: queued, started, step (one per denoising step), decoding, encoding,
 * then exactly one of completed / failed. A cancelled (deleted) job ends with failed, error.code `cancelled`.
 */
export type JobEvent =
  | (JobEventBase & { type: 'queued'; /** Jobs ahead of it. */ position: number })
  | (JobEventBase & { type: 'started' })
  | (JobEventBase & { type: 'step'; step: number; total: number; /** Seconds left in denoising. */ eta: number | null })
  | (JobEventBase & { type: 'decoding' })
  | (JobEventBase & { type: 'encoding' })
  | (JobEventBase & { type: 'completed'; job: JobRecord })
  | (JobEventBase & { type: 'failed'; error: JobError });

export type JobEventListener = (event: JobEvent) => void;

// ---- LoRA (spec 6) -------------------------------------------------------------------------------------------------

/** One adapter of a set_lora request after HTTP normalisation (lists broadcast, lengths checked). */
export interface LoraSetEntry {
  nickname: string;
  /** null: reuse the cached adapter. */
  path: string | null;
  /** One of transformer / transformer_2 / critic / all (checked by HTTP; the engine checks existence). */
  target: string;
  strength: number;
  alpha?: number;
}

export interface SetLoraParams {
  entries: LoraSetEntry[];
  /** undefined: the server's --lora-merge-mode. */
  mergeMode?: 'auto' | 'merge' | 'dynamic';
}

/** `GET /v1/list_loras` body (spec 6.4). */
export interface LoraListing {
  loaded_adapters: { nickname: string; path: string }[];
  active: Record<string, {
    nickname: string; path: string; merged: boolean; mode: 'merged' | 'unmerged'; strength: number; strengths?: number[];
  }[]>;
}

/** What a LoRA mutator reports; `message` overrides the HTTP layer's default success text. */
export interface LoraOpResult { message?: string }

// ---- metrics -----------------------------------------------------------------------------------------------------

/** Gauges the engine can report at scrape time (histograms are derived by HTTP from job events). */
export interface EngineStats {
  queued: number;
  running: number;
  /** Jobs in the store by status. */
  jobsByStatus: Record<JobStatus, number>;
  /** Extra numeric gauges (e.g. `device_memory_bytes{device="0"}` as key `device_memory_bytes:0`). */
  extra?: Record<string, number>;
}

// ---- the engine ----------------------------------------------------------------------------------------------------

/** Per rank (in rank order): module name -> SHA-256 hex of its weights. */
export interface WeightsDigest { ranks: { rank: number; modules: Record<string, string> }[] }

export interface EngineApi {
  /** Sync: model facts (valid from construction on, even while loading). */
  model(): ModelInfo;
  server(): ServerInfo;
  readiness(): Readiness;

  /**
   * Validates (model-specific checks: size, task type, ...), records and queues an image job. Throws ApiError
   * before recording anything if the request is refused (400 size, 429 queue full, 503 loading). `id` is known
   * at once; `result` resolves when every output is written, or rejects (ApiError, or any error -> 500
   * generation_failed). Aborting `signal` (client went away) cancels the job.
   */
  submitImageJob(params: ImageJobParams, options?: { signal?: AbortSignal }): Promise<{ id: string; result: Promise<ImageResult> }>;

  /** Validates, records and queues a video job; resolves with the record (status queued, progress 0). */
  submitVideoJob(params: VideoJobParams): Promise<JobRecord>;

  /** The job, or undefined when unknown (or deleted). */
  getJob(id: string): Promise<JobRecord | undefined>;
  listJobs(query: ListJobsQuery): Promise<JobPage>;
  /**
   * Cancels a queued / running job, removes its record (and MAY delete its files). Resolves with the record as it
   * was before removal, or undefined when unknown.
   */
  deleteJob(id: string): Promise<JobRecord | undefined>;

  /**
   * Every job event (or only `jobId`'s). Returns the unsubscribe function. Listeners must not throw; they are
   * called synchronously in event order.
   */
  subscribe(listener: JobEventListener, filter?: { jobId?: string }): () => void;

  setLora(params: SetLoraParams): Promise<LoraOpResult>;
  mergeLora(params: { target: string; strength: number }): Promise<LoraOpResult>;
  unmergeLora(params: { target: string }): Promise<LoraOpResult>;
  listLoras(): Promise<LoraListing>;
  /**
   * SHA-256 of the weights LoRA can change, per rank and module (e.g. `transformer`): equal digests mean
   * bit-identical weights, so a caller can check that an unmerge restored the base and that every rank agrees.
   * Reads every weight back from the device: a diagnostic, ordered after the LoRA operations answered before it.
   */
  weightsDigest(): Promise<WeightsDigest>;

  stats(): EngineStats;
}
