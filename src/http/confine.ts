// Server paths a request may name (`lora_path`): only inside configured root folders, judged on the resolved path
// and again on the real path once links are followed, so neither `..` nor a symbolic link leads outside.
import { realpath } from 'node:fs/promises';
import { resolve, sep } from 'node:path';

const isInside = (path: string, root: string): boolean => path === root || path.startsWith(root.endsWith(sep) ? root : root + sep);

/**
 * Whether `path` (absolute, or relative to the working directory) lies inside one of `roots`. A path that does not
 * exist is judged by its resolved name (the engine then reports it missing).
 */
export async function isInsideRoots(path: string, roots: readonly string[]): Promise<boolean> {
  if (path.includes('\0')) return false;
  const lexical = resolve(path);
  let real: string | null;
  try {
    real = await realpath(lexical);
  } catch {
    real = null;
  }
  for (const root of roots) {
    const rootPath = resolve(root);
    if (!isInside(lexical, rootPath)) continue;
    if (real === null) return true;
    const realRoot = await realpath(rootPath).catch(() => rootPath);
    if (isInside(real, realRoot)) return true;
  }
  return false;
}
