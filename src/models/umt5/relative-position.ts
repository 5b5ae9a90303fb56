// T5 relative position bias (Raffel et al. 2020, sec. 2.1; bucketing from Mesh TensorFlow): each query/key
// offset j - i falls into one of `numBuckets` buckets, exact for small offsets and logarithmic up to
// `maxDistance`, and every head learns one scalar per bucket. UMT5 gives every layer its own table.
//
// The bias depends on j - i only, so a layer's [heads, q_len, kv_len] bias is a Toeplitz matrix: we store one
// row of 2L - 1 values per head and hand attention a strided view of it (stride -1 along queries), so no
// L x L matrix is ever built.
import type { Device } from '../../runtime/device.js';
import { fromFloat32 } from '../../runtime/ops.js';
import { Tensor } from '../../runtime/tensor.js';

const f32 = Math.fround;

/**
 * The bucket of relative position `rel` = key_pos - query_pos, as transformers' `_relative_position_bucket`.
 * The logarithmic part is computed in float32 there; we repeat its roundings so offsets that land near a bucket
 * boundary fall on the same side.
 */
export function relativePositionBucket(rel: number, numBuckets: number, maxDistance: number, bidirectional = true): number {
  let n = numBuckets;
  let bucket = 0;
  let distance: number;
  if (bidirectional) {
    n = Math.floor(n / 2);
    if (rel > 0) bucket += n;
    distance = Math.abs(rel);
  } else {
    distance = Math.max(-rel, 0);
  }
  const maxExact = Math.floor(n / 2);
  if (distance < maxExact) return bucket + distance;
  const logRatio = f32(f32(Math.log(f32(distance / maxExact))) / f32(Math.log(maxDistance / maxExact)));
  const large = maxExact + Math.trunc(f32(logRatio * (n - maxExact)));
  return bucket + Math.min(large, n - 1);
}

/** Buckets of every offset -(len-1) .. len-1 (index offset + len - 1). */
export function relativeBuckets(len: number, numBuckets: number, maxDistance: number): Int32Array {
  const out = new Int32Array(2 * len - 1);
  for (let r = -(len - 1); r < len; r++) out[r + len - 1] = relativePositionBucket(r, numBuckets, maxDistance);
  return out;
}

/**
 * One layer's bias rows: fp32 [heads, 2L - 1] with row h, column r + L - 1 = table[bucket(r), h], where
 * `table` is the layer's relative_attention_bias weight [num_buckets, heads] (row-major, on the host).
 */
export function biasRows(table: Float32Array, heads: number, buckets: Int32Array): Float32Array {
  const width = buckets.length;
  const rows = new Float32Array(heads * width);
  for (let h = 0; h < heads; h++) {
    const row = h * width;
    for (let c = 0; c < width; c++) rows[row + c] = table[buckets[c]! * heads + h]!;
  }
  return rows;
}

/**
 * The [1, heads, L, L] attention-bias view of bias rows uploaded as [heads, 2L - 1]:
 * element (0, h, i, j) = rows[h, j - i + L - 1], i.e. offset L - 1 with strides (0, 2L - 1, -1, 1).
 */
export function toeplitzBiasView(rows: Tensor, len: number): Tensor {
  const heads = rows.shape[0]!;
  if (rows.ndim !== 2 || rows.shape[1] !== 2 * len - 1 || !rows.isContiguous) {
    throw new Error(`toeplitzBiasView: expected contiguous rows [heads, ${2 * len - 1}], got [${rows.shape.join(', ')}]`);
  }
  return new Tensor(rows.storage, rows.dtype, [1, heads, len, len], [0, 2 * len - 1, -1, 1], rows.offset + len - 1);
}

/** Uploads a layer's bias rows (fp32, as attention biases always are) and returns the [1, H, L, L] view. */
export function relativeAttentionBias(device: Device, table: Float32Array, heads: number, buckets: Int32Array): Tensor {
  const len = (buckets.length + 1) / 2;
  const rows = fromFloat32(device, biasRows(table, heads, buckets), [heads, buckets.length], 'f32');
  return toeplitzBiasView(rows, len);
}
