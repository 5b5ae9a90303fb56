// The Wan transformer's fused paths against the unfused ops they replace, on random weights where every tensor
// (norm weights, biases, scale_shift_table included) is non-trivial:
//   - modulatedLayerNorm: one LayerNorm with weight 1 + scale and bias shift == LayerNorm then modulate;
//   - Linear.accumulateInto: out += x W^T + b inside the GEMM == out + linear(x);
//   - a whole block (cross_attn_norm on and off; off makes the cross-attention read x and accumulate into it)
//     == the block written out with the two-pass ops, for one modulation row and for per-item rows;
//   - the model with [t, t] (one modulation row broadcast) == each batch item run alone.
// Tolerances: the fused forms do the same float32 operations, only the residual add is ordered (x + P) + b
// instead of x + (P + b), so differences are a few ulp of O(1) values: 2e-6 absolute for single ops, 2e-5
// for a block and the 2-layer model (measured: see the assertion messages). A wrong row, scale or alias
// moves values by O(0.1).
import t from 'tap';
import { WanTransformerBlock, modulatedLayerNorm } from '../../src/models/wan/transformer-block.js';
import { WanTransformer3DModel } from '../../src/models/wan/transformer.js';
import { parseWanTransformerConfig } from '../../src/models/wan/transformer-config.js';
import { Linear } from '../../src/models/wan/transformer-layers.js';
import { WanRopeCache } from '../../src/models/wan/rope.js';
import { WeightStore, type WeightSource } from '../../src/models/weights.js';
import { Device } from '../../src/runtime/device.js';
import { add, affine, attention, cat, fromFloat32, gatedResidual, layerNorm, linear, modulate, rmsNorm, rope, Activation } from '../../src/runtime/ops.js';
import { type Tensor, scoped } from '../../src/runtime/tensor.js';
import { randomFloats } from '../helpers/native-harness.js';

/** Every tensor random: matrices ~ U(-a, a) with variance 1/fan_in, 1-D tensors 1 + U(-0.3, 0.3) for norm weights, U(-0.3, 0.3) otherwise. */
class DenseRandomSource implements WeightSource {
  readonly #shapes = new Map<string, number[]>();
  has(): boolean { return true; }
  info(name: string, expectedShape?: readonly number[]): { dtype: string; shape: number[] } {
    const shape = this.#shapes.get(name) ?? [...expectedShape!];
    this.#shapes.set(name, shape);
    return { dtype: 'F32', shape };
  }
  readRaw(name: string): Uint8Array {
    const shape = this.#shapes.get(name)!;
    const n = shape.reduce((a, b) => a * b, 1);
    let seed = 17;
    for (let i = 0; i < name.length; i++) seed = (Math.imul(seed, 31) + name.charCodeAt(i)) >>> 0;
    const fanIn = shape.length >= 2 ? shape.slice(1).reduce((a, b) => a * b, 1) : 0;
    const values = randomFloats(n, seed, fanIn ? Math.sqrt(3 / fanIn) : 0.3);
    if (/norm[^.]*\.weight$/.test(name)) for (let i = 0; i < n; i++) values[i]! += 1;
    return new Uint8Array(values.buffer);
  }
}

const CONFIG = {
  _class_name: 'WanTransformer3DModel', patch_size: [1, 2, 2], num_attention_heads: 3, attention_head_dim: 16,
  in_channels: 4, out_channels: 4, text_dim: 24, freq_dim: 32, ffn_dim: 80, num_layers: 2, cross_attn_norm: true,
  qk_norm: 'rms_norm_across_heads', eps: 1e-6, image_dim: null, added_kv_proj_dim: null, rope_max_seq_len: 64,
  pos_embed_seq_len: null,
};

const device = new Device({ backend: 'cpu', threads: 2 });
t.teardown(() => device.close());

const maxDiff = (a: Tensor, b: Tensor): number => {
  const x = a.toFloat32Array(), y = b.toFloat32Array();
  let m = x.length === y.length ? 0 : Infinity;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]! - y[i]!));
  return m;
};
const randomTensor = (shape: number[], seed: number, scale = 1): Tensor =>
  fromFloat32(device, randomFloats(shape.reduce((a, b) => a * b, 1), seed, scale), shape);

t.test('modulatedLayerNorm equals LayerNorm then modulate, with one modulation row and with per-item rows', async (t) => {
  scoped(() => {
    const B = 2, S = 37, D = 48;
    const x = randomTensor([B, S, D], 1, 3);
    for (const rowsM of [1, 2]) {
      const mod = randomTensor([rowsM, 2, D], 2 + rowsM, 0.5);
      const scale = mod.slice(1, 1, 2), shift = mod.slice(1, 0, 1);
      const want = modulate(layerNorm(x, null, null, 1e-6), scale, shift);
      const got = modulatedLayerNorm(x, scale, shift, 1e-6);
      const d = maxDiff(got, want);
      t.ok(d <= 2e-6, `${rowsM} modulation row(s): max |diff| ${d.toExponential(2)} <= 2e-6`);
    }
  });
});

