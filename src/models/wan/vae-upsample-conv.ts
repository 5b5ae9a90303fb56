// "Nearest x2 upsampling, then a 3x3 conv with padding 1" (WanResample's upsample path) computed on the
// low-resolution input. Output pixel (2i+dy, 2j+dx) only sees source rows {i-1, i} (dy = 0) or {i, i+1}
// (dy = 1), and likewise columns, because the upsampled image repeats each source pixel twice; so each of the
// four output phases is a 2x2 conv of the source whose taps are sums of the 3x3 taps landing on the same source
// pixel. Same result up to rounding (the folded taps are summed first), 4/9 of the FLOPs, and no 4x-sized
// upsampled tensor.
import { conv3d, empty, fromFloat32 } from '../../runtime/ops.js';
import { Scope, Tensor, copyInto } from '../../runtime/tensor.js';

/** For output phase d (0 or 1): which 3x3 kernel rows land on source offset 0 and 1 of the 2-tap window. */
const FOLD: readonly [readonly number[], readonly number[]][] = [
  [[0], [1, 2]], // d = 0: window rows i-1 (tap 0) and i (taps 1, 2)
  [[0, 1], [2]], // d = 1: window rows i (taps 0, 1) and i+1 (tap 2)
];

interface Phase { dy: number; dx: number; weight: Tensor }

export class UpsampleConv {
  readonly #phases: Phase[] = [];

  /**
   * `weight` [C_out, C_in, 3, 3] and `bias` [C_out] as the checkpoint stores them. The folded kernels are
   * derived tensors the WeightStore does not own: free() releases them.
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
    const w = this.weight.toFloat32Array();
    for (let dy = 0; dy < 2; dy++) {
      for (let dx = 0; dx < 2; dx++) {
        const folded = new Float32Array(cout * cin * 4);
        for (let oc = 0; oc < cout * cin; oc++) {
          for (let a = 0; a < 2; a++) {
            for (let b = 0; b < 2; b++) {
              let sum = 0;
              for (const r of FOLD[dy]![a]!) for (const c of FOLD[dx]![b]!) sum += w[oc * 9 + r * 3 + c]!;
              folded[oc * 4 + a * 2 + b] = sum;
            }
          }
        }
        const t = fromFloat32(this.weight.device, folded, [cout, cin, 1, 2, 2], this.weight.dtype);
        this.#phases.push({ dy, dx, weight: Scope.detach(t) });
      }
    }
  }

  /** x [B, C_in, T, h, w] -> [B, C_out, T, 2h, 2w]. */
  forward(x: Tensor): Tensor {
    const [b, , t, h, w] = x.shape as [number, number, number, number, number];
    const cout = this.bias.shape[0]!;
    const out = empty(x.device, [b, cout, t, 2 * h, 2 * w], x.dtype);
    const s = out.strides;
    for (const { dy, dx, weight } of this.#phases) {
      // dy = 0 pads one source row on top (window i-1, i); dy = 1 one below (window i, i+1); same for columns.
      const y = conv3d(x, weight, this.bias, { pads: [0, 0, 1 - dy, dy, 1 - dx, dx] });
      // The phase's pixels in the output: every other row and column, starting at (dy, dx).
      const view = new Tensor(out.storage, out.dtype, [b, cout, t, h, w],
        [s[0]!, s[1]!, s[2]!, 2 * s[3]!, 2 * s[4]!], out.offset + dy * s[3]! + dx * s[4]!);
      copyInto(view, y);
      y.free();
    }
    return out;
  }

  free(): void {
    for (const p of this.#phases) p.weight.free();
    this.#phases.length = 0;
  }
}
