// UMT5 encoder (Chung et al. 2023, "UniMax"; the T5 v1.1 layer stack of Raffel et al. 2020 with a relative
// attention bias in every layer), as transformers' UMT5EncoderModel computes it. Fields mirror the checkpoint
// keys (`encoder.block.3.layer.0.SelfAttention.q.weight` is `encoder.block[3].layer[0].SelfAttention.q.weight`).
//
// Per layer:  x += o(attn(rms(x)))   with T5 attention: no 1/sqrt(d) scaling, + relative bias, + padding mask
//             x += wo(act(wi_0(rms(x))) * wi_1(rms(x)))
// then a final RMS norm. T5's "layer norm" is RMSNorm without mean subtraction or bias.
import { convertToF32, type SafetensorsDType } from '../../checkpoint/dtype.js';
import type { Device } from '../../runtime/device.js';
import { add, attention, fromFloat32, linear, mul, rmsNorm } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { WeightStore, type WeightSource } from '../weights.js';
import { parseUMT5Config, type UMT5Config } from './config.js';
import { relativeAttentionBias, relativeBuckets } from './relative-position.js';
import { TokenEmbedding } from './token-embedding.js';

/** Token ids and attention mask of a batch, both row-major [batch, length] (mask: 1 = token, 0 = padding). */
export interface TokenBatch {
  ids: ArrayLike<number>;
  mask: ArrayLike<number>;
  batch: number;
  length: number;
}

interface Weight { weight: Tensor }

export interface UMT5SelfAttention {
  q: Weight; k: Weight; v: Weight; o: Weight;
  /** relative_attention_bias.weight [num_buckets, heads], kept on the host: it only feeds the bias rows. */
  relative_attention_bias: { weight: Float32Array };
}

export interface UMT5DenseReluDense { wi_0?: Weight; wi_1?: Weight; wi?: Weight; wo: Weight }

export interface UMT5Block {
  layer: [
    { SelfAttention: UMT5SelfAttention; layer_norm: Weight },
    { DenseReluDense: UMT5DenseReluDense; layer_norm: Weight },
  ];
}

export class UMT5Encoder {
  readonly config: UMT5Config;
  readonly store: WeightStore;
  /** `shared.weight`: the token embedding, read row by row from the checkpoint (see token-embedding.ts). */
  readonly shared: TokenEmbedding;
  readonly encoder: { block: UMT5Block[]; final_layer_norm: Weight };

  /** `config` is the parsed text_encoder/config.json; `source` holds its weights (one file or sharded). */
  constructor(readonly device: Device, config: Record<string, unknown>, source: WeightSource) {
    const c = (this.config = parseUMT5Config(config));
    const store = (this.store = new WeightStore(device, source));
    const inner = c.numHeads * c.dKv;
    // transformers saves the tied `encoder.embed_tokens.weight` only as `shared.weight`; accept either.
    const embedName = source.has('shared.weight') ? 'shared.weight' : 'encoder.embed_tokens.weight';
    this.shared = new TokenEmbedding(source, embedName, [c.vocabSize, c.dModel]);
    const w = (name: string, shape: number[]): Weight => ({ weight: store.get(name, shape) });
    try {
      const block: UMT5Block[] = [];
      for (let i = 0; i < c.numLayers; i++) {
        const p = `encoder.block.${i}.layer.`;
        const biasTable = readHostFloat32(source, `${p}0.SelfAttention.relative_attention_bias.weight`, [c.relativeAttentionNumBuckets, c.numHeads]);
        const ff: UMT5DenseReluDense = c.isGatedAct
          ? { wi_0: w(`${p}1.DenseReluDense.wi_0.weight`, [c.dFf, c.dModel]), wi_1: w(`${p}1.DenseReluDense.wi_1.weight`, [c.dFf, c.dModel]),
            wo: w(`${p}1.DenseReluDense.wo.weight`, [c.dModel, c.dFf]) }
          : { wi: w(`${p}1.DenseReluDense.wi.weight`, [c.dFf, c.dModel]), wo: w(`${p}1.DenseReluDense.wo.weight`, [c.dModel, c.dFf]) };
        block.push({
          layer: [
            {
              SelfAttention: {
                q: w(`${p}0.SelfAttention.q.weight`, [inner, c.dModel]),
                k: w(`${p}0.SelfAttention.k.weight`, [inner, c.dModel]),
                v: w(`${p}0.SelfAttention.v.weight`, [inner, c.dModel]),
                o: w(`${p}0.SelfAttention.o.weight`, [c.dModel, inner]),
                relative_attention_bias: { weight: biasTable },
              },
              layer_norm: w(`${p}0.layer_norm.weight`, [c.dModel]),
            },
            { DenseReluDense: ff, layer_norm: w(`${p}1.layer_norm.weight`, [c.dModel]) },
          ],
        });
      }
      this.encoder = { block, final_layer_norm: w('encoder.final_layer_norm.weight', [c.dModel]) };
    } catch (e) {
      store.free();
      throw e;
    }
  }

