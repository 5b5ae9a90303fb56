// The prompt text the Z-Image pipeline feeds its Qwen3 tokenizer. diffusers v0.36 `ZImagePipeline._encode_prompt`
// calls `tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False,
// add_generation_prompt=True, enable_thinking=True)`. Qwen3's template renders a user turn as
// `<|im_start|>user\n{content}<|im_end|>\n` (content untouched, no default system turn), the generation prompt
// as `<|im_start|>assistant\n`, and adds an empty `<think>\n\n</think>\n\n` block only when enable_thinking is
// false. There is no Jinja engine here, so that rendering is written out, and `checkChatMlTemplate` checks that a
// checkpoint's template is of this kind before it is relied on.

export interface ChatPromptOptions {
  /** Append the assistant header that starts the model's turn. */
  addGenerationPrompt: boolean;
  /** Qwen3's switch; false pre-fills an empty thinking block. */
  enableThinking: boolean;
}

const IM_START = '<|im_start|>';
const IM_END = '<|im_end|>';
const EMPTY_THINKING = '<think>\n\n</think>\n\n';

/** What a Qwen3 (ChatML) template renders for a conversation of one user message. */
export function renderQwenUserTurn(content: string, options: ChatPromptOptions): string {
  let text = `${IM_START}user\n${content}${IM_END}\n`;
  if (options.addGenerationPrompt) {
    text += `${IM_START}assistant\n`;
    if (!options.enableThinking) text += EMPTY_THINKING;
  }
  return text;
}

/** The exact string ZImagePipeline tokenizes for one prompt. */
export function zImagePromptText(prompt: string): string {
  return renderQwenUserTurn(prompt, { addGenerationPrompt: true, enableThinking: true });
}

/**
 * Throws unless `template` (Jinja source) looks like the Qwen3 ChatML template that `renderQwenUserTurn`
 * reproduces: ChatML markers, a generation-prompt branch with the `<|im_start|>assistant\n` header, and no
 * built-in default system turn (Qwen2.5 inserts "You are Qwen, ..." when there is none, which would change the
 * text). A fingerprint, not an evaluation: it catches a different template family, not every edit.
 */
export function checkChatMlTemplate(template: string | undefined, source: string): void {
  const fail = (why: string): never => {
    throw new Error(`${source}: chat template ${why}; only the Qwen3 ChatML template is supported for Z-Image prompts`);
  };
  if (template === undefined) fail('is missing');
  const t = template as string;
  if (!t.includes(IM_START) || !t.includes(IM_END)) fail('has no <|im_start|>/<|im_end|> markers');
  if (!t.includes('add_generation_prompt') || !t.includes(`${IM_START}assistant\\n`)) {
    fail('has no <|im_start|>assistant generation prompt');
  }
  // A system header followed by literal text (rather than a message variable) is a default system prompt.
  if (/<\|im_start\|>system\\n[^'"]/.test(t)) fail('inserts a default system message');
}
