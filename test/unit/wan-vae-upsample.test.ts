// UpsampleConv (the Wan VAE's "nearest x2, then 3x3 conv with padding 1", computed as two row phases over the
// input upsampled along x) against the literal definition in float64: upsample the input 2x in both dims, then
// a direct 3x3 conv. Odd sizes (tile and vector tails), several frames, a batch of 2, and more than 6 output
// channels (a partial micro-tile).
//
// Tolerance: inputs and weights are uniform in [-1, 1], the folded row taps sum up to two weights first, and
// the conv takes the Winograd path; |got - want| <= 1.5e-5 * sqrt(9 * C_in) * (1 + |want|) is the bound
// ops-conv.test.ts gives the Winograd path (measured below a tenth of it). A wrong phase, fold or interleave is
// off by O(0.1).
import t from 'tap';
import { UpsampleConv } from '../../src/models/wan/vae-upsample-conv.js';
import { Device } from '../../src/runtime/device.js';
import { fromFloat32 } from '../../src/runtime/ops.js';
import { Scope } from '../../src/runtime/tensor.js';
import { randomFloats } from '../helpers/native-harness.js';

const device = new Device({ backend: 'cpu', threads: 2 });
t.teardown(() => device.close());

/** Nearest x2 upsampling of x [n, cin, t, h, w], then a 3x3 conv with padding 1 and bias, in float64. */
function reference(x: Float32Array, wt: Float32Array, bias: Float32Array, n: number, cin: number, frames: number,
  h: number, w: number, cout: number): Float64Array {
  const H = 2 * h, W = 2 * w;
  const y = new Float64Array(n * cout * frames * H * W);
  for (let ni = 0; ni < n; ni++) for (let co = 0; co < cout; co++) for (let z = 0; z < frames; z++)
    for (let oy = 0; oy < H; oy++) for (let ox = 0; ox < W; ox++) {
      let s = bias[co]!;
      for (let ci = 0; ci < cin; ci++) for (let dy = 0; dy < 3; dy++) {
        const uy = oy - 1 + dy;
        if (uy < 0 || uy >= H) continue;
        for (let dx = 0; dx < 3; dx++) {
          const ux = ox - 1 + dx;
          if (ux < 0 || ux >= W) continue;
          // The upsampled pixel (uy, ux) is source pixel (uy >> 1, ux >> 1).
          s += x[(((ni * cin + ci) * frames + z) * h + (uy >> 1)) * w + (ux >> 1)]! * wt[((co * cin + ci) * 3 + dy) * 3 + dx]!;
        }
      }
      y[(((ni * cout + co) * frames + z) * H + oy) * W + ox] = s;
    }
  return y;
}

const CASES = [
  { name: 'odd sizes, one frame', n: 1, cin: 5, t: 1, h: 7, w: 9, cout: 3 },
  { name: 'several frames, wide rows (vector tails), a partial micro-tile of channels', n: 1, cin: 12, t: 3, h: 5, w: 21, cout: 8 },
  { name: 'a batch of 2, tall frame', n: 2, cin: 16, t: 2, h: 13, w: 6, cout: 7 },
];

for (const c of CASES) {
  t.test(`UpsampleConv equals upsample + 3x3 conv: ${c.name}`, (t) => {
    const x = randomFloats(c.n * c.cin * c.t * c.h * c.w, 11);
    const wt = randomFloats(c.cout * c.cin * 9, 12);
    const bias = randomFloats(c.cout, 13);
    const want = reference(x, wt, bias, c.n, c.cin, c.t, c.h, c.w, c.cout);
    const scope = Scope.open();
    let got: Float32Array;
    try {
      const conv = new UpsampleConv(fromFloat32(device, wt, [c.cout, c.cin, 3, 3], 'f32'), fromFloat32(device, bias, [c.cout], 'f32'));
      try {
        const y = conv.forward(fromFloat32(device, x, [c.n, c.cin, c.t, c.h, c.w], 'f32'));
        t.same(y.shape, [c.n, c.cout, c.t, 2 * c.h, 2 * c.w], 'output shape');
        got = y.toFloat32Array();
      } finally {
        conv.free();
      }
    } finally {
      scope.close();
    }
    const bound = 1.5e-5 * Math.sqrt(9 * c.cin);
    let worst = 0, bad = 0;
    for (let i = 0; i < want.length; i++) {
      const ratio = Math.abs(got[i]! - want[i]!) / (bound * (1 + Math.abs(want[i]!)));
      if (!(ratio <= 1)) bad++;
      worst = Math.max(worst, Number.isNaN(ratio) ? Infinity : ratio);
    }
    t.equal(bad, 0, `every output within the bound (worst at ${worst.toFixed(3)} of it)`);
    t.end();
  });
}
