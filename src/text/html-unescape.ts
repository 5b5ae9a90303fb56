// HTML character references decoded the way Python's `html.unescape` does (the Wan pipeline applies it twice),
// and the stricter variant ftfy's `unescape_html` step uses. Named references come from ./html-entities.ts.
import { LEGACY_ENTITIES, NAMED_ENTITIES } from './html-entities.js';
import { codecOf } from './single-byte-codecs.js';

/** Python's html module: `&` + a decimal, hex or named reference; the `;` is optional. */
const CHARREF = /&(#[0-9]+;?|#[xX][0-9a-fA-F]+;?|[^\t\n\f <&#;]{1,32};?)/gu;

/**
 * Numeric references HTML5 redirects: NUL -> U+FFFD, CR stays CR, and 0x80-0x9F are read as Windows-1252
 * (the five holes of that code page keep their C1 code point).
 */
function redirectedCharRef(cp: number): string | undefined {
  if (cp === 0x00) return '\ufffd';
  if (cp === 0x0d) return '\r';
  if (cp >= 0x80 && cp <= 0x9f) return codecOf('sloppy-windows-1252').decode[cp];
  return undefined;
}

/** Code points a numeric reference may not produce; Python drops them (returns ''). */
function isDroppedCodePoint(cp: number): boolean {
  return (cp >= 0x01 && cp <= 0x08) || cp === 0x0b || (cp >= 0x0e && cp <= 0x1f) || (cp >= 0x7f && cp <= 0x9f)
    || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe;
}

function decodeNumeric(ref: string): string {
  const body = ref.endsWith(';') ? ref.slice(0, -1) : ref;
  const hex = body[1] === 'x' || body[1] === 'X';
  // parseInt of a very long digit run gives a huge number or Infinity, which lands in the > U+10FFFF branch.
  const cp = parseInt(body.slice(hex ? 2 : 1), hex ? 16 : 10);
  const redirected = redirectedCharRef(cp);
  if (redirected !== undefined) return redirected;
  if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return '\ufffd';
  if (isDroppedCodePoint(cp)) return '';
  return String.fromCodePoint(cp);
}

function decodeNamed(ref: string): string {
  if (ref.endsWith(';')) {
    const known = NAMED_ENTITIES.get(ref.slice(0, -1));
    if (known !== undefined) return known;
  } else {
    const known = LEGACY_ENTITIES.get(ref);
    if (known !== undefined) return known;
  }
  // Longest prefix (at least two characters) that is a name valid without semicolon: "&notit;" -> "¬it;".
  for (let len = ref.length - 1; len > 1; len--) {
    const known = LEGACY_ENTITIES.get(ref.slice(0, len));
    if (known !== undefined) return known + ref.slice(len);
  }
  return `&${ref}`;
}

/** Python `html.unescape(text)`, over the named references this project knows (see ./html-entities.ts). */
export function pythonHtmlUnescape(text: string): string {
  if (!text.includes('&')) return text;
  return text.replace(CHARREF, (_m, ref: string) => (ref[0] === '#' ? decodeNumeric(ref) : decodeNamed(ref)));
}

/** ftfy's entity pattern: only references that end in `;`, at most 24 name characters. */
const FTFY_ENTITY = /&#?[0-9A-Za-z]{1,24};/g;

function buildFtfyEntities(): Map<string, string> {
  const table = new Map<string, string>();
  for (const [name, value] of NAMED_ENTITIES) table.set(`&${name};`, value);
  // ftfy also reads all-caps spellings of lower-case names (a database that upper-cased "P&eacute;rez" gives
  // "P&EACUTE;REZ"), unless the capitals already mean something to html.unescape.
  for (const [name, value] of NAMED_ENTITIES) {
    if (name !== name.toLowerCase()) continue;
    const upper = `&${name.toUpperCase()};`;
    if (pythonHtmlUnescape(upper) === upper) table.set(upper, value.toUpperCase());
  }
  return table;
}

let ftfyEntities: Map<string, string> | undefined;

/**
 * ftfy's `unescape_html`: decodes `&name;` and `&#...;` (semicolon required, so "this&not that" stays), plus the
 * all-caps names described above; a numeric reference is kept when Python would not consume its semicolon.
 */
export function ftfyUnescapeHtml(text: string): string {
  ftfyEntities ??= buildFtfyEntities();
  const table = ftfyEntities;
  return text.replace(FTFY_ENTITY, (ref) => {
    const known = table.get(ref);
    if (known !== undefined) return known;
    if (ref.startsWith('&#')) {
      const decoded = pythonHtmlUnescape(ref);
      return decoded.includes(';') ? ref : decoded;
    }
    return ref;
  });
}
