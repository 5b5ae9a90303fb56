// What the LoRA loader needs to know about one model family: how the non-diffusers names of its modules
// (the original repository's, which ComfyUI and kohya-style trainers use) map onto the diffusers module names
// our models keep their weights under.

/** A diffusers module one original module maps to; `rows` picks a slice of a fused original projection. */
export interface ModuleTarget {
  module: string;
  /** The original `up` matrix is `parts` equal row blocks stacked (e.g. fused qkv); this target is block `index`. */
  rows?: { index: number; parts: number };
}

export interface LoraFamily {
  /** Short name used in messages and docs ("wan", "zimage"). */
  readonly name: string;
  /** model_index.json `_class_name`s whose transformer this family describes. */
  readonly pipelines: readonly string[];
  /**
   * Names that contain underscores themselves (`self_attn`, `to_q`, `feed_forward`). kohya-style keys flatten the
   * module path with `_` (`lora_unet_blocks_0_self_attn_q`), so these must be kept whole when un-flattening.
   */
  readonly phrases: readonly string[];
  /**
   * The diffusers module(s) of an original (ComfyUI / kohya) module path, e.g. Wan `blocks.0.self_attn.q` ->
   * `blocks.0.attn1.to_q`. Paths it has no rule for are returned unchanged (they may already be diffusers names);
   * whether the model has them is checked when the adapter is applied.
   */
  toDiffusers(original: string): ModuleTarget[];
}

/** A rule table entry: a pattern over the original path and the diffusers target(s) it gives. */
export type RenameRule = [RegExp, (m: RegExpMatchArray) => ModuleTarget[]];

export function applyRules(rules: readonly RenameRule[], path: string): ModuleTarget[] {
  for (const [pattern, to] of rules) {
    const m = path.match(pattern);
    if (m) return to(m);
  }
  return [{ module: path }];
}

/**
 * Undoes kohya's flattening of a module path: `blocks_0_self_attn_q` -> `blocks.0.self_attn.q`, keeping the
 * family's multi-word names whole (longest match first).
 */
export function unflattenKohyaName(flat: string, phrases: readonly string[]): string {
  const tokens = flat.split('_');
  const byLength = [...new Set(phrases)].map((p) => p.split('_')).sort((a, b) => b.length - a.length);
  const parts: string[] = [];
  let i = 0;
  while (i < tokens.length) {
    const phrase = byLength.find((p) => p.length > 1 && p.every((w, j) => tokens[i + j] === w));
    if (phrase) {
      parts.push(phrase.join('_'));
      i += phrase.length;
    } else {
      parts.push(tokens[i]!);
      i++;
    }
  }
  return parts.join('.');
}
