// The schedulers sgld runs, chosen from a checkpoint's scheduler/scheduler_config.json by its `_class_name`.
import type { RawSchedulerConfig } from './config-reader.js';
import { FlowMatchEulerDiscreteScheduler } from './flow-match-euler.js';
import { type FlowScheduler, SchedulerConfigError } from './types.js';
import { UniPCMultistepScheduler } from './unipc-multistep.js';

export { FlowMatchEulerDiscreteScheduler, parseFlowMatchEulerConfig } from './flow-match-euler.js';
export { UniPCMultistepScheduler, parseUniPCConfig } from './unipc-multistep.js';
export { calculateShift, DEFAULT_SHIFT_LINE, type ShiftLine } from './flow-shift.js';
export {
  type FlowScheduler, type SchedulerClassName, SchedulerConfigError, SchedulerUsageError, type SetTimestepsOptions,
} from './types.js';
export type { RawSchedulerConfig } from './config-reader.js';

const SCHEDULERS: Record<string, new (config: RawSchedulerConfig) => FlowScheduler> = {
  UniPCMultistepScheduler,
  FlowMatchEulerDiscreteScheduler,
};

/** Builds the scheduler a parsed scheduler_config.json names; unknown classes and unsupported keys throw. */
export function createScheduler(config: RawSchedulerConfig): FlowScheduler {
  if (config === null || typeof config !== 'object' || Array.isArray(config)) {
    throw new SchedulerConfigError('scheduler', null, 'the config must be a JSON object');
  }
  const className = config['_class_name'];
  const Scheduler = typeof className === 'string' && Object.hasOwn(SCHEDULERS, className) ? SCHEDULERS[className] : undefined;
  if (Scheduler === undefined) {
    throw new SchedulerConfigError('scheduler', '_class_name',
      `${JSON.stringify(className)} is not supported (supported: ${Object.keys(SCHEDULERS).join(', ')})`);
  }
  return new Scheduler(config);
}
