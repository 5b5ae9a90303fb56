// The LoRA engine on small synthetic files written here: every key format (diffusers/PEFT, original Wan /
// ComfyUI, kohya / musubi, Z-Image's), alpha from metadata / keys / defaults / overrides, diffusers' alpha folding
// in bf16, the merge against a float64 reference (fp32 and bf16 weights, several adapters in order, bias deltas),
// byte-exact unmerge, the manager's set / merge / unmerge / list semantics, and the errors.
//
// Tolerances: merged fp32 weights within 1e-6 * (1 + |ref|) of the float64 reference (fp32 GEMM over rank <= 4
// of values in [-1, 1]: a few ulps); bf16 weights within half a bf16 ulp of the reference (2^-8 relative) plus
// 1e-6, i.e. one rounding of the fp32 result. Folded matrices and unmerged weights must be exact.
import t, { type Test } from 'tap';
import { mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SafetensorsDType, writeSafetensors } from '../../src/checkpoint/safetensors.js';
import {
  LoraError, LoraManager, type LoraLayer, type LoraModuleWeights, alphaFoldFactors, loadLoraFile, resolveLoraFile, wanFamily,
  zimageFamily,
} from '../../src/lora/index.js';
import { roundToBf16, roundToF16 } from '../../src/lora/float-rounding.js';
import { unflattenKohyaName } from '../../src/lora/families/family.js';
import { Device } from '../../src/runtime/device.js';
import type { DType } from '../../src/runtime/dtype.js';
import { Tensor, copyTo } from '../../src/runtime/tensor.js';

const tmp = mkdtempSync(join(tmpdir(), 'sgld-lora-'));
const device = new Device({ backend: 'cpu', threads: 1 });
t.teardown(() => {
  device.close();
  rmSync(tmp, { recursive: true, force: true });
});

// ---- synthetic data ----------------------------------------------------------------------------------------------

let seed = 12345;
/** Deterministic uniform values in [-1, 1) (a 32-bit LCG), rounded to bf16 when asked. */
function randomValues(n: number, bf16 = true): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0;
    const v = seed / 2 ** 31 - 1;
    out[i] = bf16 ? roundToBf16(v) : v;
  }
  return out;
}

interface FileTensor { dtype: 'BF16' | 'F32' | 'F16' | 'F64'; shape: number[]; values: Float32Array | Float64Array }

const bf16 = (shape: number[], values = randomValues(shape.reduce((a, b) => a * b, 1))): FileTensor & { values: Float32Array } =>
  ({ dtype: 'BF16', shape, values });
const scalar = (v: number): FileTensor => ({ dtype: 'F32', shape: [], values: Float32Array.of(v) });

/** Bits of bf16-exact values (the top half of their float32 bits). */
function bf16Bits(values: Float32Array): Uint16Array {
  const u = new Uint32Array(Float32Array.from(values).buffer);
  return Uint16Array.from(u, (x, i) => {
    if ((x & 0xffff) !== 0) throw new Error(`value ${values[i]} is not a bf16 value`);
    return x >>> 16;
  });
}

let fileCount = 0;
/** Writes a safetensors LoRA file and returns its path. */
function writeLora(tensors: Record<string, FileTensor>, metadata?: Record<string, string>): string {
  const path = join(tmp, `lora-${++fileCount}.safetensors`);
  const out: Record<string, { dtype: SafetensorsDType; shape: number[]; data: ArrayBufferView }> = {};
  for (const [k, v] of Object.entries(tensors)) {
    out[k] = { dtype: v.dtype, shape: v.shape, data: v.dtype === 'BF16' ? bf16Bits(Float32Array.from(v.values)) : v.values };
  }
  writeSafetensors(path, out, metadata);
  return path;
}

function peftMetadata(config: Record<string, unknown>): Record<string, string> {
  const prefixed = Object.fromEntries(Object.entries(config).map(([k, v]) => [`transformer.${k}`, v]));
  return { format: 'pt', lora_adapter_metadata: JSON.stringify(prefixed) };
}

/** Wan-like Linear shapes [out, in] of the synthetic model. */
const MODEL_SHAPES: Record<string, [number, number]> = {
  'blocks.0.attn1.to_q': [8, 6],
  'blocks.0.attn2.to_out.0': [8, 8],
  'blocks.0.ffn.net.0.proj': [12, 8],
  'blocks.0.ffn.net.2': [8, 12],
};

interface SyntheticModel { weights: LoraModuleWeights; base: Map<string, Float32Array>; bytes(): Map<string, Buffer>; free(): void }

