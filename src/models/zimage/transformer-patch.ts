// Patchify and unpatchify of one Z-Image latent. diffusers reshapes a latent [C, F, H, W] into token rows
// "c (f pf) (h ph) (w pw) -> (f h w) (pf ph pw c)": channels are the fastest column index, unlike Wan's conv
// weight order. The x embedder is a plain Linear over those rows, so patchify is one strided copy into the rows
// of the batch's input buffer; unpatchify is the inverse copy of the final layer's rows.
import { copyInto, empty } from '../../runtime/ops.js';
import { Tensor } from '../../runtime/tensor.js';

/** latent [C, F, H, W] (any strides) viewed as [F', H', W', pf, ph, pw, C]. */
function patchView(latent: Tensor, p: number, pf: number): Tensor {
  const [C, F, H, W] = latent.shape as [number, number, number, number];
  const [sc, sf, sh, sw] = latent.strides as [number, number, number, number];
  return new Tensor(latent.storage, latent.dtype, [F / pf, H / p, W / p, pf, p, p, C],
    [sf * pf, sh * p, sw * p, sf, sh, sw, sc], latent.offset);
}

/**
 * Copies the patch rows of `latent` [C, F, H, W] into `rows` [F'H'W', pf*p*p*C] (a contiguous view), row order
 * (f, h, w) and column order (pf, ph, pw, c).
 */
export function patchifyInto(rows: Tensor, latent: Tensor, p: number, pf: number): void {
  const src = patchView(latent, p, pf);
  const [Ft, Ht, Wt] = src.shape as [number, number, number];
  const dst = rows.reshape([Ft, Ht, Wt, pf, p, p, latent.shape[0]!]);
  // One frame-patch at a time keeps the strided copy within its 6 dims.
  for (let f = 0; f < Ft; f++) copyInto(dst.slice(0, f, f + 1), src.slice(0, f, f + 1));
}

/** The inverse: rows [F'H'W', pf*p*p*C] (contiguous) -> a new latent [C, F, H, W]. */
export function unpatchify(rows: Tensor, latentShape: readonly [number, number, number, number], p: number, pf: number): Tensor {
  const [C, F, H, W] = latentShape;
  const out = empty(rows.device, [C, F, H, W], rows.dtype);
  const src = rows.reshape([F / pf, H / p, W / p, pf, p, p, C]);
  const dst = patchView(out, p, pf);
  for (let f = 0; f < F / pf; f++) copyInto(dst.slice(0, f, f + 1), src.slice(0, f, f + 1));
  return out;
}
