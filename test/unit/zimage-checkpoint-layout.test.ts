// Z-Image's Qwen3 text encoder and ZImageTransformer2DModel load the REAL Z-Image-Turbo Diffusers layout: a
// synthetic pipeline folder with the real key names, bf16 tensors sharded with `*.safetensors.index.json`, the
// real config keys (from the fixture manifest's `real_model_mirrored`) and scaled-down sizes that keep the real
// proportions (grouped-query attention 4:1, Qwen3's head_dim * heads != hidden, RoPE axes 1:1.5:1.5). Both models
// must find every tensor by name, accept the configs and run a forward with finite outputs of the right shapes.
// The file also checks, on these synthetic models, the properties the goldens cannot isolate: the grouped-query
// shortcut against plain multi-head attention, ragged batching against items run alone, the position ids and the
// on-device tanh.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openDiffusersModel } from '../../src/checkpoint/diffusers.js';
import { openTensorSource } from '../../src/checkpoint/sharded.js';
import { encodeZImagePrompt, Qwen3Model } from '../../src/models/qwen3/index.js';
import { ZImageTransformer2DModel } from '../../src/models/zimage/transformer.js';
import { deviceTanh } from '../../src/models/zimage/transformer-modulation.js';
import { captionPositionIds, imagePositionIds, planBatchLayout } from '../../src/models/zimage/transformer-sequence.js';
import { Device } from '../../src/runtime/device.js';
import { fromFloat32 } from '../../src/runtime/ops.js';
import { scoped } from '../../src/runtime/tensor.js';
import { loadManifest } from '../helpers/goldens.js';
import { randomFloats } from '../helpers/native-harness.js';
import { type TensorValues, writeShardedBf16 } from '../helpers/synthetic-checkpoint.js';

type Shapes = Record<string, number[]>;
type Values = TensorValues;

/** Random values for `shapes`: norm weights near 1, pad tokens and the rest small, so the network stays sane. */
function randomValues(shapes: Shapes, seed: number): Values {
  const out: Values = {};
  for (const name of Object.keys(shapes).sort()) {
    const shape = shapes[name]!;
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /norm[^.]*\.weight$|norm\.weight$|_layernorm\.weight$|cap_embedder\.0\.weight$/.test(name);
    const values = randomFloats(n, seed++, isNorm ? 0.1 : 0.2);
    if (isNorm) for (let i = 0; i < n; i++) values[i]! += 1;
    out[name] = { shape, values };
  }
  return out;
}


interface Qwen3Sizes { vocab_size: number; hidden_size: number; intermediate_size: number; num_hidden_layers: number; num_attention_heads: number; num_key_value_heads: number; head_dim: number }

/** transformers' Qwen3 keys; `prefix` 'model.' for a checkpoint saved from Qwen3ForCausalLM (tied lm_head not saved). */
function qwen3Keys(c: Qwen3Sizes, prefix: string): Shapes {
  const { hidden_size: h, head_dim: d, num_attention_heads: H, num_key_value_heads: K, intermediate_size: f } = c;
  const s: Shapes = { [`${prefix}embed_tokens.weight`]: [c.vocab_size, h], [`${prefix}norm.weight`]: [h] };
  for (let i = 0; i < c.num_hidden_layers; i++) {
    const p = `${prefix}layers.${i}.`;
    s[`${p}input_layernorm.weight`] = [h];
    s[`${p}post_attention_layernorm.weight`] = [h];
    s[`${p}self_attn.q_proj.weight`] = [H * d, h];
    s[`${p}self_attn.k_proj.weight`] = [K * d, h];
    s[`${p}self_attn.v_proj.weight`] = [K * d, h];
    s[`${p}self_attn.o_proj.weight`] = [h, H * d];
    s[`${p}self_attn.q_norm.weight`] = [d];
    s[`${p}self_attn.k_norm.weight`] = [d];
    s[`${p}mlp.gate_proj.weight`] = [f, h];
    s[`${p}mlp.up_proj.weight`] = [f, h];
    s[`${p}mlp.down_proj.weight`] = [h, f];
  }
  return s;
}

