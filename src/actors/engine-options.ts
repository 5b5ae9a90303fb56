// How an engine is configured (the embedding API and `sgld serve` build the same object), with its defaults.
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../kernel/index.js';
import type { S3StorageConfig } from '../storage/index.js';
import type { Precision } from './api.js';
import type { DeviceFault } from './device-protocol.js';
import type { EngineLimits } from './job-plan.js';
import type { ParallelFlags } from './parallel-layout.js';

/** The embedded default model shipped in the package (tiny, random weights: its pictures are noise). */
export const EMBEDDED_MODEL_DIR = resolve(join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'models', 'wan-tiny'));

export interface StartupLora {
  path: string;
  /** Default `default` (spec 6.5). */
  nickname?: string;
  /** Default 1.0. */
  scale?: number;
  alpha?: number;
}

export interface EngineOptions extends ParallelFlags {
  /** Diffusers folder (model_index.json); default: the embedded tiny model. */
  modelPath?: string;
  modelId?: string;
  servedModelName?: string;
  /** Output directory (default `outputs/`); null or '' disables persistence (spec 7). */
  outputPath?: string | null;
  /** Where uploaded inputs are saved (default `inputs/uploads`); null or '' disables. */
  inputSavePath?: string | null;
  /** Cloud storage for outputs (spec 7). Absent: from SGLang's SGLANG_* environment variables; null: none. */
  cloudStorage?: S3StorageConfig | null;
  /** Compute backend of the device ranks (default `cpu`). */
  backend?: 'cpu' | 'cuda';
  /**
   * CPU threads inside each op (default 0: all cores). With several ranks they share them: each rank gets
   * max(1, floor(threads / ranks)), threads being this value or the core count.
   */
  threads?: number;
  ditPrecision?: Precision;
  vaePrecision?: Precision;
  /** Jobs that may wait (not counting running ones) before submissions get 429 (default 64). */
  maxQueuedRequests?: number;
  limits?: Partial<EngineLimits>;
  /** Threads of the encoder pool (default: half the cores, 1..4). */
  encoderThreads?: number;
  /** LoRA merged before the engine reports ready (spec 6.5). */
  startupLora?: StartupLora;
  /** The server's default merge mode (--lora-merge-mode). */
  loraMergeMode?: 'auto' | 'merge' | 'dynamic';
  /**
   * Longest a job may run on the device, ms (default 0: no limit). A job past it is stopped between two steps and
   * fails with code `job_timeout` (an image request waiting for it gets 504).
   */
  jobTimeoutMs?: number;
  /** Device restarts allowed within a minute before the engine gives up (default 5). */
  maxDeviceRestarts?: number;
  /** Where the kernel's and the engine's structured logs go (default: JSON lines on stderr). */
  logger?: Logger;
  /**
   * Test-only fault injection: a job whose prompt is exactly a rule's `prompt` makes one DeviceActor of its replica
   * (member `member`, default 0: the leader) fail the rule's way after denoising step `atStep` (default 1) of its
   * first output. Without rules the devices ignore faults.
   */
  faultInjection?: FaultRule[];
}

export interface FaultRule { prompt: string; kind: DeviceFault['kind']; atStep?: number; member?: number }

export const DEFAULT_MAX_QUEUED_REQUESTS = 64;
