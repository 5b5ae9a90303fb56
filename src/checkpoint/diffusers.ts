// The Diffusers pipeline folder: `model_index.json` names the pipeline class and its components
// (`"vae": ["diffusers", "AutoencoderKLWan"]`, `[null, null]` for an absent one, plain values such as
// `boundary_ratio` for pipeline options); each component has a folder with its config and, for models, weights
// (`diffusion_pytorch_model.safetensors` or `model.safetensors`, possibly sharded with an `.index.json`).
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from './errors.js';
import { openTensorSource, type TensorSource } from './sharded.js';
import type { TensorInfo } from './safetensors.js';

/** What a component folder holds, which decides where its config is and whether it must have weights. */
export type ComponentKind = 'model' | 'scheduler' | 'tokenizer' | 'processor';

export interface DiffusersComponent {
  name: string;
  /** "diffusers" or "transformers" (the library that defines `className`). */
  library: string;
  className: string;
  kind: ComponentKind;
  dir: string;
  /** config.json / scheduler_config.json / tokenizer_config.json / preprocessor_config.json, parsed. */
  config: Record<string, unknown>;
  configPath?: string;
  /** File names in the component folder (e.g. tokenizer.json, spiece.model for a tokenizer). */
  files: string[];
  /** The weights of a model component. */
  weights?: TensorSource;
  weightsPath?: string;
}

export interface OpenDiffusersOptions {
  /** Weight variant such as "fp16" or "bf16" (`model.fp16.safetensors`); variant files are ignored without it. */
  variant?: string;
}

export class DiffusersModel {
  constructor(
    readonly dir: string,
    /** model_index.json `_class_name`, e.g. "WanPipeline". */
    readonly pipelineClass: string,
    readonly components: Map<string, DiffusersComponent>,
    /** Components listed as [null, null] (e.g. Wan2.1's `transformer_2`). */
    readonly absent: string[],
    /** Plain values of model_index.json (e.g. boundary_ratio, expand_timesteps), without the `_` keys. */
    readonly options: Record<string, unknown>,
    readonly diffusersVersion?: string,
  ) {}

  /** The named component; throws naming the folder and the components there are when it is not one of them. */
  component(name: string): DiffusersComponent {
    const c = this.components.get(name);
    if (c === undefined) {
      const why = this.absent.includes(name) ? 'is listed as [null, null] (absent)' : 'is not listed';
      throw new CheckpointError(`component '${name}' ${why} in model_index.json (components: ${[...this.components.keys()].join(', ')})`,
        join(this.dir, 'model_index.json'));
    }
    return c;
  }

  /** The named component's weights; throws if it has none. */
  weights(name: string): TensorSource {
    const c = this.component(name);
    if (c.weights === undefined) throw new CheckpointError(`component '${name}' (${c.className}) has no weights`, c.dir);
    return c.weights;
  }

  close(): void {
    for (const c of this.components.values()) c.weights?.close();
  }
}

/** Opens a Diffusers pipeline folder: reads model_index.json, every component's config and weight headers. */
export function openDiffusersModel(dir: string, options: OpenDiffusersOptions = {}): DiffusersModel {
  const indexPath = join(dir, 'model_index.json');
  if (!existsSync(indexPath)) {
    const why = existsSync(dir) ? 'has no model_index.json' : 'does not exist';
    throw new CheckpointError(`${why}; a Diffusers pipeline folder is expected (model_index.json plus one folder per component)`, dir);
  }
  const index = readJsonObject(indexPath, 'model_index.json');
  const pipelineClass = index._class_name;
  if (typeof pipelineClass !== 'string') throw new CheckpointError('has no "_class_name" string', indexPath);

  const components = new Map<string, DiffusersComponent>();
  const absent: string[] = [];
  const plain: Record<string, unknown> = {};
  const opened: DiffusersComponent[] = [];
  try {
    for (const [key, value] of Object.entries(index)) {
      if (key.startsWith('_')) continue;
      if (!isComponentEntry(value)) {
        plain[key] = value;
        continue;
      }
      const [library, className] = value;
      if (library === null || className === null) {
        absent.push(key);
        continue;
      }
      const component = openComponent(dir, key, library, className, options);
      opened.push(component);
      components.set(key, component);
    }
  } catch (e) {
    for (const c of opened) c.weights?.close();
    throw e;
  }
  const version = typeof index._diffusers_version === 'string' ? index._diffusers_version : undefined;
  return new DiffusersModel(dir, pipelineClass, components, absent, plain, version);
}

/** A [library, class] pair (either may be null). */
function isComponentEntry(v: unknown): v is [string | null, string | null] {
  return Array.isArray(v) && v.length === 2 && v.every((x) => x === null || typeof x === 'string');
}

