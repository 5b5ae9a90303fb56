// Images (spec 3): POST /v1/images/generations (JSON), POST /v1/images/edits (multipart), and
// GET /v1/images/{image_id}/content. Both POSTs are synchronous: the answer comes when every image is written.
import { ApiError, type ImageJobParams, type ImageResult, type InputImage, type JobRecord } from '../actors/api.js';
import type { ServerContext } from './context.js';
import { invalidField } from './errors.js';
import {
  GENERATION_FIELDS, IMAGE_FORMAT_FIELDS, MAX_OUTPUTS, generationParams, imageFormat, qualityLevel,
} from './generation-fields.js';
import { notReadyError } from './health.js';
import { isJobIdSyntax } from './ids.js';
import { decodeInput, loadImageUrl } from './inputs.js';
import { parseJsonObject } from './json.js';
import { type Form, lastValues, parseMultipart } from './multipart.js';
import { sendOutput } from './outputs.js';
import { mediaType } from './request.js';
import type { Route, RouteContext } from './router.js';
import { type FieldSource, field, parseFields } from './schema.js';

// ---- request schemas ----------------------------------------------------------------------------------------------

const IMAGE_FIELDS = {
  ...GENERATION_FIELDS,
  ...IMAGE_FORMAT_FIELDS,
  prompt: field.string().required(),
  n: field.integer({ min: 1, max: MAX_OUTPUTS, code: 'invalid_n' }).default(1),
  quality: field.string(),
  style: field.any(),
  user: field.any(),
};

const GENERATIONS_SCHEMA = {
  ...IMAGE_FIELDS,
  response_format: field.oneOf(['url', 'b64_json'] as const, { code: 'invalid_response_format', caseInsensitive: true }).default('url'),
  // [sgld] no partial-image streaming: refuse instead of answering something the SDK cannot parse.
  stream: field.boolean().default(false).check((on, p) => {
    if (on) throw invalidField(p, 'stream=true is not supported: images are returned when complete', 'streaming_not_supported');
  }),
};

const EDITS_SCHEMA = {
  ...IMAGE_FIELDS,
  // The edits default differs from generations (spec 3.2, 11.4).
  response_format: field.oneOf(['url', 'b64_json'] as const, { code: 'invalid_response_format', caseInsensitive: true }).default('b64_json'),
  strength: field.number({ min: 0, max: 1 }),
  num_frames: field.integer({ min: 1 }),
};

type ImageRequest = { params: ImageJobParams; responseFormat: 'url' | 'b64_json' };

function imageRequest(server: ServerContext, input: Record<string, unknown>, source: FieldSource, schema: typeof GENERATIONS_SCHEMA | typeof EDITS_SCHEMA, inputs: InputImage[]): ImageRequest {
  const p = parseFields(input, schema, source);
  const model = server.engine.model();
  const params: ImageJobParams = {
    ...generationParams(p, p.n),
    format: imageFormat(p, model),
    level: qualityLevel('image', p),
    quality: p.quality,
    inputs,
    ...('strength' in p && p.strength !== undefined ? { strength: p.strength } : {}),
    ...('num_frames' in p && p.num_frames !== undefined ? { numFrames: p.num_frames } : {}),
  };
  if (p.response_format === 'url') {
    const s = server.engine.server();
    if (s.outputPath === null && !s.cloudStorage) {
      throw invalidField('response_format', "response_format='url' requires cloud storage to be configured.", 'url_unavailable');
    }
  }
  return { params, responseFormat: p.response_format };
}

// ---- edits inputs -------------------------------------------------------------------------------------------------

/** Input images: files of `image` and `image[]` (merged, part order), then `url` / `url[]` URLs (spec 3.2). */
async function editInputs(form: Form, server: ServerContext): Promise<InputImage[]> {
  const files = form.files.filter((f) => f.name === 'image' || f.name === 'image[]');
  const urls = [...(form.fields.get('url') ?? []), ...(form.fields.get('url[]') ?? [])].filter((u) => u.trim() !== '');
  if (files.length === 0 && urls.length === 0) {
    // SGLang answers this from its schema validation: 422 "Field 'image' or 'url' is required".
    throw new ApiError(422, "Field 'image' or 'url' is required", { param: 'image', code: 'missing_required_field' });
  }
  const decoded: Promise<InputImage>[] = files.map((f) =>
    decodeInput({ data: f.data, filename: f.filename, contentType: f.contentType, source: 'upload' }, f.name, server.options.maxInputPixels));
  urls.forEach((u, i) => {
    const param = form.fields.get('url')?.includes(u) ? 'url' : 'url[]';
    decoded.push(loadImageUrl(u, param, i, server.options).then((raw) => decodeInput(raw, param, server.options.maxInputPixels)));
  });
  // Settle all before throwing, so no decode keeps running after the answer.
  const results = await Promise.allSettled(decoded);
  const failed = results.find((r) => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<InputImage>).value);
}

// ---- running and answering ----------------------------------------------------------------------------------------

