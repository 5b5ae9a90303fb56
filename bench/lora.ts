// LoRA engine benchmark: what set_lora / merge_lora_weights / unmerge_lora_weights cost on a mid-size Wan
// transformer (the "Wan, mid-size (CPU)" transformer of ../shared/benchmarks.md, random weights, fp32, CPU backend)
// with a rank-32 diffusers/PEFT-format LoRA on every attention and FFN Linear, timed through LoraManager (the
// engine behind the HTTP endpoints, docs/lora.md). Also checks that unmerge gives the base weights back bit for
// bit (sha256 of every weight's downloaded bytes) and exits non-zero if it does not.
//   npm run bench:lora [-- --threads N] [-- --quick]
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TensorToWrite, writeSafetensors } from '../src/checkpoint/safetensors.js';
import { LoraManager } from '../src/lora/index.js';
import { roundToBf16 } from '../src/lora/float-rounding.js';
import { RandomWeightSource } from '../src/models/random-weights.js';
import { WanTransformer3DModel } from '../src/models/wan/transformer.js';
import { Device } from '../src/runtime/device.js';
import { TorchGenerator } from '../src/runtime/random.js';
import type { Tensor } from '../src/runtime/tensor.js';

const args = process.argv.slice(2);
const threads = Number(args[args.indexOf('--threads') + 1] ?? 2) || 2;
// --quick: one timing of each repeated row instead of the best of 3.
const repeats = args.includes('--quick') ? 1 : 3;

// benchmarks.md "Wan, mid-size (CPU)": 12 heads x 64 (dim 768), 8 layers, ffn 3072, text_dim 256 (same as bench/wan.ts).
const TRANSFORMER = {
  _class_name: 'WanTransformer3DModel', patch_size: [1, 2, 2], num_attention_heads: 12, attention_head_dim: 64,
  in_channels: 16, out_channels: 16, text_dim: 256, freq_dim: 256, ffn_dim: 3072, num_layers: 8,
  cross_attn_norm: true, qk_norm: 'rms_norm_across_heads', eps: 1e-6, image_dim: null, added_kv_proj_dim: null,
  rope_max_seq_len: 1024, pos_embed_seq_len: null,
};
// The LoRA: rank 32 (a common training rank), bf16 matrices as diffusers' save_lora_weights writes a bf16 run,
// with the LoraConfig metadata (r 32, lora_alpha 16 -> scale 0.5) that diffusers stores beside them.
const LORA = { rank: 32, alpha: 16, dtype: 'BF16' as const };
// Every attention (self and cross: to_q, to_k, to_v, to_out.0) and FFN (net.0.proj, net.2) Linear of a block.
const TARGET = /^blocks\.\d+\.(attn[12]\.(to_q|to_k|to_v|to_out\.0)|ffn\.net\.(0\.proj|2))\.weight$/;

function seconds<T>(fn: () => T): [T, number] {
  const t0 = performance.now();
  const r = fn();
  return [r, (performance.now() - t0) / 1000];
}

/** Float32 values as bf16 bit patterns (round to nearest even). */
function toBf16Bits(values: Float32Array): Uint16Array {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const out = new Uint16Array(values.length);
  for (let i = 0; i < values.length; i++) { f[0] = roundToBf16(values[i]!); out[i] = u[0]! >>> 16; }
  return out;
}

/** Random N(0, std^2) matrix in the LoRA's dtype. */
function randomMatrix(gen: TorchGenerator, shape: [number, number], std: number): TensorToWrite {
  const v = gen.randn(shape);
  for (let i = 0; i < v.length; i++) v[i] = v[i]! * std;
  return { dtype: LORA.dtype, shape, data: toBf16Bits(v) };
}

/** sha256 over every weight of the store (key order fixed), from the bytes downloaded from the device. */
function hashWeights(tensors: Map<string, Tensor>): string {
  const h = createHash('sha256');
  for (const key of [...tensors.keys()].sort()) {
    h.update(key);
    h.update(tensors.get(key)!.toBytes());
  }
  return h.digest('hex');
}

const best = (n: number, fn: () => void): number => {
  let b = Infinity;
  for (let i = 0; i < n; i++) b = Math.min(b, seconds(fn)[1]);
  return b;
};

const device = new Device({ backend: 'cpu', threads });
console.log(`sgld bench:lora — CPU backend, ${threads} thread(s), fp32 weights, random values${repeats === 1 ? ' (quick: one run per row)' : ''}`);
const [transformer, loadT] = seconds(() => new WanTransformer3DModel(device, TRANSFORMER, new RandomWeightSource(7)));
const weights = transformer.store.tensors;