/** A WeightStore-like map of weights and biases in `dtype` on the CPU device. */
function makeModel(dtype: DType = 'f32'): SyntheticModel {
  const tensors = new Map<string, Tensor>();
  const base = new Map<string, Float32Array>();
  for (const [module, [out, inF]] of Object.entries(MODEL_SHAPES)) {
    for (const [key, shape] of [[`${module}.weight`, [out, inF]], [`${module}.bias`, [out]]] as const) {
      const values = randomValues(shape.reduce((a, b) => a * b, 1), dtype === 'bf16');
      base.set(key, values);
      const f32 = Tensor.fromHost(device, values, shape, 'f32');
      if (dtype === 'f32') tensors.set(key, f32);
      else {
        tensors.set(key, copyTo(f32, dtype));
        f32.free();
      }
    }
  }
  return {
    weights: { device, tensors },
    base,
    bytes: () => new Map([...tensors].map(([k, v]) => [k, Buffer.from(v.toBytes())])),
    free: () => { for (const v of tensors.values()) v.free(); },
  };
}

/** A PEFT-format adapter for some modules of the synthetic model, with its raw matrices. */
function peftAdapterFile(modules: string[], rank: number, metadata?: Record<string, string>, extra: Record<string, FileTensor> = {}):
  { path: string; down: Map<string, Float32Array>; up: Map<string, Float32Array> } {
  const tensors: Record<string, FileTensor> = { ...extra };
  const down = new Map<string, Float32Array>(), up = new Map<string, Float32Array>();
  for (const m of modules) {
    const [out, inF] = MODEL_SHAPES[m]!;
    const a = bf16([rank, inF]), b = bf16([out, rank]);
    tensors[`transformer.${m}.lora_A.weight`] = a;
    tensors[`transformer.${m}.lora_B.weight`] = b;
    down.set(m, a.values); up.set(m, b.values);
  }
  return { path: writeLora(tensors, metadata), down, up };
}

/** float64 W + sum factor_t * B_t @ A_t. */
function reference64(w: Float32Array, shape: [number, number], terms: { down: Float32Array; up: Float32Array; rank: number; factor: number }[]): Float64Array {
  const [out, inF] = shape;
  const r = Float64Array.from(w);
  for (const { down, up, rank, factor } of terms) {
    for (let i = 0; i < out; i++) for (let j = 0; j < inF; j++) {
      let s = 0;
      for (let k = 0; k < rank; k++) s += up[i * rank + k]! * down[k * inF + j]!;
      r[i * inF + j] += factor * s;
    }
  }
  return r;
}

function maxViolation(got: Float32Array, ref: Float64Array, tol: (ref: number) => number): number {
  let worst = 0;
  for (let i = 0; i < ref.length; i++) worst = Math.max(worst, Math.abs(got[i]! - ref[i]!) / tol(ref[i]!));
  return worst;
}

const layerOf = (layers: LoraLayer[], module: string): LoraLayer => {
  const l = layers.find((x) => x.module === module);
  if (!l) throw new Error(`no layer for ${module}; have ${layers.map((x) => x.module).join(', ')}`);
  return l;
};

function throwsLora(t: Test, fn: () => unknown, code: string, message: RegExp, what: string): void {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (e) {
    t.ok(e instanceof LoraError, `${what}: throws a LoraError`);
    t.equal((e as LoraError).code, code, `${what}: code ${code}`);
    t.match((e as Error).message, message, `${what}: message`);
  }
}

// ---- rounding ----------------------------------------------------------------------------------------------------

