// vae_decode / vae_encode cases, the same for every latent VAE: decode = denormalise the case's normalised
// latents then decode; encode = mean, logvar and the normalised mean. Each family supplies its VAE class.
import { scoped, type Tensor } from '../../src/runtime/tensor.js';
import { caseInput, cachedComponent, outputName } from './case-io.js';
import type { CaseContext, CaseHandler, CaseOutput, ParityCase } from './types.js';
import type { Device } from '../../src/runtime/device.js';
import type { DiffusersModel } from '../../src/checkpoint/diffusers.js';

export interface LatentVae {
  denormalizeLatents(z: Tensor): Tensor;
  normalizeLatents(mean: Tensor): Tensor;
  decode(latents: Tensor): Tensor;
  encode(pixels: Tensor): { mean: Tensor; logvar: Tensor };
}

/** The decoded-pixels output: `*_video` for video VAEs, `*_image` for image VAEs. */
const pixelsOutput = (c: ParityCase): string => c.outputs.find((o) => /_(video|image)$/.test(o.name))?.name ?? outputName(c, '_video');

export function vaeCaseHandlers(load: (device: Device, model: DiffusersModel) => LatentVae): { vae_decode: CaseHandler; vae_encode: CaseHandler } {
  const vaeOf = (ctx: CaseContext): LatentVae => cachedComponent(ctx, 'vae', load);
  return {
    vae_decode: (c, ctx) => {
      const vae = vaeOf(ctx);
      const out: CaseOutput[] = [];
      scoped(() => {
        const latents = vae.denormalizeLatents(caseInput(c, ctx, c.inputs[0]!.name));
        out.push({ name: outputName(c, '_latents'), values: latents.toFloat32Array() });
        out.push({ name: pixelsOutput(c), values: vae.decode(latents).toFloat32Array() });
      });
      return out;
    },
    vae_encode: (c, ctx) => {
      const vae = vaeOf(ctx);
      const out: CaseOutput[] = [];
      scoped(() => {
        const { mean, logvar } = vae.encode(caseInput(c, ctx, c.inputs[0]!.name));
        out.push({ name: outputName(c, '_mean'), values: mean.toFloat32Array() });
        out.push({ name: outputName(c, '_logvar'), values: logvar.toFloat32Array() });
        out.push({ name: outputName(c, '_mean_normalized'), values: vae.normalizeLatents(mean).toFloat32Array() });
      });
      return out;
    },
  };
}