// The LoRA file: diffusers/PEFT keys for every targeted Linear, shapes read from the model itself.
const targets = [...weights.entries()].filter(([k]) => TARGET.test(k));
const dir = mkdtempSync(join(tmpdir(), 'sgld-bench-lora-'));
const file = join(dir, 'pytorch_lora_weights.safetensors');
const gen = new TorchGenerator(11);
const entries: Record<string, TensorToWrite> = {};
let targetBytes = 0, loraParams = 0;
for (const [key, w] of targets) {
  const [out, inF] = w.shape as [number, number];
  const module = key.slice(0, -'.weight'.length);
  // A like PEFT's kaiming-uniform init (std ~ 1/sqrt(in)); B small, as after some training (PEFT starts it at 0).
  entries[`transformer.${module}.lora_A.weight`] = randomMatrix(gen, [LORA.rank, inF], 1 / Math.sqrt(inF));
  entries[`transformer.${module}.lora_B.weight`] = randomMatrix(gen, [out, LORA.rank], 0.01);
  targetBytes += w.byteLength;
  loraParams += LORA.rank * (inF + out);
}
writeSafetensors(file, entries, {
  lora_adapter_metadata: JSON.stringify({ 'transformer.r': LORA.rank, 'transformer.lora_alpha': LORA.alpha }),
});
const fileBytes = statSync(file).size;
const mib = (b: number): string => (b / 2 ** 20).toFixed(1);
let params = 0;
for (const w of weights.values()) params += w.numel;
console.log(`model: ${weights.size} tensors, ${(params / 1e6).toFixed(1)} M parameters (loaded in ${loadT.toFixed(2)} s); `
  + `LoRA: rank ${LORA.rank}, alpha ${LORA.alpha}, ${targets.length} Linears, ${(loraParams / 1e6).toFixed(2)} M parameters, ${mib(fileBytes)} MiB ${LORA.dtype}`);

const baseHash = hashWeights(weights);
const manager = new LoraManager({ family: 'WanPipeline', modules: { transformer: transformer.store } });
const failures: string[] = [];

// 1. First set_lora: read the file, convert bf16 -> fp32 and apply the scale, take host backups, merge.
const [first, firstSet] = seconds(() => manager.set([{ nickname: 'style', path: file, strength: 1 }]));
const report = first.modules[0]!;
if (first.loaded.length !== 1 || report.weights !== targets.length) {
  failures.push(`first set_lora loaded [${first.loaded.join(', ')}] and wrote ${report.weights} weights, expected 1 file and ${targets.length}`);
}
const mergedHash = hashWeights(weights);
if (mergedHash === baseHash) failures.push('the merged weights hash equal to the base: the merge changed nothing');

// 2. Re-merge at another strength (merge_lora_weights): restore from the backups, then the GEMMs again.
let strength = 1;
const remerge = best(repeats, () => { strength = strength === 0.5 ? 0.8 : 0.5; manager.merge('all', strength); });

// 3. Unmerge: write the backed-up bytes back. 4. Cached re-activation by nickname (no path, no file read).
const unmergeTimes: number[] = [], reactivateTimes: number[] = [];
let unmergedHash = '';
for (let i = 0; i < repeats; i++) {
  unmergeTimes.push(seconds(() => manager.unmerge('all'))[1]);
  if (i === 0) unmergedHash = hashWeights(weights);
  const [r, s] = seconds(() => manager.set([{ nickname: 'style', strength: 1 }]));
  if (r.loaded.length !== 0 || !r.modules[0]!.changed) failures.push('the cached re-activation re-read the file or merged nothing');
  reactivateTimes.push(s);
}
manager.unmerge('all');
const finalHash = hashWeights(weights);
if (unmergedHash !== baseHash) failures.push(`after the first unmerge the weights hash ${unmergedHash.slice(0, 16)}..., the base ${baseHash.slice(0, 16)}...`);
if (finalHash !== baseHash) failures.push(`after the last unmerge the weights hash ${finalHash.slice(0, 16)}..., the base ${baseHash.slice(0, 16)}...`);

const label = repeats > 1 ? ` (best of ${repeats})` : '';
const rows: [string, number][] = [
  ['first set_lora (load + convert + host backup + merge)', firstSet],
  [`cached re-activation by nickname, after an unmerge${label}`, Math.min(...reactivateTimes)],
  [`re-merge at another strength (restore + merge)${label}`, remerge],
  [`unmerge (write the base bytes back)${label}`, Math.min(...unmergeTimes)],
];
console.log('');
console.log('| operation | seconds |');
console.log('|---|---:|');
for (const [name, s] of rows) console.log(`| ${name} | ${s.toFixed(3)} |`);
console.log('');
console.log(`first set_lora split: restore ${(report.restoreMs / 1000).toFixed(3)} s, host backup ${(report.backupMs / 1000).toFixed(3)} s, `
  + `merge GEMMs ${(report.mergeMs / 1000).toFixed(3)} s; the rest (${(firstSet - (report.restoreMs + report.backupMs + report.mergeMs) / 1000).toFixed(3)} s) is reading and converting the file`);
console.log(`bytes merged per merge: ${targetBytes} (${mib(targetBytes)} MiB of fp32 weights, ${targets.length} Linears); host backups held: ${mib(manager.backupBytes)} MiB`);
console.log(`weights sha256: base ${baseHash.slice(0, 16)}..., merged ${mergedHash.slice(0, 16)}..., after unmerge ${unmergedHash.slice(0, 16)}... `
  + `-> ${unmergedHash === baseHash && finalHash === baseHash ? 'equal to the base (byte-exact unmerge)' : 'DIFFERENT from the base'}`);

rmSync(dir, { recursive: true, force: true });
transformer.free();
device.close();
if (failures.length > 0) {
  for (const f of failures) console.error(`FAIL: ${f}`);
  process.exit(1);
}
