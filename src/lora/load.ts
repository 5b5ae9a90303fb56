// Loading a LoRA from where a user points: a .safetensors file, a folder holding one (diffusers saves
// `pytorch_lora_weights.safetensors`), or a Hugging Face repo id already in the local hub cache (sgld never
// downloads). Pickled .bin / .pt files are refused: reading them would mean running a pickle.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { SafetensorsFile } from '../checkpoint/safetensors.js';
import { type BuildOptions, type LoraAdapter, buildLoraAdapter } from './adapter.js';
import { LoraError } from './errors.js';
import type { LoraFamily } from './families/index.js';

/** diffusers' default LoRA weight file name (`save_lora_weights`). */
const DIFFUSERS_WEIGHT_NAME = 'pytorch_lora_weights.safetensors';

function hubCacheDir(): string {
  if (process.env.HF_HUB_CACHE) return process.env.HF_HUB_CACHE;
  if (process.env.HF_HOME) return join(process.env.HF_HOME, 'hub');
  return join(homedir(), '.cache', 'huggingface', 'hub');
}

/** The snapshot folder of a cached hub repo (the one refs/main names, else the newest). */
function cachedSnapshot(repoId: string): string | undefined {
  const repoDir = join(hubCacheDir(), `models--${repoId.replace('/', '--')}`);
  const snapshots = join(repoDir, 'snapshots');
  if (!existsSync(snapshots)) return undefined;
  const main = join(repoDir, 'refs', 'main');
  if (existsSync(main)) {
    const dir = join(snapshots, readFileSync(main, 'utf8').trim());
    if (existsSync(dir)) return dir;
  }
  const dirs = readdirSync(snapshots).map((d) => join(snapshots, d)).filter((d) => statSync(d).isDirectory());
  return dirs.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
}

function fileInFolder(dir: string, shown: string): string {
  if (existsSync(join(dir, DIFFUSERS_WEIGHT_NAME))) return join(dir, DIFFUSERS_WEIGHT_NAME);
  const candidates = readdirSync(dir).filter((f) => f.endsWith('.safetensors'));
  if (candidates.length === 1) return join(dir, candidates[0]!);
  if (candidates.length === 0) throw new LoraError('lora_load_failed', `${shown} has no .safetensors file`, 'lora_path');
  throw new LoraError('lora_load_failed', `${shown} has several .safetensors files (${candidates.join(', ')}); give the file's path`, 'lora_path');
}

/** The .safetensors file `pathOrRepo` names. Throws LoraError (lora_load_failed). */
export function resolveLoraFile(pathOrRepo: string): string {
  if (existsSync(pathOrRepo)) {
    const st = statSync(pathOrRepo);
    if (st.isDirectory()) return fileInFolder(pathOrRepo, pathOrRepo);
    if (/\.(bin|pt|pth|ckpt)$/i.test(pathOrRepo)) {
      throw new LoraError('lora_load_failed', `${pathOrRepo}: pickled checkpoints are not loaded (security); convert it to .safetensors`, 'lora_path');
    }
    return pathOrRepo;
  }
  if (/^[\w.-]+\/[\w.-]+$/.test(pathOrRepo)) {
    const snapshot = cachedSnapshot(pathOrRepo);
    if (snapshot) return fileInFolder(snapshot, `${pathOrRepo} (hub cache ${snapshot})`);
    throw new LoraError('lora_load_failed', `${pathOrRepo} is neither a file nor a repo in the local Hugging Face cache (${hubCacheDir()}); sgld does not download`, 'lora_path');
  }
  throw new LoraError('lora_load_failed', `LoRA file ${pathOrRepo} not found`, 'lora_path');
}

export interface LoadedLora {
  adapter: LoraAdapter;
  /** The file actually read. */
  file: string;
  /** Its size and modification time, to notice a file replaced on disk. */
  size: number;
  mtimeMs: number;
}

/** Reads and converts a LoRA file for `family`. Every failure is a LoraError with code lora_load_failed. */
export function loadLoraFile(pathOrRepo: string, family: LoraFamily, options: BuildOptions = {}): LoadedLora {
  if (options.alpha !== undefined && !(options.alpha > 0 && Number.isFinite(options.alpha))) {
    throw new LoraError('invalid_argument', `lora_alpha must be a positive number, got ${options.alpha}`, 'lora_alpha');
  }
  const file = resolveLoraFile(pathOrRepo);
  let st;
  try {
    st = statSync(file);
  } catch (e) {
    throw new LoraError('lora_load_failed', `cannot read ${file}: ${(e as Error).message}`, 'lora_path');
  }
  let f: SafetensorsFile | undefined;
  try {
    f = SafetensorsFile.open(file);
    return { adapter: buildLoraAdapter(f, family, options), file, size: st.size, mtimeMs: st.mtimeMs };
  } catch (e) {
    if (e instanceof LoraError) throw new LoraError(e.code, `${file}: ${e.message}`, e.param ?? 'lora_path');
    const why = (e as Error).message;
    throw new LoraError('lora_load_failed', why.includes(file) ? `cannot read ${why}` : `cannot read ${file}: ${why}`, 'lora_path');
  } finally {
    f?.close();
  }
}
