// sgld's public embedding API: start the engine in this process (no HTTP), submit image and video jobs, follow
// their progress, stop. `sgld serve` is this engine behind the HTTP front. docs/embedding.md has an example.
import type { EngineOptions } from './actors/engine-options.js';
import { Supervisor } from './actors/supervisor.js';

export type Engine = Supervisor;

/**
 * Starts an engine and waits until its model is loaded (the DeviceActor's worker thread loads it). Rejects, with
 * nothing left running, when the model cannot be served.
 */
export async function startEngine(options: EngineOptions = {}): Promise<Engine> {
  const engine = new Supervisor(options);
  try {
    await engine.ready();
  } catch (e) {
    await engine.stop({ drainTimeoutMs: 0 });
    throw e;
  }
  return engine;
}

export { Supervisor } from './actors/supervisor.js';
export { EMBEDDED_MODEL_DIR, type EngineOptions, type FaultRule, type StartupLora } from './actors/engine-options.js';
export { imageJob, videoJob } from './actors/job-defaults.js';
export type { EngineLimits } from './actors/job-plan.js';
export * from './actors/api.js';
export * from './kernel/index.js';
export { loadNativeLibrary, type NativeLibrary } from './runtime/native.js';