  /** last_hidden_state [batch, length, d_model] for a token batch (padded positions are computed too). */
  forward(tokens: TokenBatch): Tensor {
    const { batch, length } = tokens;
    if (tokens.mask.length !== batch * length) throw new Error(`UMT5Encoder: mask has ${tokens.mask.length} values for a [${batch}, ${length}] batch`);
    const c = this.config;
    return scoped(() => {
      const x = this.shared.lookup(this.device, tokens.ids, batch, length);
      const keyBias = fromFloat32(this.device, paddingKeyBias(tokens.mask), [batch, length], 'f32');
      const buckets = relativeBuckets(length, c.relativeAttentionNumBuckets, c.relativeAttentionMaxDistance);
      for (const block of this.encoder.block) scoped(() => this.#block(block, x, keyBias, buckets));
      return rmsNorm(x, this.encoder.final_layer_norm.weight, c.layerNormEpsilon);
    });
  }

  /** One layer, updating x [B, L, d_model] in place. */
  #block(block: UMT5Block, x: Tensor, keyBias: Tensor, buckets: Int32Array): void {
    const c = this.config;
    const [B, L] = x.shape as [number, number, number];
    const [attnLayer, ffLayer] = block.layer;
    const sa = attnLayer.SelfAttention;

    const h = rmsNorm(x, attnLayer.layer_norm.weight, c.layerNormEpsilon);
    const heads = (t: Tensor): Tensor => t.reshape([B, L, c.numHeads, c.dKv]);
    const q = heads(linear(h, sa.q.weight));
    const k = heads(linear(h, sa.k.weight));
    const v = heads(linear(h, sa.v.weight));
    const bias = relativeAttentionBias(this.device, sa.relative_attention_bias.weight, c.numHeads, buckets);
    // T5 folds the 1/sqrt(d) into its initialisation, so attention runs unscaled (scale 1).
    const ctx = attention(q, k, v, { scale: 1, bias, keyBias }).out;
    add(x, linear(ctx.reshape([B, L, c.numHeads * c.dKv]), sa.o.weight), x);

    const ff = ffLayer.DenseReluDense;
    const g = rmsNorm(x, ffLayer.layer_norm.weight, c.layerNormEpsilon);
    let inner: Tensor;
    if (ff.wi_0 && ff.wi_1) {
      inner = linear(g, ff.wi_0.weight, null, c.denseActivation);
      mul(inner, linear(g, ff.wi_1.weight), inner);
    } else {
      inner = linear(g, ff.wi!.weight, null, c.denseActivation);
    }
    add(x, linear(inner, ff.wo.weight), x);
  }

  free(): void {
    this.store.free();
  }
}

/** fp32 [B, L] key bias from a 1/0 attention mask: 0 keeps a key, -inf removes it from every softmax. */
export function paddingKeyBias(mask: ArrayLike<number>): Float32Array {
  const out = new Float32Array(mask.length);
  for (let i = 0; i < mask.length; i++) out[i] = mask[i]! > 0 ? 0 : -Infinity;
  return out;
}

/** Builds the encoder from an opened Diffusers component (config + weights). */
export function umt5EncoderFrom(device: Device, component: { config: Record<string, unknown>; weights?: WeightSource }): UMT5Encoder {
  if (!component.weights) throw new Error('UMT5Encoder: the text_encoder component has no weights');
  return new UMT5Encoder(device, component.config, component.weights);
}

/** A small tensor read to fp32 on the host (bias tables: fp32 whatever the compute dtype). */
function readHostFloat32(source: WeightSource, name: string, shape: readonly number[]): Float32Array {
  if (!source.has(name)) throw new Error(`sgld: checkpoint tensor ${name} is missing`);
  const info = source.info(name);
  if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`sgld: checkpoint tensor ${name} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
  }
  if (!['F32', 'F16', 'BF16'].includes(info.dtype)) throw new Error(`sgld: checkpoint tensor ${name} has dtype ${info.dtype}, a float type is expected`);
  const bytes = source.readRaw(name).slice(); // own, aligned copy
  const out = new Float32Array(shape.reduce((a, b) => a * b, 1));
  convertToF32(info.dtype as SafetensorsDType, bytes, out, 0);
  return out;
}
