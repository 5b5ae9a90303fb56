// Repair half of ftfy's mojibake handling (ftfy 6.3.1 `fix_encoding`): when text looks like UTF-8 that was
// decoded with a single-byte code page, encode it back with that code page and decode the bytes as UTF-8.
// Includes ftfy's sub-steps: restoring 0xA0 bytes that became spaces, turning sequences that lost bytes to
// U+FFFD into one U+FFFD, fixing UTF-8 runs embedded in otherwise good text, and C1 controls read as
// Windows-1252.
import { looksLikeMojibake, utf8RunPattern } from './mojibake-heuristic.js';
import {
  CHARMAP_ENCODINGS, canEncode, decodeByteString, encodeToByteString, type SingleByteEncoding,
} from './single-byte-codecs.js';
import { decodeUtf8ByteString } from './utf8-bytes.js';

/** Byte-level patterns below run on byte strings (one char per byte). */

/** UTF-8 sequences that would be valid if a 0xA0 byte had not been turned into a space (0x20). */
const ALTERED_UTF8 = new RegExp([
  '[\\xc2\\xc3\\xc5\\xce\\xd0\\xd9] ',
  '[\\xe2\\xe3] [\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf]',
  '[\\xe0-\\xe3][\\x80-\\x84\\x86-\\x9f\\xa1-\\xbf] ',
  '\\xf0 [\\x80-\\xbf][\\x80-\\xbf]',
  '\\xf0[\\x80-\\xbf] [\\x80-\\xbf]',
  '\\xf0[\\x80-\\xbf][\\x80-\\xbf] ',
].join('|'), 'g');

/**
 * "Ã " standing for "à" as a word of its own ("Ã la mode"): keep the space after restoring the 0xA0 byte, except
 * in the Portuguese contractions "às", "àquele", "àquela", "àquilo".
 */
const A_GRAVE_WORD = /\xc3 (?! |quele|quela|quilo|s )/g;

/** UTF-8 sequences with bytes lost to U+FFFD (encoded as 0x1A by the sloppy codecs) or, once, to '?'. */
const LOSSY_UTF8 = new RegExp([
  '[\\xc2-\\xdf]\\x1a',
  '[\\xc2-\\xc3]\\?',
  '\\xed[\\xa0-\\xaf][\\x1a?]\\xed[\\xb0-\\xbf][\\x1a?\\x80-\\xbf]',
  '\\xed[\\xa0-\\xaf][\\x1a?\\x80-\\xbf]\\xed[\\xb0-\\xbf][\\x1a?]',
  '[\\xe0-\\xef][\\x1a?][\\x1a\\x80-\\xbf]',
  '[\\xe0-\\xef][\\x1a\\x80-\\xbf][\\x1a?]',
  '[\\xf0-\\xf4][\\x1a?][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf]',
  '[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a?][\\x1a\\x80-\\xbf]',
  '[\\xf0-\\xf4][\\x1a\\x80-\\xbf][\\x1a\\x80-\\xbf][\\x1a?]',
  '\\x1a',
].join('|'), 'g');

const REPLACEMENT_UTF8 = '\xef\xbf\xbd';
const C1_CONTROL = /[\x80-\x9f]/g;

/** Puts back 0xA0 bytes where a space breaks an otherwise valid UTF-8 sequence. */
function restoreByteA0(bytes: string): string {
  return bytes.replace(A_GRAVE_WORD, '\xc3\xa0 ').replace(ALTERED_UTF8, (m) => m.replaceAll(' ', '\xa0'));
}

/** C1 controls read as the Windows-1252 characters of the same bytes, as browsers do. */
export function fixC1Controls(text: string): string {
  return text.replace(C1_CONTROL, (c) => decodeByteString(c, 'sloppy-windows-1252'));
}

/** One code page tried as the source of the mojibake: its bytes re-decoded as UTF-8, or null. */
function redecodeAsUtf8(text: string, encoding: SingleByteEncoding): string | null {
  let bytes = encodeToByteString(text, encoding);
  if (encoding !== 'macroman') {
    // In MacRoman a restored 0xA0 would be a dagger followed by a space: too many false positives.
    ALTERED_UTF8.lastIndex = 0;
    if (ALTERED_UTF8.test(bytes)) bytes = restoreByteA0(bytes);
  }
  if (encoding.startsWith('sloppy-')) bytes = bytes.replace(LOSSY_UTF8, REPLACEMENT_UTF8);
  const variants = bytes.includes('\xed') || bytes.includes('\xc0');
  return decodeUtf8ByteString(bytes, variants);
}

/** UTF-8-looking runs inside text that as a whole does not re-decode. */
function decodeInconsistentUtf8(text: string): string {
  return text.replace(utf8RunPattern(), (run) =>
    (run.length < text.length && looksLikeMojibake(run) ? fixEncoding(run) : run));
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

/** One step of ftfy's `fix_encoding`; returns the text unchanged when it sees nothing to fix. */
function fixEncodingOneStep(text: string): string {
  if (text.length === 0 || isAscii(text) || !looksLikeMojibake(text)) return text;

  for (const encoding of CHARMAP_ENCODINGS) {
    if (!canEncode(text, encoding)) continue;
    const fixed = redecodeAsUtf8(text, encoding);
    if (fixed !== null) return fixed;
  }

  if (utf8RunPattern().test(text)) {
    const fixed = decodeInconsistentUtf8(text);
    if (fixed !== text) return fixed;
  }

  // Leftover C1 controls are read as Windows-1252. (ftfy first tries a Latin-1 -> Windows-1252 re-decode of the
  // whole text; only C1 characters can change in it, so its result is this one.)
  C1_CONTROL.lastIndex = 0;
  if (C1_CONTROL.test(text)) return fixC1Controls(text);
  // Mix-ups between two single-byte code pages are left alone, as ftfy does.
  return text;
}

/** ftfy `fix_encoding` with its default switches: repeat single steps until nothing changes. */
export function fixEncoding(text: string): string {
  for (;;) {
    const next = fixEncodingOneStep(text);
    if (next === text) return text;
    text = next;
  }
}
