// Z-Image VAE parity cases (zimage-tiny: vae/decode, vae/encode) against diffusers v0.36.0 AutoencoderKL.
//   vae_decode: latents = latents_normalized / scaling_factor + shift_factor; image = vae.decode(latents)
//   vae_encode: dist = vae.encode(image); mean, logvar, (mean - shift_factor) * scaling_factor
import { AutoencoderKL } from '../../../src/models/autoencoder-kl/index.js';
import type { FamilyHandlers } from '../types.js';
import { vaeCaseHandlers } from '../vae-cases.js';

export const family = 'ZImagePipeline';
export const handlers: FamilyHandlers = vaeCaseHandlers((device, model) => AutoencoderKL.fromDiffusers(device, model));
