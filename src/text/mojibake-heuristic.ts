// Detection half of ftfy's mojibake repair (ftfy 6.3.1, Apache-2.0, by Robyn Speer; its `badness` and
// `chardata` modules): which character sequences are much likelier to come from UTF-8 decoded as a single-byte
// code page than from real text, and where UTF-8-looking runs sit inside otherwise fine text. The character
// categories are ftfy's; written here as RegExp class bodies (ranges included) for `u`-flag patterns.
import { PYTHON_RE_SPACE_CLASS } from './python-whitespace.js';
import { codecOf, type SingleByteEncoding } from './single-byte-codecs.js';

/** The ~400 characters seen in UTF-8 mojibake, grouped by how suspicious each is next to the others. */
const CATEGORY = {
  /** Appear in many contexts; sequences of them are not mojibake by themselves. */
  common: '\\u00A0\\u00AD´·–-―’…',
  /** C1 controls: nothing but mojibake uses them today. */
  c1: '\\u0080-\\u009F',
  /** Almost always mojibake. */
  bad: '¤¦¨ª¬¯¸ºƒˆˇ˘˛˜†‡‰⌐◊�',
  law: '§¶',
  currency: '¢£¥₧€',
  start_punctuation: '¡©«¿΄΅‘‚“„•‹\\uF8FF',
  end_punctuation: '®»˝”›™',
  numeric: '±-³µ¹¼-¾×÷⁄№∂∆∏∑√∞∩∫≈≠≡≤≥',
  /** Letters used in emoticons (kaomoji), so allowed in odd company. */
  kaomoji: '°Ò-ÖÙ-Üò-öø-üŌŐŪŲ',
  upper_accented: 'À-ÑØÜÝĀĂĄĆČĎĐĒĖĘĚĞĢĪİĶĹĻĽŁŃŅŇŒŘŚŞŠŢŤŮŰŸŹŻŽҐ',
  lower_accented: 'ß-ñüāăąćčďđēėęěğģīįķĺļľłœŕśşšťźżžґﬁﬂ',
  upper_common: 'ÞΆΈ-ΊΌΎΏΑ-ΫЁ-Я',
  lower_common: 'ά-ωа-џ',
  box: '│┌┐┘├┤┬┼═-╬▀▄█▌▐-▓',
} as const;

type Category = keyof typeof CATEGORY;

/** `[...]` over the union of some categories, plus extra class text. */
function anyOf(categories: Category[], extra = ''): string {
  return `[${categories.map((c) => CATEGORY[c]).join('')}${extra}]`;
}

const PY_SPACE = `[${PYTHON_RE_SPACE_CLASS}]`;
/** Python `\w` on str: letters, digits and number characters, underscore. */
const PY_WORD = '[\\p{L}\\p{N}_]';

const ACCENTED_ETC: Category[] = ['lower_accented', 'upper_accented', 'box', 'start_punctuation', 'end_punctuation',
  'currency', 'numeric', 'law'];
const ARABIC_1252_FOLLOWER = anyOf(['common', 'currency', 'bad', 'numeric', 'start_punctuation'], 'ŸŠ®°µ»');

