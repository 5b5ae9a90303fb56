// Errors of the LoRA engine. Each carries the HTTP status and stable code that docs/spec http-api.md section 6
// gives the situation, so the server can answer without re-deriving them (it wraps them in its ApiError).
export type LoraErrorCode =
  /** The file cannot be read, is not a LoRA, or has keys we cannot place (400). */
  | 'lora_load_failed'
  /** The adapter names modules or shapes the model does not have (400). */
  | 'lora_incompatible'
  /** set_lora without a path for a nickname never loaded (400, param lora_path). */
  | 'lora_not_loaded'
  /** A target that is not one of transformer / transformer_2 / critic / all (400, param target). */
  | 'invalid_target'
  /** A valid target naming a module this pipeline does not have (400, param target). */
  | 'target_not_available'
  /** A different adapter set is merged in the module (409). */
  | 'lora_already_merged'
  /** merge_lora_weights on a module no adapter was ever set on (409). */
  | 'lora_not_set'
  /** A bad argument (strength not finite, alpha not positive, empty list) (400). */
  | 'invalid_argument';

const STATUS: Record<LoraErrorCode, 400 | 409> = {
  lora_load_failed: 400,
  lora_incompatible: 400,
  lora_not_loaded: 400,
  invalid_target: 400,
  target_not_available: 400,
  lora_already_merged: 409,
  lora_not_set: 409,
  invalid_argument: 400,
};

export class LoraError extends Error {
  readonly status: 400 | 409;
  constructor(readonly code: LoraErrorCode, message: string, readonly param?: string) {
    super(message);
    this.name = 'LoraError';
    this.status = STATUS[code];
  }
}

/** At most `n` items of a list for an error message, with a count of the rest. */
export function listSome(items: readonly string[], n = 5): string {
  const shown = items.slice(0, n).join(', ');
  return items.length > n ? `${shown} (and ${items.length - n} more)` : shown;
}
