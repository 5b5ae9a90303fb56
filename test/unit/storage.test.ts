// Cloud storage pieces (spec 7) without an engine: the SGLANG_* settings, the URL forms, content types, and the
// OutputPublisher against s3rver on loopback (success from a file and from bytes, refused credentials, no server).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import t from 'tap';
import type { JobOutput, JobRecord } from '../../src/actors/api.js';
import { videoJob } from '../../src/actors/job-defaults.js';
import { Supervisor } from '../../src/actors/supervisor.js';
import type { LogFields, Logger } from '../../src/kernel/index.js';
import {
  type S3StorageConfig, OutputPublisher, cloudStorageFromEnv, contentTypeForKey, objectUrl,
} from '../../src/storage/index.js';

interface S3rverInstance { run(): Promise<{ port: number }>; close(): Promise<void> }
type S3rverClass = new (options: { address: string; port: number; silent: boolean; directory: string }) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

/** A logger that keeps its lines for assertions. */
function recordingLogger(): Logger & { lines: { level: string; message: string; fields?: LogFields }[] } {
  const lines: { level: string; message: string; fields?: LogFields }[] = [];
  const at = (level: string) => (message: string, fields?: LogFields) => { lines.push({ level, message, fields }); };
  return { lines, debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

t.test('cloudStorageFromEnv: SGLang names, defaults and refusals', async (t) => {
  const log = recordingLogger();
  t.equal(cloudStorageFromEnv({}, log), null, 'nothing set: off');
  t.equal(cloudStorageFromEnv({ SGLANG_S3_BUCKET_NAME: 'b' }, log), null, 'bucket without type: off');
  t.match(log.lines.at(-1)!.message, /SGLANG_CLOUD_STORAGE_TYPE is not/);
  t.equal(cloudStorageFromEnv({ SGLANG_CLOUD_STORAGE_TYPE: 'gcs', SGLANG_S3_BUCKET_NAME: 'b' }, log), null, 'another type: off');
  t.equal(cloudStorageFromEnv({ SGLANG_CLOUD_STORAGE_TYPE: 's3' }, log), null, 'no bucket: off (SGLang: required)');
  t.equal(cloudStorageFromEnv({ SGLANG_CLOUD_STORAGE_TYPE: 's3', SGLANG_S3_BUCKET_NAME: '  ' }, log), null, 'blank bucket: off');
  t.equal(log.lines.filter((l) => l.level === 'warn').length, 4, 'each ignored setting is warned about');

  t.same(cloudStorageFromEnv({ SGLANG_CLOUD_STORAGE_TYPE: 'S3', SGLANG_S3_BUCKET_NAME: 'outs' }), {
    type: 's3', bucket: 'outs', region: 'us-east-1', endpointUrl: null,
  }, 'type is case-insensitive; region defaults to us-east-1; no keys: the SDK default chain');
  t.same(cloudStorageFromEnv({
    SGLANG_CLOUD_STORAGE_TYPE: 's3', SGLANG_S3_BUCKET_NAME: 'outs', SGLANG_S3_ACCESS_KEY_ID: 'AK', SGLANG_S3_SECRET_ACCESS_KEY: 'SK',
    SGLANG_S3_ENDPOINT_URL: 'http://127.0.0.1:9000//', SGLANG_S3_REGION_NAME: 'eu-west-3',
  }), {
    type: 's3', bucket: 'outs', region: 'eu-west-3', endpointUrl: 'http://127.0.0.1:9000', accessKeyId: 'AK', secretAccessKey: 'SK',
  }, 'every variable read; trailing slashes of the endpoint dropped');
  const base = { SGLANG_CLOUD_STORAGE_TYPE: 's3', SGLANG_S3_BUCKET_NAME: 'outs' };
  t.throws(() => cloudStorageFromEnv({ ...base, SGLANG_S3_ENDPOINT_URL: 'minio:9000' }), /SGLANG_S3_ENDPOINT_URL=minio:9000 must be an http/);
  t.throws(() => cloudStorageFromEnv({ ...base, SGLANG_S3_ENDPOINT_URL: 'not a url' }), /is not a URL/);
  t.throws(() => cloudStorageFromEnv({ ...base, SGLANG_S3_ACCESS_KEY_ID: 'AK' }), /set both/);
});

t.test('objectUrl and contentTypeForKey: the forms of spec 7', async (t) => {
  const aws: S3StorageConfig = { type: 's3', bucket: 'outs', region: 'us-west-2', endpointUrl: null };
  t.equal(objectUrl(aws, 'a.png'), 'https://outs.s3.us-west-2.amazonaws.com/a.png');
  t.equal(objectUrl({ ...aws, endpointUrl: 'http://minio:9000' }, 'a_1.mp4'), 'http://minio:9000/outs/a_1.mp4');
  t.equal(objectUrl(aws, 'a b#.png'), 'https://outs.s3.us-west-2.amazonaws.com/a%20b%23.png', 'keys are percent-encoded');
  t.same(['x.png', 'x.jpg', 'x.JPEG', 'x.webp', 'x.mp4', 'x.bin'].map(contentTypeForKey),
    ['image/png', 'image/jpeg', 'image/jpeg', 'image/webp', 'video/mp4', 'application/octet-stream']);
});

t.test('OutputPublisher against s3rver', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'sgld-storage-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const s3rver = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: join(dir, 's3rver') });
  const { port } = await s3rver.run();
  t.teardown(() => s3rver.close());
  const endpointUrl = `http://127.0.0.1:${port}`;
  const config: S3StorageConfig = { type: 's3', bucket: 'outs', region: 'us-east-1', endpointUrl, accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };
  const s3 = new S3Client({ endpoint: endpointUrl, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  t.teardown(() => s3.destroy());
  await s3.send(new CreateBucketCommand({ Bucket: 'outs' }));
  const stored = async (key: string): Promise<{ type?: string; bytes: Buffer }> => {
    const o = await s3.send(new GetObjectCommand({ Bucket: 'outs', Key: key }));
    return { type: o.ContentType, bytes: Buffer.from(await o.Body!.transformToByteArray()) };
  };
  const id = '0b8c3c52-7a38-4d62-9d8e-5b0e7c1b9a10';
  const output = (index: number, path: string | null, contentType: string): JobOutput => ({ index, path, cloudUrl: null, contentType, bytes: 4, width: 2, height: 2 });

  t.test('off: publish changes nothing', async (t) => {
    const publisher = new OutputPublisher(null, recordingLogger());
    t.equal(publisher.enabled, false);
    const o = output(0, join(dir, 'none.png'), 'image/png');
    await publisher.publish(id, [o], [Buffer.from('x')]);
    t.same([o.path, o.cloudUrl], [join(dir, 'none.png'), null]);
  });

  t.test('a file on disk and in-memory bytes without a file (persistence off)', async (t) => {
    const log = recordingLogger();
    const publisher = new OutputPublisher(config, log);
    t.teardown(() => publisher.close());
    t.equal(publisher.enabled, true);
    const video = join(dir, `${id}_0.mp4`);
    writeFileSync(video, Buffer.from('not really an mp4, but bytes'));
    const fromDisk = output(0, video, 'video/mp4');
    const fromBytes = output(1, null, 'image/webp');
    const missing = output(2, null, 'video/mp4');
    const encoded: Uint8Array[] = [];
    encoded[1] = Buffer.from('webp bytes');  // only output 1 is in memory
    await publisher.publish(id, [fromDisk, fromBytes, missing], encoded);
    t.same(fromDisk, { ...fromDisk, path: null, cloudUrl: `${endpointUrl}/outs/${id}_0.mp4` }, 'uploaded from disk, path cleared');
    t.notOk(existsSync(video), 'local file deleted');
    t.same(await stored(`${id}_0.mp4`), { type: 'video/mp4', bytes: Buffer.from('not really an mp4, but bytes') });
    t.equal(fromBytes.cloudUrl, `${endpointUrl}/outs/${id}_1.webp`, 'key from the spec 7 naming when there is no file');
    t.same(await stored(`${id}_1.webp`), { type: 'image/webp', bytes: Buffer.from('webp bytes') });
    t.equal(missing.cloudUrl, null, 'an output kept nowhere is skipped');
    t.ok(log.lines.some((l) => l.level === 'warn' && /not uploaded/.test(l.message)), 'and the skip is logged');
  });

  t.test('refused credentials: logged with the service error, file and path kept', async (t) => {
    const log = recordingLogger();
    const publisher = new OutputPublisher({ ...config, accessKeyId: 'NOT-A-KEY' }, log);
    t.teardown(() => publisher.close());
    const image = join(dir, `${id}.png`);
    writeFileSync(image, Buffer.from('png bytes'));
    const o = output(0, image, 'image/png');
    await publisher.publish(id, [o], [Buffer.from('png bytes')]);
    t.same([o.path, o.cloudUrl], [image, null]);
    t.equal(readFileSync(image, 'utf8'), 'png bytes', 'local file untouched');
    const error = log.lines.find((l) => l.level === 'error');
    t.match(error?.fields?.error, /InvalidAccessKeyId.*HTTP 403/, 'the log line names the S3 error and status');
  });

  t.test('nothing listening at the endpoint: the upload fails, the file stays', async (t) => {
    // A port that was free a moment ago: connection refused.
    const free = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const log = recordingLogger();
    const publisher = new OutputPublisher({ ...config, endpointUrl: `http://127.0.0.1:${free}` }, log);
    t.teardown(() => publisher.close());
    const image = join(dir, `${id}.jpg`);
    writeFileSync(image, Buffer.from('jpeg bytes'));
    const o = output(0, image, 'image/jpeg');
    const t0 = performance.now();
    await publisher.publish(id, [o]);
    t.same([o.path, o.cloudUrl], [image, null]);
    t.ok(existsSync(image));
    t.match(log.lines.find((l) => l.level === 'error')?.fields?.error, /ECONNREFUSED/);
    t.comment(`failed after ${(performance.now() - t0).toFixed(0)} ms (the SDK's retries included)`);
  });

  t.test('engine with persistence off (--output-path ""): a video is uploaded under its spec 7 name', async (t) => {
    const engine = new Supervisor({ outputPath: null, inputSavePath: null, threads: 2, encoderThreads: 1, logger: recordingLogger(), cloudStorage: config });
    t.teardown(() => engine.stop({ drainTimeoutMs: 0 }));
    await engine.ready();
    const job = await engine.submitVideoJob(videoJob({ prompt: 'a kite', width: 32, height: 32, numInferenceSteps: 1, numFrames: 5 }, 5));
    const done = await new Promise<JobRecord>((resolve) => {
      const stop = engine.subscribe((e) => { if (e.type === 'completed' || e.type === 'failed') { stop(); void engine.getJob(job.id).then((j) => resolve(j!)); } }, { jobId: job.id });
    });
    t.equal(done.status, 'completed');
    t.same([done.outputs[0]!.path, done.outputs[0]!.cloudUrl], [null, `${endpointUrl}/outs/${job.id}.mp4`], 'no local path, the cloud URL');
    const object = await stored(`${job.id}.mp4`);
    t.equal(object.type, 'video/mp4');
    t.equal(object.bytes.subarray(4, 8).toString(), 'ftyp', 'an MP4 in the bucket');
  });
});
