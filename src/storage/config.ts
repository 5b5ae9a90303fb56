// Cloud storage settings (spec 7), read from SGLang's environment variable names so a deployment configured for
// SGLang-Diffusion works unchanged. Only S3-compatible storage exists, as in SGLang.
import type { Logger } from '../kernel/index.js';

/** An S3-compatible bucket that outputs are uploaded to. */
export interface S3StorageConfig {
  type: 's3';
  bucket: string;
  /** Region the client signs for; SGLang's default is `us-east-1`. */
  region: string;
  /** A non-AWS endpoint (MinIO, s3rver, ...) without trailing slash, or null for AWS itself. */
  endpointUrl: string | null;
  /** Both absent: the AWS SDK's default credential chain (AWS_* variables, ~/.aws, instance roles), like boto3. */
  accessKeyId?: string;
  secretAccessKey?: string;
}

export const DEFAULT_S3_REGION = 'us-east-1';

/** The variables this module reads (SGLang's names). */
export const CLOUD_STORAGE_ENV = {
  type: 'SGLANG_CLOUD_STORAGE_TYPE',
  bucket: 'SGLANG_S3_BUCKET_NAME',
  accessKeyId: 'SGLANG_S3_ACCESS_KEY_ID',
  secretAccessKey: 'SGLANG_S3_SECRET_ACCESS_KEY',
  endpointUrl: 'SGLANG_S3_ENDPOINT_URL',
  region: 'SGLANG_S3_REGION_NAME',
} as const;

/**
 * The cloud storage the environment asks for, or null when it is off. As in SGLang it is on only when
 * SGLANG_CLOUD_STORAGE_TYPE is `s3` (any case) and SGLANG_S3_BUCKET_NAME is set; what SGLang would silently ignore
 * (another type, a missing bucket) is logged as a warning here. A malformed endpoint URL throws, so a typo stops
 * the server at startup instead of failing every upload.
 */
export function cloudStorageFromEnv(env: NodeJS.ProcessEnv = process.env, log?: Pick<Logger, 'warn'>): S3StorageConfig | null {
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value === undefined || value === '' ? undefined : value;
  };
  const type = read(CLOUD_STORAGE_ENV.type);
  if (type === undefined) {
    if (read(CLOUD_STORAGE_ENV.bucket) !== undefined) {
      log?.warn(`${CLOUD_STORAGE_ENV.bucket} is set but ${CLOUD_STORAGE_ENV.type} is not: cloud storage stays off (set it to s3)`);
    }
    return null;
  }
  if (type.toLowerCase() !== 's3') {
    log?.warn(`${CLOUD_STORAGE_ENV.type}=${type} is not supported (only s3): cloud storage stays off`);
    return null;
  }
  const bucket = read(CLOUD_STORAGE_ENV.bucket);
  if (bucket === undefined) {
    log?.warn(`${CLOUD_STORAGE_ENV.type}=s3 needs ${CLOUD_STORAGE_ENV.bucket}: cloud storage stays off`);
    return null;
  }
  const accessKeyId = read(CLOUD_STORAGE_ENV.accessKeyId);
  const secretAccessKey = read(CLOUD_STORAGE_ENV.secretAccessKey);
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    throw new Error(`sgld: set both ${CLOUD_STORAGE_ENV.accessKeyId} and ${CLOUD_STORAGE_ENV.secretAccessKey}, or neither (then the AWS default credentials are used)`);
  }
  return {
    type: 's3',
    bucket,
    region: read(CLOUD_STORAGE_ENV.region) ?? DEFAULT_S3_REGION,
    endpointUrl: normaliseEndpoint(read(CLOUD_STORAGE_ENV.endpointUrl)),
    ...(accessKeyId !== undefined && secretAccessKey !== undefined ? { accessKeyId, secretAccessKey } : {}),
  };
}

function normaliseEndpoint(value: string | undefined): string | null {
  if (value === undefined) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`sgld: ${CLOUD_STORAGE_ENV.endpointUrl}=${value} is not a URL (expected e.g. http://127.0.0.1:9000)`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`sgld: ${CLOUD_STORAGE_ENV.endpointUrl}=${value} must be an http:// or https:// URL`);
  }
  // SGLang strips trailing slashes before building `{endpoint}/{bucket}/{key}`.
  return value.replace(/\/+$/, '');
}
