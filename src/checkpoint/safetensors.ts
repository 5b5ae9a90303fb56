// Reader and writer of the safetensors format: 8-byte little-endian header length N, N bytes of JSON
// ({name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}), then the data buffer that
// the offsets index. Only the header is read on open; every tensor read is a positioned read of its own bytes,
// so a multi-GB file never becomes one Buffer or string.
import { closeSync, fstatSync, openSync, readSync, writeSync } from 'node:fs';
import { CheckpointError } from './errors.js';
import {
  DTYPE_BYTES, convertToF32, convertToI64, isFloatDType, isSafetensorsDType, numelOf,
  type SafetensorsDType,
} from './dtype.js';

export { DTYPE_BYTES, numelOf, type SafetensorsDType } from './dtype.js';
export { CheckpointError } from './errors.js';

export interface TensorInfo {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Absolute position of the tensor's first byte in `file` (header included), e.g. for mmap or native reads. */
  byteOffset: number;
  byteLength: number;
  file: string;
}

/** The format's own reference reader refuses headers above 100 MB; real headers are well under 10 MB. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Conversions go through a scratch buffer of this size, so converting never doubles a tensor's memory. */
const CONVERT_CHUNK_BYTES = 8 << 20;

/** readSync takes at most 2^31-1 bytes at a time. */
const MAX_READ_BYTES = 1 << 30;

export class SafetensorsFile {
  readonly path: string;
  readonly metadata: Record<string, string>;
  /** Size of the JSON header in bytes (without the 8-byte length prefix). */
  readonly headerBytes: number;
  private readonly tensors: Map<string, TensorInfo>;
  private fd: number | null;

  private constructor(path: string, fd: number, headerBytes: number, metadata: Record<string, string>,
    tensors: Map<string, TensorInfo>) {
    this.path = path;
    this.fd = fd;
    this.headerBytes = headerBytes;
    this.metadata = metadata;
    this.tensors = tensors;
  }

  /** Opens `path` and reads and validates its header; the data stays on disk until a read asks for it. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw new CheckpointError(`cannot open safetensors file (${(e as Error).message})`, path);
    }
    try {
      const { headerBytes, metadata, tensors } = readHeader(path, fd);
      return new SafetensorsFile(path, fd, headerBytes, metadata, tensors);
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo {
    const info = this.tensors.get(name);
    if (info === undefined) throw new CheckpointError('no such tensor in this file', this.path, name);
    return info;
  }

  /** The tensor's bytes exactly as stored (little-endian). `into` (at least byteLength bytes) avoids an allocation. */
  readRaw(name: string, into?: Uint8Array): Uint8Array {
    const info = this.info(name);
    let out: Uint8Array;
    if (into === undefined) {
      out = new Uint8Array(info.byteLength);
    } else {
      if (into.byteLength < info.byteLength) {
        throw new CheckpointError(`readRaw target holds ${into.byteLength} bytes, the tensor needs ${info.byteLength}`,
          this.path, name);
      }
      out = into.subarray(0, info.byteLength);
    }
    this.readBytes(info, 0, out);
    return out;
  }

  /** The tensor as float32: exact from F32/F16/BF16 and small integers, rounded to nearest from F64 and I64. */
  readFloat32(name: string): Float32Array {
    const info = this.info(name);
    const n = numelOf(info.shape);
    const out = new Float32Array(n);
    if (info.dtype === 'F32') {
      this.readBytes(info, 0, new Uint8Array(out.buffer));
      return out;
    }
    this.readConverted(info, (bytes, firstElement) => convertToF32(info.dtype, bytes, out, firstElement));
    return out;
  }

  /** An integer tensor as int64 (I64 as stored; I32/I16/I8/U8/BOOL widened). Float tensors are refused. */
  readBigInt64(name: string): BigInt64Array {
    const info = this.info(name);
    if (isFloatDType(info.dtype)) {
      throw new CheckpointError(`is ${info.dtype}, readBigInt64 needs an integer dtype`, this.path, name);
    }
    const out = new BigInt64Array(numelOf(info.shape));
    if (info.dtype === 'I64') {
      this.readBytes(info, 0, new Uint8Array(out.buffer));
      return out;
    }
    this.readConverted(info, (bytes, firstElement) => convertToI64(info.dtype, bytes, out, firstElement));
    return out;
  }

