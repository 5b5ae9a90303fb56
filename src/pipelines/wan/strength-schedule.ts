// How much of the schedule Wan image-to-image runs for a `strength` (diffusers v0.36.0 video-to-video
// get_timesteps). Kept apart from the pipeline so a server can check a request without loading model code.

/** WanVideoToVideoPipeline's default strength. */
export const WAN_IMAGE_TO_IMAGE_STRENGTH = 0.8;

/**
 * The index of the first timestep that runs, for `steps` steps at `strength`: steps - min(int(steps * strength),
 * steps), never below 0. Equal to `steps` when no step would run.
 */
export function wanImageToImageStart(steps: number, strength: number): number {
  const init = Math.min(Math.trunc(steps * strength), steps);
  return Math.max(steps - init, 0);
}
