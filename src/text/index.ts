// Text front end of the pipelines: prompt preprocessing and tokenization.
export { TextTokenizer, encodeOptionsFromCall } from './tokenizer.js';
export type { BatchEncoding, EncodeOptions, PaddingStrategy, TokenizerCall } from './tokenizer.js';
export { promptClean, basicClean, whitespaceClean } from './prompt-clean.js';
export type { PromptCleanOptions } from './prompt-clean.js';
export { fixText } from './fix-text.js';
export { pythonHtmlUnescape } from './html-unescape.js';
export { checkChatMlTemplate, renderQwenUserTurn, zImagePromptText } from './chat-template.js';
export type { ChatPromptOptions } from './chat-template.js';
