// The Wan text encoder and transformer load the REAL Wan2.1-T2V Diffusers layout: a synthetic pipeline folder
// with the real key names, bf16 tensors and sharded `*.safetensors.index.json` files, the real config keys
// (from the fixture manifest's `real_model_mirrored`) and scaled-down sizes. Both models must find every tensor
// by name, accept the configs, and run a forward with finite outputs of the right shapes.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { openDiffusersModel } from '../../src/checkpoint/diffusers.js';
import { encodeWanPrompt, sequenceLengths, UMT5Encoder, wanPromptEmbeds } from '../../src/models/umt5/index.js';
import { WanTransformer3DModel } from '../../src/models/wan/transformer.js';
import { Device } from '../../src/runtime/device.js';
import { fromFloat32 } from '../../src/runtime/ops.js';
import { scoped } from '../../src/runtime/tensor.js';
import { loadManifest } from '../helpers/goldens.js';
import { randomFloats } from '../helpers/native-harness.js';
import { type TensorValues, writeShardedBf16 } from '../helpers/synthetic-checkpoint.js';

type Shapes = Record<string, number[]>;

/**
 * Writes `shapes` as bf16 tensors sharded like transformers/diffusers do. Norm weights are near 1, the rest small,
 * so a random network stays in a sane range.
 */
function writeSharded(dir: string, base: string, shapes: Shapes, shards: number, seed: number): void {
  const tensors: TensorValues = {};
  for (const name of Object.keys(shapes).sort()) {
    const shape = shapes[name]!;
    const n = shape.reduce((a, b) => a * b, 1);
    const isNorm = /norm[^.]*\.weight$|layer_norm\.weight$/.test(name);
    const scale = isNorm ? 0.1 : name.includes('relative_attention_bias') || name.includes('scale_shift_table') ? 0.5 : 0.2;
    const values = randomFloats(n, seed++, scale);
    if (isNorm) for (let i = 0; i < n; i++) values[i]! += 1;
    tensors[name] = { shape, values };
  }
  writeShardedBf16(dir, base, tensors, shards);
}

/** transformers' UMT5EncoderModel keys (the tied encoder.embed_tokens is saved only as shared.weight). */
function umt5Keys(c: { vocab_size: number; d_model: number; d_kv: number; num_heads: number; d_ff: number; num_layers: number; relative_attention_num_buckets: number }): Shapes {
  const inner = c.num_heads * c.d_kv;
  const s: Shapes = { 'shared.weight': [c.vocab_size, c.d_model], 'encoder.final_layer_norm.weight': [c.d_model] };
  for (let i = 0; i < c.num_layers; i++) {
    const p = `encoder.block.${i}.layer.`;
    for (const m of ['q', 'k', 'v']) s[`${p}0.SelfAttention.${m}.weight`] = [inner, c.d_model];
    s[`${p}0.SelfAttention.o.weight`] = [c.d_model, inner];
    s[`${p}0.SelfAttention.relative_attention_bias.weight`] = [c.relative_attention_num_buckets, c.num_heads];
    s[`${p}0.layer_norm.weight`] = [c.d_model];
    s[`${p}1.DenseReluDense.wi_0.weight`] = [c.d_ff, c.d_model];
    s[`${p}1.DenseReluDense.wi_1.weight`] = [c.d_ff, c.d_model];
    s[`${p}1.DenseReluDense.wo.weight`] = [c.d_model, c.d_ff];
    s[`${p}1.layer_norm.weight`] = [c.d_model];
  }
  return s;
}

