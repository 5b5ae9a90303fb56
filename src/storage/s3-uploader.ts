// Puts objects into an S3-compatible bucket with the AWS SDK (v3). The SDK is imported on first use, so a server
// without cloud storage never pays its load time (about 0.3 s here).
import type { S3Client } from '@aws-sdk/client-s3';
import type { S3StorageConfig } from './config.js';
import { contentTypeForKey, objectUrl } from './object-url.js';

/** Socket limits: a storage endpoint that stops answering fails the upload instead of holding the job forever. */
const CONNECT_TIMEOUT_MS = 10_000;
const IDLE_SOCKET_TIMEOUT_MS = 60_000;

export class S3Uploader {
  #client: Promise<S3Client> | undefined;

  constructor(readonly config: S3StorageConfig) {}

  /** Uploads `body` as `key` with the content type of its extension; resolves to the object's public URL. */
  async upload(key: string, body: Uint8Array): Promise<string> {
    const client = await (this.#client ??= this.#createClient());
    const { PutObjectCommand } = await import('@aws-sdk/client-s3');
    await client.send(new PutObjectCommand({
      Bucket: this.config.bucket, Key: key, Body: body, ContentType: contentTypeForKey(key), ContentLength: body.byteLength,
    }));
    return objectUrl(this.config, key);
  }

  /** Closes the client's sockets (idle keep-alive sockets do not hold the process open, but a stop should be clean). */
  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (client) (await client.catch(() => undefined))?.destroy();
  }

  async #createClient(): Promise<S3Client> {
    const { S3Client } = await import('@aws-sdk/client-s3');
    const c = this.config;
    return new S3Client({
      region: c.region,
      ...(c.endpointUrl !== null ? { endpoint: c.endpointUrl, forcePathStyle: true } : {}),
      ...(c.accessKeyId !== undefined && c.secretAccessKey !== undefined
        ? { credentials: { accessKeyId: c.accessKeyId, secretAccessKey: c.secretAccessKey } } : {}),
      // The SDK's default since early 2025 adds CRC32 checksum headers to every PUT; several S3-compatible servers
      // reject or mishandle them, and nothing here needs them (the body is sent whole, with its length).
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      requestHandler: { connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: IDLE_SOCKET_TIMEOUT_MS },
    });
  }
}
