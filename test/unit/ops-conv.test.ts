// sgld_conv3d, sgld_conv2d and sgld_upsample_nearest on the CPU backend against float64 references written
// here: Wan VAE's causal 3x3x3 convs (pads {2,0,1,1,1,1}), stride-2 spatial downsampling with asymmetric pads
// {0,1,0,1}, temporal (3,1,1) stride (2,1,1), 1x1x1 (plain and strided), the folded 1x2x2 upsample convs, K
// accumulated over several k blocks, output frames whose window reaches into the time padding (those taps are
// skipped), 16-pixel panels inside a row, at its edges and spanning two rows, a 2-D kernel with every asymmetry,
// the direct path's masked and unmasked pixel groups and its tasks of several output frames,
// the Winograd path's tiles, panels, channel blocks and frame windows, 1 and 2 threads, and argument errors.
//
// Tolerance: inputs and weights are uniform in [-1, 1], so an output of the GEMM or direct paths is a length-K
// dot product off by a few fp32 ulps per term; checks allow |got - want| <= 1e-7 * (K + 16) * (1 + |want|) as the
// GEMM tests do (measured 5-20x below). The Winograd path (stride-1 3x3) rounds more: see tolerance(). A wrong
// tap, pad side, stride or channel gives O(0.1) errors. Upsampling is exact.
import t from 'tap';
import { NativeDType, Status } from '../../src/runtime/native.js';
import { NativeHarness, i32, randomFloats } from '../helpers/native-harness.js';

const h1 = new NativeHarness({ threads: 1 });
const h2 = new NativeHarness({ threads: 2 });
t.teardown(() => { h1.close(); h2.close(); });
const HARNESSES: [string, NativeHarness][] = [['1 thread', h1], ['2 threads', h2]];

interface ConvCase {
  name: string;
  n: number; cin: number; t: number; h: number; w: number;
  cout: number; kt: number; kh: number; kw: number;
  stride: [number, number, number];
  pads: [number, number, number, number, number, number];
  bias: boolean;
}

const outSize = (c: ConvCase): [number, number, number] => [
  Math.floor((c.t + c.pads[0] + c.pads[1] - c.kt) / c.stride[0]) + 1,
  Math.floor((c.h + c.pads[2] + c.pads[3] - c.kh) / c.stride[1]) + 1,
  Math.floor((c.w + c.pads[4] + c.pads[5] - c.kw) / c.stride[2]) + 1,
];

/** Direct convolution in float64, zero padding on each side as given. */
function refConv3d(c: ConvCase, x: Float32Array, wt: Float32Array, bias: Float32Array | null): Float64Array {
  const [to, ho, wo] = outSize(c);
  const y = new Float64Array(c.n * c.cout * to * ho * wo);
  for (let ni = 0; ni < c.n; ni++) for (let co = 0; co < c.cout; co++) for (let oz = 0; oz < to; oz++)
    for (let oy = 0; oy < ho; oy++) for (let ox = 0; ox < wo; ox++) {
      let s = bias ? bias[co]! : 0;
      for (let ci = 0; ci < c.cin; ci++) for (let dt = 0; dt < c.kt; dt++) {
        const iz = oz * c.stride[0] - c.pads[0] + dt;
        if (iz < 0 || iz >= c.t) continue;
        for (let dy = 0; dy < c.kh; dy++) {
          const iy = oy * c.stride[1] - c.pads[2] + dy;
          if (iy < 0 || iy >= c.h) continue;
          for (let dx = 0; dx < c.kw; dx++) {
            const ix = ox * c.stride[2] - c.pads[4] + dx;
            if (ix < 0 || ix >= c.w) continue;
            s += x[(((ni * c.cin + ci) * c.t + iz) * c.h + iy) * c.w + ix]! *
              wt[(((co * c.cin + ci) * c.kt + dt) * c.kh + dy) * c.kw + dx]!;
          }
        }
      }
      y[(((ni * c.cout + co) * to + oz) * ho + oy) * wo + ox] = s;
    }
  return y;
}

