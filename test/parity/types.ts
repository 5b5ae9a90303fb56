// The parity runner's vocabulary: a manifest case, what a handler gets, and what it returns.
import type { SafetensorsFile } from '../../src/checkpoint/safetensors.js';

export interface TensorSpec { name: string; shape: number[]; dtype: string }

export interface ParityCase {
  id: string;
  kind: string;
  file: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  tolerance: { atol?: number; rtol?: number; [k: string]: unknown };
  [field: string]: unknown;
}

export interface Manifest {
  name: string;
  model_dir?: string;
  cases: ParityCase[];
  [field: string]: unknown;
}

export interface CaseContext {
  /** Absolute path of the fixture set (the manifest's folder). */
  setDir: string;
  manifest: Manifest;
  /** Absolute path of the set's model folder, when it has one. */
  modelDir?: string;
  /** The case's goldens file. */
  goldens: SafetensorsFile;
  /** Opens any goldens file of the set by its manifest-relative path (cached). */
  goldensFile(relPath: string): SafetensorsFile;
}

/** One computed output, by the golden tensor's name. Integer outputs (ids, timesteps) compare exactly. */
export interface CaseOutput { name: string; values: Float32Array | BigInt64Array | number[] }

/** Computes a case's outputs; each returned name must be one of the case's `outputs`. */
export type CaseHandler = (c: ParityCase, ctx: CaseContext) => Promise<CaseOutput[]> | CaseOutput[];

/** Handlers of one model family, keyed by case kind. */
export type FamilyHandlers = Partial<Record<string, CaseHandler>>;
