// Wan VAE parity cases (wan-tiny: vae/decode, vae/encode) against diffusers v0.36.0 AutoencoderKLWan.
//   vae_decode: latents = denormalise(latents_normalized); video = vae.decode(latents)
//   vae_encode: dist = vae.encode(video); mean, logvar, normalise(mean)
import { AutoencoderKLWan } from '../../../src/models/wan/vae.js';
import type { FamilyHandlers } from '../types.js';
import { vaeCaseHandlers } from '../vae-cases.js';

export const family = 'WanPipeline';
export const handlers: FamilyHandlers = vaeCaseHandlers((device, model) => AutoencoderKLWan.fromDiffusers(device, model));
