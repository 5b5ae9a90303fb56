// Qwen3 (Qwen team 2025) run as a text encoder, as transformers' Qwen3Model computes it. Fields mirror the
// checkpoint keys (`layers.3.self_attn.q_proj.weight` is `layers[3].self_attn.q_proj.weight`); checkpoints saved
// from Qwen3ForCausalLM prefix them with `model.`, which we accept too.
//
// Per decoder layer (pre-norm):  x += o_proj(causal_attn(rope(q_norm(q)), rope(k_norm(k)), v))   on RMS(x)
//                                x += down_proj(silu(gate_proj(h)) * up_proj(h))                  h = RMS(x)
// and a final RMSNorm. transformers' `hidden_states` tuple holds the embeddings, then each layer's output, the
// last one replaced by the final norm's output: hidden_states[k] is the input of layer k for k < num_layers and
// hidden_states[num_layers] = norm(output of the last layer). Z-Image conditions on hidden_states[-2], the output
// of the second-to-last layer without the final norm, so the last layer and the norm are never run: we do not
// even load them (`hiddenStatesIndex` picks which entry forward returns; only the layers it needs are built).
import type { Device } from '../../runtime/device.js';
import { Activation, add, fromFloat32, mul, rmsNorm } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';
import { paddingKeyBias, type TokenBatch } from '../umt5/encoder.js';
import { TokenEmbedding } from '../umt5/token-embedding.js';
import { Linear, NormWeights } from '../wan/transformer-layers.js';
import { WeightStore, type WeightSource } from '../weights.js';
import { Qwen3Attention, type Qwen3AttentionInputs } from './attention.js';
import { CausalBiasCache } from './causal-mask.js';
import { parseQwen3Config, type Qwen3Config } from './config.js';
import { Qwen3RopeCache } from './rope.js';

export type { TokenBatch };

/** The entry of transformers' `hidden_states` that Z-Image's pipeline conditions on (ZImagePipeline._encode_prompt). */
export const ZIMAGE_HIDDEN_STATES_INDEX = -2;

export interface Qwen3ModelOptions {
  /**
   * Which entry of transformers' `output_hidden_states` tuple (num_layers + 1 entries, negative counts from the
   * end) forward returns. Default -2, Z-Image's choice.
   */
  hiddenStatesIndex?: number;
}

export class Qwen3MLP {
  readonly gate_proj: Linear;
  readonly up_proj: Linear;
  readonly down_proj: Linear;

  constructor(store: WeightStore, name: string, c: Qwen3Config) {
    this.gate_proj = new Linear(store, `${name}.gate_proj`, c.hiddenSize, c.intermediateSize, false);
    this.up_proj = new Linear(store, `${name}.up_proj`, c.hiddenSize, c.intermediateSize, false);
    this.down_proj = new Linear(store, `${name}.down_proj`, c.intermediateSize, c.hiddenSize, false);
  }

  /** down(silu(gate(h)) * up(h)): SiLU fused into the gate GEMM, the product taken in place. */
  forward(h: Tensor): Tensor {
    const inner = this.gate_proj.forward(h, Activation.SILU);
    mul(inner, this.up_proj.forward(h), inner);
    return this.down_proj.forward(inner);
  }
}

export class Qwen3DecoderLayer {
  readonly self_attn: Qwen3Attention;
  readonly mlp: Qwen3MLP;
  readonly input_layernorm: NormWeights;
  readonly post_attention_layernorm: NormWeights;

  constructor(store: WeightStore, name: string, readonly config: Qwen3Config) {
    this.self_attn = new Qwen3Attention(store, `${name}.self_attn`, config);
    this.mlp = new Qwen3MLP(store, `${name}.mlp`, config);
    this.input_layernorm = new NormWeights(store, `${name}.input_layernorm`, config.hiddenSize, false);
    this.post_attention_layernorm = new NormWeights(store, `${name}.post_attention_layernorm`, config.hiddenSize, false);
  }

  /** Updates x [B, L, hidden] in place. */
  forward(x: Tensor, inputs: Qwen3AttentionInputs): void {
    const eps = this.config.rmsNormEps;
    add(x, this.self_attn.forward(rmsNorm(x, this.input_layernorm.weight, eps), inputs), x);
    add(x, this.mlp.forward(rmsNorm(x, this.post_attention_layernorm.weight, eps)), x);
  }
}

