// LoraManager: the LoRA state of one pipeline on one rank — adapters cached by nickname, what is merged into
// which module (transformer, transformer_2, critic) at which strengths, and the host copies that undo merges.
// It implements the semantics of docs/spec http-api.md section 6 (set / merge / unmerge / list); the HTTP layer
// parses requests, calls these methods in its LoRA queue (never during a denoise) and turns LoraError into its
// error envelope (error.status, error.code, error.param).
import { performance } from 'node:perf_hooks';
import { statSync } from 'node:fs';
import type { LoraAdapter } from './adapter.js';
import { LoraError, listSome } from './errors.js';
import { type LoraFamily, loraFamily } from './families/index.js';
import { type LoadedLora, loadLoraFile } from './load.js';
import { type LoraModuleWeights, type WeightUpdate, WeightBackups, applyUpdate, planMerge } from './merge.js';

export const LORA_MODULES = ['transformer', 'transformer_2', 'critic'] as const;
export type LoraModuleName = (typeof LORA_MODULES)[number];
export const LORA_TARGETS = [...LORA_MODULES, 'all'] as const;
export type LoraTarget = (typeof LORA_TARGETS)[number];

/** An adapter in a module's configuration. */
export interface ActiveAdapter { nickname: string; strength: number }

/** One adapter of a set_lora request, after the HTTP layer's normalisation (one entry per nickname). */
export interface SetLoraEntry {
  nickname: string;
  /** File / folder / cached hub repo; null or absent: use the cached adapter. */
  path?: string | null;
  target?: string;
  strength?: number;
  /** Alpha for layers whose file has none. */
  alpha?: number;
}

export interface ModuleReport {
  module: LoraModuleName;
  /** False when the requested configuration was already merged (nothing was done). */
  changed: boolean;
  /** Linear weights written. */
  weights: number;
  /** Milliseconds spent restoring the previous state, taking first-time backups, and merging. */
  restoreMs: number;
  backupMs: number;
  mergeMs: number;
}

export interface SetLoraReport {
  modules: ModuleReport[];
  /** Nicknames read from disk by this call (the rest came from the cache). */
  loaded: string[];
  warnings: string[];
}

/** `GET /v1/list_loras` (spec 6.4), with the optional `strengths`. */
export interface LoraListing {
  loaded_adapters: { nickname: string; path: string }[];
  active: Partial<Record<LoraModuleName, {
    nickname: string; path: string; merged: boolean; mode: 'merged' | 'unmerged'; strength: number; strengths: number[];
  }[]>>;
}

interface CachedAdapter {
  nickname: string;
  /** The path as the caller gave it (what list_loras shows). */
  path: string;
  loaded: LoadedLora;
  alpha?: number;
  /** Bumped on every (re)load, so a module merged from an older load is re-merged. */
  generation: number;
}

interface MergedConfig { entries: ActiveAdapter[]; generations: number[] }

interface ModuleState {
  name: LoraModuleName;
  weights: LoraModuleWeights;
  backups: WeightBackups;
  /** Keys whose contents may differ from their backup. */
  dirty: Set<string>;
  merged: MergedConfig | null;
  /** The configuration last set or merged (kept across unmerge, for merge_lora_weights). */
  lastSet: ActiveAdapter[] | null;
}

export interface LoraManagerOptions {
  /** Family name ("wan"), pipeline class ("WanPipeline") or a LoraFamily. */
  family: string | LoraFamily;
  /** The pipeline's LoRA-capable modules that exist. */
  modules: Partial<Record<LoraModuleName, LoraModuleWeights>>;
}

const sameEntries = (a: readonly ActiveAdapter[], b: readonly ActiveAdapter[]): boolean =>
  a.length === b.length && a.every((e, i) => e.nickname === b[i]!.nickname && e.strength === b[i]!.strength);

const sameNicknameSet = (a: readonly ActiveAdapter[], b: readonly ActiveAdapter[]): boolean => {
  const x = a.map((e) => e.nickname).sort(), y = b.map((e) => e.nickname).sort();
  return x.length === y.length && x.every((n, i) => n === y[i]);
};

function checkUnique(entries: readonly ActiveAdapter[], module: string): void {
  const seen = new Set<string>();
  for (const e of entries) {
    if (seen.has(e.nickname)) throw new LoraError('invalid_argument', `adapter ${e.nickname} is listed twice for ${module}`, 'lora_nickname');
    seen.add(e.nickname);
  }
}

function checkStrength(strength: number, nickname: string): void {
  if (typeof strength !== 'number' || !Number.isFinite(strength)) {
    throw new LoraError('invalid_argument', `strength of ${nickname} must be a finite number, got ${strength}`, 'strength');
  }
}