function worstError(got: Float32Array, want: Float64Array): number {
  let worst = 0;
  for (let i = 0; i < got.length; i++) {
    const e = Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!));
    if (Number.isNaN(e)) return NaN;
    worst = Math.max(worst, e);
  }
  return worst;
}

/** The path conv.cpp picks: direct for 1-3 output channels, Winograd for stride-1 3x3 spatial kernels, else GEMM. */
function convPath(c: ConvCase): 'direct' | 'winograd' | 'gemm' {
  if (c.cout <= 3 && c.stride[2] === 1) return 'direct';
  if (c.kh === 3 && c.kw === 3 && c.stride[1] === 1 && c.stride[2] === 1) return 'winograd';
  return 'gemm';
}

/**
 * Error bound per path, relative to 1 + |want|. GEMM and direct sums: a few fp32 ulps per product,
 * 1e-7 (K + 16). Winograd F(4x4, 3x3): its transforms scale values by up to ~10 and cancel again, so the
 * rounding follows the size of the transformed partial sums, a random walk over the c_in x kt (input channel,
 * time offset) pairs: 1.5e-5 sqrt(c_in kt). Measured: at most 3.2e-6 sqrt(c_in kt) over the 14 cases below
 * that take this path, 4.7x inside it; a wrong tap, pad or channel gives O(0.1) errors.
 */
function tolerance(c: ConvCase): number {
  if (convPath(c) === 'winograd') return 1.5e-5 * Math.sqrt(c.cin * c.kt);
  return 1e-7 * (c.cin * c.kt * c.kh * c.kw + 16);
}

/** Runs a case through sgld_conv3d (or sgld_conv2d when `as2d`); the output starts as NaN so no stale value hides. */
function runConv(h: NativeHarness, c: ConvCase, seed: number, as2d = false, weightScale = 1) {
  const K = c.cin * c.kt * c.kh * c.kw;
  const x = randomFloats(c.n * c.cin * c.t * c.h * c.w, seed);
  const wt = randomFloats(c.cout * K, seed + 1, weightScale);
  const bias = c.bias ? randomFloats(c.cout, seed + 2) : null;
  const [to, ho, wo] = outSize(c);
  const count = c.n * c.cout * to * ho * wo;
  const px = h.upload(x), pw = h.upload(wt), pb = bias ? h.upload(bias) : null, py = h.upload(new Float32Array(count).fill(NaN));
  if (as2d) {
    h.check(h.lib.fns.sgld_conv2d(h.ctx, NativeDType.F32, c.n, c.cin, c.h, c.w, px, c.cout, c.kh, c.kw, pw, pb,
      i32(c.stride[1], c.stride[2]), i32(c.pads[2], c.pads[3], c.pads[4], c.pads[5]), py), 'sgld_conv2d');
  } else {
    h.check(h.lib.fns.sgld_conv3d(h.ctx, NativeDType.F32, c.n, c.cin, c.t, c.h, c.w, px, c.cout, c.kt, c.kh, c.kw, pw, pb,
      i32(...c.stride), i32(...c.pads), py), 'sgld_conv3d');
  }
  const got = h.download(py, count);
  for (const p of [px, pw, py]) h.free(p);
  if (pb) h.free(pb);
  return { got, want: refConv3d(c, x, wt, bias), tol: tolerance(c) };
}

const base = { n: 1, stride: [1, 1, 1] as [number, number, number], pads: [0, 0, 0, 0, 0, 0] as ConvCase['pads'], bias: true };

