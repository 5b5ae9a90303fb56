// Patchify and unpatchify of the Wan transformer. The patch embedding is a Conv3d whose kernel equals its stride
// (1, 2, 2), so it is exactly a linear layer over non-overlapping patches: we gather the patches into rows
// [B, F'*H'*W', C*pt*ph*pw] with one strided copy and multiply by the conv weight viewed as [dim, C*pt*ph*pw].
// That is one copy and one GEMM (bias fused), and its output is already token-major [B, S, dim]; a conv would
// produce [B, dim, F', H', W'] and need a transpose copy after it.
import { copyInto, empty } from '../../runtime/ops.js';
import { Tensor } from '../../runtime/tensor.js';

export interface PatchGrid {
  /** Patches along frames, rows and columns. */
  frames: number;
  height: number;
  width: number;
}

export function patchGrid(shape: readonly number[], patch: readonly [number, number, number]): PatchGrid {
  const [, , F, H, W] = shape as [number, number, number, number, number];
  const grid = { frames: Math.floor(F / patch[0]), height: Math.floor(H / patch[1]), width: Math.floor(W / patch[2]) };
  if (grid.frames === 0 || grid.height === 0 || grid.width === 0) {
    throw new Error(`wan transformer: latents [${shape.join(', ')}] are smaller than one patch (${patch.join('x')})`);
  }
  return grid;
}

/**
 * Latents [B, C, F, H, W] -> patch rows [B, F'*H'*W', C*pt*ph*pw], row order (f, h, w), column order
 * (c, kt, kh, kw) as the conv weight [dim, C, pt, ph, pw] flattens. Trailing frames/rows/columns that do not fill
 * a patch are dropped, as the strided conv drops them.
 */
export function patchify(x: Tensor, patch: readonly [number, number, number]): Tensor {
  if (x.ndim !== 5) throw new Error(`wan transformer: latents must be [B, C, F, H, W], got [${x.shape.join(', ')}]`);
  const [B, C] = x.shape as [number, number];
  const [pt, ph, pw] = patch;
  const g = patchGrid(x.shape, patch);
  const fitted = x.slice(2, 0, g.frames * pt).slice(3, 0, g.height * ph).slice(4, 0, g.width * pw);
  // [B, C, F', pt, H', ph, W', pw] as strides of the (possibly sliced) input, permuted to token-major order.
  const [sb, sc, sf, sh, sw] = fitted.strides as [number, number, number, number, number];
  const blocks = new Tensor(fitted.storage, fitted.dtype,
    [B, g.frames, g.height, g.width, C, pt, ph, pw],
    [sb, sf * pt, sh * ph, sw * pw, sc, sf, sh, sw], fitted.offset);
  const rows = empty(x.device, [B, g.frames, g.height, g.width, C, pt, ph, pw], x.dtype);
  // Per batch item (and frame, for temporal patches) so the strided copy stays within its 6 dims.
  for (let b = 0; b < B; b++) {
    if (pt === 1) copyInto(rows.slice(0, b, b + 1), blocks.slice(0, b, b + 1));
    else for (let f = 0; f < g.frames; f++) copyInto(rows.slice(0, b, b + 1).slice(1, f, f + 1), blocks.slice(0, b, b + 1).slice(1, f, f + 1));
  }
  return rows.reshape([B, g.frames * g.height * g.width, C * pt * ph * pw]);
}

/**
 * proj_out rows [B, S, pt*ph*pw*C] (column order (kt, kh, kw, c), as diffusers reshapes them) ->
 * latents [B, C, F'*pt, H'*ph, W'*pw].
 */
export function unpatchify(y: Tensor, grid: PatchGrid, patch: readonly [number, number, number], channels: number): Tensor {
  const [B] = y.shape as [number];
  const [pt, ph, pw] = patch;
  const src = y.reshape([B, grid.frames, grid.height, grid.width, pt, ph, pw, channels]).permute([0, 7, 1, 4, 2, 5, 3, 6]);
  const out = empty(y.device, [B, channels, grid.frames * pt, grid.height * ph, grid.width * pw], y.dtype);
  const dst = out.reshape([B, channels, grid.frames, pt, grid.height, ph, grid.width, pw]);
  for (let b = 0; b < B; b++) {
    if (pt === 1) copyInto(dst.slice(0, b, b + 1), src.slice(0, b, b + 1));
    else for (let c = 0; c < channels; c++) copyInto(dst.slice(0, b, b + 1).slice(1, c, c + 1), src.slice(0, b, b + 1).slice(1, c, c + 1));
  }
  return out;
}
