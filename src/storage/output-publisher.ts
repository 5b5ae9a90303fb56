// What the engine calls once a job's outputs are encoded and written (spec 7): each output goes to cloud storage
// under its file name; on success the local file is deleted and the output carries the cloud URL instead of a
// path, so responses and the video job's `url` point at the bucket and content routes answer 400 with that URL.
// A failed upload is logged and changes nothing: the local file stays and the relative content URL is used.
// Without cloud storage every call is a no-op.
import { readFile, rm } from 'node:fs/promises';
import { basename } from 'node:path';
import type { JobOutput } from '../actors/api.js';
import type { Logger } from '../kernel/index.js';
import { type S3StorageConfig, cloudStorageFromEnv } from './config.js';
import { S3Uploader } from './s3-uploader.js';

const EXTENSION_OF: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'video/mp4': 'mp4' };

export class OutputPublisher {
  readonly #uploader: S3Uploader | null;

  /** `config` undefined: from the SGLANG_* environment variables; null: no cloud storage. */
  constructor(config: S3StorageConfig | null | undefined, private readonly log: Logger) {
    const resolved = config === undefined ? cloudStorageFromEnv(process.env, log) : config;
    this.#uploader = resolved === null ? null : new S3Uploader(resolved);
    if (resolved !== null) {
      log.info('cloud storage: outputs are uploaded and then removed locally', {
        bucket: resolved.bucket, endpoint: resolved.endpointUrl ?? `https://${resolved.bucket}.s3.${resolved.region}.amazonaws.com`,
      });
    }
  }

  /** Whether outputs go to cloud storage (then `url` responses work even without --output-path). */
  get enabled(): boolean { return this.#uploader !== null; }

  /**
   * Uploads the outputs of job `jobId` (all at once) and updates each `JobOutput` in place. `encoded[i]`, when
   * given, are output i's bytes (images keep them for b64_json); otherwise the file at `path` is read. Outputs that
   * are neither in memory nor on disk (videos with persistence off) cannot be uploaded. Never rejects.
   */
  async publish(jobId: string, outputs: JobOutput[], encoded: readonly Uint8Array[] = []): Promise<void> {
    const uploader = this.#uploader;
    if (uploader === null) return;
    await Promise.all(outputs.map(async (output, i) => {
      const key = output.path !== null ? basename(output.path) : keyFor(jobId, i, outputs.length, output.contentType);
      let body = encoded[i];
      try {
        if (body === undefined) {
          if (output.path === null) {
            this.log.warn('cloud storage: output not kept anywhere (persistence is off), not uploaded', { jobId, key });
            return;
          }
          body = await readFile(output.path);
        }
        output.cloudUrl = await uploader.upload(key, body);
      } catch (error) {
        this.log.error('cloud storage: upload failed; the output stays on local disk', {
          jobId, key, bucket: uploader.config.bucket, error: describeUploadError(error),
        });
        return;
      }
      this.log.info('cloud storage: uploaded', { jobId, key, url: output.cloudUrl });
      if (output.path !== null) {
        try {
          await rm(output.path);
          output.path = null;
        } catch (error) {
          // The file stays listed and served; the cloud URL is still returned.
          this.log.warn('cloud storage: uploaded, but the local file could not be removed', { path: output.path, error: (error as Error).message });
        }
      }
    }));
  }

  /** Releases the storage client (call on engine stop). */
  async close(): Promise<void> {
    await this.#uploader?.close();
  }
}

/** The file name an output would have had on disk (spec 7 naming), for outputs that were never written. */
function keyFor(jobId: string, index: number, n: number, contentType: string): string {
  const extension = EXTENSION_OF[contentType] ?? 'bin';
  return n === 1 ? `${jobId}.${extension}` : `${jobId}_${index}.${extension}`;
}

/** The AWS SDK's errors carry the service's code and HTTP status; keep them in the log line. */
function describeUploadError(error: unknown): string {
  const e = error as { name?: string; message?: string; $metadata?: { httpStatusCode?: number } };
  const status = e.$metadata?.httpStatusCode;
  return `${e.name ?? 'Error'}: ${e.message ?? String(error)}${status !== undefined ? ` (HTTP ${status})` : ''}`;
}