t.test('bf16 / fp16 rounding is round-to-nearest, ties to even', async (t) => {
  t.equal(roundToBf16(1 + 2 ** -8), 1, 'bf16 tie at 1 + 2^-8 goes to the even 1');
  t.equal(roundToBf16(1 + 3 * 2 ** -8), 1 + 2 ** -6, 'bf16 tie at 1 + 3*2^-8 goes up to the even neighbour');
  t.equal(roundToBf16(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7, 'above the tie rounds up');
  t.equal(roundToBf16(-0.1), -0.10009765625, 'bf16(-0.1)');
  t.equal(roundToBf16(3.4e38), Infinity, 'bf16 overflow gives infinity');
  t.equal(roundToF16(1 + 2 ** -11), 1, 'fp16 tie goes to even');
  t.equal(roundToF16(1 + 3 * 2 ** -11), 1 + 2 ** -9, 'fp16 tie goes to even (up)');
  t.equal(roundToF16(65519), 65504, 'below the overflow midpoint stays finite');
  t.equal(roundToF16(65520), Infinity, 'the overflow midpoint rounds to infinity');
  t.equal(roundToF16(2 ** -25), 0, 'half the smallest subnormal ties to zero');
  t.equal(roundToF16(3 * 2 ** -26), 2 ** -24, 'three quarters of it rounds to the subnormal');
  t.equal(roundToF16(0.1), 0.0999755859375, 'fp16(0.1)');
});

t.test("alpha folding splits alpha/rank like diffusers' get_alpha_scales", async (t) => {
  t.same(alphaFoldFactors(1.5, 2), { down: 0.75, up: 1 }, 'scale >= 1/2 goes into down only');
  t.same(alphaFoldFactors(1, 8), { down: 0.25, up: 0.5 }, '1/8 becomes 1/4 * 1/2');
  t.same(alphaFoldFactors(1, 128), { down: 2 ** -4, up: 2 ** -3 }, '1/128 becomes 1/16 * 1/8');
  t.same(alphaFoldFactors(16, 8), { down: 2, up: 1 }, 'scale > 1 is not split');
});

// ---- formats -----------------------------------------------------------------------------------------------------

t.test('diffusers/PEFT keys with LoraConfig metadata: r, lora_alpha and per-module patterns', async (t) => {
  const meta = peftMetadata({
    r: 4, lora_alpha: 8, rank_pattern: { '^blocks.0.ffn.net.2': 2 }, alpha_pattern: { 'attn2.to_out.0': 3 }, use_rslora: false,
  });
  const tensors: Record<string, FileTensor> = {};
  for (const [m, rank] of [['blocks.0.attn1.to_q', 4], ['blocks.0.attn2.to_out.0', 4], ['blocks.0.ffn.net.2', 2]] as const) {
    const [out, inF] = MODEL_SHAPES[m]!;
    tensors[`transformer.${m}.lora_A.weight`] = bf16([rank, inF]);
    tensors[`transformer.${m}.lora_B.weight`] = bf16([out, rank]);
  }
  const { adapter } = loadLoraFile(writeLora(tensors, meta), wanFamily);
  t.same(adapter.namings, ['diffusers']);
  const q = layerOf(adapter.layers, 'blocks.0.attn1.to_q');
  t.match(q, { rank: 4, alpha: 8, scale: 2, alphaSource: 'metadata', inFeatures: 6, outFeatures: 8 }, 'default r / lora_alpha');
  t.match(layerOf(adapter.layers, 'blocks.0.attn2.to_out.0'), { rank: 4, alpha: 3, scale: 0.75 }, 'alpha_pattern (suffix match)');
  t.match(layerOf(adapter.layers, 'blocks.0.ffn.net.2'), { rank: 2, alpha: 8, scale: 4 }, 'rank_pattern (anchored)');
  t.same(q.down, tensors['transformer.blocks.0.attn1.to_q.lora_A.weight']!.values, 'A read exactly');
  t.same(q.up, tensors['transformer.blocks.0.attn1.to_q.lora_B.weight']!.values, 'B read exactly');

  const rs = loadLoraFile(writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([4, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 4]),
  }, peftMetadata({ r: 4, lora_alpha: 8, use_rslora: true })), wanFamily).adapter;
  t.equal(rs.layers[0]!.scale, 4, 'use_rslora: alpha / sqrt(r)');
});

t.test('PEFT keys without metadata: alpha = rank, per-key .alpha, the caller override, bare and base_model prefixes', async (t) => {
  const plain = loadLoraFile(writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([4, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 4]),
  }), wanFamily).adapter;
  t.match(plain.layers[0], { rank: 4, alpha: 4, scale: 1, alphaSource: 'rank' }, 'no alpha anywhere: scale 1');

  const path = writeLora({
    'blocks.0.attn1.to_q.lora_A.weight': bf16([4, 6]), 'blocks.0.attn1.to_q.lora_B.weight': bf16([8, 4]),
    'blocks.0.attn1.to_q.alpha': { dtype: 'F64', shape: [], values: Float64Array.of(2 + 2 ** -40) },
    'base_model.model.blocks.0.ffn.net.2.lora_A.weight': bf16([2, 12]), 'base_model.model.blocks.0.ffn.net.2.lora_B.weight': bf16([8, 2]),
  });
  const keyed = loadLoraFile(path, wanFamily, { alpha: 6 }).adapter;
  t.match(layerOf(keyed.layers, 'blocks.0.attn1.to_q'), { rank: 4, alpha: 2 + 2 ** -40, scale: (2 + 2 ** -40) / 4, alphaSource: 'key' },
    'a bare per-key .alpha is honoured (float64, read exactly)');
  t.match(layerOf(keyed.layers, 'blocks.0.ffn.net.2'), { rank: 2, alpha: 6, scale: 3, alphaSource: 'override' }, 'override where the file has none');
});