interface ZImageSizes { dim: number; n_heads: number; n_layers: number; n_refiner_layers: number; in_channels: number; cap_feat_dim: number; all_patch_size: number[]; all_f_patch_size: number[] }

/** diffusers' ZImageTransformer2DModel keys (as in the fixture's index and the real checkpoint's). */
function zimageKeys(c: ZImageSizes): Shapes {
  const dim = c.dim, head = dim / c.n_heads, ffn = Math.trunc((dim / 3) * 8), adaln = Math.min(dim, 256);
  const s: Shapes = {
    'cap_embedder.0.weight': [c.cap_feat_dim], 'cap_embedder.1.weight': [dim, c.cap_feat_dim], 'cap_embedder.1.bias': [dim],
    cap_pad_token: [1, dim], x_pad_token: [1, dim],
    't_embedder.mlp.0.weight': [1024, 256], 't_embedder.mlp.0.bias': [1024],
    't_embedder.mlp.2.weight': [adaln, 1024], 't_embedder.mlp.2.bias': [adaln],
  };
  c.all_patch_size.forEach((p, i) => {
    const pf = c.all_f_patch_size[i]!, key = `${p}-${pf}`, patch = pf * p * p * c.in_channels;
    s[`all_x_embedder.${key}.weight`] = [dim, patch]; s[`all_x_embedder.${key}.bias`] = [dim];
    s[`all_final_layer.${key}.adaLN_modulation.1.weight`] = [dim, adaln]; s[`all_final_layer.${key}.adaLN_modulation.1.bias`] = [dim];
    s[`all_final_layer.${key}.linear.weight`] = [patch, dim]; s[`all_final_layer.${key}.linear.bias`] = [patch];
  });
  const block = (p: string, modulated: boolean): void => {
    for (const m of ['to_q', 'to_k', 'to_v', 'to_out.0']) s[`${p}.attention.${m}.weight`] = [dim, dim];
    s[`${p}.attention.norm_q.weight`] = [head]; s[`${p}.attention.norm_k.weight`] = [head];
    for (const n of ['attention_norm1', 'attention_norm2', 'ffn_norm1', 'ffn_norm2']) s[`${p}.${n}.weight`] = [dim];
    s[`${p}.feed_forward.w1.weight`] = [ffn, dim]; s[`${p}.feed_forward.w3.weight`] = [ffn, dim]; s[`${p}.feed_forward.w2.weight`] = [dim, ffn];
    if (modulated) { s[`${p}.adaLN_modulation.0.weight`] = [4 * dim, adaln]; s[`${p}.adaLN_modulation.0.bias`] = [4 * dim]; }
  };
  for (let i = 0; i < c.n_refiner_layers; i++) { block(`noise_refiner.${i}`, true); block(`context_refiner.${i}`, false); }
  for (let i = 0; i < c.n_layers; i++) block(`layers.${i}`, true);
  return s;
}

const real = loadManifest('zimage-tiny').real_model_mirrored as { text_encoder: Record<string, unknown>; transformer: Record<string, unknown> };

/** Qwen3-4B scaled down: 4 query heads per key/value head and heads * head_dim (128) != hidden (48), as 4096 != 2560. */
const textEncoderConfig = {
  ...real.text_encoder, architectures: ['Qwen3ForCausalLM'], model_type: 'qwen3', torch_dtype: 'bfloat16',
  hidden_size: 48, intermediate_size: 96, num_hidden_layers: 4, num_attention_heads: 8, num_key_value_heads: 2, head_dim: 16, vocab_size: 300,
};