const CONV3D_CASES: ConvCase[] = [
  { ...base, name: 'causal 3x3x3, pads {2,0,1,1,1,1}', n: 2, cin: 5, t: 4, h: 9, w: 11, cout: 7, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'causal 3x3x3 on one frame, 12 channels (one task for all threads)', cin: 12, t: 1, h: 11, w: 13, cout: 9, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: '1x2x2 (a folded upsample phase), K = 520 in 2 chunks, one tile for all threads', cin: 130, t: 1, h: 11, w: 13, cout: 9, kt: 1, kh: 2, kw: 2, pads: [0, 0, 1, 0, 1, 0] },
  { ...base, name: 'spatial 3x3 stride 2, pads {0,0,0,1,0,1} (Wan downsample)', n: 2, cin: 4, t: 3, h: 13, w: 16, cout: 5, kt: 1, kh: 3, kw: 3, stride: [1, 2, 2], pads: [0, 0, 0, 1, 0, 1] },
  { ...base, name: 'temporal (3,1,1) stride (2,1,1), no pads (Wan time_conv)', cin: 6, t: 7, h: 5, w: 6, cout: 4, kt: 3, kh: 1, kw: 1, stride: [2, 1, 1] },
  { ...base, name: 'temporal (3,1,1) stride (2,1,1), causal pads {2,0}', cin: 6, t: 6, h: 4, w: 7, cout: 4, kt: 3, kh: 1, kw: 1, stride: [2, 1, 1], pads: [2, 0, 0, 0, 0, 0] },
  { ...base, name: '1x1x1 (K = input channels only)', n: 2, cin: 13, t: 3, h: 7, w: 9, cout: 11, kt: 1, kh: 1, kw: 1 },
  { ...base, name: '1x1x1 without bias', cin: 8, t: 2, h: 30, w: 41, cout: 3, kt: 1, kh: 1, kw: 1, bias: false },
  { ...base, name: '1x1x1 with stride 2 (im2col path)', cin: 5, t: 3, h: 9, w: 8, cout: 6, kt: 1, kh: 1, kw: 1, stride: [2, 2, 2] },
  { ...base, name: 'causal 3x3x2, K = 1080 in 5 chunks, tiles of 256 pixels splitting output rows', cin: 60, t: 2, h: 33, w: 35, cout: 5, kt: 3, kh: 3, kw: 2, pads: [2, 0, 1, 1, 1, 0] },
  { ...base, name: 'kernel wider than the input with big pads, no bias', cin: 3, t: 2, h: 2, w: 3, cout: 4, kt: 2, kh: 3, kw: 5, pads: [1, 2, 2, 1, 3, 1], bias: false },
  { ...base, name: 'causal 3x2x3, 540 taps per time offset (2 k blocks each), 16-pixel runs inside and at both edges, c_out 13', cin: 90, t: 3, h: 5, w: 34, cout: 13, kt: 3, kh: 2, kw: 3, pads: [2, 0, 1, 0, 1, 1] },
  { ...base, name: 'first causal chunk: one frame, two zero frames in front (their taps skipped)', cin: 7, t: 1, h: 4, w: 32, cout: 8, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'window past the last frame too (pads {1,2}): only the middle taps exist', cin: 4, t: 1, h: 3, w: 17, cout: 5, kt: 3, kh: 3, kw: 3, pads: [1, 2, 1, 1, 1, 1] },
  { ...base, name: 'c_out 3 (direct path): causal 3x3x3, 40-pixel rows (a full and a partial 32-pixel group)', cin: 6, t: 3, h: 5, w: 40, cout: 3, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'c_out 3 (direct path): batch of 2, causal 3x3x3, rows with unmasked 32-pixel groups', n: 2, cin: 5, t: 4, h: 6, w: 75, cout: 3, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'c_out 2 (direct path): 600-pixel rows, 5 output frames in tasks of 2 frames', cin: 3, t: 5, h: 3, w: 600, cout: 2, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'c_out 1 (direct path), no bias, stride (1,2,1), pads {0,0,2,0,0,3}', cin: 5, t: 2, h: 9, w: 33, cout: 1, kt: 1, kh: 3, kw: 2, stride: [1, 2, 1], pads: [0, 0, 2, 0, 0, 3], bias: false },
];

t.test('conv3d matches a direct float64 convolution (causal, strided, asymmetric pads, 1x1x1, split tiles)', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [i, c] of CONV3D_CASES.entries()) {
      const { got, want, tol } = runConv(h, c, 500 + 10 * i);
      const err = worstError(got, want);
      t.ok(err <= tol, `${c.name}, ${label}: error ${err.toExponential(2)} <= ${tol.toExponential(1)}`);
    }
  }
});

