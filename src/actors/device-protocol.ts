// The messages between the Supervisor (main thread) and a DeviceActor (its worker thread). They cross the thread
// boundary through the kernel's msgpack codec: plain data, typed arrays (large ones transferred), and
// SharedArrayBuffers (shared, as the cancel flag and the process groups' buffers are).
import type { RgbImage } from '../media/image.js';
import type { RankTopology } from '../parallel/topology.js';

/** One pipeline call: one output of a job. */
export interface GenerationRun {
  prompt: string;
  negativePrompt: string;
  width: number;
  height: number;
  numFrames: number;
  numInferenceSteps: number;
  guidanceScale: number;
  seed: number;
  maxSequenceLength?: number;
  /** Image-to-image: the input, already at width x height. */
  image?: RgbImage;
  strength?: number;
}

/** Test-only fault injection (honoured only by a DeviceActor started with faults allowed). */
export interface DeviceFault {
  /** `exit`: the thread exits (as a native abort would end it); `throw`: the pipeline throws (a crash). */
  kind: 'exit' | 'throw';
  /** After this denoising step (1-based) of the first run. */
  atStep: number;
}

/**
 * A generate request goes to every rank of one replica (the same cancel flag for all): they serve it together.
 * The leader (member 0 of the replica group) decides cancellation for all of them, reports progress and answers
 * with the pixels; the others answer `completed` without pixels.
 */

export type DeviceRequest =
  | {
    type: 'generate';
    jobId: string;
    runs: GenerationRun[];
    /** Int32Array(1) over it: set to 1 by the Supervisor to cancel between steps. */
    cancel: SharedArrayBuffer;
    fault?: DeviceFault;
  }
  | { type: 'lora'; op: LoraOperation }
  /** SHA-256 per LoRA-targetable module of the weights this rank holds (src/lora/weights-digest.ts). */
  | { type: 'digest' }
  /**
   * A peer rank of its replica failed: the replica restarts as a whole, so every rank rejoins its process groups
   * together. Only the incarnation named acts on it (a successor ignores a message meant for its predecessor).
   */
  | { type: 'restart'; incarnation: number };

export type LoraOperation =
  | { op: 'set'; entries: { nickname: string; path: string | null; target: string; strength: number; alpha?: number }[] }
  | { op: 'merge'; target: string; strength: number }
  | { op: 'unmerge'; target: string };

export interface GenerateReply {
  status: 'completed' | 'cancelled';
  width: number;
  height: number;
  /** Frames per run. */
  frames: number;
  /** Every run's frames, RGB uint8, [runs * frames, height, width, 3]; the replica leader's answer only. */
  pixels?: Uint8Array;
  /** Denoising wall time of all runs, seconds. */
  denoiseSeconds: number;
  /** Peak device memory of this rank so far (the allocator's high-water mark), bytes. */
  peakBytes: number;
}

/** A rank's weights digest: module name -> SHA-256 hex. */
export interface DigestReply { type: 'digest'; modules: Record<string, string> }

/** What a LoRA operation answers: the new listing, or the caller's mistake (a LoraError's status/code/param). */
export type LoraReply =
  | { ok: true; listing: import('../lora/index.js').LoraListing; warnings: string[] }
  | { ok: false; status: number; code: string; param: string | null; message: string };

/** What a DeviceActor tells its parent while it works (progress: the replica leader only). */
export type DeviceEvent =
  | { type: 'progress'; rank: number; jobId: string; run: number; runs: number; phase: 'encoding_prompt' | 'denoising' | 'decoding'; step: number; total: number; elapsed: number }
  | { type: 'loaded'; rank: number; seconds: number; pipelineClass: string };

/** How a DeviceActor is built (its constructor argument, reused on every restart). */
export interface DeviceActorSpec {
  modelPath: string;
  /** Global rank (also the CUDA device index). */
  rank: number;
  /** Its place in the layout and its process groups (shared buffers): joined after loading when its replica has several ranks. */
  topology: RankTopology;
  backend: 'cpu' | 'cuda';
  /** CPU threads inside each op (0: all cores). */
  threads: number;
  /** Polls before a shared-memory wait sleeps: 0 when the ranks outnumber the cores (RankParallel's default otherwise). */
  spin?: number;
  /** Longest wait for a peer rank in a collective, ms (RankParallel's default when absent). */
  peerTimeoutMs?: number;
  /** Honour `fault` in generate requests (tests only). */
  allowFaults: boolean;
}
