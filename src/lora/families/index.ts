// The model families the LoRA loader knows, looked up by name or by the pipeline's model_index.json class.
import type { LoraFamily } from './family.js';
import { wanFamily } from './wan.js';
import { zimageFamily } from './zimage.js';

export { type LoraFamily, type ModuleTarget, unflattenKohyaName } from './family.js';
export { wanFamily, zimageFamily };

const FAMILIES: readonly LoraFamily[] = [wanFamily, zimageFamily];

/** The family for a family name ("wan") or a pipeline class name ("WanPipeline"). */
export function loraFamily(nameOrPipeline: string): LoraFamily {
  const found = FAMILIES.find((f) => f.name === nameOrPipeline || f.pipelines.includes(nameOrPipeline));
  if (!found) {
    throw new Error(`sgld: no LoRA support for "${nameOrPipeline}" (known: ${FAMILIES.flatMap((f) => f.pipelines).join(', ')})`);
  }
  return found;
}
