// Element types of the safetensors format and their conversion to float32.
// Files are little-endian; typed arrays use the host order, so the host must be little-endian too.
import { endianness } from 'node:os';

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<SafetensorsDType, number>> = {
  F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1,
};

export function isSafetensorsDType(s: unknown): s is SafetensorsDType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_BYTES, s);
}

export const isFloatDType = (d: SafetensorsDType): boolean => d === 'F64' || d === 'F32' || d === 'F16' || d === 'BF16';

if (endianness() !== 'LE') {
  throw new Error('sgld checkpoint reader: safetensors data is little-endian and this host is big-endian');
}

/** Number of elements of a shape (1 for a scalar, shape []). */
export function numelOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// Every one of the 65536 half-precision bit patterns maps to exactly one float32, so a table is both exact
// and the fastest conversion. Built on first use (256 KiB).
let f16Table: Float32Array | undefined;

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >> 10) & 0x1f;
    const frac = h & 0x3ff;
    let v: number;
    if (exp === 0) v = frac * 2 ** -24; // zero and subnormals: frac * 2^-14 / 1024
    else if (exp === 31) v = frac === 0 ? Infinity : NaN;
    else v = (1 + frac / 1024) * 2 ** (exp - 15);
    table[h] = sign * v;
  }
  // Keep NaN payloads bit-exact (float32 quiet NaN with the half payload shifted up), like a hardware cvt.
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    if (((h >> 10) & 0x1f) === 31 && (h & 0x3ff) !== 0) {
      bits[h] = ((h & 0x8000) << 16) | 0x7f800000 | ((h & 0x3ff) << 13) | 0x400000;
    }
  }
  return table;
}

/** Exact half -> float32 of `n` elements. */
export function f16ToF32(src: Uint16Array, dst: Float32Array, dstOffset = 0): void {
  const table = (f16Table ??= buildF16Table());
  for (let i = 0; i < src.length; i++) dst[dstOffset + i] = table[src[i]!]!;
}

/** Exact bfloat16 -> float32: a bf16 is the upper half of a float32. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array, dstOffset = 0): void {
  const out = new Uint32Array(dst.buffer, dst.byteOffset + dstOffset * 4, src.length);
  for (let i = 0; i < src.length; i++) out[i] = src[i]! << 16;
}

// Typed-array views need element-aligned offsets; the readers convert out of aligned scratch buffers.
function assertAligned(dtype: SafetensorsDType, byteOffset: number): void {
  if (byteOffset % DTYPE_BYTES[dtype] !== 0) throw new Error(`internal: unaligned ${dtype} conversion buffer`);
}

/**
 * Converts `bytes` (whole elements of `dtype`, little-endian) to float32 into dst[dstOffset...].
 * F64 and 64-bit integers round to nearest float32; the 16-bit floats and small integers are exact.
 */
export function convertToF32(dtype: SafetensorsDType, bytes: Uint8Array, dst: Float32Array, dstOffset: number): void {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const buf = bytes.buffer as ArrayBuffer;
  const off = bytes.byteOffset;
  assertAligned(dtype, off);
  switch (dtype) {
    case 'F32': dst.set(new Float32Array(buf, off, n), dstOffset); return;
    case 'F16': f16ToF32(new Uint16Array(buf, off, n), dst, dstOffset); return;
    case 'BF16': bf16ToF32(new Uint16Array(buf, off, n), dst, dstOffset); return;
    case 'F64': dst.set(new Float64Array(buf, off, n), dstOffset); return; // set() rounds to nearest
    case 'I32': dst.set(new Int32Array(buf, off, n), dstOffset); return;
    case 'I16': dst.set(new Int16Array(buf, off, n), dstOffset); return;
    case 'I8': dst.set(new Int8Array(buf, off, n), dstOffset); return;
    case 'U8': case 'BOOL': dst.set(new Uint8Array(buf, off, n), dstOffset); return;
    case 'I64': {
      const src = new BigInt64Array(buf, off, n);
      for (let i = 0; i < n; i++) dst[dstOffset + i] = Number(src[i]!);
      return;
    }
  }
}

/** Widens integer `bytes` of `dtype` to int64 into dst[dstOffset...]. Float dtypes are refused by the caller. */
export function convertToI64(dtype: SafetensorsDType, bytes: Uint8Array, dst: BigInt64Array, dstOffset: number): void {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const buf = bytes.buffer as ArrayBuffer;
  const off = bytes.byteOffset;
  assertAligned(dtype, off);
  let src: ArrayLike<number>;
  switch (dtype) {
    case 'I64': dst.set(new BigInt64Array(buf, off, n), dstOffset); return;
    case 'I32': src = new Int32Array(buf, off, n); break;
    case 'I16': src = new Int16Array(buf, off, n); break;
    case 'I8': src = new Int8Array(buf, off, n); break;
    case 'U8': case 'BOOL': src = new Uint8Array(buf, off, n); break;
    default: throw new Error(`internal: ${dtype} is not an integer dtype`);
  }
  for (let i = 0; i < n; i++) dst[dstOffset + i] = BigInt(src[i]!);
}
