// Clamping built from the runtime's elementwise ops (it has no clamp op):
//   clamp(x, lo, hi) = x - relu(x - hi) + relu(lo - x)
// Inside [lo, hi] both relu terms are exactly 0, so those values pass through bit-exact; outside, the result is
// the bound up to one rounding of x - hi (or lo - x).
import { Activation, activation, add, affine, contiguous, sub } from '../../runtime/ops.js';
import { type Tensor, scoped } from '../../runtime/tensor.js';

export function clamp(x: Tensor, lo: number, hi: number): Tensor {
  return scoped(() => {
    const dense = contiguous(x);
    const above = activation(affine(dense, 1, -hi), Activation.RELU, true);
    const below = activation(affine(dense, -1, lo), Activation.RELU, true);
    const y = sub(dense, above);
    return add(y, below, y);
  });
}
