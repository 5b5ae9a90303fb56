// The causal mask as an attention bias without an L x L matrix. Causality depends on j - i only (key j is
// visible from query i when j <= i), so the [L, L] bias is Toeplitz: one fp32 row of 2L - 1 values (0 for
// offsets <= 0, -inf after) read with strides (0, 0, -1, 1) from offset L - 1 gives element (i, j) =
// row[j - i + L - 1]. The same view trick as UMT5's relative bias (src/models/umt5/relative-position.ts).
import type { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import { Scope, Tensor } from '../../runtime/tensor.js';

/** Host row of the causal bias for length L: index r + L - 1 holds the bias of offset r = j - i. */
export function causalBiasRow(length: number): Float32Array {
  const row = new Float32Array(2 * length - 1);
  row.fill(-Infinity, length); // offsets 1 .. L-1 (keys after the query)
  return row;
}

/** The [1, 1, L, L] view of an uploaded row of 2Lmax - 1 values, for any L <= Lmax. */
export function causalBiasView(row: Tensor, length: number): Tensor {
  const lmax = (row.numel + 1) / 2;
  if (length > lmax) throw new Error(`causalBiasView: length ${length} exceeds the row's ${lmax}`);
  // Offset lmax - 1 is offset 0 of the row; rows of a shorter L read the window [lmax - L, lmax + L - 2].
  return new Tensor(row.storage, row.dtype, [1, 1, length, length], [0, 0, -1, 1], row.offset + lmax - 1);
}

/** Device row for the longest length seen; lives until `free()`. */
export class CausalBiasCache {
  #row: Tensor | null = null;

  constructor(readonly device: Device) {}

  get(length: number): Tensor {
    if (!this.#row || (this.#row.numel + 1) / 2 < length) {
      this.free();
      this.#row = Scope.detach(fromFloat32(this.device, causalBiasRow(length), [2 * length - 1], 'f32'));
    }
    return causalBiasView(this.#row, length);
  }

  free(): void {
    this.#row?.free();
    this.#row = null;
  }
}
