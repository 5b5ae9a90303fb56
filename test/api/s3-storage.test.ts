// Cloud storage end to end (spec 7): s3rver (an S3-protocol server from npm) on a random loopback port with a temp
// directory, the real engine and HTTP front configured only through SGLang's SGLANG_* environment variables, the
// official `openai` SDK for the requests and the AWS SDK to look into the bucket. The tiny Wan model has random
// weights, so the checks are about where the bytes go and what the API says, not about the pictures.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, GetObjectCommand, HeadObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { APIError } from 'openai';
import sharp from 'sharp';
import t from 'tap';
import type { JobRecord } from '../../src/actors/api.js';
import { INDEX_FILE } from '../../src/actors/job-store.js';
import { ffmpegPath } from '../../src/media/video.js';
import { type RunningServer, startApiServer } from '../helpers/api-server.js';

const MODEL_DIR = new URL('../../models/wan-tiny', import.meta.url).pathname;
const SERVED_NAME = 'sgld/wan-tiny';
const BUCKET = 'sgld-outputs';
/** s3rver's built-in account. */
const S3RVER_KEY = 'S3RVER';
/** Small and quick on 2 CPU cores: 32x32 pixels, 2 denoising steps, 5 frames (Wan's 4k+1) for videos. */
const FAST = { size: '32x32', num_inference_steps: 2 } as const;

// s3rver ships no types: the part of its API used here.
interface S3rverInstance { run(): Promise<{ address: string; port: number }>; close(): Promise<void> }
type S3rverClass = new (options: { address: string; port: number; silent: boolean; directory: string }) => S3rverInstance;
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverClass;

const dir = mkdtempSync(join(tmpdir(), 'sgld-s3-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

let s3rver = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: join(dir, 's3rver') });
const { port } = await s3rver.run();
let s3rverUp = true;
t.teardown(() => (s3rverUp ? s3rver.close() : undefined));
/** (Re)starts s3rver on the first one's port and directory: the stored objects and the bucket are still there. */
async function startS3rver(): Promise<void> {
  if (s3rverUp) return;
  s3rver = new S3rver({ address: '127.0.0.1', port, silent: true, directory: join(dir, 's3rver') });
  await s3rver.run();
  s3rverUp = true;
}
async function stopS3rver(): Promise<void> {
  await s3rver.close();
  s3rverUp = false;
}
const endpoint = `http://127.0.0.1:${port}`;
const s3 = new S3Client({
  endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: S3RVER_KEY, secretAccessKey: S3RVER_KEY },
});
t.teardown(() => s3.destroy());
await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));

/** The object's stored content type and bytes. */
async function getObject(key: string): Promise<{ contentType: string | undefined; bytes: Buffer }> {
  const o = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return { contentType: o.ContentType, bytes: Buffer.from(await o.Body!.transformToByteArray()) };
}

async function objectExists(key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
    return true;
  } catch (e) {
    if ((e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode === 404) return false;
    throw e;
  }
}

/** Starts an engine + HTTP front that sees `env` as its environment's SGLANG_* variables (read at construction). */
async function startWithEnv(env: Record<string, string>, name: string): Promise<RunningServer> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await startApiServer(MODEL_DIR, join(dir, name), SERVED_NAME);
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

async function stop(run: RunningServer): Promise<void> {
  await run.server.close();
  await run.engine.stop({ drainTimeoutMs: 0 });
}

const S3_ENV: Record<string, string> = {
  SGLANG_CLOUD_STORAGE_TYPE: 's3',
  SGLANG_S3_BUCKET_NAME: BUCKET,
  SGLANG_S3_ACCESS_KEY_ID: S3RVER_KEY,
  SGLANG_S3_SECRET_ACCESS_KEY: S3RVER_KEY,
  // A trailing slash, as users write it: the URLs must not get a double slash.
  SGLANG_S3_ENDPOINT_URL: `${endpoint}/`,
};