t.test('original Wan / ComfyUI keys: module mapping, per-layer rank and alpha, alpha folded in bf16', async (t) => {
  const q = { down: bf16([2, 6]), up: bf16([8, 2]) };
  const o = { down: bf16([3, 8]), up: bf16([8, 3]) };
  const f0 = { down: bf16([2, 8]), up: bf16([12, 2]) };
  const f2 = { down: bf16([4, 12]), up: bf16([8, 4]) };
  const path = writeLora({
    'diffusion_model.blocks.0.self_attn.q.lora_down.weight': q.down, 'diffusion_model.blocks.0.self_attn.q.lora_up.weight': q.up,
    'diffusion_model.blocks.0.self_attn.q.alpha': scalar(1.5),
    'diffusion_model.blocks.0.cross_attn.o.lora_down.weight': o.down, 'diffusion_model.blocks.0.cross_attn.o.lora_up.weight': o.up,
    'diffusion_model.blocks.0.cross_attn.o.alpha': scalar(0.375),
    'diffusion_model.blocks.0.ffn.0.lora_down.weight': f0.down, 'diffusion_model.blocks.0.ffn.0.lora_up.weight': f0.up,
    'diffusion_model.blocks.0.ffn.2.lora_down.weight': f2.down, 'diffusion_model.blocks.0.ffn.2.lora_up.weight': f2.up,
    'diffusion_model.blocks.0.ffn.2.alpha': scalar(4),
  });
  const { adapter } = loadLoraFile(path, wanFamily);
  t.same(adapter.namings, ['original']);
  t.same(adapter.layers.map((l) => l.module).sort(), ['blocks.0.attn1.to_q', 'blocks.0.attn2.to_out.0', 'blocks.0.ffn.net.0.proj', 'blocks.0.ffn.net.2']);

  // alpha 1.5, rank 2: down * 0.75 rounded to bf16, up unchanged; scale 1 at merge time.
  const lq = layerOf(adapter.layers, 'blocks.0.attn1.to_q');
  t.match(lq, { rank: 2, alpha: 1.5, scale: 1, alphaSource: 'folded' });
  const foldedDown = Float32Array.from(q.down.values, (v) => roundToBf16(Math.fround(v * 0.75)));
  t.same(lq.down, foldedDown, 'A folded as bf16(A * 0.75)');
  t.same(lq.up, q.up.values, 'B untouched');
  t.ok(foldedDown.some((v, i) => v !== Math.fround(q.down.values[i]! * 0.75)), 'the bf16 rounding is visible in this data');

  // alpha 0.375, rank 3: scale 1/8 -> down * 1/4, up * 1/2 (powers of two: exact).
  const lo = layerOf(adapter.layers, 'blocks.0.attn2.to_out.0');
  t.match(lo, { rank: 3, alpha: 0.375, scale: 1, alphaSource: 'folded' });
  t.same(lo.down, Float32Array.from(o.down.values, (v) => v / 4), 'A * 1/4');
  t.same(lo.up, Float32Array.from(o.up.values, (v) => v / 2), 'B * 1/2');

  t.match(layerOf(adapter.layers, 'blocks.0.ffn.net.0.proj'), { rank: 2, alpha: 2, scale: 1, alphaSource: 'rank' }, 'no alpha key: alpha = rank');
  t.match(layerOf(adapter.layers, 'blocks.0.ffn.net.2'), { rank: 4, alpha: 4, scale: 1, alphaSource: 'folded' }, 'alpha = rank folds to identity');
  t.same(layerOf(adapter.layers, 'blocks.0.ffn.net.2').down, f2.down.values);
});

t.test('kohya / musubi names are un-flattened with the family phrases, then mapped', async (t) => {
  t.equal(unflattenKohyaName('blocks_12_cross_attn_k_img', wanFamily.phrases), 'blocks.12.cross_attn.k_img');
  t.equal(unflattenKohyaName('noise_refiner_0_attention_to_out_0', zimageFamily.phrases), 'noise_refiner.0.attention.to_out.0');
  t.equal(unflattenKohyaName('all_x_embedder_2-1', zimageFamily.phrases), 'all_x_embedder.2-1');
  t.same(wanFamily.toDiffusers('blocks.3.cross_attn.v_img'), [{ module: 'blocks.3.attn2.add_v_proj' }]);
  t.same(wanFamily.toDiffusers('head.head'), [{ module: 'proj_out' }]);
  t.same(wanFamily.toDiffusers('time_embedding.2'), [{ module: 'condition_embedder.time_embedder.linear_2' }]);
  t.same(wanFamily.toDiffusers('blocks.0.attn1.to_q'), [{ module: 'blocks.0.attn1.to_q' }], 'diffusers names pass through');

  const down = bf16([2, 6]), up = bf16([8, 2]);
  const { adapter } = loadLoraFile(writeLora({
    'lora_unet_blocks_0_self_attn_q.lora_down.weight': down, 'lora_unet_blocks_0_self_attn_q.lora_up.weight': up,
    'lora_unet_blocks_0_self_attn_q.alpha': scalar(2),
    'lora_unet_blocks_0_ffn_2.lora_down.weight': bf16([2, 12]), 'lora_unet_blocks_0_ffn_2.lora_up.weight': bf16([8, 2]),
    'lora_unet_blocks_0_ffn_2.alpha': scalar(2),
  }), wanFamily);
  t.same(adapter.layers.map((l) => l.module).sort(), ['blocks.0.attn1.to_q', 'blocks.0.ffn.net.2']);
  t.same(adapter.namings, ['kohya']);
});

