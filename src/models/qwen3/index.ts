// Qwen3 text encoder (Z-Image's) and the Z-Image pipeline's prompt-embedding step.
export { parseQwen3Config, type Qwen3Config } from './config.js';
export { Qwen3Attention } from './attention.js';
export { Qwen3DecoderLayer, Qwen3MLP, Qwen3Model, qwen3ModelFrom, ZIMAGE_HIDDEN_STATES_INDEX, type Qwen3ModelOptions, type TokenBatch } from './model.js';
export { encodeZImagePrompt, maskedRows } from './prompt-embeds.js';
export { qwen3RopeTables } from './rope.js';
export { causalBiasRow } from './causal-mask.js';
