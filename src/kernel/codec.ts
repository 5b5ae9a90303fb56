// The wire format of messages between threads: msgpack (@msgpack/msgpack 3.1.3) with extensions that keep what
// plain msgpack loses (typed array dtypes, ArrayBuffers, bigints, Maps, Sets, Errors), and with large binary
// payloads kept OUT of the msgpack bytes: they travel beside them as transferred ArrayBuffers (zero copy,
// detached on the sender) or as SharedArrayBuffers (shared, never copied).
import { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack';
import { RemoteError, serialiseError, type SerialisedError } from './errors.js';

/** Typed arrays at least this large (bytes) travel out of band by default: 64 KiB. */
export const OUT_OF_BAND_BYTES = 64 * 1024;

/** A message ready for `postMessage`: msgpack bytes plus the buffers that travel beside them. */
export interface EncodedMessage {
  /** The msgpack bytes; its buffer is exact-size and owned by this message (transferred with it). */
  bytes: Uint8Array;
  /** Out-of-band buffers, referenced by index from `bytes`: ArrayBuffers are transferred, SABs shared. */
  buffers: (ArrayBuffer | SharedArrayBuffer)[];
}

/** How to encode one message. */
export interface EncodeOptions {
  /**
   * ArrayBuffers to transfer whatever their size. Typed arrays over them travel out of band with their offset;
   * listed buffers that the message does not mention are transferred (detached) all the same.
   */
  transfer?: readonly ArrayBuffer[];
  /** Typed arrays / ArrayBuffers of at least this many bytes travel out of band (default {@link OUT_OF_BAND_BYTES}). */
  outOfBandBytes?: number;
}

// Typed array constructors by dtype code; the code is the index, so never reorder (it is the wire format).
const DTYPES = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
] as const;
const DATA_VIEW_CODE = DTYPES.length;
const DTYPE_CODE = new Map<string, number>(DTYPES.map((ctor, code) => [ctor.name, code]));
DTYPE_CODE.set('DataView', DATA_VIEW_CODE);

// msgpack application extension type numbers (0..127), part of the wire format. msgpack tries encoders in type
// order, so each out-of-band type comes before its inline fallback.
const EXT_VIEW_OOB = 0; // [dtype u8][buffer index u32][byteOffset f64][byteLength f64]
const EXT_VIEW_INLINE = 1; // [dtype u8][raw bytes]
const EXT_BUFFER_OOB = 2; // [buffer index u32]
const EXT_BUFFER_INLINE = 3; // raw bytes of an ArrayBuffer
const EXT_BIGINT = 4; // decimal digits
const EXT_MAP = 5; // msgpack array [k0, v0, k1, v1, ...]
const EXT_SET = 6; // msgpack array of values
const EXT_ERROR = 7; // msgpack map {name, message, stack?, code?}

interface EncodeState {
  buffers: (ArrayBuffer | SharedArrayBuffer)[];
  index: Map<ArrayBufferLike, number>;
  transfer: ReadonlySet<ArrayBufferLike>;
  threshold: number;
}
// One encoder and decoder per thread; this context is refilled for every call. Calls are synchronous, and the
// nested encodes of Map/Set/Error share it through msgpack's re-entrant clone.
interface CodecContext {
  encode: EncodeState;
  decodeBuffers: readonly (ArrayBuffer | SharedArrayBuffer)[];
}
const context: CodecContext = {
  encode: { buffers: [], index: new Map(), transfer: new Set(), threshold: OUT_OF_BAND_BYTES },
  decodeBuffers: [],
};

const extensions = new ExtensionCodec<CodecContext>();
const encoder = new Encoder<CodecContext>({ extensionCodec: extensions, context, ignoreUndefined: true });
const decoder = new Decoder<CodecContext>({ extensionCodec: extensions, context });
const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

function isShared(buffer: ArrayBufferLike): buffer is SharedArrayBuffer {
  return typeof SharedArrayBuffer !== 'undefined' && buffer instanceof SharedArrayBuffer;
}

