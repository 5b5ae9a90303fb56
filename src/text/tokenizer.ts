// A checkpoint's `tokenizer/` folder behind the call the pipelines make on transformers' fast tokenizers:
// `tokenizer(texts, padding=..., max_length=..., truncation=True, add_special_tokens=True)` -> input_ids and
// attention_mask. Splitting text into tokens is @huggingface/tokenizers' job (it reads tokenizer.json exactly as
// the Rust `tokenizers` crate does); this module adds what transformers adds around it: truncation that keeps
// room for the special tokens the post-processor appends (T5's `</s>`), padding with the configured pad token,
// the attention mask, and the special-token settings of tokenizer_config.json / special_tokens_map.json.
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { CheckpointError } from '../checkpoint/errors.js';

export type PaddingStrategy = 'max_length' | 'longest' | false;

export interface EncodeOptions {
  /** Length to truncate to and, with padding 'max_length', to pad to. Default: tokenizer_config's model_max_length. */
  maxLength?: number;
  /** 'max_length': every row has maxLength ids; 'longest': rows padded to the longest in the batch; false: none. */
  padding?: PaddingStrategy;
  /** Cut rows to maxLength (special tokens included). Default false, as in transformers. */
  truncation?: boolean;
  /** Let the post-processor add its special tokens (T5: `</s>` at the end; Qwen2: none). Default true. */
  addSpecialTokens?: boolean;
  /** Where padding goes; default from tokenizer_config.json (`padding_side`), else 'right'. */
  paddingSide?: 'left' | 'right';
}

export interface BatchEncoding {
  inputIds: number[][];
  /** 1 for a real token, 0 for padding. */
  attentionMask: number[][];
}

/** transformers writes model_max_length = int(1e30) when a tokenizer has no limit; treat huge values as none. */
const NO_LIMIT = 1e12;

type JsonObject = Record<string, unknown>;

function readJson(path: string): JsonObject {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`cannot read tokenizer file as JSON (${(e as Error).message})`, path);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CheckpointError('expected a JSON object', path);
  }
  return parsed as JsonObject;
}

/** A special token entry is either its text or a serialized AddedToken (`{"content": ..., ...}`). */
function tokenText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && typeof (value as JsonObject).content === 'string') {
    return (value as JsonObject).content as string;
  }
  return undefined;
}

/** The chat template: tokenizer_config's `chat_template` (a string, or named templates), else chat_template.jinja. */
function readChatTemplate(folder: string, config: JsonObject): string | undefined {
  const t = config.chat_template;
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const named = t.find((x) => x !== null && typeof x === 'object' && (x as JsonObject).name === 'default');
    if (named && typeof (named as JsonObject).template === 'string') return (named as JsonObject).template as string;
  }
  const file = join(folder, 'chat_template.jinja');
  return existsSync(file) ? readFileSync(file, 'utf8') : undefined;
}

export class TextTokenizer {
  /** Pad token text and id (undefined when the tokenizer has none: padding then throws). */
  readonly padToken?: string;
  readonly padTokenId?: number;
  readonly paddingSide: 'left' | 'right';
  readonly truncationSide: 'left' | 'right';
  /** Length limit from tokenizer_config.json, or undefined when it declares none. */
  readonly modelMaxLength?: number;
  /** The Jinja chat template, if the checkpoint has one (Qwen-style tokenizers). */
  readonly chatTemplate?: string;
  private readonly unkTokenId?: number;

  private constructor(
    /** The tokenizer folder it was loaded from (for messages). */
    readonly folder: string,
    private readonly tokenizer: Tokenizer,
    /** tokenizer_config.json, completed with special_tokens_map.json. */
    readonly config: Readonly<JsonObject>,
  ) {
    this.padToken = tokenText(config.pad_token);
    this.padTokenId = this.padToken === undefined ? undefined : tokenizer.token_to_id(this.padToken);
    if (this.padToken !== undefined && this.padTokenId === undefined) {
      throw new CheckpointError(`pad_token '${this.padToken}' is not in the vocabulary`, join(folder, 'tokenizer_config.json'));
    }
    const unk = tokenText(config.unk_token);
    this.unkTokenId = unk === undefined ? undefined : tokenizer.token_to_id(unk);
    this.paddingSide = config.padding_side === 'left' ? 'left' : 'right';
    this.truncationSide = config.truncation_side === 'left' ? 'left' : 'right';
    const limit = config.model_max_length;
    this.modelMaxLength = typeof limit === 'number' && limit < NO_LIMIT ? limit : undefined;
    this.chatTemplate = readChatTemplate(folder, config);
  }

