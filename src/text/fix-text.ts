// ftfy's `fix_text` with its default configuration (ftfy 6.3.1, the version diffusers pulls in when ftfy is
// installed; the Wan pipeline calls it first thing on every prompt). Steps, in ftfy's order, repeated on each
// line until the line stops changing:
//   1. HTML entities (`&amp;`, `&#x2019;`; semicolon required), unless the line contains '<' (then it is taken
//      for HTML and this step stays off for the rest of the text);
//   2. mojibake: UTF-8 read as Latin-1 / Windows-125x / ISO-8859-2 / MacRoman / CP437 is re-decoded
//      (./mojibake-repair.ts), including C1 controls read as Windows-1252;
//   3. Latin ligatures split (ﬁ -> fi), fullwidth/halfwidth forms to normal width (ＬＯＵＤ -> LOUD),
//      curly quotes straightened (“ ” ‘ ’ -> " '), CRLF/CR/U+2028/U+2029/U+0085 -> \n, lone surrogates -> U+FFFD,
//      ANSI terminal escapes removed, invisible control characters removed;
//   4. NFC normalization.
// Not covered: named entities outside ./html-entities.ts are left as they are (ftfy knows all of HTML5's).
import { ftfyUnescapeHtml } from './html-unescape.js';
import { fixC1Controls, fixEncoding } from './mojibake-repair.js';

/** ftfy's `max_decode_length`: lines longer than this are fixed in pieces of this many characters. */
const MAX_SEGMENT = 1_000_000;

/** Single-character ligatures of Latin letters (kept: æ, œ and others used on purpose). */
const LATIN_LIGATURES: ReadonlyMap<string, string> = new Map([
  ['Ĳ', 'IJ'], ['ĳ', 'ij'], ['ŉ', 'ʼn'], ['Ǳ', 'DZ'], ['ǲ', 'Dz'], ['ǳ', 'dz'], ['Ǆ', 'DŽ'], ['ǅ', 'Dž'], ['ǆ', 'dž'],
  ['Ǉ', 'LJ'], ['ǈ', 'Lj'], ['ǉ', 'lj'], ['Ǌ', 'NJ'], ['ǋ', 'Nj'], ['ǌ', 'nj'], ['ﬀ', 'ff'], ['ﬁ', 'fi'], ['ﬂ', 'fl'],
  ['ﬃ', 'ffi'], ['ﬄ', 'ffl'], ['ﬅ', 'ſt'], ['ﬆ', 'st'],
]);
const LATIN_LIGATURE = new RegExp(`[${[...LATIN_LIGATURES.keys()].join('')}]`, 'g');

/** U+3000 and the Halfwidth and Fullwidth Forms block (U+FF01-U+FFEF) mapped to their NFKC forms. */
function buildWidthMap(): Map<string, string> {
  const map = new Map<string, string>([['\u3000', ' ']]);
  for (let cp = 0xff01; cp < 0xfff0; cp++) {
    const ch = String.fromCharCode(cp);
    const normal = ch.normalize('NFKC');
    if (normal !== ch) map.set(ch, normal);
  }
  return map;
}
const WIDTH_MAP = buildWidthMap();
const WIDTH_CHAR = /[\u3000\uff01-\uffef]/g;

const DOUBLE_CURLY_QUOTE = /[\u201c-\u201f]/g;
const SINGLE_CURLY_QUOTE = /[\u02bc\u2018-\u201b]/g;
/** ESC [ params letter; Python's `\d` takes any decimal digit. */
const ANSI_ESCAPE = /\u001b\[(?:\p{Nd}|;)*[a-zA-Z]/gu;
/**
 * Control characters with no visible effect: C0 except tab, LF, FF, CR; DEL; deprecated Arabic format
 * controls U+206A-U+206F; the BOM; interlinear annotation marks and the object replacement character.
 */
const INVISIBLE_CONTROL = /[\u0000-\u0008\u000b\u000e-\u001f\u007f\u206a-\u206f\ufeff\ufff9-\ufffc]/g;

export function fixLatinLigatures(text: string): string {
  return text.replace(LATIN_LIGATURE, (c) => LATIN_LIGATURES.get(c)!);
}

export function fixCharacterWidth(text: string): string {
  return text.replace(WIDTH_CHAR, (c) => WIDTH_MAP.get(c) ?? c);
}

export function uncurlQuotes(text: string): string {
  return text.replace(DOUBLE_CURLY_QUOTE, '"').replace(SINGLE_CURLY_QUOTE, "'");
}

export function fixLineBreaks(text: string): string {
  return text.replaceAll('\r\n', '\n').replace(/[\r\u2028\u2029\u0085]/g, '\n');
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

/** Surrogate pairs are already single characters in a JS string; only lone halves are left to replace. */
export function fixSurrogates(text: string): string {
  return text.replace(LONE_SURROGATE, '\ufffd');
}

export function removeTerminalEscapes(text: string): string {
  return text.replace(ANSI_ESCAPE, '');
}

export function removeControlChars(text: string): string {
  return text.replace(INVISIBLE_CONTROL, '');
}

/** One line (or piece) of text, fixed until it stops changing (ftfy's `fix_and_explain` loop). */
function fixSegment(text: string, unescapeHtml: boolean): string {
  for (;;) {
    const original = text;
    if (unescapeHtml) text = ftfyUnescapeHtml(text);
    text = fixEncoding(text);
    text = fixC1Controls(text);
    text = fixLatinLigatures(text);
    text = fixCharacterWidth(text);
    text = uncurlQuotes(text);
    text = fixLineBreaks(text);
    text = fixSurrogates(text);
    text = removeTerminalEscapes(text);
    text = removeControlChars(text);
    text = text.normalize('NFC');
    if (text === original) return text;
  }
}

/** ftfy `fix_text(text)` with default settings (see the file comment for what is and is not covered). */
export function fixText(text: string): string {
  let out = '';
  let unescapeHtml = true;
  let pos = 0;
  while (pos < text.length) {
    let end = text.indexOf('\n', pos) + 1;
    if (end === 0) end = text.length;
    if (end - pos > MAX_SEGMENT) end = pos + MAX_SEGMENT;
    const segment = text.slice(pos, end);
    // Once a line looks like HTML, entities are kept from there on (ftfy's "auto" setting).
    if (segment.includes('<')) unescapeHtml = false;
    out += fixSegment(segment, unescapeHtml);
    pos = end;
  }
  return out;
}
