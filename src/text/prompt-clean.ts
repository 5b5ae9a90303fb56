// The Wan pipeline's prompt preprocessing (diffusers v0.36 `pipeline_wan.prompt_clean`), applied to every
// prompt and negative prompt before the UMT5 tokenizer:
//   basic_clean:      ftfy.fix_text (when ftfy is installed), html.unescape twice, str.strip()
//   whitespace_clean: regex.sub(r"\s+", " ", text), str.strip()
import { fixText } from './fix-text.js';
import { pythonHtmlUnescape } from './html-unescape.js';
import { collapseWhitespaceRuns, pythonStrip } from './python-whitespace.js';

export interface PromptCleanOptions {
  /**
   * Run the ftfy step. diffusers skips it when the ftfy package is missing; default true (the Wan reference
   * environment installs it).
   */
  ftfy?: boolean;
}

/** `basic_clean`: text fixing, HTML unescaping (twice, so `&amp;amp;` becomes `&`), outer whitespace. */
export function basicClean(text: string, options: PromptCleanOptions = {}): string {
  if (options.ftfy ?? true) text = fixText(text);
  return pythonStrip(pythonHtmlUnescape(pythonHtmlUnescape(text)));
}

/** `whitespace_clean`: every whitespace run (tabs, newlines, NBSP, ideographic space...) becomes one space. */
export function whitespaceClean(text: string): string {
  return pythonStrip(collapseWhitespaceRuns(text));
}

/** diffusers' Wan `prompt_clean`. */
export function promptClean(text: string, options: PromptCleanOptions = {}): string {
  return whitespaceClean(basicClean(text, options));
}