t.test("Z-Image original names: attention.out, fused qkv split into to_q/to_k/to_v", async (t) => {
  const qkvDown = bf16([2, 4]), qkvUp = bf16([12, 2]);
  const { adapter } = loadLoraFile(writeLora({
    'diffusion_model.layers.0.attention.out.lora_down.weight': bf16([2, 4]),
    'diffusion_model.layers.0.attention.out.lora_up.weight': bf16([4, 2]),
    'diffusion_model.layers.0.attention.out.alpha': scalar(2),
    'diffusion_model.layers.1.attention.qkv.lora_down.weight': qkvDown,
    'diffusion_model.layers.1.attention.qkv.lora_up.weight': qkvUp,
    'diffusion_model.layers.1.attention.qkv.alpha': scalar(2),
  }), zimageFamily);
  t.same(adapter.layers.map((l) => l.module).sort(), [
    'layers.0.attention.to_out.0', 'layers.1.attention.to_k', 'layers.1.attention.to_q', 'layers.1.attention.to_v',
  ]);
  const k = layerOf(adapter.layers, 'layers.1.attention.to_k');
  t.equal(k.outFeatures, 4, 'each part has a third of the rows');
  t.same(k.up, qkvUp.values.slice(8, 16), 'to_k takes rows 4..7 of up');
  t.same(k.down, qkvDown.values, 'the down matrix is shared');
});

