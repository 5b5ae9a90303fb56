// Videos (spec 5): asynchronous jobs. POST /v1/videos records a job and answers at once; clients poll
// GET /v1/videos/{id}, list, download /content and DELETE.
import { ApiError, type InputImage, type JobRecord, type TaskType, type VideoJobParams } from '../actors/api.js';
import type { ServerContext } from './context.js';
import { invalidField } from './errors.js';
import { GENERATION_FIELDS, MAX_OUTPUTS, generationParams, qualityLevel } from './generation-fields.js';
import { notReadyError } from './health.js';
import { isJobIdSyntax } from './ids.js';
import { type RawInput, decodeInput, loadImageUrl, loadServerPath, rejectVideoInput } from './inputs.js';
import { parseJsonObject } from './json.js';
import { type Form, parseMultipart } from './multipart.js';
import { sendOutput } from './outputs.js';
import { mediaType } from './request.js';
import type { Route } from './router.js';
import { type FieldSource, field, parseFields } from './schema.js';

/** Spec 5.2: fps 24 and 4 seconds unless the request says otherwise. */
const DEFAULT_FPS = 24;
const DEFAULT_SECONDS = 4;
/** OpenAI's default page size for list endpoints; `limit` may ask for up to 100. */
const DEFAULT_LIST_LIMIT = 20;

const IMAGE_ONLY_TASKS: ReadonlySet<TaskType> = new Set(['T2I', 'I2I', 'TI2I']);

const VIDEO_SCHEMA = {
  ...GENERATION_FIELDS,
  prompt: field.string().required(),
  seconds: field.integer({ min: 1, code: 'invalid_seconds' }).default(DEFAULT_SECONDS),
  fps: field.integer({ min: 1, code: 'invalid_fps' }).default(DEFAULT_FPS),
  num_frames: field.integer({ min: 1, code: 'invalid_num_frames' }),
  n: field.integer({ min: 1, max: MAX_OUTPUTS, code: 'invalid_n' }),
  num_outputs_per_prompt: field.integer({ min: 1, max: MAX_OUTPUTS, code: 'invalid_n' }),
  guidance_scale_2: field.number(),
  // A data: URL can be as long as the body limit allows.
  reference_url: field.string({ maxChars: Infinity }),
  output_path: field.string(),
};

// ---- request bodies -----------------------------------------------------------------------------------------------

interface VideoBody {
  source: FieldSource;
  fields: Record<string, unknown>;
  /** The conditioning image, still undecoded. */
  reference?: () => Promise<RawInput>;
  referenceParam?: string;
}

/** Multipart (what the SDK always sends): text parts, `extra_body` JSON text, `input_reference` file part. */
function formBody(form: Form): VideoBody {
  const fields: Record<string, unknown> = {};
  const extra: Record<string, unknown> = {};
  for (const [name, values] of form.fields) {
    const value = values[values.length - 1]!;
    const nested = /^extra_body\[(\w+)\]$/.exec(name);
    if (name === 'extra_body') {
      let parsed: unknown;
      try { parsed = JSON.parse(value); } catch { throw invalidField('extra_body', 'extra_body is not valid JSON', 'invalid_json'); }
      if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw invalidField('extra_body', 'extra_body must be a JSON object', 'invalid_json');
      Object.assign(extra, parsed);
    } else if (nested) extra[nested[1]!] = value;
    else if (name === 'input_reference[image_url]') fields.reference_url = value;  // the SDK's {image_url} form
    else fields[name] = value;
  }
  Object.assign(fields, extra);
  // SGLang's multipart path: an absent *or empty* prompt is a 400 (spec 5.1).
  if (typeof fields.prompt !== 'string' || fields.prompt === '') throw invalidField('prompt', 'prompt is required', 'missing_prompt');
  const file = form.files.find((f) => f.name === 'input_reference');
  return {
    source: 'form', fields,
    ...(file ? { reference: async () => ({ data: file.data, filename: file.filename, contentType: file.contentType, source: 'upload' as const }), referenceParam: 'input_reference' } : {}),
  };
}

/** JSON: `extra_body` merged into the top level; `input_reference` as a URL, server path or `{image_url}`. */
function jsonBody(body: Record<string, unknown>): VideoBody {
  const fields: Record<string, unknown> = { ...body };
  if (body.extra_body !== undefined && body.extra_body !== null) {
    if (typeof body.extra_body !== 'object' || Array.isArray(body.extra_body)) throw invalidField('extra_body', 'extra_body must be a JSON object', 'invalid_json');
    Object.assign(fields, body.extra_body);
  }
  const ref = fields.input_reference;
  if (ref !== null && typeof ref === 'object' && !Array.isArray(ref) && typeof (ref as { image_url?: unknown }).image_url === 'string') {
    fields.reference_url = (ref as { image_url: string }).image_url;
  } else if (ref !== undefined && ref !== null && typeof ref !== 'string') {
    throw new ApiError(422, 'input_reference must be a string (URL or path) or {"image_url": "..."}', { param: 'input_reference', code: 'invalid_type' });
  }
  return { source: 'json', fields };
}