async function runImageJob(server: ServerContext, ctx: RouteContext, req: ImageRequest): Promise<void> {
  const abort = new AbortController();
  ctx.reply.onAbort(() => abort.abort('client went away'));
  const { id, result } = await server.engine.submitImageJob(req.params, { signal: abort.signal });
  ctx.annotate({ job_id: id });
  // The request's time limit (queue wait included): past it the job is cancelled like a departed client's.
  const limitMs = server.options.requestTimeoutMs;
  let timedOut = false;
  const timer = limitMs > 0 ? setTimeout(() => { timedOut = true; abort.abort('request timeout'); }, limitMs) : undefined;
  let out: ImageResult;
  try {
    out = await result;
  } catch (err) {
    if (timedOut) {
      throw new ApiError(504, `The image request took longer than this server's limit of ${limitMs / 1000} s (--request-timeout); its job ${id} was cancelled`, { code: 'request_timeout' });
    }
    if (err instanceof ApiError || (err as { status?: unknown }).status !== undefined) throw err;
    server.log.error(`image generation failed: ${(err as Error).stack ?? err}`, { request_id: ctx.requestId, job_id: id });
    throw new ApiError(500, `Image generation failed: ${(err as Error).message ?? err}`, { code: 'generation_failed' });
  } finally {
    clearTimeout(timer);
  }
  ctx.reply.json(200, imageResponse(out, req.responseFormat));
}

/** Relative content URL of output `i` (spec 3.1: no `variant` when n == 1). */
const contentUrl = (job: JobRecord, i: number): string =>
  job.n === 1 ? `/v1/images/${job.id}/content` : `/v1/images/${job.id}/content?variant=${i}`;

export function imageResponse(out: ImageResult, responseFormat: 'url' | 'b64_json'): Record<string, unknown> {
  const { job } = out;
  const data = out.images.map((bytes, i) => {
    const output = job.outputs[i];
    const filePath = output?.path ?? null;
    if (responseFormat === 'b64_json') {
      return { b64_json: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), url: null, revised_prompt: out.revisedPrompt, file_path: filePath };
    }
    const url = output?.cloudUrl ?? (job.persisted && filePath !== null ? contentUrl(job, i) : null);
    return { b64_json: null, url, revised_prompt: out.revisedPrompt, file_path: filePath };
  });
  return {
    id: job.id,
    created: job.createdAt,
    data,
    ...(job.peakMemoryMb !== null ? { peak_memory_mb: job.peakMemoryMb } : {}),
    ...(job.inferenceTimeS !== null ? { inference_time_s: job.inferenceTimeS } : {}),
    usage: out.usage ?? null,
  };
}

function requireReady(server: ServerContext): void {
  const err = notReadyError(server.engine.readiness());
  if (err) throw err;
}

// ---- routes -------------------------------------------------------------------------------------------------------

export function imageRoutes(server: ServerContext): Route[] {
  return [
    {
      method: 'POST', pattern: '/v1/images/generations', auth: 'normal',
      handler: async (ctx) => {
        const body = parseJsonObject(await ctx.body(), { emptyIsObject: true });
        const req = imageRequest(server, body, 'json', GENERATIONS_SCHEMA, []);
        requireReady(server);
        await runImageJob(server, ctx, req);
      },
    },
    {
      method: 'POST', pattern: '/v1/images/edits', auth: 'normal',
      handler: async (ctx) => {
        const contentType = ctx.info.headers['content-type'] ?? '';
        const body = await ctx.body();
        // Not multipart (e.g. JSON): an empty form, so the missing prompt answers 422 as in SGLang (spec 3.2).
        const form: Form = mediaType(contentType) === 'multipart/form-data'
          ? parseMultipart(body, contentType, server.options.maxUploadBytes)
          : { fields: new Map(), files: [] };
        // Scalar fields are validated before the (costlier) image decoding.
        parseFields(lastValues(form), EDITS_SCHEMA, 'form');
        const inputs = await editInputs(form, server);
        const req = imageRequest(server, lastValues(form), 'form', EDITS_SCHEMA, inputs);
        requireReady(server);
        await runImageJob(server, ctx, req);
      },
    },
    {
      method: 'GET', pattern: '/v1/images/{image_id}/content', auth: 'normal',
      handler: async ({ params, info, reply, annotate }) => {
        annotate({ job_id: params.image_id });
        const job = isJobIdSyntax(params.image_id) ? await server.engine.getJob(params.image_id) : undefined;
        if (!job || job.kind !== 'image') throw ApiError.notFound('Image not found', 'image_not_found', 'image_id');
        const variant = info.query.get('variant');
        const index = variant === null ? 0 : /^\d+$/.test(variant) ? Number(variant) : -1;
        if (index < 0 || index >= job.n) throw ApiError.notFound(`Image variant ${variant} not found`, 'variant_not_found', 'variant');
        const cloudUrl = job.outputs[index]?.cloudUrl ?? null;
        // Spec 7: an uploaded output answers 400 with its cloud URL, whether or not the server keeps files.
        if (cloudUrl !== null) throw ApiError.badRequest(`Image has been uploaded to cloud storage. Please use the cloud URL: ${cloudUrl}`, null, 'uploaded_to_cloud');
        if (!job.persisted) throw ApiError.notFound('Image was not persisted on disk (the server runs with --output-path "")', 'image_not_persisted');
        if (job.status === 'failed') throw ApiError.notFound(`Image generation failed: ${job.error?.message ?? 'unknown error'}`, 'image_failed');
        const output = job.outputs[index];
        if (job.status !== 'completed' || !output) throw ApiError.notFound('Image is still being generated', 'image_not_ready');
        await sendOutput(reply, output, {
          missing: () => ApiError.notFound('Image is still being generated', 'image_not_ready'),
          cloud: (url) => ApiError.badRequest(`Image has been uploaded to cloud storage. Please use the cloud URL: ${url}`, null, 'uploaded_to_cloud'),
        });
      },
    },
  ];
}
