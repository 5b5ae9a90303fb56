// UMT5 text encoder (Wan's text encoder) and the Wan pipeline's prompt-embedding step.
export { parseUMT5Config, type UMT5Config } from './config.js';
export { UMT5Encoder, paddingKeyBias, umt5EncoderFrom, type TokenBatch } from './encoder.js';
export { encodeWanPrompt, sequenceLengths, wanPromptEmbeds } from './prompt-embeds.js';
export { relativePositionBucket } from './relative-position.js';
export { TokenEmbedding } from './token-embedding.js';
