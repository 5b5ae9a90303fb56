// Cloud storage for outputs (spec 7): SGLang's SGLANG_* settings, an S3 uploader, and the publisher the engine
// calls after writing a job's outputs. See docs/storage.md.
export { CLOUD_STORAGE_ENV, DEFAULT_S3_REGION, type S3StorageConfig, cloudStorageFromEnv } from './config.js';
export { contentTypeForKey, objectUrl } from './object-url.js';
export { OutputPublisher } from './output-publisher.js';
export { S3Uploader } from './s3-uploader.js';
