// LoRA management (spec 6). The three mutators are "admin-optional" routes (spec 1.2); list_loras is normal.
// Bodies are JSON whatever the Content-Type says (curl -d sends form-urlencoded; spec 6 [sgld]); empty = defaults.
import { ApiError, type LoraSetEntry, type SetLoraParams } from '../actors/api.js';
import { isInsideRoots } from './confine.js';
import type { ServerContext } from './context.js';
import { invalidField, schemaError } from './errors.js';
import { parseJsonObject } from './json.js';
import type { Route } from './router.js';
import { field, parseFields } from './schema.js';

export const LORA_TARGETS = ['transformer', 'transformer_2', 'critic', 'all'] as const;

/** A scalar or a list of scalars of one JSON type; null stays null where `nullable`. */
function scalarOrList<T>(value: unknown, param: string, check: (v: unknown) => v is T, what: string): T[] | undefined {
  if (value === undefined) return undefined;
  const items = Array.isArray(value) ? value : [value];
  items.forEach((v, i) => {
    if (!check(v)) throw schemaError(param, `${param}${Array.isArray(value) ? `[${i}]` : ''} must be ${what}; got ${JSON.stringify(v)}`);
  });
  return items as T[];
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === 'string';
const isNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

function checkTargets(targets: readonly string[]): void {
  const invalid = targets.filter((t) => !(LORA_TARGETS as readonly string[]).includes(t));
  if (invalid.length) {
    throw invalidField('target', `Invalid target(s): ${JSON.stringify(invalid)}. Valid targets: ${JSON.stringify(LORA_TARGETS)}`, 'invalid_target');
  }
}

/** A list given per adapter must have one entry per nickname; a scalar applies to all (spec 6.1). */
function perAdapter<T>(values: T[] | undefined, scalar: boolean, count: number, param: string, fallback: T): T[] {
  if (values === undefined) return Array(count).fill(fallback);
  if (scalar) return Array(count).fill(values[0]);
  if (values.length !== count) {
    throw invalidField(param, `Length mismatch: lora_nickname has ${count} items, but ${param} has ${values.length} items`, 'length_mismatch');
  }
  return values;
}

/** Spec 6.1 normalisation: nickname list; one path per nickname; target / strength / alpha broadcast. */
export function setLoraParams(body: Record<string, unknown>): SetLoraParams {
  if (body.lora_nickname === undefined || body.lora_nickname === null) {
    throw new ApiError(422, "Field 'lora_nickname' is required", { param: 'lora_nickname', code: 'missing_required_field' });
  }
  const nicknames = scalarOrList(body.lora_nickname, 'lora_nickname', isString, 'a string')!;
  if (nicknames.length === 0 || nicknames.some((n) => n === '')) throw invalidField('lora_nickname', 'lora_nickname must name at least one adapter, with non-empty names');
  const count = nicknames.length;
  // lora_path: a scalar counts as one entry and is never repeated; omitted means "reuse the cache" for all.
  const paths = body.lora_path === undefined
    ? Array<string | null>(count).fill(null)
    : scalarOrList(body.lora_path, 'lora_path', isStringOrNull, 'a string or null')!;
  if (paths.length !== count) {
    throw invalidField('lora_path', `Length mismatch: lora_nickname has ${count} items, but lora_path has ${paths.length} items. Give one path (or null) per nickname.`, 'length_mismatch');
  }
  const targetValue = body.target ?? 'all';
  const targets = perAdapter(scalarOrList(targetValue, 'target', isString, 'a string'), !Array.isArray(targetValue), count, 'target', 'all');
  checkTargets(targets);
  const strengthValue = body.strength ?? 1.0;
  const strengths = perAdapter(scalarOrList(strengthValue, 'strength', isNumber, 'a number'), !Array.isArray(strengthValue), count, 'strength', 1.0);
  const alphaValue = body.lora_alpha ?? undefined;
  const alphas = alphaValue === undefined ? undefined
    : perAdapter(scalarOrList(alphaValue, 'lora_alpha', isNumber, 'a number'), !Array.isArray(alphaValue), count, 'lora_alpha', 0);
  if (alphas?.some((a) => !(a > 0))) throw invalidField('lora_alpha', 'lora_alpha must be positive');
  const mergeMode = parseFields(body, { merge_mode: field.oneOf(['auto', 'merge', 'dynamic'] as const, { code: 'invalid_merge_mode' }) }, 'json').merge_mode;
  const entries: LoraSetEntry[] = nicknames.map((nickname, i) => ({
    nickname, path: paths[i]!, target: targets[i]!, strength: strengths[i]!, ...(alphas ? { alpha: alphas[i]! } : {}),
  }));
  return { entries, ...(mergeMode ? { mergeMode } : {}) };
}

const MERGE_SCHEMA = {
  target: field.string().default('all'),
  strength: field.number().default(1.0),
};
const UNMERGE_SCHEMA = { target: field.string().default('all') };

/** Python-style float text for messages (1 -> "1.0"), as SGLang prints strengths. */
const pyFloat = (x: number): string => (Number.isInteger(x) ? x.toFixed(1) : String(x));

function setMessage(p: SetLoraParams): string {
  const targets = [...new Set(p.entries.map((e) => e.target))];
  return `Successfully set LoRA adapter(s): ${p.entries.map((e) => e.nickname).join(', ')} `
    + `(target: ${targets.join(', ')}, strength: ${p.entries.map((e) => e.strength.toFixed(2)).join(', ')})`;
}

/** [sgld] `lora_path` only inside the server's LoRA folders (`--lora-dir`), when it has a list of them. */
async function checkLoraPaths(params: SetLoraParams, roots: readonly string[] | undefined): Promise<void> {
  if (roots === undefined) return;
  for (const [i, e] of params.entries.entries()) {
    if (e.path === null || await isInsideRoots(e.path, roots)) continue;
    const where = params.entries.length > 1 ? `lora_path[${i}]` : 'lora_path';
    throw invalidField('lora_path', roots.length === 0
      ? `${where}: this server loads no LoRA files named by requests (start it with --lora-dir DIR to allow a folder); cached nicknames can still be set with lora_path null`
      : `${where} must lie inside one of the server's LoRA folders (--lora-dir)`, 'lora_path_not_allowed');
  }
}

export function loraRoutes({ engine, options }: ServerContext): Route[] {
  const requireLora = (): void => {
    if (!engine.model().supportsLora) throw new ApiError(400, 'This pipeline does not support LoRA adapters', { code: 'lora_not_supported' });
  };
  const body = async (raw: Promise<Buffer>): Promise<Record<string, unknown>> => parseJsonObject(await raw, { emptyIsObject: true });
  const ok = (message: string): { status: 'ok'; message: string } => ({ status: 'ok', message });
  return [
    {
      method: 'POST', pattern: '/v1/set_lora', auth: 'admin',
      handler: async (ctx) => {
        const params = setLoraParams(await body(ctx.body()));
        await checkLoraPaths(params, options.loraRoots);
        requireLora();
        const result = await engine.setLora(params);
        ctx.reply.json(200, ok(result.message ?? setMessage(params)));
      },
    },
    {
      method: 'POST', pattern: '/v1/merge_lora_weights', auth: 'admin',
      handler: async (ctx) => {
        const p = parseFields(await body(ctx.body()), MERGE_SCHEMA, 'json');
        checkTargets([p.target]);
        requireLora();
        const result = await engine.mergeLora({ target: p.target, strength: p.strength });
        ctx.reply.json(200, ok(result.message ?? `Successfully merged LoRA weights (target: ${p.target}, strength: ${pyFloat(p.strength)})`));
      },
    },
    {
      method: 'POST', pattern: '/v1/unmerge_lora_weights', auth: 'admin',
      handler: async (ctx) => {
        const p = parseFields(await body(ctx.body()), UNMERGE_SCHEMA, 'json');
        checkTargets([p.target]);
        requireLora();
        const result = await engine.unmergeLora({ target: p.target });
        ctx.reply.json(200, ok(result.message ?? `Successfully unmerged LoRA weights (target: ${p.target})`));
      },
    },
    {
      method: 'GET', pattern: '/v1/list_loras', auth: 'normal',
      handler: async ({ reply }) => {
        requireLora();
        reply.json(200, await engine.listLoras());
      },
    },
  ];
}
