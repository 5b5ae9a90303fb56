// Moving checkpoint tensors onto a device: read the bytes as stored (bf16/fp16/fp32), upload them, and convert
// to the compute dtype on the device (native code), so a bf16 checkpoint never round-trips through JS floats.
import type { Device } from '../runtime/device.js';
import { type DType, dtypeFromSafetensors, isFloatDType } from '../runtime/dtype.js';
import { Scope, Tensor, copyTo } from '../runtime/tensor.js';

/** What the loaders need from a checkpoint: a single safetensors file or a sharded set (src/checkpoint/). */
export interface WeightSource {
  has(name: string): boolean;
  /** `expectedShape` is what the model asks for; synthetic sources (RandomWeightSource) answer with it. */
  info(name: string, expectedShape?: readonly number[]): { dtype: string; shape: number[]; file?: string };
  readRaw(name: string, into?: Uint8Array): Uint8Array;
}

export interface LoadOptions {
  /** Target dtype for float tensors (default: the device's compute dtype). Integer tensors keep theirs. */
  dtype?: DType;
  /** Expected shape; a mismatch throws naming the file and tensor. */
  shape?: readonly number[];
}

/** A human-readable place for error messages. */
function where(source: WeightSource, name: string): string {
  try {
    const file = source.info(name).file;
    return file ? `${name} (in ${file})` : name;
  } catch {
    return name;
  }
}

/**
 * Loads one tensor onto `device`. The result is NOT tracked by the current scope: weights live as long as
 * their model, which frees them explicitly.
 */
export function loadWeight(device: Device, source: WeightSource, name: string, opts: LoadOptions = {}): Tensor {
  if (!source.has(name)) throw new Error(`sgld: checkpoint tensor ${name} is missing`);
  const info = source.info(name, opts.shape);
  if (opts.shape && (info.shape.length !== opts.shape.length || info.shape.some((d, i) => d !== opts.shape![i]))) {
    throw new Error(`sgld: checkpoint tensor ${where(source, name)} has shape [${info.shape.join(', ')}], expected [${opts.shape.join(', ')}]`);
  }
  const stored = dtypeFromSafetensors(info.dtype);
  const target = isFloatDType(stored) ? (opts.dtype ?? device.computeDType) : stored;
  const scope = Scope.open();
  try {
    const raw = source.readRaw(name);
    const onDevice = Tensor.fromHost(device, raw, info.shape, stored);
    const result = stored === target ? onDevice : copyTo(onDevice, target);
    return Scope.detach(result);
  } finally {
    scope.close();
  }
}

/**
 * A module's weights by checkpoint key, all on one device; `free()` releases them. Models keep one of these and
 * read their parameters from it, so LoRA merging and offloading can find every tensor by its checkpoint name.
 */
export class WeightStore {
  readonly tensors = new Map<string, Tensor>();
  constructor(readonly device: Device, readonly source: WeightSource, readonly prefix = '', readonly dtype?: DType) {}

  /** Loads (once) the tensor `prefix + name`. */
  get(name: string, shape?: readonly number[]): Tensor {
    const key = this.prefix + name;
    let t = this.tensors.get(key);
    if (!t) {
      t = loadWeight(this.device, this.source, key, { shape, dtype: this.dtype });
      this.tensors.set(key, t);
    }
    return t;
  }

  /** Like get() but returns undefined when the checkpoint does not have the tensor. */
  maybe(name: string, shape?: readonly number[]): Tensor | undefined {
    return this.source.has(this.prefix + name) ? this.get(name, shape) : undefined;
  }

  free(): void {
    for (const t of this.tensors.values()) t.free();
    this.tensors.clear();
  }
}
