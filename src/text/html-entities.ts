// The named character references this project decodes: every entity of HTML 4.01 (the Latin-1 block, the
// markup characters, the symbols and Greek letters, the "special" punctuation) plus `&apos;`, with the code
// points HTML5's table gives them (HTML5 moved `lang`/`rang` to U+27E8/U+27E9). HTML5 defines 2231 names; the
// rest (`&check;`, `&Jscr;`, ...) are not decoded here. Swap this table for a full one (e.g. the `entities`
// package's decoder) to cover them; nothing else depends on its size.

/** HTML's Latin-1 entities, U+00A0 to U+00FF in order. */
const LATIN1_NAMES = [
  'nbsp', 'iexcl', 'cent', 'pound', 'curren', 'yen', 'brvbar', 'sect', 'uml', 'copy', 'ordf', 'laquo', 'not', 'shy',
  'reg', 'macr', 'deg', 'plusmn', 'sup2', 'sup3', 'acute', 'micro', 'para', 'middot', 'cedil', 'sup1', 'ordm',
  'raquo', 'frac14', 'frac12', 'frac34', 'iquest', 'Agrave', 'Aacute', 'Acirc', 'Atilde', 'Auml', 'Aring', 'AElig',
  'Ccedil', 'Egrave', 'Eacute', 'Ecirc', 'Euml', 'Igrave', 'Iacute', 'Icirc', 'Iuml', 'ETH', 'Ntilde', 'Ograve',
  'Oacute', 'Ocirc', 'Otilde', 'Ouml', 'times', 'Oslash', 'Ugrave', 'Uacute', 'Ucirc', 'Uuml', 'Yacute', 'THORN',
  'szlig', 'agrave', 'aacute', 'acirc', 'atilde', 'auml', 'aring', 'aelig', 'ccedil', 'egrave', 'eacute', 'ecirc',
  'euml', 'igrave', 'iacute', 'icirc', 'iuml', 'eth', 'ntilde', 'ograve', 'oacute', 'ocirc', 'otilde', 'ouml',
  'divide', 'oslash', 'ugrave', 'uacute', 'ucirc', 'uuml', 'yacute', 'thorn', 'yuml',
] as const;

/** The markup characters, in both spellings HTML accepts without a semicolon. */
const MARKUP: Record<string, number> = {
  quot: 0x22, amp: 0x26, lt: 0x3c, gt: 0x3e, QUOT: 0x22, AMP: 0x26, LT: 0x3c, GT: 0x3e, COPY: 0xa9, REG: 0xae,
};

/** Entities that are only recognised with their semicolon. */
const SEMICOLON_ONLY: Record<string, number> = {
  apos: 0x0027, OElig: 0x0152, oelig: 0x0153, Scaron: 0x0160, scaron: 0x0161, Yuml: 0x0178,
  circ: 0x02c6, tilde: 0x02dc, ensp: 0x2002, emsp: 0x2003, thinsp: 0x2009, zwnj: 0x200c,
  zwj: 0x200d, lrm: 0x200e, rlm: 0x200f, ndash: 0x2013, mdash: 0x2014, lsquo: 0x2018,
  rsquo: 0x2019, sbquo: 0x201a, ldquo: 0x201c, rdquo: 0x201d, bdquo: 0x201e, dagger: 0x2020,
  Dagger: 0x2021, permil: 0x2030, lsaquo: 0x2039, rsaquo: 0x203a, euro: 0x20ac, fnof: 0x0192,
  Alpha: 0x0391, Beta: 0x0392, Gamma: 0x0393, Delta: 0x0394, Epsilon: 0x0395, Zeta: 0x0396,
  Eta: 0x0397, Theta: 0x0398, Iota: 0x0399, Kappa: 0x039a, Lambda: 0x039b, Mu: 0x039c,
  Nu: 0x039d, Xi: 0x039e, Omicron: 0x039f, Pi: 0x03a0, Rho: 0x03a1, Sigma: 0x03a3,
  Tau: 0x03a4, Upsilon: 0x03a5, Phi: 0x03a6, Chi: 0x03a7, Psi: 0x03a8, Omega: 0x03a9,
  alpha: 0x03b1, beta: 0x03b2, gamma: 0x03b3, delta: 0x03b4, epsilon: 0x03b5, zeta: 0x03b6,
  eta: 0x03b7, theta: 0x03b8, iota: 0x03b9, kappa: 0x03ba, lambda: 0x03bb, mu: 0x03bc,
  nu: 0x03bd, xi: 0x03be, omicron: 0x03bf, pi: 0x03c0, rho: 0x03c1, sigmaf: 0x03c2,
  sigma: 0x03c3, tau: 0x03c4, upsilon: 0x03c5, phi: 0x03c6, chi: 0x03c7, psi: 0x03c8,
  omega: 0x03c9, thetasym: 0x03d1, upsih: 0x03d2, piv: 0x03d6, bull: 0x2022, hellip: 0x2026,
  prime: 0x2032, Prime: 0x2033, oline: 0x203e, frasl: 0x2044, weierp: 0x2118, image: 0x2111,
  real: 0x211c, trade: 0x2122, alefsym: 0x2135, larr: 0x2190, uarr: 0x2191, rarr: 0x2192,
  darr: 0x2193, harr: 0x2194, crarr: 0x21b5, lArr: 0x21d0, uArr: 0x21d1, rArr: 0x21d2,
  dArr: 0x21d3, hArr: 0x21d4, forall: 0x2200, part: 0x2202, exist: 0x2203, empty: 0x2205,
  nabla: 0x2207, isin: 0x2208, notin: 0x2209, ni: 0x220b, prod: 0x220f, sum: 0x2211,
  minus: 0x2212, lowast: 0x2217, radic: 0x221a, prop: 0x221d, infin: 0x221e, ang: 0x2220,
  and: 0x2227, or: 0x2228, cap: 0x2229, cup: 0x222a, int: 0x222b, there4: 0x2234,
  sim: 0x223c, cong: 0x2245, asymp: 0x2248, ne: 0x2260, equiv: 0x2261, le: 0x2264,
  ge: 0x2265, sub: 0x2282, sup: 0x2283, nsub: 0x2284, sube: 0x2286, supe: 0x2287,
  oplus: 0x2295, otimes: 0x2297, perp: 0x22a5, sdot: 0x22c5, lceil: 0x2308, rceil: 0x2309,
  lfloor: 0x230a, rfloor: 0x230b, lang: 0x27e8, rang: 0x27e9, loz: 0x25ca, spades: 0x2660,
  clubs: 0x2663, hearts: 0x2665, diams: 0x2666,
};

function buildLegacy(): Map<string, string> {
  const legacy = new Map<string, string>();
  LATIN1_NAMES.forEach((name, i) => legacy.set(name, String.fromCodePoint(0xa0 + i)));
  for (const [name, cp] of Object.entries(MARKUP)) legacy.set(name, String.fromCodePoint(cp));
  return legacy;
}

/** Names (without `&`) that decode even when the `;` is missing, as in `&amp` or `&eacute`. */
export const LEGACY_ENTITIES: ReadonlyMap<string, string> = buildLegacy();

/** Every known name, without `&` and without `;`, to the text it stands for. */
export const NAMED_ENTITIES: ReadonlyMap<string, string> = new Map([
  ...LEGACY_ENTITIES,
  ...Object.entries(SEMICOLON_ONLY).map(([name, cp]): [string, string] => [name, String.fromCodePoint(cp)]),
]);
