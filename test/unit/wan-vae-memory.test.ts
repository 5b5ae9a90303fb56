// The Wan VAE's memory does not grow with the frame count: decode/encode work chunk by chunk and keep only the
// causal convolutions' cached frames between chunks, so a longer video costs its extra output and nothing more.
// Measured with the device allocator's peak on the tiny random-weight VAE of the wan-tiny fixture set.
import t from 'tap';
import { join } from 'node:path';
import { openDiffusersModel } from '../../src/checkpoint/diffusers.js';
import { AutoencoderKLWan } from '../../src/models/wan/vae.js';
import { Device } from '../../src/runtime/device.js';
import { fromFloat32 } from '../../src/runtime/ops.js';
import { Scope } from '../../src/runtime/tensor.js';
import { fixtureRoot } from '../helpers/goldens.js';
import { randomFloats } from '../helpers/native-harness.js';

const model = openDiffusersModel(join(fixtureRoot(), 'wan-tiny', 'model'));
t.teardown(() => model.close());

/** Latent frames of 8x8 decode to 64x64 video frames: big enough that a frame's bytes dwarf allocator noise. */
const LATENT_H = 8, LATENT_W = 8;

interface Run { weights: number; peak: number; outputBytes: number; inputBytes: number; leaked: number }

/**
 * Runs `fn` in a scope on a fresh device (so the peak is its own) and reports memory relative to the loaded
 * weights; `leaked` is what stays allocated after the scope closed.
 */
function measure(fn: (vae: AutoencoderKLWan, device: Device) => { outputBytes: number; inputBytes: number }): Run {
  const device = new Device({ backend: 'cpu', threads: 2 });
  const vae = AutoencoderKLWan.fromDiffusers(device, model);
  try {
    const weights = device.memoryStats().inUse;
    const scope = Scope.open();
    let sizes: { outputBytes: number; inputBytes: number };
    try {
      sizes = fn(vae, device);
    } finally {
      scope.close();
    }
    const stats = device.memoryStats();
    return { weights, peak: stats.peak - weights, leaked: stats.inUse - weights, ...sizes };
  } finally {
    vae.free();
    device.close();
  }
}

function decodeRun(latentFrames: number): Run {
  return measure((vae, device) => {
    const shape = [1, 16, latentFrames, LATENT_H, LATENT_W];
    const z = fromFloat32(device, randomFloats(16 * latentFrames * LATENT_H * LATENT_W, 7, 2), shape);
    const video = vae.decode(z);
    return { outputBytes: video.byteLength, inputBytes: z.byteLength };
  });
}

t.test('decoding 6 latent frames peaks above decoding 2 by little more than the extra output', (t) => {
  const short = decodeRun(2), long = decodeRun(6);
  const extraData = (long.outputBytes - short.outputBytes) + (long.inputBytes - short.inputBytes);
  // Allowance: the allocator rounds blocks above 1 MiB up to 1/8 of a power of two, and the causal caches fill
  // to their two frames only from the third latent frame on, which the 2-frame run never reaches; a quarter of
  // the 2-frame run's working memory covers that. Keeping one chunk's intermediates per frame would cost the
  // whole working memory (~4x this allowance) for each of the 4 extra frames.
  const working = short.peak - short.outputBytes - short.inputBytes;
  const allowance = long.outputBytes / 8 + working / 4;
  const growth = long.peak - short.peak;
  t.comment(`peak over weights: 2 frames ${short.peak} B, 6 frames ${long.peak} B; growth ${growth} B, ` +
    `extra output+input ${extraData} B, allowance ${Math.round(allowance)} B (working set ${working} B)`);
  t.ok(growth >= extraData, 'the longer decode holds its larger output');
  t.ok(growth <= extraData + allowance, `peak growth ${growth} B <= ${extraData} B + ${Math.round(allowance)} B`);
  t.end();
});

t.test('decode frees everything but its output (the frame cache included)', (t) => {
  const run = decodeRun(3);
  // Inside the scope the output and the input latents are alive; nothing else may be.
  t.equal(run.leaked, 0, 'after the scope closes, only the weights remain allocated');
  t.end();
});

t.test('encode frees everything but mean and logvar', (t) => {
  let held = -1;
  const run = measure((vae, device) => {
    const shape = [1, 3, 9, 16, 32];
    const video = fromFloat32(device, randomFloats(3 * 9 * 16 * 32, 11), shape);
    const before = device.memoryStats().inUse;
    const { mean, logvar } = vae.encode(video);
    held = device.memoryStats().inUse - before - mean.byteLength - logvar.byteLength;
    return { outputBytes: mean.byteLength + logvar.byteLength, inputBytes: video.byteLength };
  });
  t.ok(held >= 0 && held < 1024, `after encode returns, at most allocator rounding beyond mean and logvar is held (${held} B)`);
  t.equal(run.leaked, 0, 'after the scope closes, only the weights remain allocated');
  t.end();
});
