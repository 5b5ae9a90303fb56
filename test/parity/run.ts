// Parity runner: runs every case of every manifest under $SGLD_FIXTURE_DIR (default ../shared/fixtures) and
// prints one row per case: component, case, max abs error, relative error ||ours-ref||/||ref||, tolerance, pass.
// It is driven by the manifests alone; the model family comes from the set's model_index.json (`_class_name`),
// so another fixture set of a known family runs unchanged.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import { HANDLERS } from './registry.js';
import type { CaseContext, CaseOutput, Manifest, ParityCase } from './types.js';

const here = dirname(fileURLToPath(import.meta.url));
const fixtureRoot = resolve(process.env.SGLD_FIXTURE_DIR ?? join(here, '..', '..', '..', 'shared', 'fixtures'));
const filter = process.argv[2];

interface Row { set: string; component: string; id: string; maxAbs: number; rel: number; tol: string; pass: boolean; note?: string }

function findManifests(root: string): string[] {
  if (existsSync(join(root, 'manifest.json'))) return [join(root, 'manifest.json')];
  return readdirSync(root).sort()
    .map((d) => join(root, d, 'manifest.json'))
    .filter((p) => existsSync(p) && statSync(p).isFile());
}

function familyOf(setDir: string, manifest: Manifest): string {
  if (!manifest.model_dir) return 'generic';
  const index = join(setDir, manifest.model_dir, 'model_index.json');
  if (!existsSync(index)) return 'generic';
  return String(JSON.parse(readFileSync(index, 'utf8'))._class_name ?? 'generic');
}

function asNumbers(v: CaseOutput['values']): ArrayLike<number> {
  if (v instanceof BigInt64Array) return Array.from(v, Number);
  return v;
}

/** Compares one output with its golden: exact for integer dtypes, atol + rtol * |ref| otherwise. */
function compare(ours: CaseOutput['values'], golden: SafetensorsFile, name: string, c: ParityCase):
  { maxAbs: number; sqErr: number; sqRef: number; pass: boolean; why?: string } {
  const info = golden.info(name);
  const integer = info.dtype.startsWith('I') || info.dtype.startsWith('U') || info.dtype === 'BOOL';
  const ref = integer ? asNumbers(golden.readBigInt64(name)) : golden.readFloat32(name);
  const o = asNumbers(ours);
  if (o.length !== ref.length) return { maxAbs: Infinity, sqErr: Infinity, sqRef: 1, pass: false, why: `${name}: ${o.length} values, golden has ${ref.length}` };
  const atol = integer ? 0 : (c.tolerance.atol ?? 0);
  const rtol = integer ? 0 : (c.tolerance.rtol ?? 0);
  let maxAbs = 0, sqErr = 0, sqRef = 0, pass = true;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!, d = Math.abs(o[i]! - r);
    if (!(d <= atol + rtol * Math.abs(r))) pass = false;
    if (d > maxAbs || Number.isNaN(d)) maxAbs = Number.isNaN(d) ? Infinity : d;
    sqErr += d * d; sqRef += r * r;
  }
  return { maxAbs, sqErr, sqRef, pass };
}

async function runCase(c: ParityCase, ctx: CaseContext, family: string, set: string): Promise<Row> {
  const component = c.id.split('/')[0] ?? c.kind;
  const tol = `atol ${fmt(c.tolerance.atol ?? 0)} rtol ${fmt(c.tolerance.rtol ?? 0)}`;
  const handler = HANDLERS[family]?.[c.kind] ?? HANDLERS.generic?.[c.kind];
  if (!handler) return { set, component, id: c.id, maxAbs: NaN, rel: NaN, tol, pass: false, note: `no handler for kind "${c.kind}" of ${family}` };
  try {
    const outputs = await handler(c, ctx);
    const expected = new Set(c.outputs.map((o) => o.name));
    let maxAbs = 0, sqErr = 0, sqRef = 0, pass = outputs.length > 0;
    const notes: string[] = [];
    for (const out of outputs) {
      if (!expected.has(out.name)) throw new Error(`handler returned ${out.name}, which is not an output of the case`);
      const r = compare(out.values, ctx.goldens, out.name, c);
      maxAbs = Math.max(maxAbs, r.maxAbs); sqErr += r.sqErr; sqRef += r.sqRef;
      if (!r.pass) { pass = false; notes.push(r.why ?? `${out.name} out of tolerance`); }
    }
    const missing = [...expected].filter((n) => !outputs.some((o) => o.name === n));
    if (missing.length) { pass = false; notes.push(`not computed: ${missing.join(', ')}`); }
    return { set, component, id: c.id, maxAbs, rel: Math.sqrt(sqErr / Math.max(sqRef, 1e-300)), tol, pass, note: notes.join('; ') || undefined };
  } catch (err) {
    return { set, component, id: c.id, maxAbs: NaN, rel: NaN, tol, pass: false, note: (err as Error).message.split('\n')[0] };
  }
}

function fmt(x: number): string {
  if (Number.isNaN(x)) return '-';
  if (x === 0) return '0';
  if (!Number.isFinite(x)) return 'inf';
  return x.toExponential(2);
}

async function main(): Promise<number> {
  if (!existsSync(fixtureRoot)) {
    console.error(`parity: fixture directory ${fixtureRoot} not found (set SGLD_FIXTURE_DIR)`);
    return 2;
  }
  const rows: Row[] = [];
  for (const manifestPath of findManifests(fixtureRoot)) {
    const setDir = dirname(manifestPath);
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8')) as Manifest;
    const family = familyOf(setDir, manifest);
    const files = new Map<string, SafetensorsFile>();
    const goldensFile = (rel: string): SafetensorsFile => {
      let f = files.get(rel);
      if (!f) { f = SafetensorsFile.open(join(setDir, rel)); files.set(rel, f); }
      return f;
    };
    for (const c of manifest.cases) {
      if (filter && !`${manifest.name}/${c.id}`.includes(filter)) continue;
      const ctx: CaseContext = {
        setDir, manifest, modelDir: manifest.model_dir ? join(setDir, manifest.model_dir) : undefined,
        goldens: goldensFile(c.file), goldensFile,
      };
      const row = await runCase(c, ctx, family, manifest.name ?? setDir);
      rows.push(row);
      printRow(row);
    }
    for (const f of files.values()) f.close();
  }
  const passed = rows.filter((r) => r.pass).length;
  console.log(`${passed} passed, ${rows.length - passed} failed`);
  return rows.length > 0 && passed === rows.length ? 0 : 1;
}

let headerPrinted = false;
function printRow(r: Row): void {
  const cols = [`${r.set}:${r.component}`.padEnd(26), r.id.padEnd(40), fmt(r.maxAbs).padStart(10), fmt(r.rel).padStart(10), r.tol.padEnd(26), r.pass ? 'pass' : 'FAIL'];
  if (!headerPrinted) {
    console.log(['component'.padEnd(26), 'case'.padEnd(40), 'max abs'.padStart(10), 'rel err'.padStart(10), 'tolerance'.padEnd(26), 'result'].join(' | '));
    headerPrinted = true;
  }
  console.log(cols.join(' | ') + (r.note ? `   (${r.note})` : ''));
}

process.exitCode = await main();
