// Strict UTF-8 decoding of "byte strings" (one char per byte, codes 0-255), as Python's `bytes.decode('utf-8')`
// does it: no overlong forms, no surrogates, nothing above U+10FFFF, no truncated sequences. The `variants`
// mode also accepts what ftfy's "utf-8-variants" codec accepts on top: CESU-8 (a supplementary character written
// as two 3-byte surrogates) and Java's 0xC0 0x80 for U+0000.

/** Decodes, or returns null when the bytes are not (variant) UTF-8. */
export function decodeUtf8ByteString(bytes: string, variants = false): string | null {
  const n = bytes.length;
  const at = (i: number): number => (i < n ? bytes.charCodeAt(i) : -1);
  const isCont = (b: number): boolean => b >= 0x80 && b <= 0xbf;
  let out = '';
  let i = 0;
  while (i < n) {
    const b0 = at(i);
    if (b0 < 0x80) {
      out += bytes[i]!;
      i += 1;
      continue;
    }
    if (variants && b0 === 0xc0 && at(i + 1) === 0x80) {
      out += '\u0000';
      i += 2;
      continue;
    }
    if (variants && b0 === 0xed && at(i + 1) >= 0xa0 && at(i + 1) <= 0xaf && isCont(at(i + 2))
      && at(i + 3) === 0xed && at(i + 4) >= 0xb0 && at(i + 4) <= 0xbf && isCont(at(i + 5))) {
      // 11101101 1010abcd 10efghij 11101101 1011klmn 10opqrst -> 0x10000 + abcdefghijklmnopqrst
      const cp = 0x10000 + ((at(i + 1) & 0x0f) << 16) + ((at(i + 2) & 0x3f) << 10) + ((at(i + 4) & 0x0f) << 6)
        + (at(i + 5) & 0x3f);
      out += String.fromCodePoint(cp);
      i += 6;
      continue;
    }
    if (b0 >= 0xc2 && b0 <= 0xdf) {
      const b1 = at(i + 1);
      if (!isCont(b1)) return null;
      out += String.fromCharCode(((b0 & 0x1f) << 6) | (b1 & 0x3f));
      i += 2;
    } else if (b0 >= 0xe0 && b0 <= 0xef) {
      const b1 = at(i + 1);
      const b2 = at(i + 2);
      // The second byte's range excludes overlongs (E0 80-9F) and surrogates (ED A0-BF).
      const lo = b0 === 0xe0 ? 0xa0 : 0x80;
      const hi = b0 === 0xed ? 0x9f : 0xbf;
      if (b1 < lo || b1 > hi || !isCont(b2)) return null;
      out += String.fromCharCode(((b0 & 0x0f) << 12) | ((b1 & 0x3f) << 6) | (b2 & 0x3f));
      i += 3;
    } else if (b0 >= 0xf0 && b0 <= 0xf4) {
      const b1 = at(i + 1);
      const lo = b0 === 0xf0 ? 0x90 : 0x80;
      const hi = b0 === 0xf4 ? 0x8f : 0xbf;
      if (b1 < lo || b1 > hi || !isCont(at(i + 2)) || !isCont(at(i + 3))) return null;
      out += String.fromCodePoint(((b0 & 0x07) << 18) | ((b1 & 0x3f) << 12) | ((at(i + 2) & 0x3f) << 6)
        | (at(i + 3) & 0x3f));
      i += 4;
    } else {
      return null;
    }
  }
  return out;
}