  close(): void {
    if (this.fd !== null) {
      closeSync(this.fd);
      this.fd = null;
    }
  }

  /** Reads the tensor in element-aligned chunks into one scratch buffer and hands each chunk to `convert`. */
  private readConverted(info: TensorInfo, convert: (bytes: Uint8Array, firstElement: number) => void): void {
    const elementBytes = DTYPE_BYTES[info.dtype];
    const chunkBytes = Math.min(info.byteLength, CONVERT_CHUNK_BYTES - (CONVERT_CHUNK_BYTES % elementBytes));
    const scratch = new Uint8Array(chunkBytes);
    for (let done = 0; done < info.byteLength; done += chunkBytes) {
      const part = scratch.subarray(0, Math.min(chunkBytes, info.byteLength - done));
      this.readBytes(info, done, part);
      convert(part, done / elementBytes);
    }
  }

  /** Fills `into` from the tensor's bytes starting `start` bytes into the tensor. */
  private readBytes(info: TensorInfo, start: number, into: Uint8Array): void {
    if (this.fd === null) throw new CheckpointError('read after close()', this.path, info.name);
    let done = 0;
    while (done < into.byteLength) {
      const want = Math.min(into.byteLength - done, MAX_READ_BYTES);
      const got = readSync(this.fd, into, done, want, info.byteOffset + start + done);
      if (got === 0) {
        throw new CheckpointError(`unexpected end of file at byte ${info.byteOffset + start + done}`, this.path, info.name);
      }
      done += got;
    }
  }
}

function readExactly(path: string, fd: number, into: Uint8Array, position: number): void {
  let done = 0;
  while (done < into.byteLength) {
    const got = readSync(fd, into, done, into.byteLength - done, position + done);
    if (got === 0) throw new CheckpointError(`unexpected end of file at byte ${position + done}`, path);
    done += got;
  }
}

function readHeader(path: string, fd: number): {
  headerBytes: number; metadata: Record<string, string>; tensors: Map<string, TensorInfo>;
} {
  const fileBytes = fstatSync(fd).size;
  if (fileBytes < 8) {
    throw new CheckpointError(`truncated: ${fileBytes} bytes, a safetensors file starts with an 8-byte header length`, path);
  }
  const prefix = new Uint8Array(8);
  readExactly(path, fd, prefix, 0);
  const declared = new DataView(prefix.buffer).getBigUint64(0, true);
  if (declared > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(`header length ${declared} exceeds the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file?)`, path);
  }
  const headerBytes = Number(declared);
  if (headerBytes < 2) throw new CheckpointError(`header length ${headerBytes} is too small for a JSON object`, path);
  if (8 + headerBytes > fileBytes) {
    throw new CheckpointError(`truncated: header declares ${headerBytes} bytes but the file has only ${fileBytes - 8} after the length`, path);
  }
  const headerRaw = new Uint8Array(headerBytes);
  readExactly(path, fd, headerRaw, 8);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(headerRaw);
  } catch {
    throw new CheckpointError('header is not valid UTF-8', path);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new CheckpointError(`header is not valid JSON (${(e as Error).message})`, path);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CheckpointError('header JSON is not an object', path);
  }

  const dataStart = 8 + headerBytes;
  const dataBytes = fileBytes - dataStart;
  let metadata: Record<string, string> = {};
  const tensors = new Map<string, TensorInfo>();
  const spans: { begin: number; end: number; name: string }[] = [];

  for (const [name, entry] of Object.entries(parsed as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(path, entry);
      continue;
    }
    const info = parseEntry(path, name, entry, dataStart, dataBytes);
    tensors.set(name, info);
    if (info.byteLength > 0) spans.push({ begin: info.byteOffset, end: info.byteOffset + info.byteLength, name });
  }

  spans.sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur.begin < prev.end) {
      throw new CheckpointError(`data bytes [${cur.begin - dataStart}, ${cur.end - dataStart}) overlap those of '${prev.name}'`,
        path, cur.name);
    }
  }
  return { headerBytes, metadata, tensors };
}