t.test('two threads give the same bits as one thread', async (t) => {
  for (const i of [0, 2, 3, 9, 11, 14]) {
    const one = runConv(h1, CONV3D_CASES[i]!, 900 + i), two = runConv(h2, CONV3D_CASES[i]!, 900 + i);
    t.ok(one.got.every((v, k) => Object.is(v, two.got[k])), `${CONV3D_CASES[i]!.name}`);
  }
});

// Shapes the Winograd path has to get right beyond the cases above (which it also runs: every stride-1 3x3 with
// more than 3 output channels): partial tiles, tile rows padded to 8-tile vectors and split across tasks, half
// a 16-tile panel, several channel blocks, output channels that are not a multiple of the 6-row panels, frames
// whose window lies partly or entirely in the time padding, time strides, asymmetric and no spatial padding.
const WINOGRAD_CASES: ConvCase[] = [
  { ...base, name: 'causal 3x3x3 on odd 13x11 frames (partial tiles at the bottom and right), 3 frames', cin: 6, t: 3, h: 13, w: 11, cout: 7, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'kt 1, 4 frames, c_out 4 (one 6-row panel with 2 rows of padding)', cin: 5, t: 4, h: 8, w: 8, cout: 4, kt: 1, kh: 3, kw: 3, pads: [0, 0, 1, 1, 1, 1] },
  { ...base, name: '130 input channels (two channel blocks), n 2, 6x7 frames', n: 2, cin: 130, t: 2, h: 6, w: 7, cout: 8, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: '75 tiles per row (a row split across tasks, padded to 80 lanes), no bias', cin: 3, t: 1, h: 5, w: 299, cout: 6, kt: 1, kh: 3, kw: 3, pads: [0, 0, 1, 1, 1, 1], bias: false },
  { ...base, name: '24 tiles per frame (the last 16-tile panel half empty)', cin: 4, t: 2, h: 12, w: 20, cout: 5, kt: 3, kh: 3, kw: 3, pads: [2, 0, 1, 1, 1, 1] },
  { ...base, name: 'time pads {3,0}: the first output frame sees only padding (bias), the next one 1 of 3 taps', cin: 4, t: 2, h: 5, w: 9, cout: 6, kt: 3, kh: 3, kw: 3, pads: [3, 0, 1, 1, 1, 1] },
  { ...base, name: 'time stride 2, time pads {1,2}, spatial pads {2,0,0,2}', cin: 5, t: 5, h: 9, w: 10, cout: 7, kt: 3, kh: 3, kw: 3, stride: [2, 1, 1], pads: [1, 2, 2, 0, 0, 2] },
  { ...base, name: 'no spatial padding: 3x3 frames to one output pixel', cin: 3, t: 1, h: 3, w: 3, cout: 4, kt: 1, kh: 3, kw: 3 },
  { ...base, name: 'a decode chunk: 2 cached + 8 new frames, 16x16, 12 output channels (two panels)', cin: 8, t: 10, h: 16, w: 16, cout: 12, kt: 3, kh: 3, kw: 3 , pads: [0, 0, 1, 1, 1, 1] },
];

t.test('Winograd F(4x4, 3x3) path matches a direct float64 convolution', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [i, c] of WINOGRAD_CASES.entries()) {
      t.equal(convPath(c), 'winograd', `${c.name} runs the Winograd path`);
      const { got, want, tol } = runConv(h, c, 1500 + 10 * i);
      const err = worstError(got, want);
      t.ok(err <= tol, `${c.name}, ${label}: error ${err.toExponential(2)} <= ${tol.toExponential(1)}`);
    }
  }
});

t.test('Winograd: two threads give the same bits as one thread', async (t) => {
  for (const [i, c] of WINOGRAD_CASES.entries()) {
    const one = runConv(h1, c, 1900 + i), two = runConv(h2, c, 1900 + i);
    t.ok(one.got.every((v, k) => Object.is(v, two.got[k])), c.name);
  }
});