/** Z-Image-Turbo's transformer scaled down: head 32 split 8/12/12 as 128 splits 32/48/48; real axes_lens. */
const transformerConfig = {
  ...real.transformer, _class_name: 'ZImageTransformer2DModel', _diffusers_version: '0.36.0',
  dim: 64, n_heads: 2, n_kv_heads: 2, n_layers: 2, n_refiner_layers: 2, cap_feat_dim: 48, axes_dims: [8, 12, 12],
};
delete (transformerConfig as Record<string, unknown>).dtype; // the manifest's note, not a config key

function writePipeline(dir: string, textPrefix: string): { text: Values; transformer: Values } {
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify({
    _class_name: 'ZImagePipeline', _diffusers_version: '0.36.0',
    text_encoder: ['transformers', 'Qwen3Model'], transformer: ['diffusers', 'ZImageTransformer2DModel'],
  }));
  const text = randomValues(qwen3Keys(textEncoderConfig, textPrefix), 1000);
  mkdirSync(join(dir, 'text_encoder'));
  writeFileSync(join(dir, 'text_encoder', 'config.json'), JSON.stringify(textEncoderConfig));
  writeShardedBf16(join(dir, 'text_encoder'), 'model', text, 3);
  const transformer = randomValues(zimageKeys(transformerConfig as unknown as ZImageSizes), 2000);
  mkdirSync(join(dir, 'transformer'));
  writeFileSync(join(dir, 'transformer', 'config.json'), JSON.stringify(transformerConfig));
  writeShardedBf16(join(dir, 'transformer'), 'diffusion_pytorch_model', transformer, 2);
  return { text, transformer };
}

/** Two right-padded prompts of 13 and 6 tokens in a length-16 batch. */
function promptBatch(): { ids: number[]; mask: number[]; batch: number; length: number } {
  const batch = 2, length = 16, lens = [13, 6];
  const ids: number[] = [], mask: number[] = [];
  for (let b = 0; b < batch; b++) {
    for (let i = 0; i < length; i++) {
      ids.push(i < lens[b]! ? 3 + ((i * 37 + b * 101) % 290) : 1);
      mask.push(i < lens[b]! ? 1 : 0);
    }
  }
  return { ids, mask, batch, length };
}

const allFinite = (xs: Float32Array): boolean => xs.every((x) => Number.isFinite(x));
const maxAbsDiff = (a: Float32Array, b: Float32Array): number => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i]!)), 0);

const device = new Device({ backend: 'cpu' });
const root = mkdtempSync(join(tmpdir(), 'sgld-zimage-layout-'));
t.teardown(() => {
  rmSync(root, { recursive: true, force: true });
  device.close();
});

for (const prefix of ['', 'model.']) {
  t.test(`Z-Image-Turbo layout (text encoder keys "${prefix}layers..."): the sharded bf16 Qwen3 encoder loads what hidden_states[-2] needs and encodes`, async (t) => {
    const dir = join(root, `te-${prefix || 'plain'}`);
    mkdirSync(dir);
    writePipeline(dir, prefix);
    const pipeline = openDiffusersModel(dir);
    t.teardown(() => pipeline.close());
    const te = pipeline.component('text_encoder');
    const encoder = new Qwen3Model(device, te.config, te.weights!);
    t.teardown(() => encoder.free());

    const n = textEncoderConfig.num_hidden_layers;
    t.equal(encoder.layers.length, n - 1, 'hidden_states[-2] needs every layer but the last');
    const loaded = new Set([...encoder.store.tensors.keys(), encoder.embed_tokens.name]);
    const unused = te.weights!.names().filter((k) => !loaded.has(k)).sort();
    t.same(unused, te.weights!.names().filter((k) => k.startsWith(`${prefix}layers.${n - 1}.`) || k === `${prefix}norm.weight`).sort(),
      'the only tensors left on disk are the last layer and the final norm');

    const tokens = promptBatch();
    const hidden = encoder.forward(tokens);
    t.same(hidden.shape, [2, 16, 48], 'hidden_states[-2] shape');
    const h = hidden.toFloat32Array();
    hidden.free();
    t.ok(allFinite(h), 'hidden states are finite, padded rows included');
    const embeds = encodeZImagePrompt(encoder, tokens);
    t.same(embeds.map((e) => e.shape), [[13, 48], [6, 48]], 'one prompt_embeds tensor per prompt, its tokens only');
    // The prefix encode (13 positions) gives the rows of the full encode (16 positions): attention is causal.
    const rows = (b: number, count: number): Float32Array => h.subarray(b * 16 * 48, (b * 16 + count) * 48);
    t.ok(maxAbsDiff(embeds[0]!.toFloat32Array(), rows(0, 13)) <= 1e-5, 'prompt 0 rows match the full-length encode within 1e-5');
    t.ok(maxAbsDiff(embeds[1]!.toFloat32Array(), rows(1, 6)) <= 1e-5, 'prompt 1 rows match the full-length encode within 1e-5');
    for (const e of embeds) e.free();
  });
}