export function componentKind(className: string): ComponentKind {
  if (/Scheduler$/.test(className)) return 'scheduler';
  if (/Tokenizer(Fast)?$/.test(className)) return 'tokenizer';
  if (/(Processor|FeatureExtractor)$/.test(className)) return 'processor';
  return 'model';
}

const CONFIG_FILE: Record<ComponentKind, string> = {
  model: 'config.json',
  scheduler: 'scheduler_config.json',
  tokenizer: 'tokenizer_config.json',
  processor: 'preprocessor_config.json',
};

/** Files that make a tokenizer folder usable (fast tokenizer JSON, SentencePiece model, BPE vocab). */
const TOKENIZER_FILES = ['tokenizer.json', 'spiece.model', 'tokenizer.model', 'vocab.json'];

function openComponent(root: string, name: string, library: string, className: string,
  options: OpenDiffusersOptions): DiffusersComponent {
  const dir = join(root, name);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new CheckpointError(`model_index.json lists component '${name}' (${library} ${className}) but its folder is missing`, dir);
  }
  const files = readdirSync(dir).sort();
  const kind = componentKind(className);
  const configName = CONFIG_FILE[kind];
  const configPath = join(dir, configName);
  let config: Record<string, unknown> = {};
  let foundConfig: string | undefined;
  if (existsSync(configPath)) {
    config = readJsonObject(configPath, configName);
    foundConfig = configPath;
  } else if (kind === 'tokenizer') {
    // A tokenizer may come without tokenizer_config.json; it needs at least one of its vocabulary files.
    if (!TOKENIZER_FILES.some((f) => files.includes(f))) {
      throw new CheckpointError(`tokenizer '${name}' (${className}) has none of ${[configName, ...TOKENIZER_FILES].join(', ')}`, dir);
    }
  } else {
    throw new CheckpointError(`component '${name}' (${className}) has no ${configName}`, dir);
  }

  const component: DiffusersComponent = { name, library, className, kind, dir, config, files };
  if (foundConfig !== undefined) component.configPath = foundConfig;
  if (kind === 'model') {
    const weightsPath = findWeights(dir, files, library, className, options.variant);
    component.weightsPath = weightsPath;
    component.weights = openTensorSource(weightsPath);
  }
  return component;
}

/** Candidate weight files in preference order: single file before sharded index, the library's name first. */
function weightCandidates(library: string, variant?: string): string[] {
  const bases = library === 'transformers' ? ['model', 'diffusion_pytorch_model'] : ['diffusion_pytorch_model', 'model'];
  const out: string[] = [];
  for (const base of bases) {
    if (variant === undefined) {
      out.push(`${base}.safetensors`, `${base}.safetensors.index.json`);
    } else {
      // diffusers and transformers put the variant before the last extension of the index name.
      out.push(`${base}.${variant}.safetensors`, `${base}.safetensors.index.${variant}.json`,
        `${base}.${variant}.safetensors.index.json`);
    }
  }
  return out;
}

function findWeights(dir: string, files: string[], library: string, className: string, variant?: string): string {
  const candidates = weightCandidates(library, variant);
  const found = candidates.find((f) => files.includes(f));
  if (found !== undefined) return join(dir, found);
  const safetensors = files.filter((f) => f.includes('.safetensors'));
  const pickles = files.filter((f) => /\.(bin|pt|pth|ckpt)$/.test(f));
  let hint = '';
  if (safetensors.length > 0) {
    hint = variant === undefined
      ? ` (found ${safetensors.join(', ')}: pass the variant, e.g. "fp16", to use variant files)`
      : ` (found ${safetensors.join(', ')})`;
  } else if (pickles.length > 0) {
    hint = ` (found only PyTorch pickle weights ${pickles.join(', ')}; sgld reads safetensors only)`;
  }
  throw new CheckpointError(`model component ${className} has no weights: looked for ${candidates.join(', ')}${hint}`, dir);
}

function readJsonObject(path: string, what: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new CheckpointError(`${what} cannot be read as JSON (${(e as Error).message})`, path);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new CheckpointError(`${what} is not a JSON object`, path);
  }
  return parsed as Record<string, unknown>;
}

/**
 * The info of tensor `name` after checking it exists and has `expectedShape`; the error names the file, the
 * tensor and both shapes, which is what one needs when a config and a checkpoint disagree.
 */
export function requireTensor(source: TensorSource, name: string, expectedShape: readonly number[]): TensorInfo {
  if (!source.has(name)) throw new CheckpointError('required tensor is missing', source.path, name);
  const info = source.info(name);
  const same = info.shape.length === expectedShape.length && info.shape.every((d, i) => d === expectedShape[i]);
  if (!same) {
    throw new CheckpointError(`shape [${info.shape.join(', ')}] but [${expectedShape.join(', ')}] was expected`, info.file, name);
  }
  return info;
}
