// The 2-D AutoencoderKL (SD/SDXL/FLUX/Z-Image image VAE).
export { AutoencoderKL, LOGVAR_MAX, LOGVAR_MIN } from './autoencoder-kl.js';
export type { AutoencoderKLOptions, LatentDistribution } from './autoencoder-kl.js';
export { parseAutoencoderKLConfig } from './config.js';
export type { AutoencoderKLConfig } from './config.js';