/** Unlikely juxtapositions; one match anywhere means the text looks like it contains mojibake. */
const BADNESS_ALTERNATIVES = [
  anyOf(['c1']),
  anyOf(['bad', ...ACCENTED_ETC]) + anyOf(['bad']),
  '[a-zA-Z]' + anyOf(['lower_common', 'upper_common']) + anyOf(['bad']),
  anyOf(['bad']) + anyOf(ACCENTED_ETC),
  anyOf(['lower_accented', 'lower_common', 'box', 'end_punctuation', 'currency', 'numeric']) + anyOf(['upper_accented']),
  anyOf(['box', 'end_punctuation', 'currency', 'numeric']) + anyOf(['lower_accented']),
  anyOf(['lower_accented', 'box', 'end_punctuation']) + anyOf(['currency']),
  PY_SPACE + anyOf(['upper_accented']) + anyOf(['currency']),
  anyOf(['upper_accented', 'box']) + anyOf(['numeric', 'law']),
  anyOf(['lower_accented', 'upper_accented', 'box', 'currency', 'end_punctuation']) + anyOf(['start_punctuation'])
    + anyOf(['numeric']),
  anyOf(['lower_accented', 'upper_accented', 'currency', 'numeric', 'box', 'law']) + anyOf(['end_punctuation'])
    + anyOf(['start_punctuation']),
  anyOf(['currency', 'numeric', 'box']) + anyOf(['start_punctuation']),
  '[a-z]' + anyOf(['upper_accented']) + anyOf(['start_punctuation', 'currency']),
  anyOf(['box']) + anyOf(['kaomoji']),
  anyOf(['lower_accented', 'upper_accented', 'currency', 'numeric', 'start_punctuation', 'end_punctuation', 'law'])
    + anyOf(['box']),
  anyOf(['box']) + anyOf(['end_punctuation']),
  anyOf(['lower_accented', 'upper_accented']) + anyOf(['start_punctuation', 'end_punctuation']) + PY_WORD,
  // The ligature œ not followed by an unaccented Latin letter.
  '[Œœ][^A-Za-z]',
  // A degree sign after a capital accented letter.
  anyOf(['upper_accented']) + '°',
  // Two-character Windows-1252 mojibake the rules above miss.
  '[ÂÃÎÐ]' + anyOf(['start_punctuation', 'end_punctuation'], '€œŠš¢£Ÿž\\u00A0\\u00AD®©°·»–—´'),
  '×[²³]',
  // Windows-1252 mojibake of Arabic also uses 'common' characters, so four characters are required.
  '[ØÙ]' + ARABIC_1252_FOLLOWER + '[ØÙ]' + ARABIC_1252_FOLLOWER,
  // Windows-1252 mojibake starting three-byte sequences of some South Asian scripts.
  'à[²µ¹¼½¾]',
  // MacRoman mojibake.
  '√[±∂†≠®™´≤≥¥µø]',
  '≈[°¢]',
  '‚Ä[ìîïòôúùû†°¢π]',
  '‚[âó][àä°ê]',
  // Windows-1251 mojibake of the U+2000 block, of Latin-1 and of Cyrillic (three characters needed).
  'вЂ',
  '[ВГРС]' + anyOf(['c1', 'bad', 'start_punctuation', 'end_punctuation', 'currency'], '°µ') + '[ВГРС]',
  // Windows-1251 on top of Latin-1 mojibake of Windows-1252, next to a Latin letter.
  'ГўВЂВ[^\\n][A-Za-z ]',
  // Windows-1252 encodings of 'à', 'á' and of U+00A0 itself.
  'Ã[\\u00A0¡]',
  '[a-z]' + PY_SPACE + '?[ÃÂ] ',
  '^[ÃÂ] ',
  // Â standing before the very character it encodes.
  anyOf(['end_punctuation'], 'a-z.,?!') + 'Â' + anyOf(['start_punctuation', 'end_punctuation'], ' '),
  // Windows-1253 mojibake of the U+2000 block, of Latin-1 and of Greek.
  'β€[™\\u00A0Ά\\u00AD®°]',
  '[ΒΓΞΟ]' + anyOf(['c1', 'bad', 'start_punctuation', 'end_punctuation', 'currency'], '°') + '[ΒΓΞΟ]',
  // Windows-1257 mojibake of the U+2000 block.
  'ā€',
];

const BADNESS = new RegExp(BADNESS_ALTERNATIVES.join('|'), 'u');

/** ftfy's `is_bad`: the text contains at least one sequence that looks like mojibake. */
export function looksLikeMojibake(text: string): boolean {
  return BADNESS.test(text);
}

/** The safe code pages ftfy derives its UTF-8 clue characters from. */
const CLUE_ENCODINGS: SingleByteEncoding[] = ['latin-1', 'sloppy-windows-1252', 'sloppy-windows-1251',
  'sloppy-windows-1250', 'sloppy-windows-1253', 'sloppy-windows-1254', 'sloppy-windows-1257'];

/** Class body of every character those code pages give the listed bytes (regex-escaped). */
function charsOfBytes(bytes: number[]): string {
  const chars = new Set<number>();
  for (const enc of CLUE_ENCODINGS) for (const b of bytes) chars.add(codecOf(enc).decode[b]!.charCodeAt(0));
  return [...chars].sort((a, b) => a - b).map((c) => `\\u${c.toString(16).padStart(4, '0')}`).join('');
}

const range = (lo: number, hi: number): number[] => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

/**
 * A run of characters that each decode, in some code page, to a UTF-8 lead byte followed by the right number
 * of continuation bytes (a space may stand for a lost 0xA0), not preceded by a character that is only ever a
 * continuation byte (so a large garble is not fixed in small pieces). Leads: 0xC2-0xDF, 0xE0-0xEF, and 0xF0/0xF3
 * (other four-byte leads only reach unassigned planes).
 */
function buildUtf8Detector(): RegExp {
  const lead2 = charsOfBytes(range(0xc2, 0xdf));
  const lead3 = charsOfBytes(range(0xe0, 0xef));
  const lead4 = charsOfBytes([0xf0, 0xf3]);
  const continuation = charsOfBytes(range(0x80, 0xbf));
  // Characters that often stand for themselves next to mojibake are not evidence of a continuation byte.
  const selfStanding = new Set([0x2013, 0x2014, 0x2015, 0x2018, 0x2019, 0x201a, 0x201c, 0x201d, 0x201e, 0x2022,
    0x2026].map((c) => `\\u${c.toString(16).padStart(4, '0')}`));
  const strict = continuation.match(/\\u[0-9a-f]{4}/g)!.filter((c) => !selfStanding.has(c)).join('');
  const cont = `[${continuation} ]`;
  return new RegExp(`(?<![${strict}])(?:[${lead2}]${cont}|[${lead3}]${cont}{2}|[${lead4}]${cont}{3})+`, 'gu');
}

let utf8Detector: RegExp | undefined;

/** A fresh global RegExp for runs that look like UTF-8 read through a code page (ftfy's UTF8_DETECTOR_RE). */
export function utf8RunPattern(): RegExp {
  utf8Detector ??= buildUtf8Detector();
  return new RegExp(utf8Detector.source, utf8Detector.flags);
}
