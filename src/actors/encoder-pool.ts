// The encoder pool: PNG/JPEG/WebP (sharp) and H.264 MP4 (ffmpeg) off the main thread, on piscina worker threads.
// piscina 5.3.2's close() resolves as soon as one thread is idle and then kills tasks still running on the others
// (stack.md), so the pool keeps its in-flight tasks itself and closes by waiting for them, then destroy().
import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import type { ImageFormat, RgbImage } from '../media/image.js';
import type { ImageTask, VideoTask } from './encoder-task.js';

/** The task module: compiled .js, or its .ts under a TypeScript loader (pool threads inherit execArgv). */
const TASK_URL = new URL('./encoder-task.js', import.meta.url);

export interface EncoderPoolOptions {
  /** Most threads (default: half the cores, at least 1, at most 4). */
  maxThreads?: number;
  /** An idle thread exits after this long, ms (default 30 000). */
  idleTimeoutMs?: number;
}

export interface VideoFrames { width: number; height: number; frames: number; data: Uint8Array }

export class EncoderPool {
  readonly #pool: Piscina;
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;

  constructor(options: EncoderPoolOptions = {}) {
    const maxThreads = options.maxThreads ?? Math.min(4, Math.max(1, Math.floor(availableParallelism() / 2)));
    this.#pool = new Piscina({ filename: TASK_URL.href, minThreads: 0, maxThreads, idleTimeout: options.idleTimeoutMs ?? 30_000 });
  }

  /** Encodes RGB pixels (copied, then transferred to the thread). */
  encodeImage(img: RgbImage, format: ImageFormat, level: number): Promise<Uint8Array> {
    const data = img.data.slice();
    const task: ImageTask = { width: img.width, height: img.height, data, format, level };
    return this.#run(task, 'image', [data.buffer]) as Promise<Uint8Array>;
  }

  /** Writes `video` as an MP4 file at `path`; resolves with the file size. */
  encodeVideo(video: VideoFrames, path: string, options: { fps: number; level: number }): Promise<number> {
    const data = video.data.slice();
    const task: VideoTask = { ...video, data, path, fps: options.fps, level: options.level };
    return this.#run(task, 'video', [data.buffer]) as Promise<number>;
  }

  /** Waits for every task in flight, then ends the threads. Later calls are refused. */
  async close(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#inflight]);
    await this.#pool.destroy();
  }

  #run(task: ImageTask | VideoTask, name: string, transferList: ArrayBuffer[]): Promise<unknown> {
    if (this.#closed) return Promise.reject(new Error('sgld: the encoder pool is closed'));
    const promise = this.#pool.run(task, { name, transferList });
    this.#inflight.add(promise);
    // The bookkeeping promise never rejects, so nothing is left unhandled here; callers handle `promise`.
    void promise.then(() => this.#inflight.delete(promise), () => this.#inflight.delete(promise));
    return promise;
  }
}
