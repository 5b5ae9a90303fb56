// Case handlers by model family (model_index.json `_class_name`, or "generic" for sets without a model) and
// case kind. Each module in ./handlers/ exports `family` and `handlers`; they are discovered at start-up so
// adding a model family touches no shared file.
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { FamilyHandlers } from './types.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), 'handlers');

export const HANDLERS: Record<string, FamilyHandlers> = {};

for (const file of readdirSync(dir).filter((f) => /\.(ts|js)$/.test(f) && !f.endsWith('.d.ts')).sort()) {
  const mod = (await import(pathToFileURL(join(dir, file)).href)) as { family?: string; handlers?: FamilyHandlers };
  if (!mod.family || !mod.handlers) continue;
  HANDLERS[mod.family] = { ...HANDLERS[mod.family], ...mod.handlers };
}