/** diffusers' WanTransformer3DModel keys (T2V: no image embedder, no added K/V). */
function wanKeys(c: { num_attention_heads: number; attention_head_dim: number; in_channels: number; out_channels: number; text_dim: number; freq_dim: number; ffn_dim: number; num_layers: number; patch_size: number[] }): Shapes {
  const dim = c.num_attention_heads * c.attention_head_dim;
  const patch = c.patch_size.reduce((a, b) => a * b, 1);
  const s: Shapes = {
    'patch_embedding.weight': [dim, c.in_channels, ...c.patch_size], 'patch_embedding.bias': [dim],
    'condition_embedder.time_embedder.linear_1.weight': [dim, c.freq_dim], 'condition_embedder.time_embedder.linear_1.bias': [dim],
    'condition_embedder.time_embedder.linear_2.weight': [dim, dim], 'condition_embedder.time_embedder.linear_2.bias': [dim],
    'condition_embedder.time_proj.weight': [6 * dim, dim], 'condition_embedder.time_proj.bias': [6 * dim],
    'condition_embedder.text_embedder.linear_1.weight': [dim, c.text_dim], 'condition_embedder.text_embedder.linear_1.bias': [dim],
    'condition_embedder.text_embedder.linear_2.weight': [dim, dim], 'condition_embedder.text_embedder.linear_2.bias': [dim],
    'proj_out.weight': [c.out_channels * patch, dim], 'proj_out.bias': [c.out_channels * patch],
    scale_shift_table: [1, 2, dim],
  };
  for (let i = 0; i < c.num_layers; i++) {
    const p = `blocks.${i}.`;
    for (const a of ['attn1', 'attn2']) {
      for (const m of ['to_q', 'to_k', 'to_v', 'to_out.0']) { s[`${p}${a}.${m}.weight`] = [dim, dim]; s[`${p}${a}.${m}.bias`] = [dim]; }
      s[`${p}${a}.norm_q.weight`] = [dim];
      s[`${p}${a}.norm_k.weight`] = [dim];
    }
    s[`${p}norm2.weight`] = [dim]; s[`${p}norm2.bias`] = [dim];
    s[`${p}ffn.net.0.proj.weight`] = [c.ffn_dim, dim]; s[`${p}ffn.net.0.proj.bias`] = [c.ffn_dim];
    s[`${p}ffn.net.2.weight`] = [dim, c.ffn_dim]; s[`${p}ffn.net.2.bias`] = [dim];
    s[`${p}scale_shift_table`] = [1, 6, dim];
  }
  return s;
}

const real = loadManifest('wan-tiny').real_model_mirrored as { text_encoder: Record<string, unknown>; transformer: Record<string, unknown> };

/** The real text encoder config with its sizes scaled down (inner width 32 != d_model 24, as nothing forbids). */
const textEncoderConfig = {
  ...real.text_encoder, torch_dtype: 'bfloat16',
  d_model: 24, d_kv: 8, num_heads: 4, d_ff: 40, num_layers: 3, vocab_size: 300,
};

/** The real 1.3B and 14B transformer configs scaled down; head_dim 20 splits t/h/w 8/6/6 as 128 splits 44/42/42. */
const transformerConfigs = {
  '1.3B': { ...real.transformer, num_attention_heads: 2, attention_head_dim: 20, ffn_dim: 56, freq_dim: 16, num_layers: 3, text_dim: 24 },
  '14B': { ...real.transformer, num_attention_heads: 4, attention_head_dim: 12, ffn_dim: 72, freq_dim: 16, num_layers: 2, text_dim: 24 },
};

function writePipeline(dir: string, transformerConfig: Record<string, unknown>): void {
  writeFileSync(join(dir, 'model_index.json'), JSON.stringify({
    _class_name: 'WanPipeline', _diffusers_version: '0.36.0',
    text_encoder: ['transformers', 'UMT5EncoderModel'],
    transformer: ['diffusers', 'WanTransformer3DModel'],
    transformer_2: [null, null], boundary_ratio: null, expand_timesteps: false,
  }));
  mkdirSync(join(dir, 'text_encoder'));
  writeFileSync(join(dir, 'text_encoder', 'config.json'), JSON.stringify(textEncoderConfig));
  writeSharded(join(dir, 'text_encoder'), 'model', umt5Keys(textEncoderConfig as never), 5, 1000);
  mkdirSync(join(dir, 'transformer'));
  writeFileSync(join(dir, 'transformer', 'config.json'), JSON.stringify({ _class_name: 'WanTransformer3DModel', _diffusers_version: '0.36.0', ...transformerConfig }));
  writeSharded(join(dir, 'transformer'), 'diffusion_pytorch_model', wanKeys(transformerConfig as never), 3, 2000);
}

