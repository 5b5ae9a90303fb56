// Parameter holders of the Wan transformer whose fields are the checkpoint's (`to_q.weight`, `to_q.bias`), each
// loaded from the model's WeightStore with the shape the config implies.
import { type ActivationCode, Activation, linear, matmul } from '../../runtime/ops.js';
import type { Tensor } from '../../runtime/tensor.js';
import type { WeightStore } from '../weights.js';

/** torch.nn.Linear: weight [out, in], bias [out]. */
export class Linear {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(store: WeightStore, name: string, inFeatures: number, outFeatures: number, bias = true) {
    this.weight = store.get(`${name}.weight`, [outFeatures, inFeatures]);
    this.bias = bias ? store.get(`${name}.bias`, [outFeatures]) : null;
  }

  /** act(x @ W^T + b), bias and activation fused into the GEMM. */
  forward(x: Tensor, act: ActivationCode = Activation.NONE): Tensor {
    return linear(x, this.weight, this.bias, act);
  }

  /**
   * out += x @ W^T + b in one GEMM (the residual is the GEMM's C with beta 1, so no separate add pass reads and
   * writes it again). x [..., in] and out [..., out] must be contiguous with the same leading dims.
   */
  accumulateInto(x: Tensor, out: Tensor): Tensor {
    const [outF, inF] = this.weight.shape as [number, number];
    const rows = x.numel / inF;
    matmul(x.reshape([rows, inF]), this.weight, { transB: true, beta: 1, out: out.reshape([rows, outF]), bias: this.bias ?? undefined });
    return out;
  }
}

/** A norm's affine parameters (weight, and bias for LayerNorm). */
export class NormWeights {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(store: WeightStore, name: string, dim: number, bias: boolean) {
    this.weight = store.get(`${name}.weight`, [dim]);
    this.bias = bias ? store.get(`${name}.bias`, [dim]) : null;
  }
}
