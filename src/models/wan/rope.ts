// Wan's three-axis rotary position embedding (diffusers WanRotaryPosEmbed). The head dim is split into a
// frame part, a height part and a width part — h = w = 2 * floor(head_dim / 6), t = the rest (44/42/42 for
// head_dim 128) — and each part rotates by its own axis position with RoPE frequencies theta^(-2k/part_dim)
// (Su et al. 2021), theta = 10000. Pairs are interleaved (x[2i], x[2i+1]), which is what the native rope op's
// interleaved mode does with tables cos/sin [S, head_dim/2].
//
// diffusers computes the angles in float64 and casts cos/sin to float32; we do the same on the host, once per
// latent grid, and keep the uploaded tables.
import type { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import { Scope, type Tensor } from '../../runtime/tensor.js';

export const WAN_ROPE_THETA = 10000;

/** [t, h, w] widths of the head dim that rotate with frame, row and column position. */
export function wanRopeAxisDims(headDim: number): [number, number, number] {
  const hw = 2 * Math.floor(headDim / 6);
  return [headDim - 2 * hw, hw, hw];
}

export interface RopeTables { cos: Float32Array; sin: Float32Array }

/**
 * cos/sin tables [frames * height * width, headDim / 2] for a latent grid of patches, tokens in (f, h, w)
 * row-major order as the patch embedding flattens them. Column i of the table rotates pair (2i, 2i+1).
 */
export function wanRopeTables(headDim: number, grid: readonly [number, number, number], maxSeqLen: number, theta = WAN_ROPE_THETA): RopeTables {
  const [F, H, W] = grid;
  if (F > maxSeqLen || H > maxSeqLen || W > maxSeqLen) {
    throw new Error(`wan rope: latent grid ${F}x${H}x${W} (patches) exceeds rope_max_seq_len ${maxSeqLen}`);
  }
  const dims = wanRopeAxisDims(headDim);
  // Frequencies per axis part (float64, as diffusers' get_1d_rotary_pos_embed with freqs_dtype float64).
  const freqs = dims.map((d) => Array.from({ length: d / 2 }, (_, k) => 1 / theta ** ((2 * k) / d)));
  const half = headDim / 2;
  const S = F * H * W;
  const cos = new Float32Array(S * half), sin = new Float32Array(S * half);
  let row = 0;
  for (let f = 0; f < F; f++) for (let h = 0; h < H; h++) for (let w = 0; w < W; w++) {
    const pos = [f, h, w];
    let col = row * half;
    for (let axis = 0; axis < 3; axis++) {
      for (const fr of freqs[axis]!) {
        const angle = pos[axis]! * fr;
        cos[col] = Math.cos(angle);
        sin[col] = Math.sin(angle);
        col++;
      }
    }
    row++;
  }
  return { cos, sin };
}

/** Device copies of the tables per latent grid; they live until `free()` (not in any scope). */
export class WanRopeCache {
  readonly #tables = new Map<string, { cos: Tensor; sin: Tensor }>();

  constructor(readonly device: Device, readonly headDim: number, readonly maxSeqLen: number, readonly capacity = 8) {}

  get(grid: readonly [number, number, number]): { cos: Tensor; sin: Tensor } {
    const key = grid.join('x');
    const hit = this.#tables.get(key);
    if (hit) {
      this.#tables.delete(key); // re-insert: the Map's order is our least-recently-used order
      this.#tables.set(key, hit);
      return hit;
    }
    const host = wanRopeTables(this.headDim, grid, this.maxSeqLen);
    const shape = [grid[0] * grid[1] * grid[2], this.headDim / 2];
    const entry = {
      cos: Scope.detach(fromFloat32(this.device, host.cos, shape, 'f32')),
      sin: Scope.detach(fromFloat32(this.device, host.sin, shape, 'f32')),
    };
    this.#tables.set(key, entry);
    if (this.#tables.size > this.capacity) {
      const [oldest, old] = this.#tables.entries().next().value as [string, { cos: Tensor; sin: Tensor }];
      old.cos.free(); old.sin.free();
      this.#tables.delete(oldest);
    }
    return entry;
  }

  free(): void {
    for (const t of this.#tables.values()) { t.cos.free(); t.sin.free(); }
    this.#tables.clear();
  }
}
