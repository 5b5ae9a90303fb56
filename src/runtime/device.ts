// A Device is one rank's native context: the backend library, its context handle (stream, worker threads,
// caching allocator) and the compute dtype its ops use.
import { type BackendKind, type NativeLibrary, type Ptr, loadNativeLibrary } from './native.js';
import type { DType } from './dtype.js';

export interface DeviceOptions {
  backend?: BackendKind;
  /** Device index within the backend (CUDA ordinal; the CPU backend has only 0). */
  index?: number;
  /** CPU worker threads inside each op (0 = all cores). CUDA ignores it. */
  threads?: number;
  /** Storage dtype of activations; defaults to f32 on CPU and bf16 on CUDA. */
  computeDType?: DType;
}

export interface MemoryStats { inUse: number; cached: number; peak: number }

export class Device {
  readonly lib: NativeLibrary;
  readonly backend: BackendKind;
  readonly index: number;
  readonly computeDType: DType;
  #ctx: Ptr | null;

  constructor(options: DeviceOptions = {}) {
    this.backend = options.backend ?? 'cpu';
    this.index = options.index ?? 0;
    this.lib = loadNativeLibrary(this.backend);
    this.computeDType = options.computeDType ?? (this.backend === 'cpu' ? 'f32' : 'bf16');
    const out: [Ptr | null] = [null];
    this.lib.check(this.lib.fns.sgld_context_create(this.index, options.threads ?? 0, out), 'sgld_context_create');
    this.#ctx = out[0]!;
  }

  /** The native context handle; throws once the device is closed. */
  get ctx(): Ptr {
    if (this.#ctx === null) throw new Error('sgld: device used after close()');
    return this.#ctx;
  }

  get closed(): boolean { return this.#ctx === null; }

  setThreads(threads: number): void {
    this.lib.check(this.lib.fns.sgld_context_set_threads(this.ctx, threads), 'sgld_context_set_threads');
  }

  malloc(bytes: number): Ptr {
    const out: [Ptr | null] = [null];
    this.lib.check(this.lib.fns.sgld_malloc(this.ctx, Math.max(1, bytes), out), 'sgld_malloc');
    return out[0]!;
  }

  free(ptr: Ptr): void {
    this.lib.check(this.lib.fns.sgld_free(this.ctx, ptr), 'sgld_free');
  }

  upload(dst: Ptr, src: ArrayBufferView): void {
    this.lib.check(this.lib.fns.sgld_copy_to_device(this.ctx, dst, src, src.byteLength), 'sgld_copy_to_device');
  }

  download(dst: ArrayBufferView, src: Ptr): void {
    this.lib.check(this.lib.fns.sgld_copy_to_host(this.ctx, dst, src, dst.byteLength), 'sgld_copy_to_host');
  }

  synchronize(): void {
    this.lib.check(this.lib.fns.sgld_synchronize(this.ctx), 'sgld_synchronize');
  }

  memoryStats(): MemoryStats {
    const a: [bigint | number | null] = [null], b: [bigint | number | null] = [null], c: [bigint | number | null] = [null];
    this.lib.check(this.lib.fns.sgld_memory_stats(this.ctx, a, b, c), 'sgld_memory_stats');
    return { inUse: Number(a[0]), cached: Number(b[0]), peak: Number(c[0]) };
  }

  releaseCachedMemory(): void {
    this.lib.check(this.lib.fns.sgld_memory_release_cached(this.ctx), 'sgld_memory_release_cached');
  }

  close(): void {
    if (this.#ctx === null) return;
    this.lib.check(this.lib.fns.sgld_context_destroy(this.#ctx), 'sgld_context_destroy');
    this.#ctx = null;
  }
}
