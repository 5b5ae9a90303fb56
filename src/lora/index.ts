// LoRA engine: load adapters in the formats users have, merge them into model weights natively, undo exactly.
export { type AlphaSource, type BuildOptions, type LoraAdapter, type LoraLayer, type LoraTensorSource, buildLoraAdapter } from './adapter.js';
export { alphaFoldFactors, foldInDType } from './alpha-folding.js';
export { LoraError, type LoraErrorCode } from './errors.js';
export { type LoraFamily, loraFamily, wanFamily, zimageFamily } from './families/index.js';
export { type LoadedLora, loadLoraFile, resolveLoraFile } from './load.js';
export {
  LORA_MODULES, LORA_TARGETS, LoraManager,
  type ActiveAdapter, type LoraListing, type LoraManagerOptions, type LoraModuleName, type LoraTarget, type ModuleReport,
  type SetLoraEntry, type SetLoraReport,
} from './manager.js';
export { type LoraModuleWeights, WeightBackups, applyUpdate, planMerge } from './merge.js';