export class LoraManager {
  readonly family: LoraFamily;
  readonly #cache = new Map<string, CachedAdapter>();
  readonly #modules = new Map<LoraModuleName, ModuleState>();
  #generation = 0;

  constructor(options: LoraManagerOptions) {
    this.family = typeof options.family === 'string' ? loraFamily(options.family) : options.family;
    for (const name of LORA_MODULES) {
      const weights = options.modules[name];
      if (weights) this.#modules.set(name, { name, weights, backups: new WeightBackups(), dirty: new Set(), merged: null, lastSet: null });
    }
    if (this.#modules.size === 0) throw new Error('sgld: LoraManager needs at least one module');
  }

  /** The pipeline's modules that LoRAs can target, in canonical order. */
  get modules(): LoraModuleName[] { return [...this.#modules.keys()]; }

  /** The modules a target names. Throws invalid_target / target_not_available (both 400, param target). */
  resolveTarget(target: string | readonly string[]): LoraModuleName[] {
    const targets = typeof target === 'string' ? [target] : [...target];
    const invalid = targets.filter((t) => !(LORA_TARGETS as readonly string[]).includes(t));
    if (invalid.length) {
      throw new LoraError('invalid_target', `Invalid target(s): ${JSON.stringify(invalid)}. Valid targets: ${JSON.stringify(LORA_TARGETS)}`, 'target');
    }
    const out = new Set<LoraModuleName>();
    for (const t of targets) {
      if (t === 'all') { for (const m of this.#modules.keys()) out.add(m); continue; }
      const m = t as LoraModuleName;
      if (!this.#modules.has(m)) {
        throw new LoraError('target_not_available', `This pipeline has no module "${m}" (it has: ${this.modules.join(', ')})`, 'target');
      }
      out.add(m);
    }
    return LORA_MODULES.filter((m) => out.has(m));
  }

  // ---- the adapter cache -------------------------------------------------------------------------------------

  /** Reads `path` and caches it under `nickname` (replacing what was cached under it). */
  load(nickname: string, path: string, options: { alpha?: number } = {}): LoraAdapter {
    if (typeof nickname !== 'string' || nickname.length === 0) throw new LoraError('invalid_argument', 'lora_nickname must be a non-empty string', 'lora_nickname');
    const loaded = loadLoraFile(path, this.family, { alpha: options.alpha });
    const prev = this.#cache.get(nickname);
    if (prev) this.#cache.delete(nickname);
    this.#cache.set(nickname, { nickname, path, loaded, alpha: options.alpha, generation: ++this.#generation });
    return loaded.adapter;
  }

  /**
   * The cached adapter for `nickname`, (re)loading it when a path is given and differs from the cached one, the
   * file changed on disk, or the alpha override changed. Returns whether it was read from disk.
   */
  ensureLoaded(nickname: string, path?: string | null, options: { alpha?: number } = {}): { adapter: LoraAdapter; loaded: boolean } {
    const cached = this.#cache.get(nickname);
    if (path === undefined || path === null) {
      if (!cached) {
        throw new LoraError('lora_not_loaded', `Adapter ${nickname} not found in the pipeline. Please provide lora_path to load it.`, 'lora_path');
      }
      return { adapter: cached.loaded.adapter, loaded: false };
    }
    if (cached && cached.path === path && cached.alpha === options.alpha && !this.#fileChanged(cached)) {
      return { adapter: cached.loaded.adapter, loaded: false };
    }
    return { adapter: this.load(nickname, path, options), loaded: true };
  }

  #fileChanged(c: CachedAdapter): boolean {
    try {
      const st = statSync(c.loaded.file);
      return st.size !== c.loaded.size || st.mtimeMs !== c.loaded.mtimeMs;
    } catch {
      return true;
    }
  }

  adapter(nickname: string): LoraAdapter | undefined { return this.#cache.get(nickname)?.loaded.adapter; }

  /** Every cached nickname with its path, in load order. */
  loadedAdapters(): { nickname: string; path: string }[] {
    return [...this.#cache.values()].map((c) => ({ nickname: c.nickname, path: c.path }));
  }

  // ---- merging ---------------------------------------------------------------------------------------------

  #cached(nickname: string): CachedAdapter {
    const c = this.#cache.get(nickname);
    if (!c) throw new LoraError('lora_not_loaded', `Adapter ${nickname} not found in the pipeline. Please provide lora_path to load it.`, 'lora_path');
    return c;
  }

  #state(module: LoraModuleName): ModuleState {
    const s = this.#modules.get(module);
    if (!s) throw new LoraError('target_not_available', `This pipeline has no module "${module}" (it has: ${this.modules.join(', ')})`, 'target');
    return s;
  }

  #plan(state: ModuleState, entries: readonly ActiveAdapter[]): WeightUpdate[] {
    return planMerge(state.weights, entries.map((e) => ({
      adapter: this.#cached(e.nickname).loaded.adapter, strength: e.strength, label: `LoRA "${e.nickname}"`,
    })));
  }

  #isMerged(state: ModuleState, entries: readonly ActiveAdapter[]): boolean {
    const m = state.merged;
    return !!m && sameEntries(m.entries, entries) && entries.every((e, i) => this.#cached(e.nickname).generation === m.generations[i]);
  }

  /** Writes the backups of every dirty weight back. */
  #restore(state: ModuleState): number {
    const t0 = performance.now();
    for (const key of state.dirty) state.backups.restore(key);
    state.dirty.clear();
    state.merged = null;
    return performance.now() - t0;
  }

  #execute(state: ModuleState, entries: readonly ActiveAdapter[], plan: WeightUpdate[]): ModuleReport {
    const report: ModuleReport = { module: state.name, changed: true, weights: plan.length, restoreMs: 0, backupMs: 0, mergeMs: 0 };
    report.restoreMs = this.#restore(state);
    try {
      for (const u of plan) {
        let t0 = performance.now();
        state.backups.save(u.weightKey, u.weight);
        state.dirty.add(u.weightKey);
        if (u.biasKey && u.bias) {
          state.backups.save(u.biasKey, u.bias);
          state.dirty.add(u.biasKey);
        }
        report.backupMs += performance.now() - t0;
        t0 = performance.now();
        applyUpdate(u);
        report.mergeMs += performance.now() - t0;
      }
      state.weights.device.synchronize();
    } catch (e) {
      // Leave the module at its base weights rather than half merged.
      this.#restore(state);
      throw e;
    }
    state.merged = { entries: entries.map((e) => ({ ...e })), generations: entries.map((e) => this.#cached(e.nickname).generation) };
    state.lastSet = entries.map((e) => ({ ...e }));
    return report;
  }

  /**
   * Makes `entries` (cached nicknames, in order, each with its strength) the merged configuration of `module`:
   * restores the base weights of what was merged before, then merges these. Does nothing when exactly this
   * configuration of these loads is merged already. An empty list just unmerges.
   */
  apply(module: LoraModuleName, entries: readonly ActiveAdapter[]): ModuleReport {
    const state = this.#state(module);
    for (const e of entries) checkStrength(e.strength, e.nickname);
    checkUnique(entries, module);
    if (this.#isMerged(state, entries)) return { module, changed: false, weights: 0, restoreMs: 0, backupMs: 0, mergeMs: 0 };
    if (entries.length === 0) {
      const restoreMs = this.#restore(state);
      return { module, changed: true, weights: 0, restoreMs, backupMs: 0, mergeMs: 0 };
    }
    return this.#execute(state, entries, this.#plan(state, entries));
  }

  /**
   * `POST /v1/set_lora` (spec 6.1) on normalised entries: loads or reuses each adapter, groups them by module in
   * list order and merges them. Refuses (409 lora_already_merged, nothing changed) when a targeted module has a
   * different set of nicknames merged; the same nicknames at other strengths are re-merged.
   */
  set(entries: readonly SetLoraEntry[]): SetLoraReport {
    if (entries.length === 0) throw new LoraError('invalid_argument', 'lora_nickname must name at least one adapter', 'lora_nickname');
    // Validate everything before anything changes.
    const perModule = new Map<LoraModuleName, ActiveAdapter[]>();
    for (const e of entries) {
      const strength = e.strength ?? 1;
      checkStrength(strength, e.nickname);
      if ((e.path === undefined || e.path === null) && !this.#cache.has(e.nickname)) this.#cached(e.nickname);
      for (const m of this.resolveTarget(e.target ?? 'all')) {
        let list = perModule.get(m);
        if (!list) perModule.set(m, (list = []));
        list.push({ nickname: e.nickname, strength });
      }
    }
    for (const [m, list] of perModule) {
      checkUnique(list, m);
      const merged = this.#state(m).merged;
      if (merged && !sameNicknameSet(merged.entries, list)) {
        const current = merged.entries.map((x) => x.nickname).join(',');
        throw new LoraError('lora_already_merged', `LoRA '${current}' is currently merged in ${m}. Call /v1/unmerge_lora_weights before setting a new LoRA.`);
      }
    }
    const loaded: string[] = [];
    const warnings = new Set<string>();
    // What the cache held before this call: a refused set_lora (unreadable or incompatible file) must leave the
    // cache as it was, so a good adapter cached under the same nickname stays usable.
    const before = new Map<string, CachedAdapter | undefined>();
    let plans: { state: ModuleState; list: ActiveAdapter[]; plan: WeightUpdate[] | null }[];
    try {
      for (const e of entries) {
        if (!before.has(e.nickname)) before.set(e.nickname, this.#cache.get(e.nickname));
        const r = this.ensureLoaded(e.nickname, e.path, { alpha: e.alpha });
        if (r.loaded) loaded.push(e.nickname);
        for (const w of r.adapter.warnings) warnings.add(`${e.nickname}: ${w}`);
      }
      // Plan every module first so an incompatible adapter fails before any module changes.
      plans = [...perModule].map(([m, list]) => {
        const state = this.#state(m);
        return { state, list, plan: this.#isMerged(state, list) ? null : this.#plan(state, list) };
      });
    } catch (err) {
      for (const [nickname, cached] of before) {
        if (cached) this.#cache.set(nickname, cached);
        else this.#cache.delete(nickname);
      }
      throw err;
    }
    const modules = plans.map(({ state, list, plan }) => plan
      ? this.#execute(state, list, plan)
      : { module: state.name, changed: false, weights: 0, restoreMs: 0, backupMs: 0, mergeMs: 0 });
    return { modules, loaded, warnings: [...warnings] };
  }

  /**
   * `POST /v1/merge_lora_weights` (spec 6.2): re-merges the configuration last set on the target's modules with
   * every adapter at `strength` (nothing happens where that is merged already). 409 lora_not_set for a module
   * named explicitly that never had an adapter set; with `all`, modules never set are skipped (409 if all are).
   */
  merge(target: string = 'all', strength = 1): ModuleReport[] {
    const modules = this.resolveTarget(target);
    const set = modules.filter((m) => this.#state(m).lastSet);
    const unset = modules.filter((m) => !this.#state(m).lastSet);
    if (set.length === 0 || (target !== 'all' && unset.length > 0)) {
      throw new LoraError('lora_not_set', `No LoRA adapter has been set on ${listSome(unset)}; call /v1/set_lora first`);
    }
    checkStrength(strength, 'merge');
    const plans = set.map((m) => {
      const state = this.#state(m);
      const list = state.lastSet!.map((e) => ({ nickname: e.nickname, strength }));
      return { state, list, plan: this.#isMerged(state, list) ? null : this.#plan(state, list) };
    });
    return plans.map(({ state, list, plan }) => plan
      ? this.#execute(state, list, plan)
      : { module: state.name, changed: false, weights: 0, restoreMs: 0, backupMs: 0, mergeMs: 0 });
  }

  /** `POST /v1/unmerge_lora_weights` (spec 6.3): restores the base weights byte for byte. Idempotent. */
  unmerge(target: string = 'all'): ModuleReport[] {
    return this.resolveTarget(target).map((m) => {
      const state = this.#state(m);
      const weights = state.dirty.size;
      const restoreMs = this.#restore(state);
      state.weights.device.synchronize();
      return { module: m, changed: weights > 0, weights, restoreMs, backupMs: 0, mergeMs: 0 };
    });
  }

  /** What is merged in `module` (null when nothing). */
  mergedIn(module: LoraModuleName): ActiveAdapter[] | null {
    const m = this.#state(module).merged;
    return m ? m.entries.map((e) => ({ ...e })) : null;
  }

  /** `GET /v1/list_loras` (spec 6.4). */
  list(): LoraListing {
    const active: LoraListing['active'] = {};
    for (const [name, state] of this.#modules) {
      const m = state.merged;
      if (!m || m.entries.length === 0) continue;
      active[name] = [{
        nickname: m.entries.map((e) => e.nickname).join(','),
        path: m.entries.map((e) => this.#cache.get(e.nickname)?.path ?? '').join(','),
        merged: true,
        mode: 'merged',
        strength: m.entries[0]!.strength,
        strengths: m.entries.map((e) => e.strength),
      }];
    }
    return { loaded_adapters: this.loadedAdapters(), active };
  }

  /** Host memory held by backups of base weights (kept after unmerge so the next merge needs no download). */
  get backupBytes(): number {
    let n = 0;
    for (const s of this.#modules.values()) n += s.backups.bytes;
    return n;
  }

  /** Frees the backups of modules that have nothing merged (the next merge copies the weights again). */
  dropBackups(): void {
    for (const s of this.#modules.values()) if (s.dirty.size === 0) s.backups.drop();
  }
}
