// Python's two notions of whitespace, which the reference prompt cleaning mixes: `str.strip()`/`str.isspace()`
// and the `\s` of the third-party `regex` module that diffusers' Wan pipeline imports as `re`. JavaScript's `\s`
// is neither (it has U+FEFF, lacks U+0085 and U+001C-U+001F), so both sets are spelled out here.

/** `\s` of Python's `regex` module on str patterns: Unicode White_Space (checked against regex 2026.5.9). */
const REGEX_MODULE_SPACE = '\\t\\n\\v\\f\\r \\u0085\\u00A0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000';

/** `str.isspace()` adds the four information separators U+001C-U+001F (bidi class B/S) to that set. */
const STR_ISSPACE = `${REGEX_MODULE_SPACE}\\u001C-\\u001F`;

const WHITESPACE_RUN = new RegExp(`[${REGEX_MODULE_SPACE}]+`, 'g');
const LEADING_SPACE = new RegExp(`^[${STR_ISSPACE}]+`);
const TRAILING_SPACE = new RegExp(`[${STR_ISSPACE}]+$`);
const ANY_ISSPACE = new RegExp(`^[${STR_ISSPACE}]$`);

/** Python `text.strip()` with no argument. */
export function pythonStrip(text: string): string {
  return text.replace(LEADING_SPACE, '').replace(TRAILING_SPACE, '');
}

/** Python `regex.sub(r"\s+", " ", text)`: every run of whitespace becomes one space. */
export function collapseWhitespaceRuns(text: string): string {
  return text.replace(WHITESPACE_RUN, ' ');
}

/** Python `ch.isspace()` for one character. */
export function isPythonSpace(ch: string): boolean {
  return ANY_ISSPACE.test(ch);
}

/** The character class body (for `[...]` in a `u`-less RegExp) of Python `re`'s `\s`, i.e. `str.isspace()`. */
export const PYTHON_RE_SPACE_CLASS = STR_ISSPACE;