function bufferSlot(state: EncodeState, buffer: ArrayBuffer | SharedArrayBuffer): number {
  let at = state.index.get(buffer);
  if (at === undefined) {
    at = state.buffers.length;
    state.buffers.push(buffer);
    state.index.set(buffer, at);
  }
  return at;
}

function dtypeCode(view: ArrayBufferView): number | undefined {
  return DTYPE_CODE.get((view as { [Symbol.toStringTag]?: string })[Symbol.toStringTag] ?? 'DataView');
}

function viewOf(code: number, buffer: ArrayBufferLike, byteOffset: number, byteLength: number): ArrayBufferView {
  if (code === DATA_VIEW_CODE) return new DataView(buffer, byteOffset, byteLength);
  const ctor = DTYPES[code];
  if (ctor === undefined) throw new TypeError(`codec: unknown typed array code ${code}`);
  return new ctor(buffer as ArrayBuffer, byteOffset, byteLength / ctor.BYTES_PER_ELEMENT);
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value, true);
  return out;
}

extensions.register({
  type: EXT_VIEW_OOB,
  encode: (value, ctx) => {
    if (!ArrayBuffer.isView(value)) return null;
    const code = dtypeCode(value);
    if (code === undefined) return null;
    const state = ctx.encode;
    const buffer = value.buffer;
    const whole = value.byteOffset === 0 && value.byteLength === buffer.byteLength;
    let slot: number;
    let byteOffset = value.byteOffset;
    if (isShared(buffer) || state.transfer.has(buffer) || (whole && value.byteLength >= state.threshold)) {
      slot = bufferSlot(state, buffer);
    } else if (value.byteLength >= state.threshold) {
      // A large view into a bigger buffer: transferring that buffer would detach data the sender did not hand
      // over, so the view's bytes are copied once into a buffer of their own, and that one is transferred.
      slot = bufferSlot(state, (buffer as ArrayBuffer).slice(value.byteOffset, value.byteOffset + value.byteLength));
      byteOffset = 0;
    } else {
      return null;
    }
    const out = new Uint8Array(21);
    const dv = new DataView(out.buffer);
    dv.setUint8(0, code);
    dv.setUint32(1, slot, true);
    dv.setFloat64(5, byteOffset, true);
    dv.setFloat64(13, value.byteLength, true);
    return out;
  },
  decode: (data, _type, ctx) => {
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const buffer = ctx.decodeBuffers[dv.getUint32(1, true)];
    if (buffer === undefined) throw new TypeError('codec: out-of-band buffer missing');
    return viewOf(dv.getUint8(0), buffer, dv.getFloat64(5, true), dv.getFloat64(13, true));
  },
});

extensions.register({
  type: EXT_VIEW_INLINE,
  encode: (value) => {
    if (!ArrayBuffer.isView(value)) return null;
    const code = dtypeCode(value);
    if (code === undefined) return null;
    const out = new Uint8Array(1 + value.byteLength);
    out[0] = code;
    out.set(new Uint8Array(value.buffer, value.byteOffset, value.byteLength), 1);
    return out;
  },
  // Copy: `data` is a view at an arbitrary offset into the input, and a Float32Array (say) must be aligned.
  decode: (data) => {
    const copy = data.slice(1);
    return viewOf(data[0]!, copy.buffer, 0, copy.byteLength);
  },
});

extensions.register({
  type: EXT_BUFFER_OOB,
  encode: (value, ctx) => {
    const state = ctx.encode;
    if (typeof SharedArrayBuffer !== 'undefined' && value instanceof SharedArrayBuffer) return u32(bufferSlot(state, value));
    if (!(value instanceof ArrayBuffer)) return null;
    if (!state.transfer.has(value) && value.byteLength < state.threshold) return null;
    return u32(bufferSlot(state, value));
  },
  decode: (data, _type, ctx) => {
    const buffer = ctx.decodeBuffers[new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true)];
    if (buffer === undefined) throw new TypeError('codec: out-of-band buffer missing');
    return buffer;
  },
});

