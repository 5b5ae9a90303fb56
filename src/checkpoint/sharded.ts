// A checkpoint's tensors behind one interface, whether they sit in one safetensors file or are sharded over
// several with a `*.safetensors.index.json` ({"metadata": {"total_size": N}, "weight_map": {name: shard file}}),
// the layout transformers and diffusers write for large models. Shards are opened on first use.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { CheckpointError } from './errors.js';
import { SafetensorsFile, type TensorInfo } from './safetensors.js';

export interface TensorSource {
  /** The file this source was opened from: a `.safetensors` file or a `.safetensors.index.json`. */
  readonly path: string;
  names(): string[];
  has(name: string): boolean;
  /** Throws a CheckpointError naming the file and tensor when absent. `info.file` is the shard holding it. */
  info(name: string): TensorInfo;
  readRaw(name: string, into?: Uint8Array): Uint8Array;
  readFloat32(name: string): Float32Array;
  readBigInt64(name: string): BigInt64Array;
  close(): void;
}

/** Opens a single `.safetensors` file or a sharded `.safetensors.index.json`, chosen by the name. */
export function openTensorSource(path: string): TensorSource {
  return path.endsWith('.index.json') ? ShardedSafetensors.open(path) : SafetensorsFile.open(path);
}

export class ShardedSafetensors implements TensorSource {
  readonly path: string;
  /** The index's "metadata" object (typically {total_size}); values are kept as JSON gave them. */
  readonly indexMetadata: Record<string, unknown>;
  /** Tensor name -> shard file name (relative to the index's folder), in the index's order. */
  readonly weightMap: ReadonlyMap<string, string>;
  private readonly dir: string;
  private readonly shards = new Map<string, SafetensorsFile>();

  private constructor(path: string, indexMetadata: Record<string, unknown>, weightMap: Map<string, string>) {
    this.path = path;
    this.dir = dirname(path);
    this.indexMetadata = indexMetadata;
    this.weightMap = weightMap;
  }

  static open(indexPath: string): ShardedSafetensors {
    let text: string;
    try {
      text = readFileSync(indexPath, 'utf8');
    } catch (e) {
      throw new CheckpointError(`cannot read shard index (${(e as Error).message})`, indexPath);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      throw new CheckpointError(`shard index is not valid JSON (${(e as Error).message})`, indexPath);
    }
    const root = parsed as { metadata?: unknown; weight_map?: unknown } | null;
    if (root === null || typeof root !== 'object' || Array.isArray(root)) {
      throw new CheckpointError('shard index is not a JSON object', indexPath);
    }
    const wm = root.weight_map;
    if (wm === null || typeof wm !== 'object' || Array.isArray(wm)) {
      throw new CheckpointError('shard index has no "weight_map" object', indexPath);
    }
    const weightMap = new Map<string, string>();
    for (const [name, shard] of Object.entries(wm as Record<string, unknown>)) {
      if (typeof shard !== 'string' || shard.length === 0) {
        throw new CheckpointError(`weight_map entry is ${JSON.stringify(shard)}, not a shard file name`, indexPath, name);
      }
      weightMap.set(name, shard);
    }
    const md = root.metadata;
    const indexMetadata = md !== null && typeof md === 'object' && !Array.isArray(md) ? md as Record<string, unknown> : {};
    return new ShardedSafetensors(indexPath, indexMetadata, weightMap);
  }

  /** The distinct shard file names, in first-mention order. */
  shardFiles(): string[] {
    return [...new Set(this.weightMap.values())];
  }

  names(): string[] {
    return [...this.weightMap.keys()];
  }

  has(name: string): boolean {
    return this.weightMap.has(name);
  }

  info(name: string): TensorInfo {
    const shard = this.shardFor(name);
    if (!shard.has(name)) {
      throw new CheckpointError(`the index maps it to ${this.weightMap.get(name)} but that shard does not hold it`,
        this.path, name);
    }
    return shard.info(name);
  }

  readRaw(name: string, into?: Uint8Array): Uint8Array {
    this.info(name);
    return this.shardFor(name).readRaw(name, into);
  }

  readFloat32(name: string): Float32Array {
    this.info(name);
    return this.shardFor(name).readFloat32(name);
  }

  readBigInt64(name: string): BigInt64Array {
    this.info(name);
    return this.shardFor(name).readBigInt64(name);
  }

  /** Opens (once) and returns the shard file with the given name. */
  shard(file: string): SafetensorsFile {
    let f = this.shards.get(file);
    if (f === undefined) {
      const full = join(this.dir, file);
      if (!existsSync(full)) {
        throw new CheckpointError(`shard file ${file} listed in the weight_map is missing (looked for ${full})`, this.path);
      }
      f = SafetensorsFile.open(full);
      this.shards.set(file, f);
    }
    return f;
  }

  /**
   * Opens every shard and checks the index against them: each mapped tensor is in its shard, no shard holds
   * tensors the map does not list (or lists under another shard), and metadata.total_size, when present, equals
   * the bytes of all tensors. Returns the problems found (empty when consistent).
   */
  verify(): string[] {
    const problems: string[] = [];
    let totalBytes = 0;
    for (const file of this.shardFiles()) {
      let shard: SafetensorsFile;
      try {
        shard = this.shard(file);
      } catch (e) {
        problems.push((e as Error).message);
        continue;
      }
      for (const name of shard.names()) {
        const mapped = this.weightMap.get(name);
        if (mapped === undefined) problems.push(`${shard.path}: tensor '${name}' is not in the weight_map`);
        else if (mapped !== file) problems.push(`${shard.path}: tensor '${name}' is mapped to ${mapped} instead`);
        else totalBytes += shard.info(name).byteLength;
      }
      for (const [name, mapped] of this.weightMap) {
        if (mapped === file && !shard.has(name)) problems.push(`${this.path}: tensor '${name}' is mapped to ${file} which lacks it`);
      }
    }
    const declared = this.indexMetadata.total_size;
    if (declared !== undefined && Number(declared) !== totalBytes) {
      problems.push(`${this.path}: metadata.total_size is ${String(declared)} but the shards hold ${totalBytes} bytes of tensors`);
    }
    return problems;
  }

  close(): void {
    for (const f of this.shards.values()) f.close();
    this.shards.clear();
  }

  private shardFor(name: string): SafetensorsFile {
    const file = this.weightMap.get(name);
    if (file === undefined) throw new CheckpointError('not in the weight_map of this shard index', this.path, name);
    return this.shard(file);
  }
}
