// Token embedding lookup on the host. UMT5-XXL's table is 256384 x 4096 (2.1 GB in bf16, 4.2 GB as fp32), yet a
// prompt needs at most 512 of its rows. So the table stays on disk: we read just the rows the ids name (a
// positioned read of each row from the safetensors file), convert them to fp32 and upload one [B, L, D] tensor.
// That costs a few MB of reads per prompt, no device memory for the table, and no gather op in the ABI.
import { closeSync, openSync, readSync } from 'node:fs';
import { convertToF32, DTYPE_BYTES, type SafetensorsDType } from '../../checkpoint/dtype.js';
import type { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { WeightSource } from '../weights.js';

/** The location a safetensors-backed source reports for a tensor (src/checkpoint TensorInfo). */
interface FileLocation { file: string; byteOffset: number; byteLength: number }

function fileLocation(info: object): FileLocation | undefined {
  const i = info as Partial<FileLocation>;
  return typeof i.file === 'string' && typeof i.byteOffset === 'number' && typeof i.byteLength === 'number'
    ? { file: i.file, byteOffset: i.byteOffset, byteLength: i.byteLength } : undefined;
}

export class TokenEmbedding {
  readonly vocabSize: number;
  readonly dim: number;
  readonly #dtype: SafetensorsDType;
  readonly #rowBytes: number;
  readonly #location: FileLocation | undefined;
  /** The raw table, read whole only when the source cannot tell where the tensor lies in a file. */
  #raw: Uint8Array | undefined;

  constructor(readonly source: WeightSource, readonly name: string, expectedShape?: readonly [number, number]) {
    const info = source.info(name);
    if (info.shape.length !== 2) throw new Error(`sgld: embedding ${name} should be 2-D, has shape [${info.shape.join(', ')}]`);
    if (expectedShape && (info.shape[0] !== expectedShape[0] || info.shape[1] !== expectedShape[1])) {
      throw new Error(`sgld: embedding ${name} has shape [${info.shape.join(', ')}], config says [${expectedShape.join(', ')}]`);
    }
    if (!['F32', 'F16', 'BF16'].includes(info.dtype)) throw new Error(`sgld: embedding ${name} has dtype ${info.dtype}; a float table is expected`);
    this.vocabSize = info.shape[0]!;
    this.dim = info.shape[1]!;
    this.#dtype = info.dtype as SafetensorsDType;
    this.#rowBytes = this.dim * DTYPE_BYTES[this.#dtype];
    this.#location = fileLocation(info);
    if (this.#location && this.#location.byteLength !== this.vocabSize * this.#rowBytes) {
      throw new Error(`sgld: embedding ${name}: ${this.#location.byteLength} bytes on disk for [${info.shape.join(', ')}] ${info.dtype}`);
    }
  }

  /** fp32 rows of `ids` ([ids.length, dim] row-major). Ids outside the vocabulary throw. */
  rows(ids: ArrayLike<number>): Float32Array {
    const out = new Float32Array(ids.length * this.dim);
    const scratch = new Uint8Array(this.#rowBytes);
    const loc = this.#location;
    const fd = loc ? openSync(loc.file, 'r') : -1;
    try {
      const done = new Map<number, number>(); // id -> first row holding it (padding repeats one id many times)
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i]!;
        if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) throw new Error(`sgld: token id ${id} is outside the vocabulary (size ${this.vocabSize})`);
        const first = done.get(id);
        if (first !== undefined) {
          out.copyWithin(i * this.dim, first * this.dim, (first + 1) * this.dim);
          continue;
        }
        let bytes: Uint8Array;
        if (loc) {
          const got = readSync(fd, scratch, 0, this.#rowBytes, loc.byteOffset + id * this.#rowBytes);
          if (got !== this.#rowBytes) throw new Error(`sgld: short read of embedding row ${id} from ${loc.file}`);
          bytes = scratch;
        } else {
          this.#raw ??= this.source.readRaw(this.name);
          bytes = scratch;
          bytes.set(this.#raw.subarray(id * this.#rowBytes, (id + 1) * this.#rowBytes));
        }
        convertToF32(this.#dtype, bytes, out, i * this.dim);
        done.set(id, i);
      }
    } finally {
      if (fd >= 0) closeSync(fd);
    }
    return out;
  }

  /** The embeddings of a [batch, len] id matrix (row-major) as a device tensor [batch, len, dim]. */
  lookup(device: Device, ids: ArrayLike<number>, batch: number, len: number): Tensor {
    if (ids.length !== batch * len) throw new Error(`sgld: ${ids.length} token ids for a [${batch}, ${len}] batch`);
    return fromFloat32(device, this.rows(ids), [batch, len, this.dim]);
  }
}