function parseMetadata(path: string, entry: unknown): Record<string, string> {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new CheckpointError('__metadata__ is not an object', path);
  }
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(entry as Record<string, unknown>)) {
    if (typeof v !== 'string') throw new CheckpointError(`__metadata__ value of '${k}' is not a string`, path);
    out[k] = v;
  }
  return out;
}

function parseEntry(path: string, name: string, entry: unknown, dataStart: number, dataBytes: number): TensorInfo {
  if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
    throw new CheckpointError('header entry is not an object', path, name);
  }
  const { dtype, shape, data_offsets: offsets } = entry as Record<string, unknown>;
  if (!isSafetensorsDType(dtype)) {
    throw new CheckpointError(`unsupported dtype ${JSON.stringify(dtype)} (known: ${Object.keys(DTYPE_BYTES).join(', ')})`,
      path, name);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new CheckpointError(`shape ${JSON.stringify(shape)} is not a list of non-negative integers`, path, name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new CheckpointError(`data_offsets ${JSON.stringify(offsets)} is not [begin, end] in bytes`, path, name);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new CheckpointError(`data_offsets [${begin}, ${end}] end before they begin`, path, name);
  if (end > dataBytes) {
    throw new CheckpointError(`data_offsets [${begin}, ${end}] lie outside the file (data section has ${dataBytes} bytes)`,
      path, name);
  }
  const expected = numelOf(shape as number[]) * DTYPE_BYTES[dtype];
  if (end - begin !== expected) {
    throw new CheckpointError(`${dtype} x [${(shape as number[]).join(', ')}] needs ${expected} bytes but data_offsets ` +
      `[${begin}, ${end}] span ${end - begin}`, path, name);
  }
  // Frozen: infos are shared with every caller, who must not be able to change what later reads rely on.
  return Object.freeze({
    name, dtype, shape: Object.freeze([...(shape as number[])]) as number[], byteOffset: dataStart + begin,
    byteLength: end - begin, file: path,
  });
}

// ------------------------------------------------------------------------------------------------ writer

export interface TensorToWrite {
  dtype: SafetensorsDType;
  shape: number[];
  /** Little-endian element bytes, numel x dtype size of them (any typed array or DataView over them). */
  data: ArrayBufferView;
}

/**
 * Writes a safetensors file: tensors in the given order, back to back, header padded with spaces to a multiple
 * of 8 bytes (as the reference writer does, so data stays 8-byte aligned for mmap).
 */
export function writeSafetensors(path: string, tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined && Object.keys(metadata).length > 0) header.__metadata__ = metadata;
  const order = Object.keys(tensors);
  let offset = 0;
  for (const name of order) {
    if (name === '__metadata__') throw new CheckpointError("'__metadata__' is reserved and cannot name a tensor", path);
    const t = tensors[name]!;
    if (!isSafetensorsDType(t.dtype)) throw new CheckpointError(`unsupported dtype ${JSON.stringify(t.dtype)}`, path, name);
    const bytes = numelOf(t.shape) * DTYPE_BYTES[t.dtype];
    if (t.data.byteLength !== bytes) {
      throw new CheckpointError(`${t.dtype} x [${t.shape.join(', ')}] needs ${bytes} bytes, data has ${t.data.byteLength}`,
        path, name);
    }
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  let json = JSON.stringify(header);
  const jsonBytes = Buffer.byteLength(json, 'utf8');
  json += ' '.repeat((8 - (jsonBytes % 8)) % 8);
  const headerBuf = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBuf.byteLength));

  const fd = openSync(path, 'w');
  try {
    writeAll(fd, prefix);
    writeAll(fd, headerBuf);
    for (const name of order) {
      const d = tensors[name]!.data;
      writeAll(fd, new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    }
  } finally {
    closeSync(fd);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(fd, bytes, done, Math.min(bytes.byteLength - done, MAX_READ_BYTES));
  }
}
