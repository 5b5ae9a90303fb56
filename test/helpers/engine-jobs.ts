// In-process engine tests' shared pieces: a logger that records, job parameters around one base request, a job's
// events up to its end, and one picture's raw pixels.
import sharp from 'sharp';
import type { GenerationParams, ImageJobParams, JobEvent, VideoJobParams } from '../../src/actors/api.js';
import type { Supervisor } from '../../src/actors/supervisor.js';
import type { LogFields, Logger } from '../../src/kernel/index.js';

export interface LogLine { level: string; message: string; fields?: LogFields }

/** A Logger that keeps every line in `lines`. */
export function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const log = (level: string) => (message: string, fields?: LogFields) => void lines.push({ level, message, fields });
  return { lines, debug: log('debug'), info: log('info'), warn: log('warn'), error: log('error') };
}

/** Image (PNG) and video (5 frames at 8 fps) job parameters built on `base`. */
export function jobParams(base: GenerationParams) {
  return {
    imageParams: (over: Partial<ImageJobParams> = {}): ImageJobParams => ({ ...base, format: 'png', level: 75, inputs: [], ...over }),
    videoParams: (over: Partial<VideoJobParams> = {}): VideoJobParams => ({ ...base, fps: 8, numFrames: 5, level: 50, ...over }),
  };
}

/** The terminal event of a job, with every event before it (subscribe before the job can end). */
export function finished(engine: Supervisor, id: string): Promise<JobEvent[]> {
  const seen: JobEvent[] = [];
  return new Promise((resolve) => {
    const stop = engine.subscribe((e) => {
      seen.push(e);
      if (e.type === 'completed' || e.type === 'failed') { stop(); resolve(seen); }
    }, { jobId: id });
  });
}

/** Raw RGB pixels of one image job's first output. */
export async function picture(engine: Supervisor, params: ImageJobParams): Promise<Buffer> {
  return sharp((await (await engine.submitImageJob(params)).result).images[0]!).raw().toBuffer();
}
