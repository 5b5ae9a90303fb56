// Z-Image's three-axis rotary embedding (diffusers RopeEmbedder): the head dim splits into axes_dims parts
// (32/48/48 for the 128-wide heads of Z-Image-Turbo); part a rotates by position id a of the token with
// frequencies theta^(-2k/d_a), theta = rope_theta (256). Pairs are interleaved (x[2i], x[2i+1]), i.e. complex
// multiplication, the native rope op's interleaved mode; table columns run axis by axis.
//
// diffusers computes the angles in float64, rounds them to float32 and takes cos/sin in float32 (torch.polar on
// complex64); we round the same way. Ids come from the batch layout (transformer-sequence.ts), so one table row
// per token of the batch tensor: items differ in their ids, and the op's tables are [seq, head_dim/2] shared by
// the batch, so we rotate [B, S, H, D] as one [1, B*S, H, D] sequence with a [B*S, head_dim/2] table.
// Batch-padding rows get cos = sin = 0, as diffusers pads its complex table with zeros.
import type { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import { Scope, type Tensor } from '../../runtime/tensor.js';
import { type BatchLayout, captionPositionIds, imagePositionIds, layoutKey } from './transformer-sequence.js';

export interface RopeTables { cos: Tensor; sin: Tensor }

/** Device tables of one batch layout: image sequence, caption sequence and the unified sequence. */
export interface LayoutRope { image: RopeTables; caption: RopeTables; unified: RopeTables }

export class ZImageRope {
  /** Per axis, the float64 frequencies theta^(-2k/d) (diffusers precompute_freqs_cis). */
  readonly freqs: Float64Array[];
  readonly halfDim: number;
  readonly #cache = new Map<string, LayoutRope>();

  constructor(readonly device: Device, readonly axesDims: readonly [number, number, number],
    readonly axesLens: readonly [number, number, number], readonly theta: number, readonly capacity = 4) {
    this.freqs = axesDims.map((d) => Float64Array.from({ length: d / 2 }, (_, k) => 1 / theta ** ((2 * k) / d)));
    this.halfDim = (axesDims[0] + axesDims[1] + axesDims[2]) / 2;
  }

  /**
   * Host tables [segments' rows, padded to maxLen per item, times B; head_dim / 2] from each item's id segments
   * (ids [n, 3] row-major, concatenated in order). Rows past an item's segments are zero.
   */
  tables(segmentsPerItem: readonly (readonly Int32Array[])[], maxLen: number): { cos: Float32Array; sin: Float32Array } {
    const half = this.halfDim;
    const cos = new Float32Array(segmentsPerItem.length * maxLen * half);
    const sin = new Float32Array(cos.length);
    segmentsPerItem.forEach((segments, b) => {
      let row = b * maxLen;
      for (const ids of segments) {
        for (let r = 0; r < ids.length / 3; r++, row++) {
          let col = row * half;
          for (let a = 0; a < 3; a++) {
            const pos = ids[r * 3 + a]!;
            if (pos >= this.axesLens[a]!) throw new Error(`zimage rope: position ${pos} on axis ${a} is beyond axes_lens[${a}] = ${this.axesLens[a]}`);
            for (const f of this.freqs[a]!) {
              const angle = Math.fround(pos * f);
              cos[col] = Math.cos(angle);
              sin[col] = Math.sin(angle);
              col++;
            }
          }
        }
      }
    });
    return { cos, sin };
  }

  /** The three sequences' device tables for a layout, cached (least recently used dropped past `capacity`). */
  get(layout: BatchLayout): LayoutRope {
    const key = layoutKey(layout);
    const hit = this.#cache.get(key);
    if (hit) {
      this.#cache.delete(key);
      this.#cache.set(key, hit);
      return hit;
    }
    const image = layout.items.map((it) => [imagePositionIds(it)]);
    const caption = layout.items.map((it) => [captionPositionIds(it)]);
    const unified = layout.items.map((_, b) => [image[b]![0]!, caption[b]![0]!]);
    const upload = (host: { cos: Float32Array; sin: Float32Array }, rows: number): RopeTables => ({
      cos: Scope.detach(fromFloat32(this.device, host.cos, [rows, this.halfDim], 'f32')),
      sin: Scope.detach(fromFloat32(this.device, host.sin, [rows, this.halfDim], 'f32')),
    });
    const B = layout.items.length;
    const entry: LayoutRope = {
      image: upload(this.tables(image, layout.imageMax), B * layout.imageMax),
      caption: upload(this.tables(caption, layout.captionMax), B * layout.captionMax),
      unified: upload(this.tables(unified, layout.unifiedMax), B * layout.unifiedMax),
    };
    this.#cache.set(key, entry);
    if (this.#cache.size > this.capacity) {
      const [oldest, old] = this.#cache.entries().next().value as [string, LayoutRope];
      freeLayout(old);
      this.#cache.delete(oldest);
    }
    return entry;
  }

  free(): void {
    for (const e of this.#cache.values()) freeLayout(e);
    this.#cache.clear();
  }
}

function freeLayout(e: LayoutRope): void {
  for (const t of [e.image, e.caption, e.unified]) { t.cos.free(); t.sin.free(); }
}