// A Wan VAE conv at full width: 384 channels, all three time taps, weights scaled by 1/sqrt(fan-in) as trained
// layers are, so the output has the scale of the input. Error relative to the output's RMS: Winograd adds
// ~10x the direct sum's rounding error (conv_winograd.cpp); the VAE parity goldens allow ~50x float32's.
t.test('Winograd error at Wan width (384 channels x 3 taps x 3x3) against float64', async (t) => {
  const c: ConvCase = { ...base, name: 'wan-width', cin: 384, t: 3, h: 12, w: 12, cout: 8, kt: 3, kh: 3, kw: 3, pads: [0, 0, 1, 1, 1, 1] };
  const { got, want } = runConv(h2, c, 2500, false, 1 / Math.sqrt(c.cin * 27));
  let sq = 0, worst = 0;
  for (let i = 0; i < want.length; i++) { sq += want[i]! ** 2; worst = Math.max(worst, Math.abs(got[i]! - want[i]!)); }
  const rms = Math.sqrt(sq / want.length);
  t.ok(worst / rms <= 5e-5, `max error ${(worst / rms).toExponential(2)} of the output RMS ${rms.toFixed(3)} <= 5e-5`);
});

const base2d = { ...base, t: 1, kt: 1 };
const CONV2D_CASES: ConvCase[] = [
  { ...base2d, name: '3x3 pads {1,1,1,1}', n: 2, cin: 5, h: 13, w: 10, cout: 6, kh: 3, kw: 3, pads: [0, 0, 1, 1, 1, 1] },
  { ...base2d, name: '3x3 stride 2 pads {0,1,0,1}', n: 2, cin: 4, h: 15, w: 12, cout: 3, kh: 3, kw: 3, stride: [1, 2, 2], pads: [0, 0, 0, 1, 0, 1] },
  { ...base2d, name: '3x3 to 2 channels (direct path), pads {1,1,1,1}', cin: 4, h: 6, w: 70, cout: 2, kh: 3, kw: 3, pads: [0, 0, 1, 1, 1, 1] },
  { ...base2d, name: '4x2 kernel, stride (2,3), pads {2,0,1,3}', cin: 3, h: 11, w: 14, cout: 5, kh: 4, kw: 2, stride: [1, 2, 3], pads: [0, 0, 2, 0, 1, 3] },
];

t.test('conv2d is conv3d with t = kt = 1 (pads {top, bottom, left, right}, strides {sh, sw})', async (t) => {
  for (const [label, h] of HARNESSES) {
    for (const [i, c] of CONV2D_CASES.entries()) {
      const { got, want, tol } = runConv(h, c, 700 + 10 * i, true);
      const err = worstError(got, want);
      t.ok(err <= tol, `${c.name}, ${label}: error ${err.toExponential(2)} <= ${tol.toExponential(1)}`);
    }
  }
});

