// Tensor: a typed, shaped, strided view of device memory, and the scopes that free what they allocate.
//
// Memory is owned by a Storage (one native allocation). Tensors are views of a storage (offset + strides), so
// reshape, permute, slice and transpose cost nothing. Lifetimes are explicit: a Storage is registered with the
// innermost open Scope when it is created, and freed when that scope closes unless it was kept (returned from
// `scoped` or passed to `keep`). The GC is not the allocator: nothing is freed by a finaliser.
import type { Device } from './device.js';
import { type DType, dtypeCode as codeOf, dtypeSize } from './dtype.js';
import type { Ptr } from './native.js';

export class Storage {
  #ptr: Ptr | null;
  constructor(readonly device: Device, ptr: Ptr, readonly bytes: number) { this.#ptr = ptr; }
  get ptr(): Ptr {
    if (this.#ptr === null) throw new Error('sgld: tensor used after its storage was freed');
    return this.#ptr;
  }
  get freed(): boolean { return this.#ptr === null; }
  free(): void {
    if (this.#ptr === null) return;
    if (!this.device.closed) this.device.free(this.#ptr);
    this.#ptr = null;
  }
}

/** Row-major (contiguous) strides of a shape, in elements. */
export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) { strides[i] = s; s *= shape[i]!; }
  return strides;
}

export const numelOf = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export class Tensor {
  constructor(
    readonly storage: Storage,
    readonly dtype: DType,
    readonly shape: readonly number[],
    readonly strides: readonly number[] = contiguousStrides(shape),
    /** Offset into the storage, in elements. */
    readonly offset = 0,
  ) {}

  /** Allocates an uninitialised contiguous tensor on `device`, registered with the current scope. */
  static empty(device: Device, shape: readonly number[], dtype: DType = device.computeDType): Tensor {
    for (const d of shape) if (!Number.isInteger(d) || d < 0) throw new Error(`sgld: bad tensor shape [${shape.join(', ')}]`);
    const bytes = numelOf(shape) * dtypeSize(dtype);
    const storage = new Storage(device, device.malloc(bytes), bytes);
    Scope.track(storage);
    return new Tensor(storage, dtype, [...shape]);
  }

  /** Uploads host data (Float32Array for f32, Uint16Array for f16/bf16 bits, Int32Array, BigInt64Array, Uint8Array). */
  static fromHost(device: Device, data: ArrayBufferView, shape: readonly number[], dtype: DType): Tensor {
    const t = Tensor.empty(device, shape, dtype);
    if (data.byteLength !== t.byteLength) {
      throw new Error(`sgld: ${data.byteLength} bytes given for a ${dtype} tensor of shape [${shape.join(', ')}] (${t.byteLength} bytes)`);
    }
    device.upload(t.ptr, data);
    return t;
  }

  get device(): Device { return this.storage.device; }
  get ndim(): number { return this.shape.length; }
  get numel(): number { return numelOf(this.shape); }
  get itemSize(): number { return dtypeSize(this.dtype); }
  get byteLength(): number { return this.numel * this.itemSize; }
  /** Address of element 0 of this view. */
  get ptr(): Ptr { return this.storage.ptr + BigInt(this.offset * this.itemSize); }

  get isContiguous(): boolean {
    let s = 1;
    for (let i = this.shape.length - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== s) return false;
      s *= this.shape[i]!;
    }
    return true;
  }

  dim(i: number): number {
    const d = i < 0 ? this.shape.length + i : i;
    if (d < 0 || d >= this.shape.length) throw new Error(`sgld: dim ${i} out of range for shape [${this.shape.join(', ')}]`);
    return this.shape[d]!;
  }

  toString(): string { return `Tensor(${this.dtype}, [${this.shape.join(', ')}])`; }

  /** A view with a new shape (one entry may be -1). Needs a contiguous tensor. */
  reshape(shape: readonly number[]): Tensor {
    const known = shape.filter((d) => d !== -1).reduce((a, b) => a * b, 1);
    const resolved = shape.map((d) => (d === -1 ? this.numel / known : d));
    if (numelOf(resolved) !== this.numel || resolved.some((d) => !Number.isInteger(d))) {
      throw new Error(`sgld: cannot reshape [${this.shape.join(', ')}] to [${shape.join(', ')}]`);
    }
    if (!this.isContiguous) throw new Error(`sgld: reshape of a non-contiguous ${this}; call contiguous() first`);
    return new Tensor(this.storage, this.dtype, resolved, contiguousStrides(resolved), this.offset);
  }

  /** A view with dimensions reordered (no copy). */
  permute(order: readonly number[]): Tensor {
    if (order.length !== this.ndim || [...order].sort((a, b) => a - b).some((v, i) => v !== i)) {
      throw new Error(`sgld: bad permutation [${order.join(', ')}] for ${this}`);
    }
    return new Tensor(this.storage, this.dtype, order.map((i) => this.shape[i]!), order.map((i) => this.strides[i]!), this.offset);
  }

  transpose(a: number, b: number): Tensor {
    const order = this.shape.map((_, i) => i);
    const na = a < 0 ? this.ndim + a : a, nb = b < 0 ? this.ndim + b : b;
    [order[na], order[nb]] = [order[nb]!, order[na]!];
    return this.permute(order);
  }

  /** A view of [start, end) along `dim` (no copy). */
  slice(dim: number, start: number, end: number): Tensor {
    const d = dim < 0 ? this.ndim + dim : dim;
    const size = this.shape[d]!;
    if (start < 0 || end > size || start > end) throw new Error(`sgld: slice [${start}, ${end}) out of range for dim ${d} of ${this}`);
    const shape = [...this.shape];
    shape[d] = end - start;
    return new Tensor(this.storage, this.dtype, shape, this.strides, this.offset + start * this.strides[d]!);
  }

  /** A view with a size-1 dimension inserted at `dim`. */
  unsqueeze(dim: number): Tensor {
    const d = dim < 0 ? this.ndim + 1 + dim : dim;
    const shape = [...this.shape], strides = [...this.strides];
    shape.splice(d, 0, 1);
    strides.splice(d, 0, d < this.ndim ? this.strides[d]! * this.shape[d]! : 1);
    return new Tensor(this.storage, this.dtype, shape, strides, this.offset);
  }

  /** A view broadcasting size-1 dims to `shape` with stride 0 (leading dims are added). */
  expand(shape: readonly number[]): Tensor {
    const lead = shape.length - this.ndim;
    if (lead < 0) throw new Error(`sgld: cannot expand ${this} to [${shape.join(', ')}]`);
    const strides = shape.map((size, i) => {
      if (i < lead) return 0;
      const own = this.shape[i - lead]!;
      if (own === size) return this.strides[i - lead]!;
      if (own === 1) return 0;
      throw new Error(`sgld: cannot expand ${this} to [${shape.join(', ')}]`);
    });
    return new Tensor(this.storage, this.dtype, [...shape], strides, this.offset);
  }

  /** Downloads the tensor's values as fp32 (converting f16/bf16 on the device first when needed). */
  toFloat32Array(): Float32Array {
    const src = this.dtype === 'f32' && this.isContiguous ? this : copyTo(this, 'f32');
    const out = new Float32Array(this.numel);
    this.device.download(out, src.ptr);
    if (src !== this) src.free();
    return out;
  }

  /** Downloads the raw contiguous bytes of the tensor in its own dtype. */
  toBytes(): Uint8Array {
    const src = this.isContiguous ? this : copyTo(this, this.dtype);
    const out = new Uint8Array(this.byteLength);
    this.device.download(out, src.ptr);
    if (src !== this) src.free();
    return out;
  }

  /** Frees the underlying storage now (every view of it becomes invalid). */
  free(): void { this.storage.free(); }
}

/** A contiguous copy of `src` converted to `dtype` (strided copy on the device). */
export function copyTo(src: Tensor, dtype: DType): Tensor {
  const out = Tensor.empty(src.device, src.shape, dtype);
  copyInto(out, src);
  return out;
}

/** Copies `src` into `dst` element by element (same shape; any strides; dtype conversion as needed). */
export function copyInto(dst: Tensor, src: Tensor): void {
  if (dst.shape.length !== src.shape.length || dst.shape.some((d, i) => d !== src.shape[i])) {
    throw new Error(`sgld: copy from ${src} into ${dst}: shapes differ`);
  }
  if (src.numel === 0) return;
  const { shape, a, b } = collapseForCopy(src.shape, src.strides, dst.strides);
  const { lib, ctx } = src.device;
  lib.check(lib.fns.sgld_copy_strided(ctx, shape.length, BigInt64Array.from(shape.map(BigInt)),
    codeOf(src.dtype), src.ptr, BigInt64Array.from(a.map(BigInt)),
    codeOf(dst.dtype), dst.ptr, BigInt64Array.from(b.map(BigInt))), 'sgld_copy_strided');
}

/** Merges adjacent dims that are contiguous in both operands so copies of up to 6 dims cover any rank. */
export function collapseForCopy(shape: readonly number[], sa: readonly number[], sb: readonly number[]):
  { shape: number[]; a: number[]; b: number[] } {
  const outShape: number[] = [], outA: number[] = [], outB: number[] = [];
  for (let i = 0; i < shape.length; i++) {
    if (shape[i] === 1) continue;
    const n = outShape.length;
    if (n > 0 && outA[n - 1] === sa[i]! * shape[i]! && outB[n - 1] === sb[i]! * shape[i]!) {
      outShape[n - 1]! *= shape[i]!;
      outA[n - 1] = sa[i]!;
      outB[n - 1] = sb[i]!;
    } else {
      outShape.push(shape[i]!); outA.push(sa[i]!); outB.push(sb[i]!);
    }
  }
  if (outShape.length === 0) return { shape: [1], a: [1], b: [1] };
  if (outShape.length > 6) throw new Error(`sgld: strided copy over ${outShape.length} non-mergeable dims (max 6)`);
  return { shape: outShape, a: outA, b: outB };
}

/**
 * A set of storages to free together. `scoped(fn)` opens one around fn and frees everything allocated inside
 * except what fn returns; `Scope.keep(t)` moves a tensor's storage to the enclosing scope (or out of scope
 * tracking entirely when there is none, making the caller responsible for it).
 */
export class Scope {
  static #stack: Scope[] = [];
  readonly #owned = new Set<Storage>();

  static get current(): Scope | undefined { return Scope.#stack[Scope.#stack.length - 1]; }

  static track(storage: Storage): void {
    const cur = Scope.current;
    if (cur) cur.#owned.add(storage);
  }

  /** Moves a tensor (and everything sharing its storage) out of the current scope into its parent. */
  static keep<T extends Tensor | undefined>(t: T): T {
    if (!t) return t;
    const stack = Scope.#stack;
    for (let i = stack.length - 1; i >= 0; i--) {
      if (stack[i]!.#owned.delete(t.storage)) {
        if (i > 0) stack[i - 1]!.#owned.add(t.storage);
        break;
      }
    }
    return t;
  }

  /** Removes a tensor's storage from every open scope: the caller now owns it and frees it explicitly. */
  static detach<T extends Tensor>(t: T): T {
    for (const s of Scope.#stack) s.#owned.delete(t.storage);
    return t;
  }

  static open(): Scope {
    const s = new Scope();
    Scope.#stack.push(s);
    return s;
  }

  /** Frees what this scope owns and removes it from the stack (it must be the innermost). */
  close(): void {
    const stack = Scope.#stack;
    if (stack[stack.length - 1] !== this) throw new Error('sgld: scopes must close innermost first');
    stack.pop();
    for (const s of this.#owned) s.free();
    this.#owned.clear();
  }
}

type Keepable = Tensor | Tensor[] | Record<string, Tensor> | void | undefined;

/** Runs fn in a new scope; tensors in its (sync) return value survive, everything else it allocated is freed. */
export function scoped<R extends Keepable>(fn: () => R): R {
  const scope = Scope.open();
  let result: R;
  try {
    result = fn();
    if (result instanceof Tensor) Scope.keep(result);
    else if (Array.isArray(result)) for (const t of result) Scope.keep(t);
    else if (result && typeof result === 'object') for (const t of Object.values(result)) if (t instanceof Tensor) Scope.keep(t);
  } finally {
    scope.close();
  }
  return result;
}