/** Spec 5.1: JSON or multipart; anything else (or unparseable JSON without a JSON content type) is `{}`. */
function videoBody(contentType: string, raw: Buffer, server: ServerContext): VideoBody {
  const type = mediaType(contentType);
  if (type === 'multipart/form-data') return formBody(parseMultipart(raw, contentType, server.options.maxUploadBytes));
  if (type === 'application/json' || type.endsWith('+json')) return jsonBody(parseJsonObject(raw, { emptyIsObject: true }));
  try {
    return jsonBody(parseJsonObject(raw, { emptyIsObject: true }));
  } catch {
    return jsonBody({});
  }
}

async function referenceImage(body: VideoBody, server: ServerContext): Promise<InputImage | undefined> {
  let load = body.reference, param = body.referenceParam ?? 'input_reference';
  const ref = body.fields.input_reference;
  if (!load && typeof body.fields.reference_url === 'string' && body.fields.reference_url.trim() !== '') {
    const url = body.fields.reference_url;
    load = () => loadImageUrl(url, 'reference_url', 0, server.options);
    param = 'reference_url';
  } else if (!load && body.source === 'json' && typeof ref === 'string' && ref.trim() !== '') {
    // [sgld] URLs as usual; a plain path only inside --input-save-path (spec 5.3).
    load = /^(data:|https?:\/\/)/i.test(ref.trim())
      ? () => loadImageUrl(ref, 'input_reference', 0, server.options)
      : () => loadServerPath(ref, server.engine.server().inputSavePath, 'input_reference', server.options.maxUploadBytes);
  }
  if (!load) return undefined;
  const raw = await load();
  rejectVideoInput(raw, param);
  return decodeInput(raw, param, server.options.maxInputPixels);
}

async function videoRequest(body: VideoBody, server: ServerContext): Promise<VideoJobParams> {
  const p = parseFields(body.fields, VIDEO_SCHEMA, body.source);
  const model = server.engine.model();
  if (IMAGE_ONLY_TASKS.has(model.taskType)) {
    throw new ApiError(400, `The served model (${model.taskType}) does not generate videos; use /v1/images/generations`, { code: 'unsupported_task' });
  }
  const outputPath = server.engine.server().outputPath;
  if (p.output_path !== undefined && p.output_path !== '' && p.output_path !== outputPath) {
    // [sgld] outputs stay in the server's --output-path (spec 5.1 lets us refuse the field).
    throw invalidField('output_path', 'output_path cannot be chosen per request; outputs are written to the server\'s --output-path', 'output_path_not_allowed');
  }
  const n = p.num_outputs_per_prompt ?? p.n ?? 1;
  const reference = await referenceImage(body, server);
  if (!reference && model.taskType === 'I2V') {
    throw invalidField('input_reference', 'input_reference or reference_url is required for image-to-video generation', 'missing_input_reference');
  }
  return {
    ...generationParams(p, n),
    fps: p.fps,
    numFrames: p.num_frames ?? p.fps * p.seconds,
    ...(p.guidance_scale_2 !== undefined ? { guidanceScale2: p.guidance_scale_2 } : {}),
    level: qualityLevel('video', p),
    ...(reference ? { reference } : {}),
  };
}

// ---- the video object (spec 5.4) ---------------------------------------------------------------------------------

export function videoObject(job: JobRecord): Record<string, unknown> {
  const completed = job.status === 'completed';
  return {
    id: job.id,
    object: 'video',
    model: job.model,
    status: job.status,
    progress: job.progress,
    created_at: job.createdAt,
    completed_at: completed ? job.completedAt : null,
    expires_at: null,
    size: job.size,
    seconds: job.seconds ?? String(Math.round(job.numFrames / (job.fps ?? DEFAULT_FPS))),
    quality: 'standard',
    url: job.outputs[0]?.cloudUrl ?? null,
    remixed_from_video_id: null,
    error: job.error,
    prompt: job.prompt,
    file_path: job.outputs[0]?.path ?? null,
    file_paths: job.outputs.length > 1 ? job.outputs.map((o) => o.path) : null,
    num_outputs: completed ? job.outputs.length : null,
    ...(job.peakMemoryMb !== null ? { peak_memory_mb: job.peakMemoryMb } : {}),
    ...(job.inferenceTimeS !== null ? { inference_time_s: job.inferenceTimeS } : {}),
  };
}

