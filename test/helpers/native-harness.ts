// Shared helpers for op tests against the native library: a Device whose allocations are freed on close,
// deterministic random inputs, upload/download of Float32Arrays, stride arrays and error measures.
import { Device } from '../../src/runtime/device.js';
import type { NativeLibrary, Ptr } from '../../src/runtime/native.js';

/** A Device plus the device buffers a test allocated through it; close() frees them all and the context. */
export class NativeHarness {
  readonly device: Device;
  readonly #owned = new Set<Ptr>();

  constructor(options: { threads?: number } = {}) {
    this.device = new Device({ backend: 'cpu', threads: options.threads ?? 1 });
  }

  get lib(): NativeLibrary { return this.device.lib; }
  get ctx(): Ptr { return this.device.ctx; }

  /** Throws a NativeError (with sgld_last_error's message) unless status is OK. */
  check(status: number, fn: string): void { this.device.lib.check(status, fn); }

  /** A device buffer of `count` fp32 values, uninitialised. */
  alloc(count: number): Ptr {
    const ptr = this.device.malloc(Math.max(1, count) * 4);
    this.#owned.add(ptr);
    return ptr;
  }

  /** Copies `data` into a new device buffer. */
  upload(data: Float32Array): Ptr {
    const ptr = this.alloc(data.length);
    if (data.length > 0) this.device.upload(ptr, data);
    return ptr;
  }

  /** Reads `count` fp32 values from a device buffer. */
  download(ptr: Ptr, count: number): Float32Array {
    const out = new Float32Array(count);
    if (count > 0) this.device.download(out, ptr);
    return out;
  }

  free(ptr: Ptr): void {
    if (this.#owned.delete(ptr)) this.device.free(ptr);
  }

  close(): void {
    if (this.device.closed) return;
    for (const ptr of this.#owned) this.device.free(ptr);
    this.#owned.clear();
    this.device.close();
  }
}

/** Deterministic uniform values in [-scale, scale) from a 32-bit seed (mulberry32), so failures reproduce. */
export function randomFloats(count: number, seed: number, scale = 1): Float32Array {
  const out = new Float32Array(count);
  let s = seed >>> 0;
  for (let i = 0; i < count; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (2 * u - 1) * scale;
  }
  return out;
}

/** int64 arrays (shapes, strides) as the binding takes them. */
export const i64 = (...values: number[]): BigInt64Array => BigInt64Array.from(values.map((v) => BigInt(v)));
export const i32 = (...values: number[]): Int32Array => Int32Array.from(values);

/** max |actual - expected| over all elements (NaN if the lengths differ or any value is NaN). */
export function maxAbsError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return NaN;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!);
    if (Number.isNaN(d)) return NaN;
    if (d > worst) worst = d;
  }
  return worst;
}

/** max |actual - expected| / max(|expected|, floor): relative error that tolerates values near zero. */
export function maxRelError(actual: ArrayLike<number>, expected: ArrayLike<number>, floor = 1): number {
  if (actual.length !== expected.length) return NaN;
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const d = Math.abs(actual[i]! - expected[i]!) / Math.max(Math.abs(expected[i]!), floor);
    if (Number.isNaN(d)) return NaN;
    if (d > worst) worst = d;
  }
  return worst;
}
