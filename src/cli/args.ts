// Command-line flags as SGLang takes them: `--flag value` and `--flag=value`, bare `--flag` for booleans (or an
// explicit `--flag true|false`), dashes and underscores interchangeable. Unknown flags are errors.
export type FlagType = 'string' | 'int' | 'float' | 'bool' | 'list';

export interface FlagSpec {
  type: FlagType;
  default?: string | number | boolean | string[];
  help: string;
  /** Other spellings (without the leading dashes). */
  aliases?: string[];
}

export type FlagValues = Record<string, string | number | boolean | string[] | undefined>;

export class UsageError extends Error {
  constructor(message: string) { super(message); this.name = 'UsageError'; }
}

const norm = (name: string): string => name.replace(/_/g, '-');
/** camelCase key of a flag name: `model-path` -> `modelPath`. */
export const flagKey = (name: string): string => norm(name).replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function convert(name: string, spec: FlagSpec, raw: string): string | number | boolean {
  switch (spec.type) {
    case 'int': {
      if (!/^-?\d+$/.test(raw)) throw new UsageError(`--${name} expects an integer, got "${raw}"`);
      return Number(raw);
    }
    case 'float': {
      const v = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(v)) throw new UsageError(`--${name} expects a number, got "${raw}"`);
      return v;
    }
    case 'bool': {
      if (/^(true|1|yes|on)$/i.test(raw)) return true;
      if (/^(false|0|no|off)$/i.test(raw)) return false;
      throw new UsageError(`--${name} expects true or false, got "${raw}"`);
    }
    default: return raw;
  }
}

/** Parses argv against the flag table; returns values by camelCase key plus positional arguments. */
export function parseFlags(argv: readonly string[], specs: Record<string, FlagSpec>): { values: FlagValues; positional: string[] } {
  const byName = new Map<string, [string, FlagSpec]>();
  for (const [name, spec] of Object.entries(specs)) {
    byName.set(norm(name), [name, spec]);
    for (const a of spec.aliases ?? []) byName.set(norm(a), [name, spec]);
  }
  const values: FlagValues = {};
  for (const [name, spec] of Object.entries(specs)) if (spec.default !== undefined) values[flagKey(name)] = spec.default;
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') { positional.push(arg); continue; }
    const eq = arg.indexOf('=');
    const rawName = norm(arg.slice(2, eq === -1 ? undefined : eq));
    const entry = byName.get(rawName);
    if (!entry) throw new UsageError(`unknown option --${rawName}`);
    const [name, spec] = entry;
    const key = flagKey(name);
    let raw: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    if (raw === undefined) {
      const next = argv[i + 1];
      if (spec.type === 'bool') {
        if (next !== undefined && /^(true|false|1|0|yes|no|on|off)$/i.test(next)) { raw = next; i++; } else raw = 'true';
      } else if (spec.type === 'list') {
        const items: string[] = [];
        while (argv[i + 1] !== undefined && !argv[i + 1]!.startsWith('--')) items.push(argv[++i]!);
        if (!items.length) throw new UsageError(`--${name} expects at least one value`);
        values[key] = items;
        continue;
      } else {
        if (next === undefined || (next.startsWith('--') && next.length > 2)) throw new UsageError(`--${name} expects a value`);
        raw = next; i++;
      }
    }
    values[key] = spec.type === 'list' ? raw.split(',').filter(Boolean) : convert(name, spec, raw);
  }
  return { values, positional };
}

/** A help listing of the flag table. */
export function formatFlags(specs: Record<string, FlagSpec>): string {
  return Object.entries(specs).map(([name, s]) => {
    const def = s.default === undefined ? '' : ` (default: ${Array.isArray(s.default) ? s.default.join(' ') : s.default})`;
    return `  --${name.padEnd(28)} ${s.help}${def}`;
  }).join('\n');
}
