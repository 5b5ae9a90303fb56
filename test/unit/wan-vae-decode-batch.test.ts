// AutoencoderKLWan.decode runs the decoder's latent-resolution layers on up to four latent frames at once
// (WanDecoder.forwardLatentRes) and the upsampled layers frame by frame. Against the frame-by-frame decode it
// replaces (diffusers' loop: post_quant_conv, the whole decoder on one latent frame with the causal cache,
// clamp), on the tiny random-weight VAE of the wan-tiny fixture set: 6 latent frames (the first alone, a batch
// of four, a batch of one) and 3 (a batch of two).
//
// Tolerance: every layer is causal or frame-wise, so both feed each conv the same values; only the native
// elementwise ops' vector and scalar forms (which values fall in a call's scalar tail depends on its size) can
// round differently, by an ulp that the decoder carries on. |got - want| <= 1e-5 on outputs in [-1, 1]; a wrong
// frame order, cache or batch split is off by O(0.1).
import t from 'tap';
import { join } from 'node:path';
import { openDiffusersModel } from '../../src/checkpoint/diffusers.js';
import { clamp } from '../../src/models/wan/vae-clamp.js';
import { FrameCache } from '../../src/models/wan/vae-frame-cache.js';
import { AutoencoderKLWan } from '../../src/models/wan/vae.js';
import { Device } from '../../src/runtime/device.js';
import { cat, contiguous, fromFloat32 } from '../../src/runtime/ops.js';
import { Scope, type Tensor } from '../../src/runtime/tensor.js';
import { fixtureRoot } from '../helpers/goldens.js';
import { randomFloats } from '../helpers/native-harness.js';

const model = openDiffusersModel(join(fixtureRoot(), 'wan-tiny', 'model'));
const device = new Device({ backend: 'cpu', threads: 2 });
const vae = AutoencoderKLWan.fromDiffusers(device, model);
t.teardown(() => { vae.free(); device.close(); model.close(); });

/** Diffusers' decode loop: one latent frame at a time through the whole decoder. */
function frameByFrame(z: Tensor): Tensor {
  const cache = new FrameCache();
  try {
    const chunks: Tensor[] = [];
    for (let i = 0; i < z.shape[2]!; i++) {
      const zi = vae.postQuantConv.forward(contiguous(z.slice(2, i, i + 1)));
      chunks.push(clamp(vae.decoder.forward(zi, cache), -1, 1));
    }
    return cat(chunks, 2);
  } finally {
    cache.clear();
  }
}

for (const frames of [6, 3]) {
  t.test(`decode of ${frames} latent frames equals the frame-by-frame decode`, (t) => {
    const scope = Scope.open();
    try {
      const shape = [1, 16, frames, 5, 7];
      const z = fromFloat32(device, randomFloats(16 * frames * 35, 40 + frames, 2), shape, vae.dtype);
      const done: number[] = [];
      const got = vae.decode(z, (n) => done.push(n));
      const want = frameByFrame(z);
      t.same(got.shape, want.shape, 'same video shape');
      t.same(done, Array.from({ length: frames }, (_, i) => i + 1), 'progress after every latent frame, in order');
      const a = got.toFloat32Array(), b = want.toFloat32Array();
      let worst = 0;
      for (let i = 0; i < b.length; i++) worst = Math.max(worst, Number.isNaN(a[i]!) ? Infinity : Math.abs(a[i]! - b[i]!));
      t.ok(worst <= 1e-5, `every value within 1e-5 (largest difference ${worst.toExponential(2)})`);
    } finally {
      scope.close();
    }
    t.end();
  });
}