t.test('errors name what is wrong', async (t) => {
  throwsLora(t, () => loadLoraFile(writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 2]),
    'model.some_weight': bf16([4]), 'other.thing.weight': bf16([4]),
  }), wanFamily), 'lora_load_failed', /2 of its 4 keys are not LoRA weights \(.*model\.some_weight/, 'unknown keys');
  throwsLora(t, () => loadLoraFile(writeLora({ 'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]) }), wanFamily),
    'lora_load_failed', /lora_A\.weight has no matching up/, 'down without up');
  throwsLora(t, () => loadLoraFile(writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 3]),
  }), wanFamily), 'lora_load_failed', /disagree on the rank/, 'rank mismatch');
  throwsLora(t, () => loadLoraFile(writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 2]),
  }, peftMetadata({ r: 4, lora_alpha: 4 })), wanFamily), 'lora_load_failed', /LoraConfig gives rank 4 .* rank 2/, 'metadata rank');
  throwsLora(t, () => loadLoraFile(writeLora({ 'text_encoder.layer.q.lora_A.weight': bf16([2, 6]), 'text_encoder.layer.q.lora_B.weight': bf16([8, 2]) }),
    wanFamily), 'lora_load_failed', /no LoRA weights for the transformer/, 'text encoder only');
  throwsLora(t, () => loadLoraFile(writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 2]),
    'diffusion_model.blocks.0.self_attn.q.lora_down.weight': bf16([2, 6]), 'diffusion_model.blocks.0.self_attn.q.lora_up.weight': bf16([8, 2]),
  }), wanFamily), 'lora_load_failed', /both target blocks\.0\.attn1\.to_q/, 'two keys for one module');
  throwsLora(t, () => loadLoraFile(writeLora({ 'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]) }, { lora_adapter_metadata: '{bad' }),
    wanFamily), 'lora_load_failed', /not valid JSON/, 'broken metadata');
  throwsLora(t, () => loadLoraFile(join(tmp, 'missing.safetensors'), wanFamily), 'lora_load_failed', /not found/, 'missing file');
  const notLora = join(tmp, 'garbage.safetensors');
  writeFileSync(notLora, 'not a safetensors file at all');
  throwsLora(t, () => loadLoraFile(notLora, wanFamily), 'lora_load_failed', /cannot read/, 'not safetensors');
  throwsLora(t, () => loadLoraFile(notLora, wanFamily, { alpha: -1 }), 'invalid_argument', /positive/, 'negative alpha override');
});

// ---- merging -----------------------------------------------------------------------------------------------------

t.test('merge of fp32 weights: one GEMM per adapter, against a float64 reference', async (t) => {
  const model = makeModel('f32');
  t.teardown(model.free);
  const a1 = peftAdapterFile(['blocks.0.attn1.to_q', 'blocks.0.ffn.net.2'], 4, peftMetadata({ r: 4, lora_alpha: 8 }));
  const a2 = peftAdapterFile(['blocks.0.attn1.to_q', 'blocks.0.attn2.to_out.0'], 2);
  const manager = new LoraManager({ family: 'wan', modules: { transformer: model.weights } });
  manager.load('one', a1.path);
  manager.load('two', a2.path);
  const before = model.bytes();

  const report = manager.apply('transformer', [{ nickname: 'one', strength: 0.7 }, { nickname: 'two', strength: -0.3 }]);
  t.match(report, { changed: true, weights: 3 }, 'three Linear weights written');
  const check = (module: string, terms: { down: Float32Array; up: Float32Array; rank: number; factor: number }[]) => {
    const shape = MODEL_SHAPES[module]!;
    const ref = reference64(model.base.get(`${module}.weight`)!, shape, terms);
    const got = model.weights.tensors.get(`${module}.weight`)!.toFloat32Array();
    const v = maxViolation(got, ref, (r) => 1e-6 * (1 + Math.abs(r)));
    t.ok(v <= 1, `${module}: within 1e-6 * (1 + |ref|) (worst ${v.toFixed(3)} of the bound)`);
  };
  check('blocks.0.attn1.to_q', [
    { down: a1.down.get('blocks.0.attn1.to_q')!, up: a1.up.get('blocks.0.attn1.to_q')!, rank: 4, factor: 0.7 * 2 },
    { down: a2.down.get('blocks.0.attn1.to_q')!, up: a2.up.get('blocks.0.attn1.to_q')!, rank: 2, factor: -0.3 },
  ]);
  check('blocks.0.ffn.net.2', [{ down: a1.down.get('blocks.0.ffn.net.2')!, up: a1.up.get('blocks.0.ffn.net.2')!, rank: 4, factor: 1.4 }]);
  check('blocks.0.attn2.to_out.0', [{ down: a2.down.get('blocks.0.attn2.to_out.0')!, up: a2.up.get('blocks.0.attn2.to_out.0')!, rank: 2, factor: -0.3 }]);
  t.same(model.weights.tensors.get('blocks.0.ffn.net.0.proj.weight')!.toBytes(), before.get('blocks.0.ffn.net.0.proj.weight'), 'untargeted weights untouched');

  manager.unmerge('transformer');
  const after = model.bytes();
  for (const [k, b] of before) t.ok(b.equals(after.get(k)!), `${k}: bytes equal the base after unmerge`);
});

t.test('merge of bf16 weights: fp32 accumulation, one rounding back to bf16; exact unmerge', async (t) => {
  const model = makeModel('bf16');
  t.teardown(model.free);
  const a = peftAdapterFile(['blocks.0.ffn.net.0.proj'], 3, peftMetadata({ r: 3, lora_alpha: 1.5 }));
  const manager = new LoraManager({ family: 'wan', modules: { transformer: model.weights } });
  manager.load('a', a.path);
  const before = model.bytes();
  manager.apply('transformer', [{ nickname: 'a', strength: 1.25 }]);
  const m = 'blocks.0.ffn.net.0.proj';
  const ref = reference64(model.base.get(`${m}.weight`)!, MODEL_SHAPES[m]!, [{ down: a.down.get(m)!, up: a.up.get(m)!, rank: 3, factor: 1.25 * 0.5 }]);
  const w = model.weights.tensors.get(`${m}.weight`)!;
  t.equal(w.dtype, 'bf16', 'the weight keeps its dtype');
  const got = w.toFloat32Array();
  const v = maxViolation(got, ref, (r) => 2 ** -8 * Math.abs(r) + 1e-6);
  t.ok(v <= 1, `within half a bf16 ulp of the float64 reference (worst ${v.toFixed(3)} of the bound)`);
  t.ok(got.some((x, i) => x !== model.base.get(`${m}.weight`)![i]), 'the weight changed');
  manager.unmerge();
  const after = model.bytes();
  for (const [k, b] of before) t.ok(b.equals(after.get(k)!), `${k}: bytes equal the base after unmerge`);
});

t.test('bias deltas (diff_b / lora_B.bias) are added to the Linear bias', async (t) => {
  const model = makeModel('f32');
  t.teardown(model.free);
  const delta = bf16([8]);
  const path = writeLora({
    'diffusion_model.blocks.0.self_attn.q.lora_down.weight': bf16([2, 6]), 'diffusion_model.blocks.0.self_attn.q.lora_up.weight': bf16([8, 2]),
    'diffusion_model.blocks.0.self_attn.q.diff_b': delta,
    'diffusion_model.blocks.0.norm3.diff_b': bf16([8]),
    'diffusion_model.blocks.0.modulation.diff': bf16([1, 6, 8]),
  });
  const manager = new LoraManager({ family: 'wan', modules: { transformer: model.weights } });
  const adapter = manager.load('b', path);
  t.equal(adapter.warnings.length, 2, 'the norm diff and the full-weight diff are skipped with warnings');
  manager.apply('transformer', [{ nickname: 'b', strength: 0.5 }]);
  const base = model.base.get('blocks.0.attn1.to_q.bias')!;
  const got = model.weights.tensors.get('blocks.0.attn1.to_q.bias')!.toFloat32Array();
  t.same(got, Float32Array.from(base, (b, i) => b + Math.fround(delta.values[i]! * 0.5)), 'bias + fp32(0.5 * delta), exactly');
  manager.unmerge();
  t.same(model.weights.tensors.get('blocks.0.attn1.to_q.bias')!.toFloat32Array(), base, 'bias restored');
});

t.test('a LoRA for modules the model lacks is refused before anything changes', async (t) => {
  const model = makeModel('f32');
  t.teardown(model.free);
  const path = writeLora({
    'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 2]),
    'transformer.blocks.7.attn1.to_k.lora_A.weight': bf16([2, 6]), 'transformer.blocks.7.attn1.to_k.lora_B.weight': bf16([8, 2]),
    'transformer.blocks.0.ffn.net.2.lora_A.weight': bf16([2, 5]), 'transformer.blocks.0.ffn.net.2.lora_B.weight': bf16([8, 2]),
  });
  const manager = new LoraManager({ family: 'wan', modules: { transformer: model.weights } });
  manager.load('bad', path);
  const before = model.bytes();
  throwsLora(t, () => manager.apply('transformer', [{ nickname: 'bad', strength: 1 }]), 'lora_incompatible',
    /no module blocks\.7\.attn1\.to_k/, 'missing module');
  const after = model.bytes();
  for (const [k, b] of before) t.ok(b.equals(after.get(k)!), `${k} unchanged`);
  t.equal(manager.mergedIn('transformer'), null, 'nothing recorded as merged');
});

// ---- the manager: spec 6 semantics ------------------------------------------------------------------------------

t.test('set_lora semantics: cache by nickname, idempotence, re-merge at new strengths, 409, errors', async (t) => {
  const model = makeModel('f32');
  t.teardown(model.free);
  const style = peftAdapterFile(['blocks.0.attn1.to_q'], 2);
  const char = peftAdapterFile(['blocks.0.attn1.to_q', 'blocks.0.ffn.net.2'], 2);
  const manager = new LoraManager({ family: 'WanPipeline', modules: { transformer: model.weights } });
  const base = model.bytes();

  throwsLora(t, () => manager.set([{ nickname: 'style' }]), 'lora_not_loaded', /Adapter style not found in the pipeline\. Please provide lora_path/, 'unknown nickname without a path');
  throwsLora(t, () => manager.set([{ nickname: 'style', path: style.path, target: 'unet' }]), 'invalid_target', /Invalid target\(s\): \["unet"\]/, 'invalid target');
  throwsLora(t, () => manager.set([{ nickname: 'style', path: style.path, target: 'transformer_2' }]), 'target_not_available', /no module "transformer_2"/, 'module the pipeline lacks');
  t.same(manager.loadedAdapters(), [], 'failed requests loaded nothing');

  const first = manager.set([{ nickname: 'style', path: style.path, strength: 0.7 }, { nickname: 'char', path: char.path, strength: 0.9 }]);
  t.same(first.loaded, ['style', 'char']);
  t.match(first.modules, [{ module: 'transformer', changed: true, weights: 2 }]);
  t.same(manager.list(), {
    loaded_adapters: [{ nickname: 'style', path: style.path }, { nickname: 'char', path: char.path }],
    active: { transformer: [{ nickname: 'style,char', path: `${style.path},${char.path}`, merged: true, mode: 'merged', strength: 0.7, strengths: [0.7, 0.9] }] },
  }, 'list_loras shape');
  const merged = model.bytes();

  const again = manager.set([{ nickname: 'style', strength: 0.7 }, { nickname: 'char', path: char.path, strength: 0.9 }]);
  t.match(again, { loaded: [], modules: [{ changed: false }] }, 'the same configuration again changes nothing');

  throwsLora(t, () => manager.set([{ nickname: 'style', strength: 1 }]), 'lora_already_merged',
    /LoRA 'style,char' is currently merged in transformer\. Call \/v1\/unmerge_lora_weights/, 'another set of nicknames');
  t.ok(model.bytes().get('blocks.0.attn1.to_q.weight')!.equals(merged.get('blocks.0.attn1.to_q.weight')!), 'the refused request changed nothing');

  const restrength = manager.set([{ nickname: 'char', strength: 0.2 }, { nickname: 'style', strength: 0.7 }]);
  t.match(restrength.modules, [{ changed: true }], 'same nicknames, new strengths: re-merged');
  t.same(manager.mergedIn('transformer'), [{ nickname: 'char', strength: 0.2 }, { nickname: 'style', strength: 0.7 }]);

  t.match(manager.unmerge('all'), [{ module: 'transformer', changed: true }]);
  t.same(manager.list().active, {}, 'nothing active after unmerge');
  for (const [k, b] of base) t.ok(b.equals(model.bytes().get(k)!), `${k}: base bytes after unmerge`);
  t.match(manager.unmerge('all'), [{ changed: false }], 'unmerge is idempotent');

  // merge_lora_weights re-merges the last set adapters at one strength.
  t.match(manager.merge('transformer', 0.5), [{ changed: true, weights: 2 }]);
  t.same(manager.mergedIn('transformer'), [{ nickname: 'char', strength: 0.5 }, { nickname: 'style', strength: 0.5 }]);
  t.match(manager.merge('all', 0.5), [{ changed: false }], 'same strength: nothing to do');
  manager.unmerge();

  // Cached re-activation needs no file: remove it and switch by nickname only.
  unlinkSync(style.path);
  t.match(manager.set([{ nickname: 'style', strength: 1 }]), { loaded: [], modules: [{ changed: true }] }, 'reused from the cache');
  manager.unmerge();

  // A new path for a known nickname reloads it (and re-merges where it is merged).
  manager.set([{ nickname: 'char', strength: 1 }]);
  const before = model.bytes().get('blocks.0.attn1.to_q.weight')!;
  const other = peftAdapterFile(['blocks.0.attn1.to_q'], 2);
  t.match(manager.set([{ nickname: 'char', path: other.path, strength: 1 }]), { loaded: ['char'], modules: [{ changed: true }] });
  t.notOk(model.bytes().get('blocks.0.attn1.to_q.weight')!.equals(before), 'merged from the new file');
  t.same(manager.loadedAdapters().map((a) => a.nickname), ['style', 'char'], 'a reload keeps the nickname\'s place in load order');
});

t.test('merge_lora_weights without a set adapter is 409; targets resolve to existing modules', async (t) => {
  const one = makeModel('f32'), two = makeModel('f32');
  t.teardown(() => { one.free(); two.free(); });
  const manager = new LoraManager({ family: 'wan', modules: { transformer: one.weights, transformer_2: two.weights } });
  t.same(manager.modules, ['transformer', 'transformer_2']);
  t.same(manager.resolveTarget('all'), ['transformer', 'transformer_2']);
  throwsLora(t, () => manager.merge('all', 1), 'lora_not_set', /No LoRA adapter has been set/, 'nothing set anywhere');
  const a = peftAdapterFile(['blocks.0.attn1.to_q'], 2);
  manager.set([{ nickname: 'a', path: a.path, target: 'transformer_2', strength: 1 }]);
  t.same(manager.mergedIn('transformer'), null, 'transformer untouched');
  t.same(manager.mergedIn('transformer_2'), [{ nickname: 'a', strength: 1 }]);
  throwsLora(t, () => manager.merge('transformer', 1), 'lora_not_set', /transformer/, 'explicit module never set');
  t.match(manager.merge('all', 0.5), [{ module: 'transformer_2', changed: true }], "'all' skips modules never set");
  throwsLora(t, () => manager.set([{ nickname: 'a', strength: Number.NaN }]), 'invalid_argument', /finite/, 'NaN strength');
  throwsLora(t, () => manager.set([{ nickname: 'a', strength: 1 }, { nickname: 'a', strength: 2 }]), 'invalid_argument',
    /listed twice/, 'one adapter twice in a module');
});

t.test('paths: a folder with diffusers\' weight name or one file, a repo in the local hub cache, pickles refused', async (t) => {
  const tensors = { 'transformer.blocks.0.attn1.to_q.lora_A.weight': bf16([2, 6]), 'transformer.blocks.0.attn1.to_q.lora_B.weight': bf16([8, 2]) };
  const folder = join(tmp, 'folder');
  mkdirSync(folder);
  renameSync(writeLora(tensors), join(folder, 'pytorch_lora_weights.safetensors'));
  renameSync(writeLora(tensors), join(folder, 'other.safetensors'));
  t.equal(resolveLoraFile(folder), join(folder, 'pytorch_lora_weights.safetensors'), "diffusers' file name wins");
  unlinkSync(join(folder, 'pytorch_lora_weights.safetensors'));
  t.equal(resolveLoraFile(folder), join(folder, 'other.safetensors'), 'the only .safetensors file');
  renameSync(writeLora(tensors), join(folder, 'third.safetensors'));
  throwsLora(t, () => resolveLoraFile(folder), 'lora_load_failed', /several \.safetensors files/, 'ambiguous folder');

  const hub = join(tmp, 'hub');
  const snapshot = join(hub, 'models--someone--style-lora', 'snapshots', 'abc123');
  mkdirSync(snapshot, { recursive: true });
  mkdirSync(join(hub, 'models--someone--style-lora', 'refs'));
  writeFileSync(join(hub, 'models--someone--style-lora', 'refs', 'main'), 'abc123\n');
  renameSync(writeLora(tensors), join(snapshot, 'style.safetensors'));
  const saved = process.env.HF_HUB_CACHE;
  process.env.HF_HUB_CACHE = hub;
  try {
    t.equal(resolveLoraFile('someone/style-lora'), join(snapshot, 'style.safetensors'), 'repo id from the hub cache (refs/main)');
    throwsLora(t, () => resolveLoraFile('someone/not-cached'), 'lora_load_failed', /does not download/, 'repo not in the cache');
  } finally {
    if (saved === undefined) delete process.env.HF_HUB_CACHE; else process.env.HF_HUB_CACHE = saved;
  }
  const pickle = join(tmp, 'weights.bin');
  writeFileSync(pickle, 'x');
  throwsLora(t, () => resolveLoraFile(pickle), 'lora_load_failed', /pickled/, 'pickle refused');
});