export class Qwen3Model {
  readonly config: Qwen3Config;
  readonly store: WeightStore;
  /** `embed_tokens.weight`, read row by row from the checkpoint on the host (see umt5/token-embedding.ts). */
  readonly embed_tokens: TokenEmbedding;
  /** The layers the chosen hidden state depends on (layers past it are not loaded). */
  readonly layers: Qwen3DecoderLayer[];
  /** The final norm, loaded only when the last entry of hidden_states is asked for. */
  readonly norm: NormWeights | null;
  /** Key prefix of the checkpoint: '' (Qwen3Model) or 'model.' (saved from Qwen3ForCausalLM). */
  readonly prefix: string;
  readonly #rope: Qwen3RopeCache;
  readonly #causal: CausalBiasCache;

  /** `config` is the parsed text_encoder/config.json; `source` its weights (one file or a sharded index). */
  constructor(readonly device: Device, config: Record<string, unknown>, source: WeightSource, options: Qwen3ModelOptions = {}) {
    const c = (this.config = parseQwen3Config(config));
    const n = c.numHiddenLayers;
    const index = options.hiddenStatesIndex ?? ZIMAGE_HIDDEN_STATES_INDEX;
    const resolved = index < 0 ? n + 1 + index : index;
    if (!Number.isInteger(index) || resolved < 0 || resolved > n) {
      throw new Error(`Qwen3Model: hiddenStatesIndex ${index} is outside the ${n + 1} hidden states of a ${n}-layer model`);
    }
    this.prefix = !source.has('embed_tokens.weight') && source.has('model.embed_tokens.weight') ? 'model.' : '';
    const store = (this.store = new WeightStore(device, source, this.prefix));
    this.embed_tokens = new TokenEmbedding(source, `${this.prefix}embed_tokens.weight`, [c.vocabSize, c.hiddenSize]);
    try {
      // hidden_states[k] for k < n is the input of layer k; hidden_states[n] needs every layer and the norm.
      const layerCount = resolved === n ? n : resolved;
      this.layers = Array.from({ length: layerCount }, (_, i) => new Qwen3DecoderLayer(store, `layers.${i}`, c));
      this.norm = resolved === n ? new NormWeights(store, 'norm', c.hiddenSize, false) : null;
    } catch (e) {
      store.free();
      throw e;
    }
    this.#rope = new Qwen3RopeCache(device, c.headDim, c.ropeTheta);
    this.#causal = new CausalBiasCache(device);
  }

  /**
   * The chosen hidden state [batch, length, hidden] of a token batch (ids and 1/0 mask row-major), padded
   * positions included: they attend causally to the real tokens before them, as transformers computes them.
   */
  forward(tokens: TokenBatch): Tensor {
    const { batch, length } = tokens;
    if (tokens.mask.length !== batch * length) throw new Error(`Qwen3Model: mask has ${tokens.mask.length} values for a [${batch}, ${length}] batch`);
    const c = this.config;
    return scoped(() => {
      const x = this.embed_tokens.lookup(this.device, tokens.ids, batch, length);
      const padded = Array.prototype.some.call(tokens.mask, (m: number) => !(m > 0));
      const inputs: Qwen3AttentionInputs = {
        rope: this.#rope.get(length),
        causal: this.#causal.get(length),
        keyBias: padded ? fromFloat32(this.device, paddingKeyBias(tokens.mask), [batch, length], 'f32') : null,
      };
      for (const layer of this.layers) scoped(() => layer.forward(x, inputs));
      return this.norm ? rmsNorm(x, this.norm.weight, c.rmsNormEps) : x;
    });
  }

  /** Releases the weights and cached tables. */
  free(): void {
    this.#rope.free();
    this.#causal.free();
    this.store.free();
  }
}

/** Builds the text encoder from an opened Diffusers component (config + weights). */
export function qwen3ModelFrom(device: Device, component: { config: Record<string, unknown>; weights?: WeightSource },
  options: Qwen3ModelOptions = {}): Qwen3Model {
  if (!component.weights) throw new Error('Qwen3Model: the text_encoder component has no weights');
  return new Qwen3Model(device, component.config, component.weights, options);
}
