// CausalConv3d.forwardSiluCached (the SiLU written straight into the conv's input behind the cached frames)
// against the plain path it replaces: SiLU, then `cat` of the cached frames and the chunk, then the conv, chunk
// after chunk (1 frame, then 2, then 3: the causal caches fill from one frame to two). Frames are large enough
// that the direct path runs (MIN_SILU_RUN values per channel), plus one small case that takes the fallback.
// Tolerance: both feed the conv the same layout, but the native SiLU's vector and scalar forms can differ in the
// last bit, and which values take the scalar tail depends on how a call is split (one call per channel here, one
// for the whole tensor there); so |got - want| <= 1e-6 * (1 + |want|) (a few ulps through a 81-tap conv). A
// wrong frame order, offset or cache is off by O(0.1).
import t from 'tap';
import { RandomWeightSource } from '../../src/models/random-weights.js';
import { MIN_SILU_RUN, CausalConv3d } from '../../src/models/wan/vae-layers.js';
import { FrameCache } from '../../src/models/wan/vae-frame-cache.js';
import { WeightStore } from '../../src/models/weights.js';
import { Device } from '../../src/runtime/device.js';
import { Activation, activation, fromFloat32 } from '../../src/runtime/ops.js';
import { Scope } from '../../src/runtime/tensor.js';
import { randomFloats } from '../helpers/native-harness.js';

const device = new Device({ backend: 'cpu', threads: 2 });
t.teardown(() => device.close());

const CASES = [
  { name: 'direct path (runs of at least MIN_SILU_RUN), batch of 2', n: 2, cin: 3, cout: 5, h: 97, w: 130 },
  { name: 'short runs (fallback to cat)', n: 1, cin: 4, cout: 6, h: 9, w: 11 },
];

/** How many values of `got` are off `want` by more than 1e-6 * (1 + |want|) (NaN counts). */
function outside(got: Float32Array, want: Float32Array): number {
  let bad = 0;
  for (let i = 0; i < want.length; i++) if (!(Math.abs(got[i]! - want[i]!) <= 1e-6 * (1 + Math.abs(want[i]!)))) bad++;
  return bad + Math.abs(got.length - want.length);
}

for (const c of CASES) {
  t.test(`forwardSiluCached equals SiLU + forwardCached: ${c.name}`, (t) => {
    const store = new WeightStore(device, new RandomWeightSource(3), '', 'f32');
    const conv = new CausalConv3d(store, 'conv', c.cin, c.cout, [3, 3, 3], [1, 1, 1]);
    const direct = new FrameCache(), plain = new FrameCache();
    const scope = Scope.open();
    try {
      for (const [i, frames] of [1, 2, 3].entries()) {
        if (c.h * c.w >= MIN_SILU_RUN) t.ok(frames * c.h * c.w >= MIN_SILU_RUN, `chunk ${i}: runs of ${frames * c.h * c.w} take the direct path`);
        const data = randomFloats(c.n * c.cin * frames * c.h * c.w, 20 + i, 2);
        const shape = [c.n, c.cin, frames, c.h, c.w];
        const got = conv.forwardSiluCached(fromFloat32(device, data, shape, 'f32'), direct).toFloat32Array();
        const want = conv.forwardCached(activation(fromFloat32(device, data, shape, 'f32'), Activation.SILU), plain).toFloat32Array();
        t.equal(got.length, want.length, `chunk ${i}: output size`);
        t.equal(outside(got, want), 0, `chunk ${i} (${frames} frames): every output within the tolerance`);
        t.equal(outside(direct.frames(conv)!.toFloat32Array(), plain.frames(conv)!.toFloat32Array()), 0,
          `chunk ${i}: the cached frames within the tolerance`);
      }
    } finally {
      scope.close();
      direct.clear();
      plain.clear();
      store.free();
    }
    t.end();
  });
}
