// Where a step or a noising starts in the schedule, the way diffusers finds it: an explicit begin index wins;
// otherwise the timestep is looked up in `timesteps`.
import { SchedulerUsageError } from './types.js';

/** What a lookup does when the timestep is not in the schedule: UniPC takes the last index, FlowMatch refuses. */
export type MissingTimestep = 'last' | 'error';

/**
 * diffusers' `index_for_timestep`: the position of `timestep` in the schedule; when it occurs more than once,
 * the second occurrence, so a run that starts mid-schedule (image-to-image) never skips a sigma.
 */
export function indexForTimestep(timesteps: Float64Array, timestep: number, missing: MissingTimestep): number {
  let first = -1;
  for (let i = 0; i < timesteps.length; i++) {
    if (timesteps[i] !== timestep) continue;
    if (first >= 0) return i;
    first = i;
  }
  if (first >= 0) return first;
  if (missing === 'last') return timesteps.length - 1;
  throw new SchedulerUsageError(`timestep ${timestep} is not one of the scheduler's timesteps`);
}

/**
 * Which sigma index noising uses for each batch item (diffusers' add_noise / scale_noise): looked up when no
 * begin index is set; the current step index when denoising has started (inpainting); else the begin index.
 */
export function noiseStepIndices(timesteps: Float64Array, requested: readonly number[], beginIndex: number | null,
  stepIndex: number | null, missing: MissingTimestep): number[] {
  if (beginIndex === null) return requested.map((t) => indexForTimestep(timesteps, t, missing));
  return requested.map(() => stepIndex ?? beginIndex);
}
