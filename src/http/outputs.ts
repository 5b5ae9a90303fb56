// Content routes (spec 3.3, 5.8): stream one output file of a job from disk.
import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import type { ApiError, JobOutput } from '../actors/api.js';
import type { Reply } from './reply.js';

export interface OutputErrors {
  /** The file is not (or no longer) on disk. */
  missing(): ApiError;
  /** The file went to cloud storage and was removed locally. */
  cloud(url: string): ApiError;
}

export async function sendOutput(reply: Reply, output: JobOutput, errors: OutputErrors): Promise<void> {
  if (output.path === null) throw output.cloudUrl !== null ? errors.cloud(output.cloudUrl) : errors.missing();
  let size: number;
  try {
    const st = await stat(output.path);
    if (!st.isFile()) throw errors.missing();
    size = st.size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw output.cloudUrl !== null ? errors.cloud(output.cloudUrl) : errors.missing();
    throw err;
  }
  const name = basename(output.path).replace(/["\\\r\n]/g, '_');
  await reply.sendFile(output.path, size, {
    'Content-Type': output.contentType,
    'Content-Disposition': `attachment; filename="${name}"`,
  });
}
