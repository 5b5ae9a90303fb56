// Z-Image's timestep embedder (diffusers TimestepEmbedder): t_scale * t -> 256-wide sinusoid [cos, sin] with
// frequencies exp(-ln(10000) * i / 128) -> mlp.0 (Linear 256 -> 1024) -> SiLU -> mlp.2 (Linear 1024 -> min(dim, 256)).
// The sinusoid is the one Wan uses (same formula, same float32 roundings), computed on the host.
import type { Device } from '../../runtime/device.js';
import { Activation, fromFloat32 } from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import { timestepSinusoid } from '../wan/embeddings.js';
import { Linear } from '../wan/transformer-layers.js';
import type { WeightStore } from '../weights.js';

/** diffusers' frequency_embedding_size and mid_size of Z-Image's TimestepEmbedder. */
export const TIMESTEP_FREQUENCY_DIM = 256;
export const TIMESTEP_MID_DIM = 1024;

export class ZImageTimestepEmbedder {
  /** Sequential(Linear, SiLU, Linear): only indices 0 and 2 have weights. */
  readonly mlp: readonly [Linear, null, Linear];

  constructor(store: WeightStore, name: string, outDim: number) {
    this.mlp = [
      new Linear(store, `${name}.mlp.0`, TIMESTEP_FREQUENCY_DIM, TIMESTEP_MID_DIM),
      null,
      new Linear(store, `${name}.mlp.2`, TIMESTEP_MID_DIM, outDim),
    ];
  }

  /**
   * Embeddings [B, outDim] of normalised timesteps t (the pipeline's (1000 - timestep) / 1000), scaled by
   * t_scale in float32 as `t * self.t_scale` does on a float32 tensor.
   */
  forward(device: Device, t: readonly number[], tScale: number): Tensor {
    const scaled = t.map((v) => Math.fround(Math.fround(v) * Math.fround(tScale)));
    const sinusoid = fromFloat32(device, timestepSinusoid(scaled, TIMESTEP_FREQUENCY_DIM), [t.length, TIMESTEP_FREQUENCY_DIM]);
    return this.mlp[2].forward(this.mlp[0].forward(sinusoid, Activation.SILU));
  }
}