t.test('Linear.accumulateInto adds x W^T + b into out', async (t) => {
  scoped(() => {
    const store = new WeightStore(device, new DenseRandomSource());
    const lin = new Linear(store, 'proj', 40, 24);
    const x = randomTensor([2, 9, 40], 5), out = randomTensor([2, 9, 24], 6);
    const want = add(out, linear(x, lin.weight, lin.bias));
    const got = lin.accumulateInto(x, out);
    t.equal(got, out, 'returns out, updated in place');
    const d = maxDiff(got, want);
    t.ok(d <= 2e-6, `max |diff| ${d.toExponential(2)} <= 2e-6`);
    store.free();
  });
});

/** The block as diffusers writes it, with the two-pass ops (LayerNorm then modulate, linear then add). */
function referenceBlock(b: WanTransformerBlock, x: Tensor, context: Tensor, mod: Tensor, rot: { cos: Tensor; sin: Tensor }): Tensor {
  const { numAttentionHeads: H, attentionHeadDim: Dh, eps } = b.config;
  const row = (i: number): Tensor => mod.slice(1, i, i + 1);
  const attn = (a: WanTransformerBlock['attn1'], q_in: Tensor, kv: Tensor, rotary: boolean): Tensor => {
    const [B, S] = q_in.shape as [number, number];
    const L = kv.shape[1]!;
    let q = rmsNorm(linear(q_in, a.to_q.weight, a.to_q.bias), a.norm_q.weight, eps).reshape([B, S, H, Dh]);
    let k = rmsNorm(linear(kv, a.to_k.weight, a.to_k.bias), a.norm_k.weight, eps).reshape([B, L, H, Dh]);
    const v = linear(kv, a.to_v.weight, a.to_v.bias).reshape([B, L, H, Dh]);
    if (rotary) { q = rope(q, rot.cos, rot.sin, true); k = rope(k, rot.cos, rot.sin, true); }
    const o = attention(q, k, v, { scale: 1 / Math.sqrt(Dh) }).out.reshape([B, S, H * Dh]);
    return linear(o, a.to_out[0].weight, a.to_out[0].bias);
  };
  const h = affine(x, 1); // a copy: the block under test updates x in place
  const n1 = modulate(layerNorm(h, null, null, eps), row(1), row(0));
  gatedResidual(h, attn(b.attn1, n1, n1, true), row(2));
  const n2 = b.norm2 ? layerNorm(h, b.norm2.weight, b.norm2.bias, eps) : h;
  const h2 = add(h, attn(b.attn2, n2, context, false));
  const n3 = modulate(layerNorm(h2, null, null, eps), row(4), row(3));
  const ff = linear(linear(n3, b.ffn.net[0].proj.weight, b.ffn.net[0].proj.bias, Activation.GELU_TANH), b.ffn.net[2].weight, b.ffn.net[2].bias);
  gatedResidual(h2, ff, row(5));
  return h2;
}

t.test('a block equals its two-pass reference (cross_attn_norm on/off, one or per-item modulation rows)', async (t) => {
  for (const crossAttnNorm of [true, false]) {
    const config = parseWanTransformerConfig({ ...CONFIG, cross_attn_norm: crossAttnNorm });
    const store = new WeightStore(device, new DenseRandomSource());
    const block = new WanTransformerBlock(store, 'blocks.0', config);
    const ropeCache = new WanRopeCache(device, config.attentionHeadDim, config.ropeMaxSeqLen);
    const grid: [number, number, number] = [2, 3, 5];
    const S = 30, B = 2, dim = config.innerDim;
    scoped(() => {
      const rot = ropeCache.get(grid);
      const context = randomTensor([B, 7, dim], 20);
      for (const rowsM of [1, 2]) {
        const x = randomTensor([B, S, dim], 21 + rowsM);
        const mod = add(block.scale_shift_table, randomTensor([rowsM, 6, dim], 30 + rowsM, 0.3));
        const want = referenceBlock(block, x, context, mod, rot);
        block.forward(x, context, mod, rot);
        const d = maxDiff(x, want);
        t.ok(d <= 2e-5, `cross_attn_norm ${crossAttnNorm}, ${rowsM} modulation row(s): max |diff| ${d.toExponential(2)} <= 2e-5`);
      }
    });
    ropeCache.free();
    store.free();
  }
});

t.test('the model with [t, t] equals each batch item alone, and per-item timesteps still differ per item', async (t) => {
  const model = new WanTransformer3DModel(device, CONFIG, new DenseRandomSource());
  t.teardown(() => model.free());
  scoped(() => {
    const shape = [1, 4, 2, 6, 4];
    const a = randomTensor(shape, 40), b = randomTensor(shape, 41);
    const ta = randomTensor([1, 5, 24], 42), tb = randomTensor([1, 5, 24], 43);
    const both = cat([a, b], 0), text = cat([ta, tb], 0);
    const n = a.numel;
    for (const steps of [[700, 700], [700, 250]]) {
      const batched = model.forward(both, steps, text).toFloat32Array();
      for (const [i, [lat, txt]] of [[a, ta], [b, tb]].entries()) {
        const alone = model.forward(lat!, [steps[i]!], txt!).toFloat32Array();
        let d = 0;
        for (let j = 0; j < n; j++) d = Math.max(d, Math.abs(batched[i * n + j]! - alone[j]!));
        t.ok(d <= 2e-5, `timesteps [${steps}], item ${i}: max |diff| ${d.toExponential(2)} <= 2e-5`);
      }
    }
  });
});