const LIST_SCHEMA = {
  after: field.string(),
  limit: field.integer({ min: 1, max: 100, rangeStatus: 422 }).default(DEFAULT_LIST_LIMIT),
  order: field.string().default('desc'),
};

const videoNotFound = (): ApiError => ApiError.notFound('Video not found', 'video_not_found', 'video_id');

/** `variant` of the content route: an index; `video` (the SDK's default asset) is 0 [sgld]. */
function videoVariant(v: string | null): number {
  if (v === null || v === '' || v === 'video') return 0;
  if (/^\d+$/.test(v)) return Number(v);
  return -1;
}

// ---- routes -------------------------------------------------------------------------------------------------------

export function videoRoutes(server: ServerContext): Route[] {
  const { engine } = server;
  const videoJob = async (id: string | undefined): Promise<JobRecord> => {
    const job = isJobIdSyntax(id) ? await engine.getJob(id) : undefined;
    if (!job || job.kind !== 'video') throw videoNotFound();
    return job;
  };
  return [
    {
      method: 'POST', pattern: '/v1/videos', auth: 'normal',
      handler: async (ctx) => {
        const body = videoBody(ctx.info.headers['content-type'] ?? '', await ctx.body(), server);
        const params = await videoRequest(body, server);
        const notReady = notReadyError(engine.readiness());
        if (notReady) throw notReady;
        const job = await engine.submitVideoJob(params);
        ctx.annotate({ job_id: job.id });
        ctx.reply.json(200, videoObject(job));
      },
    },
    {
      method: 'GET', pattern: '/v1/videos', auth: 'normal',
      handler: async ({ info, reply }) => {
        const q = parseFields(Object.fromEntries(info.query), LIST_SCHEMA, 'query');
        // SGLang treats any order other than asc as desc (spec 5.6).
        const order = q.order.toLowerCase() === 'asc' ? 'asc' : 'desc';
        const page = await engine.listJobs({ kind: 'video', limit: q.limit, order, ...(q.after ? { after: q.after } : {}) });
        const data = page.data.map(videoObject);
        reply.json(200, {
          object: 'list', data, has_more: page.hasMore,
          first_id: page.data[0]?.id ?? null, last_id: page.data[page.data.length - 1]?.id ?? null,
        });
      },
    },
    {
      method: 'GET', pattern: '/v1/videos/{video_id}', auth: 'normal',
      handler: async ({ params, reply, annotate }) => {
        annotate({ job_id: params.video_id });
        reply.json(200, videoObject(await videoJob(params.video_id)));
      },
    },
    {
      method: 'DELETE', pattern: '/v1/videos/{video_id}', auth: 'normal',
      handler: async ({ params, reply, annotate }) => {
        annotate({ job_id: params.video_id });
        await videoJob(params.video_id);
        const job = await engine.deleteJob(params.video_id!);
        if (!job) throw videoNotFound();  // deleted concurrently
        // [sgld] the union of SGLang's answer (the job, status deleted) and the SDK's type (spec 5.9).
        reply.json(200, { ...videoObject(job), object: 'video.deleted', deleted: true, status: 'deleted' });
      },
    },
    {
      method: 'GET', pattern: '/v1/videos/{video_id}/content', auth: 'normal',
      handler: async ({ params, info, reply, annotate }) => {
        annotate({ job_id: params.video_id });
        const job = await videoJob(params.video_id);
        const variant = info.query.get('variant');
        const index = videoVariant(variant);
        if (job.status === 'failed') throw ApiError.notFound(`Video generation failed: ${job.error?.message ?? 'unknown error'}`, 'video_failed');
        if (job.status !== 'completed') throw ApiError.notFound('Generation is still in-progress', 'video_not_ready');
        const output = index >= 0 ? job.outputs[index] : undefined;
        if (!output) throw ApiError.notFound(`Video variant ${variant} not found`, 'variant_not_found', 'variant');
        if (!job.persisted && output.cloudUrl === null) throw ApiError.notFound('Video was not persisted on disk (the server runs with --output-path "")', 'video_not_persisted');
        await sendOutput(reply, output, {
          missing: () => ApiError.notFound('Video file is missing on the server', 'video_file_missing'),
          cloud: (url) => ApiError.badRequest(`Video has been uploaded to cloud storage. Please use the cloud URL: ${url}`, null, 'uploaded_to_cloud'),
        });
      },
    },
  ];
}