/** Output 0's cloud URL as the job index on disk has it (written asynchronously: polled for up to 5 s). */
async function indexedCloudUrl(id: string): Promise<string | null | undefined> {
  let url: string | null | undefined;
  for (let tries = 0; tries < 100 && !url; tries++) {
    const index = JSON.parse(readFileSync(join(outputs, INDEX_FILE), 'utf8')) as { jobs: JobRecord[] };
    url = index.jobs.find((j) => j.id === id)?.outputs[0]?.cloudUrl;
    if (!url) await new Promise((r) => setTimeout(r, 50));
  }
  return url;
}

/** The error answer of a raw request: status and the spec 1.4 envelope. */
async function errorOf(url: string): Promise<{ status: number; error: { message: string; code: string | null; type: string } }> {
  const r = await fetch(url);
  return { status: r.status, error: ((await r.json()) as { error: { message: string; code: string | null; type: string } }).error };
}

async function sdkStatus(call: Promise<unknown>): Promise<number | 'resolved'> {
  try { await call; return 'resolved'; } catch (e) { if (e instanceof APIError) return e.status ?? -1; throw e; }
}

// One engine for both halves (starting one costs most of this file's time): first with s3rver up, then down.
const run = await startWithEnv(S3_ENV, 'engine');
t.teardown(() => stop(run));
const outputs = join(dir, 'engine', 'outputs');

t.test('uploads succeed: cloud URLs, objects with content types, local files gone, content routes answer 400', async (t) => {
  t.test('image, response_format url (PNG)', async (t) => {
    const img = await run.client.images.generate({ prompt: 'a lighthouse', ...FAST, response_format: 'url', output_format: 'png' } as never);
    const id = (img as unknown as { id: string }).id;
    const key = `${id}.png`;
    const entry = img.data![0]! as { url: string | null; b64_json?: string | null; file_path?: string | null };
    t.equal(entry.url, `${endpoint}/${BUCKET}/${key}`, 'url is {endpoint}/{bucket}/{key}, key = the file name');
    t.notOk(entry.b64_json, 'no b64_json with response_format url');
    t.equal(entry.file_path, null, 'no local path after the upload');
    t.notOk(existsSync(join(outputs, key)), 'the local file was deleted');

    const object = await getObject(key);
    t.equal(object.contentType, 'image/png');
    const meta = await sharp(object.bytes).metadata();
    t.same([meta.format, meta.width, meta.height], ['png', 32, 32], 'the object decodes as a 32x32 PNG');
    const viaUrl = await fetch(entry.url!);
    t.equal(viaUrl.status, 200, 'the returned URL serves the object');
    t.ok(Buffer.from(await viaUrl.arrayBuffer()).equals(object.bytes), 'same bytes through the URL');

    const content = await errorOf(`${run.base}/v1/images/${id}/content`);
    t.equal(content.status, 400);
    t.equal(content.error.code, 'uploaded_to_cloud');
    t.equal(content.error.type, 'invalid_request_error');
    t.ok(content.error.message.endsWith(`Please use the cloud URL: ${entry.url}`), content.error.message);
  });

  t.test('image, b64_json (JPEG, n=2): bytes read before the upload equal the uploaded objects', async (t) => {
    const img = await run.client.images.generate({ prompt: 'two boats', ...FAST, n: 2, response_format: 'b64_json', output_format: 'jpeg' } as never);
    const id = (img as unknown as { id: string }).id;
    t.equal(img.data!.length, 2);
    for (let i = 0; i < 2; i++) {
      const key = `${id}_${i}.jpg`;
      const b64 = Buffer.from(img.data![i]!.b64_json!, 'base64');
      const object = await getObject(key);
      t.equal(object.contentType, 'image/jpeg', `${key} content type`);
      t.ok(b64.equals(object.bytes), `${key}: b64_json bytes are the uploaded object`);
      t.equal((await sharp(b64).metadata()).format, 'jpeg');
      t.notOk(existsSync(join(outputs, key)), `${key} deleted locally`);
      const content = await errorOf(`${run.base}/v1/images/${id}/content?variant=${i}`);
      t.same([content.status, content.error.code], [400, 'uploaded_to_cloud']);
      t.match(content.error.message, `${endpoint}/${BUCKET}/${key}`);
    }
  });

  t.test('video: job url is the cloud URL, object is a playable MP4', async (t) => {
    const created = await run.client.videos.create({ prompt: 'a boat', ...FAST, size: '32x32' as never, num_frames: 5 } as never);
    let video = created;
    while (video.status !== 'completed' && video.status !== 'failed') {
      await new Promise((r) => setTimeout(r, 50));
      video = await run.client.videos.retrieve(created.id);
    }
    t.equal(video.status, 'completed');
    const key = `${created.id}.mp4`;
    const fields = video as unknown as { url: string | null; file_path: string | null };
    t.equal(fields.url, `${endpoint}/${BUCKET}/${key}`, 'video job url');
    t.equal(fields.file_path, null);
    t.notOk(existsSync(join(outputs, key)), 'the local MP4 was deleted');
    const listed = (await run.client.videos.list({ limit: 10 })).data.find((v) => v.id === created.id) as unknown as { url: string };
    t.equal(listed.url, fields.url, 'list shows the same url');
    t.equal(await indexedCloudUrl(created.id), fields.url, 'the on-disk job index keeps the URL (it survives a restart)');

    const object = await getObject(key);
    t.equal(object.contentType, 'video/mp4');
    t.equal(object.bytes.subarray(4, 8).toString(), 'ftyp');
    const file = join(dir, 'download.mp4');
    writeFileSync(file, object.bytes);
    const raw = execFileSync(ffmpegPath(), ['-v', 'error', '-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1'], { maxBuffer: 1 << 24 });
    t.equal(raw.length, 5 * 32 * 32 * 3, 'ffmpeg decodes 5 frames of 32x32 from the object');

    t.equal(await sdkStatus(run.client.videos.downloadContent(created.id)), 400, 'SDK download: 400');
    const content = await errorOf(`${run.base}/v1/videos/${created.id}/content`);
    t.same([content.status, content.error.code], [400, 'uploaded_to_cloud']);
    t.ok(content.error.message.endsWith(`Please use the cloud URL: ${fields.url}`), content.error.message);
  });
});