t.test('convolutions reject bad arguments with a message naming op and argument', async (t) => {
  const p = h1.alloc(4096), f = h1.lib.fns;
  const conv3d = (strides: Int32Array, pads: Int32Array, dims: number[] = [1, 2, 3, 4, 5], kernel: number[] = [3, 3, 3], dtype: number = NativeDType.F32) =>
    f.sgld_conv3d(h1.ctx, dtype, dims[0]!, dims[1]!, dims[2]!, dims[3]!, dims[4]!, p, 2, kernel[0]!, kernel[1]!, kernel[2]!, p, null, strides, pads, p);
  const ones = i32(1, 1, 1), causal = i32(2, 0, 1, 1, 1, 1);
  t.equal(conv3d(ones, causal), Status.OK, 'a valid call succeeds');
  t.equal(conv3d(ones, i32(2, 0, 1, -1, 1, 1)), Status.INVALID, 'negative pad');
  t.match(f.sgld_last_error(), /sgld_conv3d: pads\[3\] = -1/);
  t.equal(conv3d(i32(1, 0, 1), causal), Status.INVALID, 'stride 0');
  t.match(f.sgld_last_error(), /strides\[1\]/);
  t.equal(conv3d(ones, i32(0, 0, 0, 0, 0, 0), [1, 2, 3, 2, 5]), Status.INVALID, 'kernel taller than the padded input');
  t.match(f.sgld_last_error(), /smaller than the kernel/);
  t.equal(conv3d(ones, causal, [1, -2, 3, 4, 5]), Status.INVALID, 'negative c_in');
  t.equal(conv3d(ones, causal, undefined, [3, 0, 3]), Status.INVALID, 'zero kernel size');
  t.equal(conv3d(ones, causal, undefined, undefined, NativeDType.F16), Status.UNSUPPORTED, 'F16');
  t.equal(f.sgld_conv3d(h1.ctx, NativeDType.F32, 1, 2, 3, 4, 5, p, 2, 3, 3, 3, 0n, null, ones, causal, p), Status.INVALID, 'null weight');
  t.match(f.sgld_last_error(), /sgld_conv3d: weight is null/);
  t.equal(f.sgld_conv2d(h1.ctx, NativeDType.F32, 1, 2, 4, 5, p, 2, 3, 3, p, null, i32(1, 1), i32(1, 1, -1, 1), p), Status.INVALID, 'conv2d negative pad');
  t.match(f.sgld_last_error(), /sgld_conv2d: pads/);
  t.equal(f.sgld_conv2d(h1.ctx, NativeDType.F32, 1, 2, 4, 5, 0n, 2, 3, 3, p, null, i32(1, 1), i32(1, 1, 1, 1), p), Status.INVALID, 'conv2d null x');
  t.match(f.sgld_last_error(), /sgld_conv2d: x is null/);
});

// ---- upsampling -------------------------------------------------------------------------------------------------

t.test('upsample_nearest repeats every value by integer factors in 2-D and 3-D, exactly', async (t) => {
  const cases: [number, number, number, number, number, number, number, number][] = [
    // n, c, t, h, w, ft, fh, fw
    [2, 3, 1, 5, 19, 1, 2, 2], [1, 4, 3, 6, 7, 2, 2, 2], [1, 2, 2, 3, 9, 3, 1, 2], [2, 5, 1, 4, 6, 1, 3, 1], [1, 64, 2, 40, 33, 1, 2, 2],
  ];
  for (const [label, h] of HARNESSES) {
    for (const [i, [n, c, tt, hh, ww, ft, fh, fw]] of cases.entries()) {
      const x = randomFloats(n * c * tt * hh * ww, 800 + i);
      const count = x.length * ft * fh * fw;
      const px = h.upload(x), py = h.alloc(count);
      h.check(h.lib.fns.sgld_upsample_nearest(h.ctx, NativeDType.F32, n, c, tt, hh, ww, ft, fh, fw, px, py), 'sgld_upsample_nearest');
      const got = h.download(py, count);
      const To = tt * ft, Ho = hh * fh, Wo = ww * fw;
      let bad = -1;
      for (let k = 0; k < count && bad < 0; k++) {
        const ox = k % Wo, oy = Math.floor(k / Wo) % Ho, oz = Math.floor(k / (Wo * Ho)) % To, nc = Math.floor(k / (Wo * Ho * To));
        const src = ((nc * tt + Math.floor(oz / ft)) * hh + Math.floor(oy / fh)) * ww + Math.floor(ox / fw);
        if (got[k] !== x[src]) bad = k;
      }
      t.equal(bad, -1, `[${n},${c},${tt},${hh},${ww}] by (${ft},${fh},${fw}), ${label}`);
      h.free(px); h.free(py);
    }
  }
});

t.test('upsample_nearest rejects factors below 1', async (t) => {
  const p = h1.alloc(64), f = h1.lib.fns;
  t.equal(f.sgld_upsample_nearest(h1.ctx, NativeDType.F32, 1, 1, 1, 2, 2, 1, 0, 2, p, p), Status.INVALID, 'fh = 0');
  t.match(f.sgld_last_error(), /sgld_upsample_nearest: factors/);
  t.equal(f.sgld_upsample_nearest(h1.ctx, NativeDType.F32, 1, 1, 1, -2, 2, 1, 2, 2, p, p), Status.INVALID, 'negative h');
});