extensions.register({
  type: EXT_BUFFER_INLINE,
  encode: (value) => (value instanceof ArrayBuffer ? new Uint8Array(value.slice(0)) : null),
  decode: (data) => data.slice().buffer,
});

extensions.register({
  type: EXT_BIGINT,
  encode: (value) => (typeof value === 'bigint' ? utf8.encode(value.toString()) : null),
  decode: (data) => BigInt(fromUtf8.decode(data)),
});

extensions.register({
  type: EXT_MAP,
  encode: (value) => {
    if (!(value instanceof Map)) return null;
    const flat: unknown[] = [];
    for (const [k, v] of value) flat.push(k, v);
    return encoder.encode(flat);
  },
  decode: (data) => {
    const flat = decoder.decode(data) as unknown[];
    const out = new Map<unknown, unknown>();
    for (let i = 0; i < flat.length; i += 2) out.set(flat[i], flat[i + 1]);
    return out;
  },
});

extensions.register({
  type: EXT_SET,
  encode: (value) => (value instanceof Set ? encoder.encode([...value]) : null),
  decode: (data) => new Set(decoder.decode(data) as unknown[]),
});

extensions.register({
  type: EXT_ERROR,
  encode: (value) => (value instanceof Error ? encoder.encode(serialiseError(value)) : null),
  // An error from another thread is rebuilt as a RemoteError: its class does not exist here.
  decode: (data) => new RemoteError(decoder.decode(data) as SerialisedError),
});

/**
 * Encodes `value` for another thread. Throws a TypeError for what msgpack cannot carry (functions, symbols,
 * class instances keep only their own enumerable fields). `undefined` object fields are dropped.
 */
export function encodeMessage(value: unknown, options: EncodeOptions = {}): EncodedMessage {
  const transfer = new Set<ArrayBufferLike>(options.transfer ?? []);
  const state: EncodeState = {
    buffers: [], index: new Map(), transfer, threshold: options.outOfBandBytes ?? OUT_OF_BAND_BYTES,
  };
  context.encode = state;
  let bytes: Uint8Array;
  try {
    bytes = encoder.encode(value);
  } catch (error) {
    throw new TypeError(`message cannot be encoded: ${(error as Error).message}`, { cause: error });
  } finally {
    context.encode = { buffers: [], index: new Map(), transfer: new Set(), threshold: OUT_OF_BAND_BYTES };
  }
  for (const buffer of transfer) if (buffer instanceof ArrayBuffer) bufferSlot(state, buffer);
  return { bytes, buffers: state.buffers };
}

/** Decodes what {@link encodeMessage} produced (after `postMessage`). Out-of-band arrays are views, not copies. */
export function decodeMessage(message: EncodedMessage): unknown {
  context.decodeBuffers = message.buffers;
  try {
    return decoder.decode(message.bytes);
  } finally {
    context.decodeBuffers = [];
  }
}

/**
 * Takes the message's transferable buffers away from their owner now (they are detached, their memory moves
 * without a copy into new ArrayBuffers held by the message), so that ownership passes when a message is sent
 * even if it is posted later (e.g. while the receiving actor restarts).
 */
export function detachTransfers(message: EncodedMessage): void {
  message.buffers = message.buffers.map((buffer) => (isShared(buffer) ? buffer : structuredClone(buffer, { transfer: [buffer] })));
}

/** What to pass as `postMessage`'s transfer list for an encoded message: its bytes and its non-shared buffers. */
export function transferListOf(message: EncodedMessage): ArrayBuffer[] {
  const list: ArrayBuffer[] = [message.bytes.buffer as ArrayBuffer];
  for (const buffer of message.buffers) if (!isShared(buffer)) list.push(buffer);
  return list;
}