const allFinite = (xs: Float32Array): boolean => xs.every((x) => Number.isFinite(x));

const device = new Device({ backend: 'cpu' });
const root = mkdtempSync(join(tmpdir(), 'sgld-wan-layout-'));
t.teardown(() => {
  rmSync(root, { recursive: true, force: true });
  device.close();
});

for (const [variant, transformerConfig] of Object.entries(transformerConfigs)) {
  t.test(`Wan2.1-T2V-${variant} layout: sharded bf16 text encoder and transformer load and run`, async (t) => {
    const dir = join(root, variant);
    mkdirSync(dir);
    writePipeline(dir, transformerConfig);
    const pipeline = openDiffusersModel(dir);
    t.teardown(() => pipeline.close());

    const te = pipeline.component('text_encoder');
    const encoder = new UMT5Encoder(device, te.config, te.weights!);
    t.teardown(() => encoder.free());
    // Token ids on both sides of the relative-bias buckets (padding = 0, eos = 1), one prompt shorter.
    const batch = 2, length = 20;
    const ids: number[] = [], mask: number[] = [];
    for (let b = 0; b < batch; b++) {
      const real = b === 0 ? 17 : 9;
      for (let i = 0; i < length; i++) {
        ids.push(i < real - 1 ? 2 + ((i * 37 + b * 101) % 297) : i === real - 1 ? 1 : 0);
        mask.push(i < real ? 1 : 0);
      }
    }
    const hidden = encoder.forward({ ids, mask, batch, length });
    t.same(hidden.shape, [batch, length, textEncoderConfig.d_model], 'last_hidden_state shape');
    t.ok(allFinite(hidden.toFloat32Array()), 'last_hidden_state is finite');
    const embeds = wanPromptEmbeds(hidden, sequenceLengths(mask, batch, length));
    const e = embeds.toFloat32Array();
    const d = textEncoderConfig.d_model;
    t.ok(e.subarray((1 * length + 9) * d, 2 * length * d).every((x) => x === 0), 'prompt_embeds rows past the prompt are zero');
    t.ok(e.subarray(0, 17 * d).some((x) => x !== 0), 'prompt_embeds keep the prompt rows');
    hidden.free();
    // Encoding only the first max(len) = 17 positions gives the same embeddings (fp32 summation order aside).
    const short = encodeWanPrompt(encoder, { ids, mask, batch, length });
    const s = short.toFloat32Array();
    short.free();
    t.ok(s.every((x, i) => Math.abs(x - e[i]!) <= 1e-5 * (1 + Math.abs(e[i]!))), 'encodeWanPrompt matches the full-length encode within 1e-5');

    const tr = pipeline.component('transformer');
    const model = new WanTransformer3DModel(device, tr.config, tr.weights!);
    t.teardown(() => model.free());
    t.equal(model.store.tensors.size, tr.weights!.names().length, 'every checkpoint tensor is a model parameter');
    const latentShape = [batch, 16, 3, 4, 6];
    const out = scoped(() => {
      const latents = fromFloat32(device, randomFloats(latentShape.reduce((a, b) => a * b, 1), 7), latentShape);
      return model.forward(latents, [999, 37.5], embeds);
    });
    t.same(out.shape, latentShape, 'transformer output has the latents shape');
    t.ok(allFinite(out.toFloat32Array()), 'transformer output is finite');
    out.free();
    embeds.free();
  });
}

t.test('an image-conditioned (I2V) transformer config is refused with a clear message', async (t) => {
  const dir = join(root, 'i2v');
  mkdirSync(dir);
  writePipeline(dir, transformerConfigs['1.3B']);
  const pipeline = openDiffusersModel(dir);
  t.teardown(() => pipeline.close());
  const tr = pipeline.component('transformer');
  t.throws(() => new WanTransformer3DModel(device, { ...tr.config, image_dim: 1280, added_kv_proj_dim: 5120 }, tr.weights!), /I2V/);
});
