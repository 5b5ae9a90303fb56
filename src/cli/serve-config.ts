// `--config FILE`: the serve options as JSON or YAML (keys with underscores, as SGLang's ServerArgs: model_path,
// num_gpus, ...). The file becomes command-line flags placed before the real ones, so one parser checks both and
// the command line wins. YAML is read by a small parser for what an option file holds: `key: value` lines,
// comments, quoted strings, numbers, booleans, null, and lists (`[a, b]` or `- item` lines).
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { UsageError } from './args.js';

type Scalar = string | number | boolean | null;
type ConfigValue = Scalar | Scalar[];

/** Reads a config file into flag tokens (`--num-gpus=4`), in file order. */
export function configFileArgs(path: string): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UsageError(`--config ${path} cannot be read: ${(e as Error).message}`);
  }
  const ext = extname(path).toLowerCase();
  const values = ext === '.json' ? parseJsonConfig(text, path) : parseYamlConfig(text, path);
  const args: string[] = [];
  for (const [key, value] of Object.entries(values)) {
    if (value === null) continue;
    if (key === 'config') throw new UsageError(`${path}: a config file cannot name another config file`);
    const flag = `--${key.replace(/_/g, '-')}`;
    args.push(`${flag}=${Array.isArray(value) ? value.join(',') : String(value)}`);
  }
  return args;
}

function parseJsonConfig(text: string, path: string): Record<string, ConfigValue> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new UsageError(`${path} is not valid JSON: ${(e as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new UsageError(`${path} must hold a JSON object of options`);
  for (const [key, value] of Object.entries(parsed)) {
    const ok = (v: unknown): boolean => v === null || ['string', 'number', 'boolean'].includes(typeof v);
    if (!(ok(value) || (Array.isArray(value) && value.every(ok)))) throw new UsageError(`${path}: option "${key}" must be a string, number, boolean or list of them`);
  }
  return parsed as Record<string, ConfigValue>;
}

/** The YAML subset of option files; anything else is an error naming the line. */
export function parseYamlConfig(text: string, path = 'config'): Record<string, ConfigValue> {
  const out: Record<string, ConfigValue> = {};
  let listKey: string | undefined;
  const lines = text.split(/\r?\n/);
  lines.forEach((raw, i) => {
    const where = `${path}:${i + 1}`;
    const line = stripComment(raw).trimEnd();
    if (line.trim() === '' || line.trim() === '---') return;
    const item = /^\s+-\s+(.*)$/.exec(line) ?? /^-\s+(.*)$/.exec(line);
    if (item) {
      if (listKey === undefined) throw new UsageError(`${where}: a list item outside a list`);
      (out[listKey] as Scalar[]).push(yamlScalar(item[1]!, where));
      return;
    }
    const m = /^([A-Za-z_][A-Za-z0-9_-]*)\s*:(?:\s+(.*))?$/.exec(line);
    if (!m) throw new UsageError(`${where}: expected "key: value" (nested mappings are not option values)`);
    const [, key, rest] = m;
    if (key! in out) throw new UsageError(`${where}: "${key}" is given twice`);
    if (rest === undefined || rest.trim() === '') {
      out[key!] = [];
      listKey = key;
      return;
    }
    listKey = undefined;
    const value = rest.trim();
    out[key!] = value.startsWith('[') ? flowList(value, where) : yamlScalar(value, where);
  });
  return out;
}

function stripComment(line: string): string {
  let quote: string | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) { if (c === quote) quote = undefined; continue; }
    if (c === '"' || c === "'") quote = c;
    else if (c === '#' && (i === 0 || /\s/.test(line[i - 1]!))) return line.slice(0, i);
  }
  return line;
}

function flowList(value: string, where: string): Scalar[] {
  if (!value.endsWith(']')) throw new UsageError(`${where}: unterminated list ${value}`);
  const inner = value.slice(1, -1).trim();
  return inner === '' ? [] : inner.split(',').map((part) => yamlScalar(part.trim(), where));
}

function yamlScalar(value: string, where: string): Scalar {
  if (/^"(.*)"$/.test(value)) {
    try {
      return JSON.parse(value) as string;
    } catch {
      throw new UsageError(`${where}: bad double-quoted string ${value}`);
    }
  }
  if (/^'(.*)'$/.test(value)) return value.slice(1, -1).replace(/''/g, "'");
  if (/^(null|~)$/i.test(value)) return null;
  if (/^(true|yes|on)$/i.test(value)) return true;
  if (/^(false|no|off)$/i.test(value)) return false;
  if (/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(value)) return Number(value);
  if (/^[[{&*!|>]/.test(value)) throw new UsageError(`${where}: unsupported YAML value ${value}`);
  return value;
}