t.test('Qwen3 grouped-query attention equals multi-head attention with each key/value head repeated', async (t) => {
  const dir = join(root, 'gqa');
  mkdirSync(dir);
  const { text } = writePipeline(dir, '');
  // The same model as plain MHA: k_proj/v_proj rows of kv head g copied to query heads 4g .. 4g+3 (exact in bf16).
  const { num_attention_heads: H, num_key_value_heads: K, head_dim: D, hidden_size: hid } = textEncoderConfig;
  const mha: Values = {};
  for (const [name, v] of Object.entries(text)) {
    if (!/self_attn\.(k|v)_proj\.weight$/.test(name)) { mha[name] = v; continue; }
    const values = new Float32Array(H * D * hid);
    for (let h = 0; h < H; h++) values.set(v.values.subarray((Math.floor(h / (H / K)) * D) * hid, (Math.floor(h / (H / K)) * D + D) * hid), h * D * hid);
    mha[name] = { shape: [H * D, hid], values };
  }
  const mhaDir = join(dir, 'text_encoder_mha');
  writeShardedBf16(mhaDir, 'model', mha, 1);
  const pipeline = openDiffusersModel(dir);
  const mhaSource = openTensorSource(join(mhaDir, 'model.safetensors.index.json'));
  const te = pipeline.component('text_encoder');
  const grouped = new Qwen3Model(device, te.config, te.weights!);
  const plain = new Qwen3Model(device, { ...te.config, num_key_value_heads: H }, mhaSource);
  t.teardown(() => { grouped.free(); plain.free(); mhaSource.close(); pipeline.close(); });
  const tokens = promptBatch();
  const a = grouped.forward(tokens), b = plain.forward(tokens);
  const diff = maxAbsDiff(a.toFloat32Array(), b.toFloat32Array());
  a.free(); b.free();
  t.ok(diff <= 1e-5, `grouped and repeated-head encoders agree (max abs ${diff.toExponential(2)} <= 1e-5), padded rows included`);
});

t.test('Z-Image-Turbo layout: the sharded bf16 transformer loads every tensor and runs a ragged batch', async (t) => {
  const dir = join(root, 'tr');
  mkdirSync(dir);
  writePipeline(dir, '');
  const pipeline = openDiffusersModel(dir);
  t.teardown(() => pipeline.close());
  const tr = pipeline.component('transformer');
  const model = new ZImageTransformer2DModel(device, tr.config, tr.weights!);
  t.teardown(() => model.free());
  t.equal(model.store.tensors.size, tr.weights!.names().length, 'every checkpoint tensor is a model parameter');
  t.same(model.config.axesLens, [1536, 512, 512], 'the real axes_lens are read');

  // Two items of different sizes: 12 and 48 image tokens (padded to 32 and 64), 5 and 37 caption rows (32, 64).
  const shapes = [[16, 1, 6, 8], [16, 1, 12, 16]];
  const capLens = [5, 37];
  const inputs = () => ({
    latents: shapes.map((s, i) => fromFloat32(device, randomFloats(s.reduce((a, b) => a * b, 1), 10 + i), s)),
    captions: capLens.map((n, i) => fromFloat32(device, randomFloats(n * 48, 20 + i), [n, 48])),
  });
  const batched = scoped(() => { const x = inputs(); return model.forward(x.latents, [0.9, 0.05], x.captions); });
  t.same(batched.map((o) => o.shape), shapes, 'one output per item, each of its latent shape');
  t.ok(batched.every((o) => allFinite(o.toFloat32Array())), 'outputs are finite');

  // The batch's masks and per-item tables make each item independent of the other.
  for (let i = 0; i < 2; i++) {
    const alone = scoped(() => { const x = inputs(); return model.forward([x.latents[i]!], [[0.9, 0.05][i]!], [x.captions[i]!])[0]!; });
    const diff = maxAbsDiff(alone.toFloat32Array(), batched[i]!.toFloat32Array());
    t.ok(diff <= 1e-5, `item ${i} in the batch matches item ${i} alone (max abs ${diff.toExponential(2)} <= 1e-5)`);
    alone.free();
  }
  for (const o of batched) o.free();
});

