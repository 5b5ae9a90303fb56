// Helpers the parity tests share: where the fixtures are, reading a set's manifest and golden tensors, and the
// fixtures' comparison rule (pass when |ours - ref| <= atol + rtol * |ref| for every element).
import { existsSync, readFileSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SafetensorsFile } from '../../src/checkpoint/safetensors.js';
import type { Manifest } from '../parity/types.js';

export type { Manifest, ParityCase, TensorSpec } from '../parity/types.js';

const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The fixture root: $SGLD_FIXTURE_DIR, or `<repo>/../shared/fixtures`. */
export function fixtureRoot(): string {
  return resolve(process.env.SGLD_FIXTURE_DIR ?? join(repoRoot, '..', 'shared', 'fixtures'));
}

/** A set's folder: `setDir` itself when absolute, else relative to the fixture root (e.g. "rng", "wan-tiny"). */
export function resolveSetDir(setDir: string): string {
  return isAbsolute(setDir) ? setDir : join(fixtureRoot(), setDir);
}

/** Reads `<set>/manifest.json`; the error says where it looked and how to point elsewhere. */
export function loadManifest(setDir: string): Manifest {
  const path = join(resolveSetDir(setDir), 'manifest.json');
  if (!existsSync(path)) throw new Error(`no fixture manifest at ${path} (set SGLD_FIXTURE_DIR to the fixture root)`);
  const manifest = JSON.parse(readFileSync(path, 'utf8')) as Manifest;
  if (!Array.isArray(manifest.cases)) throw new Error(`${path}: manifest has no "cases" list`);
  return manifest;
}

/** Opens a goldens file of a set by its manifest-relative path (e.g. a case's `file`). */
export function openGoldens(setDir: string, file: string): SafetensorsFile {
  return SafetensorsFile.open(join(resolveSetDir(setDir), file));
}

export interface Tolerance { atol: number; rtol: number }

export interface Comparison {
  /** max |ours - ref| (Infinity when a value is NaN on one side only). */
  maxAbs: number;
  /** ||ours - ref|| / ||ref|| (L2 norms). */
  relErr: number;
  /** Every element satisfies |ours - ref| <= atol + rtol * |ref|. */
  pass: boolean;
  /** How many elements fail that test, and the first that does (-1 if none). */
  failures: number;
  firstFailure: number;
}

/** Compares element by element under the fixtures' rule. Lengths must agree. */
export function compareTensors(ours: ArrayLike<number>, ref: ArrayLike<number>, tol: Tolerance): Comparison {
  if (ours.length !== ref.length) throw new Error(`compareTensors: ${ours.length} values against ${ref.length} reference values`);
  let maxAbs = 0;
  let sqErr = 0;
  let sqRef = 0;
  let failures = 0;
  let firstFailure = -1;
  for (let i = 0; i < ref.length; i++) {
    const r = ref[i]!;
    const o = ours[i]!;
    // NaN where the reference is NaN too counts as agreement; anything else NaN fails.
    const d = Number.isNaN(r) && Number.isNaN(o) ? 0 : Math.abs(o - r);
    if (!(d <= tol.atol + tol.rtol * Math.abs(r))) {
      failures++;
      if (firstFailure < 0) firstFailure = i;
    }
    const dd = Number.isNaN(d) ? Infinity : d;
    if (dd > maxAbs) maxAbs = dd;
    sqErr += dd * dd;
    if (!Number.isNaN(r)) sqRef += r * r;
  }
  const relErr = sqRef > 0 ? Math.sqrt(sqErr / sqRef) : sqErr === 0 ? 0 : Infinity;
  return { maxAbs, relErr, pass: failures === 0, failures, firstFailure };
}

/** One line for test logs: "label: max abs 1.2e-7, rel 3.4e-8 (atol 1e-6, rtol 1e-6)". */
export function describeComparison(label: string, c: Comparison, tol: Tolerance): string {
  const fail = c.pass ? '' : `, ${c.failures} out of tolerance (first at ${c.firstFailure})`;
  return `${label}: max abs ${c.maxAbs.toExponential(2)}, rel ${c.relErr.toExponential(2)} (atol ${tol.atol}, rtol ${tol.rtol})${fail}`;
}
