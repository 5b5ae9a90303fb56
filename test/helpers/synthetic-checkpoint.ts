// Synthetic checkpoints in the real on-disk layout: bf16 tensors sharded the way transformers/diffusers save them.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type TensorToWrite, writeSafetensors } from '../../src/checkpoint/safetensors.js';

export type TensorValues = Record<string, { shape: number[]; values: Float32Array }>;

/** float32 -> bfloat16 bits, round to nearest even (what torch's .to(bfloat16) does). */
export function toBf16(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i]!;
    out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
  }
  return out;
}

/**
 * Writes `tensors` as bf16 over `shards` files `<base>-0000k-of-0000n.safetensors` (names in sorted order, split
 * evenly) plus `<base>.safetensors.index.json` with `weight_map` and `total_size`.
 */
export function writeShardedBf16(dir: string, base: string, tensors: TensorValues, shards: number): void {
  mkdirSync(dir, { recursive: true });
  const names = Object.keys(tensors).sort();
  const files = Array.from({ length: shards }, (_, k) => `${base}-${String(k + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`);
  const weightMap: Record<string, string> = {};
  let total = 0;
  const perShard = Math.ceil(names.length / shards);
  for (let k = 0; k < shards; k++) {
    const part: Record<string, TensorToWrite> = {};
    for (const name of names.slice(k * perShard, (k + 1) * perShard)) {
      const { shape, values } = tensors[name]!;
      part[name] = { dtype: 'BF16', shape, data: toBf16(values) };
      weightMap[name] = files[k]!;
      total += values.length * 2;
    }
    writeSafetensors(join(dir, files[k]!), part, { format: 'pt' });
  }
  writeFileSync(join(dir, `${base}.safetensors.index.json`), JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2));
}
