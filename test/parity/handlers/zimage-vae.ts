// Z-Image VAE parity cases (zimage-tiny manifest: vae/decode, vae/encode) against diffusers v0.36.0 AutoencoderKL.
//   vae_decode: latents = latents_normalized / scaling_factor + shift_factor; image = vae.decode(latents)
//   vae_encode: dist = vae.encode(image); mean, logvar, (mean - shift_factor) * scaling_factor
import { openDiffusersModel } from '../../../src/checkpoint/diffusers.js';
import { AutoencoderKL } from '../../../src/models/autoencoder-kl/index.js';
import { Device } from '../../../src/runtime/device.js';
import { fromFloat32 } from '../../../src/runtime/ops.js';
import { scoped } from '../../../src/runtime/tensor.js';
import type { CaseContext, CaseOutput, FamilyHandlers, ParityCase } from '../types.js';

export const family = 'ZImagePipeline';

/** Runs `fn` with the set's VAE on a fresh CPU device, closing everything afterwards. */
function withVae<T>(ctx: CaseContext, fn: (vae: AutoencoderKL, device: Device) => T): T {
  if (!ctx.modelDir) throw new Error('the fixture set has no model folder');
  const model = openDiffusersModel(ctx.modelDir);
  const device = new Device({ backend: 'cpu' });
  try {
    const vae = AutoencoderKL.fromDiffusers(device, model);
    try {
      return fn(vae, device);
    } finally {
      vae.free();
    }
  } finally {
    device.close();
    model.close();
  }
}

/** The case's input tensor `name` on the device, with its manifest shape. */
function input(c: ParityCase, ctx: CaseContext, device: Device, name: string) {
  const spec = c.inputs.find((i) => i.name === name);
  if (!spec) throw new Error(`case ${c.id} has no input ${name}`);
  return fromFloat32(device, ctx.goldens.readFloat32(name), spec.shape);
}

function outputName(c: ParityCase, suffix: string): string {
  const spec = c.outputs.find((o) => o.name.endsWith(suffix));
  if (!spec) throw new Error(`case ${c.id} has no output ending in ${suffix}`);
  return spec.name;
}

export const handlers: FamilyHandlers = {
  vae_decode: (c, ctx) => withVae(ctx, (vae, device): CaseOutput[] => {
    const out: CaseOutput[] = [];
    scoped(() => {
      const latents = vae.denormalizeLatents(input(c, ctx, device, c.inputs[0]!.name));
      out.push({ name: outputName(c, '_latents'), values: latents.toFloat32Array() });
      out.push({ name: outputName(c, '_image'), values: vae.decode(latents).toFloat32Array() });
    });
    return out;
  }),

  vae_encode: (c, ctx) => withVae(ctx, (vae, device): CaseOutput[] => {
    const out: CaseOutput[] = [];
    scoped(() => {
      const { mean, logvar } = vae.encode(input(c, ctx, device, c.inputs[0]!.name));
      out.push({ name: outputName(c, '_mean'), values: mean.toFloat32Array() });
      out.push({ name: outputName(c, '_logvar'), values: logvar.toFloat32Array() });
      out.push({ name: outputName(c, '_mean_normalized'), values: vae.normalizeLatents(mean).toFloat32Array() });
    });
    return out;
  }),
};
