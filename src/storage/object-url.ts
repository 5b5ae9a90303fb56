// Public URL and content type of an uploaded output (spec 7), the same forms SGLang returns.
import { extname } from 'node:path';
import type { S3StorageConfig } from './config.js';

/**
 * `{endpoint}/{bucket}/{key}` for a custom endpoint (path-style, as the client addresses it), else the AWS
 * virtual-hosted form `https://{bucket}.s3.{region}.amazonaws.com/{key}`. Key segments are percent-encoded; sgld's
 * keys (`{uuid}.{ext}`, `{uuid}_{i}.{ext}`) come out unchanged.
 */
export function objectUrl(config: S3StorageConfig, key: string): string {
  const path = key.split('/').map(encodeURIComponent).join('/');
  if (config.endpointUrl !== null) return `${config.endpointUrl}/${encodeURIComponent(config.bucket)}/${path}`;
  return `https://${config.bucket}.s3.${config.region}.amazonaws.com/${path}`;
}

const CONTENT_TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.mp4': 'video/mp4',
};

/** Content type stored with an object, from its key's extension (spec 7); unknown ones are plain bytes. */
export function contentTypeForKey(key: string): string {
  return CONTENT_TYPES[extname(key).toLowerCase()] ?? 'application/octet-stream';
}
