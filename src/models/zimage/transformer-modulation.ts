// adaLN modulation of the modulated Z-Image blocks (noise_refiner and the main layers), computed once per forward
// for every block. Each block maps the timestep embedding through its own `adaLN_modulation.0` linear to
// [scale_msa, gate_msa, scale_mlp, gate_mlp] (chunk order of diffusers' ZImageTransformerBlock); the block uses
// x * (1 + scale) and tanh(gate).
//
// The native library has no tanh activation. tanh(g) = 2 * sigmoid(2g) - 1, and sigmoid(z) is the first entry of
// softmax([z, 0]), so every gate of every block goes through one fp32 softmax over pairs: zeros [N, B, 2, dim, 2],
// the gates (times 2) copied into the first column, softmax over the last dim, then 2s - 1. That is exact up to
// fp32 rounding (absolute error ~1e-7 near 0, where tanh(g) ~ g), keeps everything on the device (no host round
// trip, so no sync on CUDA) and costs a handful of tiny ops per forward, not per block. A native SGLD_ACT_TANH
// would replace it with one activation call.
import { type Device } from '../../runtime/device.js';
import { affine, copyInto, copyTo, empty, matmul, softmax, zeros } from '../../runtime/ops.js';
import { Tensor, contiguousStrides } from '../../runtime/tensor.js';
import type { Linear } from '../wan/transformer-layers.js';

export interface BlockModulation {
  /** [B, 1, dim] views: x * (1 + scale) before attention and before the FFN. */
  scaleMsa: Tensor;
  scaleMlp: Tensor;
  /** [B, 1, dim] views of tanh(gate). */
  gateMsa: Tensor;
  gateMlp: Tensor;
  /** A zero shift with the scales' layout (the modulate op takes scale and shift together). */
  zeroShift: Tensor;
}

/** tanh of `src` (any strides, fp32 math) as a new contiguous tensor of src's dtype. */
export function deviceTanh(src: Tensor): Tensor {
  const shape = src.shape;
  const pairs = zeros(src.device, [...shape, 2], 'f32');
  const firstColumn = (t: Tensor): Tensor => new Tensor(t.storage, 'f32', shape, contiguousStrides(shape).map((s) => s * 2), t.offset);
  copyInto(firstColumn(pairs), src);
  affine(pairs, 2, 0, true);
  const s = softmax(pairs.reshape([-1, 2])); // first column: sigmoid(2g)
  affine(s, 2, -1, true);
  return copyTo(firstColumn(s), src.dtype);
}

/**
 * Modulation of each block for timestep embeddings `adalnInput` [B, adaln_dim]: one GEMM per block (bias fused)
 * into a shared [N, B, 4 * dim] buffer, then tanh over all gates at once.
 */
export function blockModulations(device: Device, projections: readonly Linear[], adalnInput: Tensor, dim: number): BlockModulation[] {
  const N = projections.length;
  const B = adalnInput.shape[0]!;
  if (N === 0) return [];
  const all = empty(device, [N, B, 4 * dim], adalnInput.dtype);
  projections.forEach((p, n) => {
    matmul(adalnInput, p.weight, { transB: true, out: all.slice(0, n, n + 1).reshape([B, 4 * dim]), bias: p.bias ?? undefined });
  });
  // Gates are chunks 1 and 3 of each row: [N, B, 2, dim] with stride 2*dim between them.
  const gateView = new Tensor(all.storage, all.dtype, [N, B, 2, dim], [B * 4 * dim, 4 * dim, 2 * dim, 1], all.offset + dim);
  const gates = deviceTanh(gateView); // [N, B, 2, dim] contiguous
  const zeroShift = new Tensor(zeros(device, [B * 4 * dim], adalnInput.dtype).storage, adalnInput.dtype, [B, 1, dim], [4 * dim, dim, 1]);
  const rowView = (t: Tensor, offset: number, batchStride: number): Tensor =>
    new Tensor(t.storage, t.dtype, [B, 1, dim], [batchStride, dim, 1], t.offset + offset);
  return projections.map((_, n) => ({
    scaleMsa: rowView(all, n * B * 4 * dim, 4 * dim),
    scaleMlp: rowView(all, n * B * 4 * dim + 2 * dim, 4 * dim),
    gateMsa: rowView(gates, n * B * 2 * dim, 2 * dim),
    gateMlp: rowView(gates, n * B * 2 * dim + dim, 2 * dim),
    zeroShift,
  }));
}