  /**
   * Loads `folder` (a checkpoint's `tokenizer/`): tokenizer.json and tokenizer_config.json are required;
   * special_tokens_map.json is optional (see below for how it combines with the config).
   */
  static load(folder: string): TextTokenizer {
    if (!existsSync(folder)) throw new CheckpointError('tokenizer folder does not exist', folder);
    const files = readdirSync(folder);
    for (const required of ['tokenizer.json', 'tokenizer_config.json']) {
      if (!files.includes(required)) {
        const slowOnly = files.some((f) => f === 'spiece.model' || f === 'vocab.json') && required === 'tokenizer.json';
        const hint = slowOnly ? ' (only slow-tokenizer files are there; a tokenizer.json is needed)' : '';
        const has = files.join(', ') || 'nothing';
        throw new CheckpointError(`${required} is missing from the tokenizer folder (it has: ${has})${hint}`,
          join(folder, required));
      }
    }
    const tokenizerJson = readJson(join(folder, 'tokenizer.json'));
    const config = readJson(join(folder, 'tokenizer_config.json'));
    if (files.includes('special_tokens_map.json')) {
      // transformers (>= 4.34) reads this file only for configs of the legacy format (no added_tokens_decoder),
      // and then it overrides the config; a modern config wins, the map only fills in what it leaves unset.
      const legacyFormat = config.added_tokens_decoder === undefined;
      for (const [key, value] of Object.entries(readJson(join(folder, 'special_tokens_map.json')))) {
        if (legacyFormat || config[key] === undefined || config[key] === null) config[key] = value;
      }
    }
    let tokenizer: Tokenizer;
    try {
      tokenizer = new Tokenizer(tokenizerJson, config);
    } catch (e) {
      throw new CheckpointError(`tokenizer.json is not usable (${(e as Error).message})`, join(folder, 'tokenizer.json'));
    }
    return new TextTokenizer(folder, tokenizer, config);
  }

  /** Token ids of one text before truncation and padding, special tokens included when asked. */
  private idsOf(text: string, addSpecialTokens: boolean, maxLength: number | undefined): number[] {
    let tokens: string[] = this.tokenizer.tokenize(text, { add_special_tokens: false });
    const post = this.tokenizer.post_processor;
    if (maxLength !== undefined) {
      // Room for the special tokens goes first, as in the Rust tokenizer: the text is cut, never `</s>`.
      const specials = addSpecialTokens && post ? post([], null, true).tokens.length : 0;
      const keep = Math.max(0, maxLength - specials);
      if (tokens.length > keep) {
        tokens = this.truncationSide === 'left' ? tokens.slice(tokens.length - keep) : tokens.slice(0, keep);
      }
    }
    if (post) tokens = post(tokens, null, addSpecialTokens).tokens;
    return tokens.map((token: string) => {
      const id = this.tokenizer.token_to_id(token) ?? this.unkTokenId;
      if (id === undefined) throw new Error(`${this.folder}: token '${token}' has no id and the tokenizer has no unk_token`);
      return id;
    });
  }

  /** Tokenizes a batch like transformers' `tokenizer(texts, ...)` on a fast tokenizer. */
  encode(texts: string[], options: EncodeOptions = {}): BatchEncoding {
    const padding = options.padding ?? false;
    const truncation = options.truncation ?? false;
    const maxLength = options.maxLength ?? this.modelMaxLength;
    if (maxLength !== undefined && (!Number.isInteger(maxLength) || maxLength < 1)) {
      throw new RangeError(`encode: maxLength must be a positive integer, got ${maxLength}`);
    }
    if (padding === 'max_length' && maxLength === undefined) {
      throw new Error(`encode: padding 'max_length' needs maxLength (${this.folder} declares no model_max_length)`);
    }
    const rows = texts.map((text) => this.idsOf(text, options.addSpecialTokens ?? true,
      truncation ? maxLength : undefined));

    let width = 0;
    if (padding === 'max_length') width = maxLength!;
    else if (padding === 'longest') width = Math.max(0, ...rows.map((r) => r.length));
    const inputIds: number[][] = [];
    const attentionMask: number[][] = [];
    const side = options.paddingSide ?? this.paddingSide;
    for (const row of rows) {
      const fill = Math.max(0, width - row.length);
      if (fill > 0 && this.padTokenId === undefined) {
        throw new Error(`encode: asked to pad but ${this.folder} has no pad_token`);
      }
      const pad = new Array<number>(fill).fill(this.padTokenId ?? 0);
      const ones = new Array<number>(row.length).fill(1);
      const zeros = new Array<number>(fill).fill(0);
      inputIds.push(side === 'left' ? [...pad, ...row] : [...row, ...pad]);
      attentionMask.push(side === 'left' ? [...zeros, ...ones] : [...ones, ...zeros]);
    }
    return { inputIds, attentionMask };
  }

  /** Text of the given ids (for logs and tests). */
  decode(ids: number[], skipSpecialTokens = false): string {
    return ids.length === 0 ? '' : this.tokenizer.decode(ids, { skip_special_tokens: skipSpecialTokens });
  }

  /** Id of a token text (special tokens included), or undefined. */
  tokenId(token: string): number | undefined {
    return this.tokenizer.token_to_id(token);
  }
}

/** The manifest / Python spelling of a tokenizer call (`{"padding": "max_length", "max_length": 512, ...}`). */
export interface TokenizerCall {
  padding?: PaddingStrategy | boolean | 'do_not_pad';
  max_length?: number;
  truncation?: boolean;
  add_special_tokens?: boolean;
  padding_side?: 'left' | 'right';
  [key: string]: unknown;
}

/** EncodeOptions for a transformers-style call; `padding: true` means 'longest', as in transformers. */
export function encodeOptionsFromCall(call: TokenizerCall): EncodeOptions {
  const padding = call.padding === true ? 'longest' : call.padding === 'do_not_pad' ? false : call.padding ?? false;
  return {
    padding,
    ...(call.max_length !== undefined ? { maxLength: call.max_length } : {}),
    truncation: call.truncation ?? false,
    addSpecialTokens: call.add_special_tokens ?? true,
    ...(call.padding_side !== undefined ? { paddingSide: call.padding_side } : {}),
  };
}