t.test('position ids follow diffusers v0.36: caption 1.., image after the padded caption, image padding (0, 0, 0)', async (t) => {
  const layout = planBatchLayout([[16, 1, 4, 6]], [3], 2, 1); // 2x3 = 6 image tokens, 3 caption tokens
  const [item] = layout.items;
  t.equal(item!.imageLength, 32, 'image tokens padded to 32');
  t.equal(item!.captionLength, 32, 'caption tokens padded to 32');
  const cap = captionPositionIds(item!);
  t.same(Array.from(cap.subarray(0, 9)), [1, 0, 0, 2, 0, 0, 3, 0, 0], 'caption rows (1 + j, 0, 0)');
  t.same(Array.from(cap.subarray(31 * 3)), [32, 0, 0], 'caption padding rows keep counting (1 + j, 0, 0)');
  const img = imagePositionIds(item!);
  t.same(Array.from(img.subarray(0, 18)), [33, 0, 0, 33, 0, 1, 33, 0, 2, 33, 1, 0, 33, 1, 1, 33, 1, 2],
    'image tokens (32 + 1 + f, h, w) in (f, h, w) order');
  t.ok(img.subarray(6 * 3).every((v) => v === 0), 'image padding rows (0, 0, 0)');
});

t.test('the on-device tanh (2 sigmoid(2x) - 1 through softmax) matches Math.tanh within 3e-7', async (t) => {
  const xs = Float32Array.from({ length: 2001 }, (_, i) => Math.fround((i - 1000) / 100)); // -10 .. 10, 0 included
  const y = scoped(() => deviceTanh(fromFloat32(device, xs, [xs.length], 'f32')));
  const got = y.toFloat32Array();
  y.free();
  const err = got.reduce((m, v, i) => Math.max(m, Math.abs(v - Math.tanh(xs[i]!))), 0);
  t.ok(err <= 3e-7, `max abs error ${err.toExponential(2)} <= 3e-7`);
  t.equal(got[1000], 0, 'tanh(0) is exactly 0');
});

t.test('configs the models cannot run are refused with the key named', async (t) => {
  const dir = join(root, 'bad');
  mkdirSync(dir);
  writePipeline(dir, '');
  const pipeline = openDiffusersModel(dir);
  t.teardown(() => pipeline.close());
  const tr = pipeline.component('transformer'), te = pipeline.component('text_encoder');
  t.throws(() => new ZImageTransformer2DModel(device, { ...tr.config, axes_dims: [8, 12, 16] }, tr.weights!), /axes_dims/);
  t.throws(() => new Qwen3Model(device, { ...te.config, rope_scaling: { type: 'yarn', factor: 4 } }, te.weights!), /rope_scaling/);
  t.throws(() => new Qwen3Model(device, te.config, te.weights!, { hiddenStatesIndex: -6 }), /hiddenStatesIndex/);
});
