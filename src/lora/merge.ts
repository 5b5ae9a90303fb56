// Merging LoRA updates into a module's weights in native code, and keeping the exact bytes to undo it.
//
// For each target Linear, W += sum over adapters (in list order) of (strength * scale) * B @ A, computed in fp32:
// one GEMM per adapter with alpha = strength * scale and beta = 1, accumulating into W itself when W is fp32
// (the CPU backend) or into an fp32 copy that is rounded back into W once at the end (bf16 / fp16 weights on
// CUDA). Bias deltas (lora_B.bias / diff_b) are added the same way. Before a weight is first changed its bytes
// are copied to the host; undoing a merge writes those bytes back (never subtracts), so an unmerged model is
// bit-identical to the base.
import type { Device } from '../runtime/device.js';
import { add, matmul } from '../runtime/ops.js';
import { Tensor, copyInto, copyTo, scoped } from '../runtime/tensor.js';
import type { LoraAdapter, LoraLayer } from './adapter.js';
import { LoraError, listSome } from './errors.js';

/** A model's weights by checkpoint key (a WeightStore fits): what LoRA merging reads and writes. */
export interface LoraModuleWeights {
  readonly device: Device;
  readonly tensors: ReadonlyMap<string, Tensor>;
  /** Prefix of the checkpoint keys (WeightStore.prefix); module `m`'s weight is `${prefix}${m}.weight`. */
  readonly prefix?: string;
}

/** One adapter's contribution to one weight: delta = factor * up @ down, factor = strength * layer.scale. */
export interface MergeTerm { layer: LoraLayer; factor: number }

/** Everything that changes one Linear: its weight (and bias) and the terms to add, in order. */
export interface WeightUpdate {
  module: string;
  weightKey: string;
  weight: Tensor;
  biasKey?: string;
  bias?: Tensor;
  terms: MergeTerm[];
}

export interface PlannedAdapter { adapter: LoraAdapter; strength: number; label: string }

/**
 * Places every layer of the given adapters on `weights`' tensors, checking names and shapes before anything is
 * touched. Throws LoraError lora_incompatible naming the modules the model lacks or whose shapes differ.
 */
export function planMerge(weights: LoraModuleWeights, adapters: readonly PlannedAdapter[]): WeightUpdate[] {
  const prefix = weights.prefix ?? '';
  const updates = new Map<string, WeightUpdate>();
  const missing: string[] = [];
  const wrongShape: string[] = [];
  for (const { adapter, strength, label } of adapters) {
    for (const layer of adapter.layers) {
      const weightKey = `${prefix}${layer.module}.weight`;
      const weight = weights.tensors.get(weightKey);
      if (!weight) { missing.push(`${layer.module} (${label})`); continue; }
      if (layer.down) {
        if (weight.ndim !== 2 || weight.shape[0] !== layer.outFeatures || weight.shape[1] !== layer.inFeatures) {
          wrongShape.push(`${layer.module}: weight [${weight.shape.join(', ')}], ${label} gives [${layer.outFeatures}, ${layer.inFeatures}] (rank ${layer.rank})`);
          continue;
        }
        if (!weight.isContiguous) throw new Error(`sgld: ${weightKey} is not contiguous; LoRA merging needs dense weights`);
      }
      let update = updates.get(weightKey);
      if (!update) updates.set(weightKey, (update = { module: layer.module, weightKey, weight, terms: [] }));
      if (layer.bias) {
        const biasKey = `${prefix}${layer.module}.bias`;
        const bias = weights.tensors.get(biasKey);
        if (!bias) { missing.push(`${layer.module}.bias (${label} has a bias delta)`); continue; }
        if (bias.numel !== layer.outFeatures) { wrongShape.push(`${biasKey}: [${bias.shape.join(', ')}], ${label} gives [${layer.outFeatures}]`); continue; }
        update.biasKey = biasKey;
        update.bias = bias;
      }
      update.terms.push({ layer, factor: strength * layer.scale });
    }
  }
  if (missing.length) {
    throw new LoraError('lora_incompatible', `the model has no module ${listSome(missing)} (is the LoRA for another model?)`);
  }
  if (wrongShape.length) throw new LoraError('lora_incompatible', `shape mismatch: ${listSome(wrongShape, 3)}`);
  return [...updates.values()];
}

/** Adds an update's terms to its weight (and bias) in place. Temporaries are freed before it returns. */
export function applyUpdate(update: WeightUpdate): void {
  scoped(() => {
    const w = update.weight;
    const device = w.device;
    const matrixTerms = update.terms.filter((t) => t.layer.down && t.layer.up && t.factor !== 0);
    if (matrixTerms.length > 0) {
      const acc = w.dtype === 'f32' ? w : copyTo(w, 'f32');
      for (const { layer, factor } of matrixTerms) {
        const a = Tensor.fromHost(device, layer.down!, [layer.rank, layer.inFeatures], 'f32');
        const b = Tensor.fromHost(device, layer.up!, [layer.outFeatures, layer.rank], 'f32');
        matmul(b, a, { alpha: factor, beta: 1, out: acc });
      }
      if (acc !== w) copyInto(w, acc);
    }
    const biasTerms = update.terms.filter((t) => t.layer.bias && t.factor !== 0);
    if (update.bias && biasTerms.length > 0) {
      const bias = update.bias;
      const acc = bias.dtype === 'f32' ? bias : copyTo(bias, 'f32');
      for (const { layer, factor } of biasTerms) {
        // PEFT adds lora_B.bias * scaling: the product rounded to fp32, then the sum.
        const f = Math.fround(factor);
        const delta = Float32Array.from(layer.bias!, (v) => v * f);
        add(acc, Tensor.fromHost(device, delta, acc.shape, 'f32'), acc);
      }
      if (acc !== bias) copyInto(bias, acc);
    }
  });
}

/** Exact host copies of weights taken before their first change, restored byte for byte. */
export class WeightBackups {
  readonly #saved = new Map<string, { tensor: Tensor; bytes: Uint8Array }>();

  /** Saves `tensor`'s bytes under `key` unless a copy is held already. */
  save(key: string, tensor: Tensor): void {
    const held = this.#saved.get(key);
    if (held) {
      if (held.tensor !== tensor) throw new Error(`sgld: ${key} was replaced since its LoRA backup was taken`);
      return;
    }
    if (!tensor.isContiguous) throw new Error(`sgld: ${key} is not contiguous; cannot back it up for LoRA merging`);
    this.#saved.set(key, { tensor, bytes: tensor.toBytes() });
  }

  has(key: string): boolean { return this.#saved.has(key); }

  /** Writes the saved bytes back into the tensor they came from. */
  restore(key: string): void {
    const held = this.#saved.get(key);
    if (!held) throw new Error(`sgld: no LoRA backup of ${key}`);
    held.tensor.device.upload(held.tensor.ptr, held.bytes);
  }

  /** Forgets the copies of `keys` (all when omitted). */
  drop(keys?: Iterable<string>): void {
    if (!keys) { this.#saved.clear(); return; }
    for (const k of keys) this.#saved.delete(k);
  }

  get size(): number { return this.#saved.size; }

  /** Host memory held, in bytes. */
  get bytes(): number {
    let n = 0;
    for (const s of this.#saved.values()) n += s.bytes.byteLength;
    return n;
  }
}