t.test('storage unreachable (s3rver stopped): logged, local file kept, relative URL, content served', async (t) => {
  await stopS3rver();
  t.teardown(startS3rver);  // back on the same port and directory, for the bucket check below and the teardowns
  const img = await run.client.images.generate({ prompt: 'a lighthouse', ...FAST, response_format: 'url', output_format: 'png' } as never);
  const id = (img as unknown as { id: string }).id;
  const entry = img.data![0]! as { url: string | null; file_path?: string | null };
  const local = join(outputs, `${id}.png`);
  t.equal(entry.url, `/v1/images/${id}/content`, 'the relative content URL');
  t.equal(entry.file_path, local);
  t.ok(existsSync(local), 'the local file is kept');
  const content = await fetch(`${run.base}${entry.url}`);
  t.equal(content.status, 200);
  t.equal(content.headers.get('content-type'), 'image/png');
  t.ok(Buffer.from(await content.arrayBuffer()).equals(readFileSync(local)), 'the content route serves the local file');

  const created = await run.client.videos.create({ prompt: 'a boat', ...FAST, size: '32x32' as never, num_frames: 5 } as never);
  let video = created;
  while (video.status !== 'completed' && video.status !== 'failed') {
    await new Promise((r) => setTimeout(r, 50));
    video = await run.client.videos.retrieve(created.id);
  }
  t.equal(video.status, 'completed', 'a failed upload does not fail the job');
  t.equal((video as unknown as { url: string | null }).url, null, 'video url stays null');
  const mp4 = await run.client.videos.downloadContent(created.id);
  t.equal(Buffer.from(await mp4.arrayBuffer()).subarray(4, 8).toString(), 'ftyp', 'the video is downloadable from the server');

  await startS3rver();
  t.notOk(await objectExists(`${id}.png`), 'the image is not in the bucket');
  t.notOk(await objectExists(`${created.id}.mp4`), 'the video is not in the bucket');
});
