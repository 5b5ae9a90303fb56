// "Nearest x2 upsampling, then a 3x3 conv with padding 1" (WanResample's upsample path) without the 4x-sized
// upsampled tensor. Output row 2i+dy only sees source rows {i-1, i} (dy = 0) or {i, i+1} (dy = 1), because the
// upsampled image repeats each source row twice; so each of the two row phases is a 2-row conv whose row taps
// are sums of the 3x3 rows landing on the same source row. Both phases run as one 3x3 conv (each phase's two
// rows embedded in a 3x3 kernel with a zero row, so it takes the Winograd path) with 2 x C_out channels, over
// the source upsampled along x only; the phases' rows are then interleaved by a copy of whole rows.
// Same result up to rounding (the folded taps are summed first). Measured against four 2x2 phase convs of the
// source plus four pixel-interleaving copies: docs/cpu-backend.md, "Convolution".
import { conv3d, empty, fromFloat32, upsampleNearest } from '../../runtime/ops.js';
import { Scope, Tensor, copyInto } from '../../runtime/tensor.js';

/** For output row phase dy (0 or 1): which 3x3 kernel rows land on source row 0 and 1 of the 2-row window. */
const FOLD: readonly (readonly number[])[][] = [
  [[0], [1, 2]], // dy = 0: window rows i-1 (tap 0) and i (taps 1, 2)
  [[0, 1], [2]], // dy = 1: window rows i (taps 0, 1) and i+1 (tap 2)
];

export class UpsampleConv {
  /** [2 * C_out, C_in, 1, 3, 3]: channel dy * C_out + co is phase dy's kernel for co, its window rows at dy, dy + 1. */
  #weight: Tensor | null = null;
  /** [2 * C_out]: the bias once per phase. */
  #bias: Tensor | null = null;

  /**
   * `weight` [C_out, C_in, 3, 3] and `bias` [C_out] as the checkpoint stores them. The folded kernel and bias
   * are derived tensors the WeightStore does not own: free() releases them.
   */
  constructor(readonly weight: Tensor, readonly bias: Tensor) {
    try {
      this.#fold();
    } catch (e) {
      this.free();
      throw e;
    }
  }

  #fold(): void {
    const [cout, cin] = this.weight.shape as [number, number];
    const w = this.weight.toFloat32Array(), b = this.bias.toFloat32Array();
    const folded = new Float32Array(2 * cout * cin * 9), bias = new Float32Array(2 * cout);
    for (let dy = 0; dy < 2; dy++) {
      bias.set(b, dy * cout);
      for (let oc = 0; oc < cout * cin; oc++) {
        const dst = (dy * cout * cin + oc) * 9;
        for (let a = 0; a < 2; a++) {
          for (let c = 0; c < 3; c++) {
            let sum = 0;
            for (const r of FOLD[dy]![a]!) sum += w[oc * 9 + r * 3 + c]!;
            folded[dst + (dy + a) * 3 + c] = sum;
          }
        }
      }
    }
    const { device, dtype } = this.weight;
    this.#weight = Scope.detach(fromFloat32(device, folded, [2 * cout, cin, 1, 3, 3], dtype));
    this.#bias = Scope.detach(fromFloat32(device, bias, [2 * cout], this.bias.dtype));
  }

  /** x [B, C_in, T, h, w] -> [B, C_out, T, 2h, 2w]. */
  forward(x: Tensor): Tensor {
    const [b, , t, h, w] = x.shape as [number, number, number, number, number];
    const cout = this.bias.shape[0]!;
    const wide = upsampleNearest(x, [1, 1, 2]);
    let y: Tensor;
    try {
      // Padding 1 all round: row phase dy's window starts at kernel row dy; the columns are the plain 3x3 conv's.
      y = conv3d(wide, this.#weight!, this.#bias!, { pads: [0, 0, 1, 1, 1, 1] });
    } finally {
      wide.free();
    }
    try {
      // out[b, co, t, 2i + dy, :] = y[b, dy * C_out + co, t, i, :]: whole rows of 2w.
      const out = empty(x.device, [b, cout, t, 2 * h, 2 * w], x.dtype);
      const s = y.strides;
      copyInto(out.reshape([b, cout, t, h, 2, 2 * w]),
        new Tensor(y.storage, y.dtype, [b, cout, t, h, 2, 2 * w], [s[0]!, s[1]!, s[2]!, s[3]!, cout * s[1]!, 1], y.offset));
      return out;
    } finally {
      y.free();
    }
  }

  free(): void {
    this.#weight?.free();
    this.#bias?.free();
    this.#weight = null;
    this.#bias = null;
  }
}
