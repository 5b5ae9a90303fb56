// Bad requests against a real `sgld serve` (child process, embedded default model, loopback): malformed JSON, broken
// multipart, huge headers and bodies, wrong types, negative and huge sizes, bad base64, non-image files, traversal
// ids, URLs to loopback / private / link-local / metadata addresses and non-http schemes, paths outside the allowed
// folders, auth. Every case must be answered with its exact 4xx status and the error envelope of spec 1.4 (naming
// the field where there is one, and the limit where a limit was hit), and /health must answer 200 right after it.
// One tap assertion per case. Limits are set small on the command line so the oversized cases stay cheap.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import sharp from 'sharp';
import t from 'tap';
import { type SgldProcess, killIfRunning, startSgld, waitReady } from '../helpers/sgld-process.js';

const dir = mkdtempSync(join(tmpdir(), 'sgld-input-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

const KEY = 'sk-input', ADMIN = 'sk-admin';
const LIMITS = { uploadMb: 1, bodyMb: 2, steps: 50, frames: 33, pixels: 256 * 256, bodyTimeoutS: 1 };

let sgld: SgldProcess | undefined;
t.teardown(() => killIfRunning(sgld));

// ---- request builders ---------------------------------------------------------------------------------------------

/** A raw answer: status, headers, body text (node:http, so paths and headers go out exactly as written). */
interface RawAnswer { status: number; headers: http.IncomingHttpHeaders; text: string }

interface RawRequest {
  method?: string;
  path: string;
  headers?: Record<string, string | number>;
  body?: Buffer | string;
  /** Send the body but do not end the request (the server must time out). */
  stall?: boolean;
}

function raw(base: string, req: RawRequest): Promise<RawAnswer> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const r = http.request({
      host: url.hostname, port: url.port, method: req.method ?? 'GET', path: req.path, agent: false,
      headers: { authorization: `Bearer ${KEY}`, ...req.headers },
    }, (res) => {
      answered = true;
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => { text += c; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, text }));
      res.on('error', reject);
    });
    // A server that refuses a body early may close while the rest is still being written: the answer counts.
    let answered = false;
    r.on('error', (e) => { if (!answered) reject(e); });
    if (req.body !== undefined) r.write(req.body);
    if (!req.stall) r.end();
  });
}

const json = (path: string, body: unknown, headers: Record<string, string> = {}): RawRequest => ({
  method: 'POST', path, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body),
});
const rawJson = (path: string, text: string | Buffer, contentType = 'application/json'): RawRequest => ({
  method: 'POST', path, headers: { 'content-type': contentType }, body: text,
});

interface Part { name: string; value?: string; file?: { data: Buffer; filename: string; type?: string } }

function multipartBody(parts: Part[], boundary = 'sgldboundary'): Buffer {
  const chunks: Buffer[] = [];
  for (const p of parts) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"`;
    if (p.file) head += `; filename="${p.file.filename}"\r\nContent-Type: ${p.file.type ?? 'application/octet-stream'}`;
    chunks.push(Buffer.from(`${head}\r\n\r\n`), p.file ? p.file.data : Buffer.from(p.value ?? ''), Buffer.from('\r\n'));
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}

const form = (path: string, parts: Part[]): RawRequest => ({
  method: 'POST', path, headers: { 'content-type': 'multipart/form-data; boundary=sgldboundary' }, body: multipartBody(parts),
});
const rawForm = (path: string, body: string | Buffer, contentType = 'multipart/form-data; boundary=sgldboundary'): RawRequest => ({
  method: 'POST', path, headers: { 'content-type': contentType }, body,
});

const GEN = '/v1/images/generations', EDITS = '/v1/images/edits', VIDEOS = '/v1/videos';
const gen = (fields: Record<string, unknown>): RawRequest => json(GEN, { prompt: 'a lighthouse', size: '32x32', num_inference_steps: 1, ...fields });
const video = (fields: Record<string, unknown>): RawRequest => json(VIDEOS, { prompt: 'waves', size: '32x32', num_frames: 5, num_inference_steps: 1, ...fields });
const edit = (parts: Part[]): RawRequest => form(EDITS, [{ name: 'prompt', value: 'paint it' }, { name: 'size', value: '32x32' }, ...parts]);
const editUrl = (url: string): RawRequest => edit([{ name: 'url', value: url }]);
const videoRef = (url: string): RawRequest => video({ reference_url: url });

// ---- input files ----------------------------------------------------------------------------------------------------

const png = await sharp({ create: { width: 16, height: 16, channels: 3, background: { r: 200, g: 40, b: 40 } } }).png().toBuffer();

/** A PNG whose header declares width x height over a tiny compressed row: a decompression bomb's shape. */
function pngDeclaring(width: number, height: number): Buffer {
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4); len.writeUInt32BE(data.length);
    const body = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const crc = Buffer.alloc(4); crc.writeUInt32BE(crc32(body));
    return Buffer.concat([len, body, crc]);
  };
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(width, 0); ihdr.writeUInt32BE(height, 4);
  ihdr[8] = 8; ihdr[9] = 2; // 8-bit RGB
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(Buffer.alloc(64))), chunk('IEND', Buffer.alloc(0))]);
}

const file = (data: Buffer | string, filename: string, type?: string): Part['file'] => ({ data: Buffer.isBuffer(data) ? data : Buffer.from(data), filename, ...(type ? { type } : {}) });
const svg = '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16"><image href="file:///etc/passwd"/></svg>';
// Above the 1 MiB upload limit, and still below the 2 MiB body limit once base64-encoded.
const bigUpload = Buffer.alloc(Math.round(1.2 * 1024 * 1024), 7);
const UNKNOWN_ID = '3b241101-e2bb-4255-8caf-4136c566a962';

// ---- the cases ------------------------------------------------------------------------------------------------------

interface Case {
  name: string;
  request: RawRequest | ((base: string) => RawRequest);
  status: number;
  /** The envelope's `param`; omitted: not checked. */
  param?: string | null;
  code?: string;
  /** The message must match (e.g. name the limit). */
  message?: RegExp;
}

const cases: Case[] = [
  // malformed JSON
  { name: 'generations: truncated JSON', request: rawJson(GEN, '{"prompt": "a'), status: 400, code: 'invalid_json' },
  { name: 'generations: trailing comma', request: rawJson(GEN, '{"prompt": "a",}'), status: 400, code: 'invalid_json' },
  { name: 'generations: form-encoded body sent as JSON', request: rawJson(GEN, 'prompt=a&n=1'), status: 400, code: 'invalid_json' },
  { name: 'generations: bytes that are not UTF-8 JSON', request: rawJson(GEN, Buffer.from([0xff, 0xfe, 0x00, 0x7b])), status: 400, code: 'invalid_json' },
  { name: 'generations: JSON followed by garbage', request: rawJson(GEN, '{"prompt":"a"} trailing'), status: 400, code: 'invalid_json' },
  { name: 'generations: single quotes', request: rawJson(GEN, "{'prompt': 'a'}"), status: 400, code: 'invalid_json' },
  { name: 'generations: a JSON array body', request: rawJson(GEN, '[1, 2, 3]'), status: 422, code: 'invalid_type' },
  { name: 'generations: a JSON string body', request: rawJson(GEN, '"a lighthouse"'), status: 422, code: 'invalid_type' },
  { name: 'generations: a JSON null body', request: rawJson(GEN, 'null'), status: 422 },
  { name: 'generations: empty body', request: rawJson(GEN, ''), status: 422, param: 'prompt' },
  { name: 'generations: deeply nested JSON without a prompt', request: rawJson(GEN, `{"x":${'['.repeat(5000)}${']'.repeat(5000)}}`), status: 422, param: 'prompt' },
  { name: 'generations: invalid JSON under text/plain', request: rawJson(GEN, '{oops', 'text/plain'), status: 400, code: 'invalid_json' },
  { name: 'videos: malformed JSON with a JSON content type', request: rawJson(VIDEOS, '{"prompt": '), status: 400, code: 'invalid_json' },
  { name: 'set_lora: malformed JSON', request: { ...rawJson('/v1/set_lora', '{"lora_nickname":'), headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` } }, status: 400, code: 'invalid_json' },

  // wrong types and missing fields
  { name: 'prompt is a number', request: gen({ prompt: 123 }), status: 422, param: 'prompt' },
  { name: 'prompt is null', request: gen({ prompt: null }), status: 422, param: 'prompt' },
  { name: 'prompt is a list', request: gen({ prompt: ['a'] }), status: 422, param: 'prompt' },
  { name: 'prompt is an object', request: gen({ prompt: { text: 'a' } }), status: 422, param: 'prompt' },
  { name: 'n is a word', request: gen({ n: 'abc' }), status: 422, param: 'n' },
  { name: 'n is fractional', request: gen({ n: 1.5 }), status: 422, param: 'n' },
  { name: 'n is a boolean', request: gen({ n: true }), status: 422, param: 'n' },
  { name: 'size is a number', request: gen({ size: 1024 }), status: 422, param: 'size' },
  { name: 'height is a word', request: gen({ height: 'tall' }), status: 422, param: 'height' },
  { name: 'num_inference_steps is a word', request: gen({ num_inference_steps: 'many' }), status: 422, param: 'num_inference_steps' },
  { name: 'num_inference_steps is fractional', request: gen({ num_inference_steps: 2.5 }), status: 422, param: 'num_inference_steps' },
  { name: 'guidance_scale is a word', request: gen({ guidance_scale: 'high' }), status: 422, param: 'guidance_scale' },
  { name: 'guidance_scale overflows to Infinity', request: rawJson(GEN, '{"prompt":"a","guidance_scale":1e999}'), status: 422, param: 'guidance_scale' },
  { name: 'seed is a word', request: gen({ seed: 'lucky' }), status: 422, param: 'seed' },
  { name: 'seed list with a word in it', request: gen({ n: 2, seed: [1, 'two'] }), status: 422, param: 'seed[1]' },
  { name: 'response_format is a number', request: gen({ response_format: 5 }), status: 422, param: 'response_format' },
  { name: 'stream is a word', request: gen({ stream: 'maybe' }), status: 422, param: 'stream' },
  { name: 'enable_teacache is a word', request: gen({ enable_teacache: 'perhaps' }), status: 422, param: 'enable_teacache' },
  { name: 'negative_prompt is a number', request: gen({ negative_prompt: 5 }), status: 422, param: 'negative_prompt' },
  { name: 'flow_shift is a word', request: gen({ flow_shift: 'x' }), status: 422, param: 'flow_shift' },
  { name: 'true_cfg_scale is a list', request: gen({ true_cfg_scale: [] }), status: 422, param: 'true_cfg_scale' },
  { name: 'videos: prompt missing (JSON)', request: json(VIDEOS, { size: '32x32' }), status: 422, param: 'prompt' },
  { name: 'videos: seconds is a word', request: video({ seconds: 'abc' }), status: 422, param: 'seconds' },
  { name: 'videos: input_reference is a number', request: video({ input_reference: 42 }), status: 422, param: 'input_reference' },
  { name: 'set_lora: lora_nickname missing', request: json('/v1/set_lora', { lora_path: null }, { authorization: `Bearer ${ADMIN}` }), status: 422, param: 'lora_nickname' },
  { name: 'set_lora: lora_nickname is a number', request: json('/v1/set_lora', { lora_nickname: 5 }, { authorization: `Bearer ${ADMIN}` }), status: 422, param: 'lora_nickname' },
  { name: 'set_lora: strength is a word', request: json('/v1/set_lora', { lora_nickname: 'a', strength: 'x' }, { authorization: `Bearer ${ADMIN}` }), status: 422, param: 'strength' },

  // negative, zero and huge values
  { name: 'n = 0', request: gen({ n: 0 }), status: 400, param: 'n' },
  { name: 'n = -1', request: gen({ n: -1 }), status: 400, param: 'n' },
  { name: 'n = 11', request: gen({ n: 11 }), status: 400, param: 'n' },
  { name: 'n = 1e20 (beyond 2^53)', request: gen({ n: 1e20 }), status: 400, param: 'n' },
  { name: 'size "big"', request: gen({ size: 'big' }), status: 400, param: 'size', code: 'invalid_size' },
  { name: 'size with a negative side', request: gen({ size: '-64x64' }), status: 400, param: 'size' },
  { name: 'size with a zero side', request: gen({ size: '0x64' }), status: 400, param: 'size' },
  { name: 'size "64x"', request: gen({ size: '64x' }), status: 400, param: 'size' },
  { name: 'size of 10^16 pixels', request: gen({ size: '99999984x99999984' }), status: 400, param: 'size', code: 'limit_exceeded', message: new RegExp(`${LIMITS.pixels}`) },
  { name: 'size above the pixel limit', request: gen({ size: '512x512' }), status: 400, param: 'size', code: 'limit_exceeded', message: new RegExp(`at most ${LIMITS.pixels}`) },
  { name: 'size not a multiple of the model alignment', request: gen({ size: '33x33' }), status: 400, param: 'size', code: 'unsupported_size' },
  { name: 'width = -32', request: gen({ width: -32 }), status: 400, param: 'width' },
  { name: 'width = 0', request: gen({ width: 0 }), status: 400, param: 'width' },
  { name: 'width = 10^9', request: gen({ width: 1_000_000_000, height: 32 }), status: 400, param: 'size', code: 'limit_exceeded' },
  { name: 'num_inference_steps = 0', request: gen({ num_inference_steps: 0 }), status: 400, param: 'num_inference_steps' },
  { name: 'num_inference_steps = -5', request: gen({ num_inference_steps: -5 }), status: 400, param: 'num_inference_steps' },
  { name: 'num_inference_steps above the limit', request: gen({ num_inference_steps: 100_000 }), status: 400, param: 'num_inference_steps', code: 'limit_exceeded', message: new RegExp(`limit of ${LIMITS.steps}`) },
  { name: 'seed = 1e300', request: gen({ seed: 1e300 }), status: 400, param: 'seed' },
  { name: 'seed = []', request: gen({ seed: [] }), status: 400, param: 'seed' },
  { name: 'two seeds for one output', request: gen({ seed: [1, 2] }), status: 400, param: 'seed' },
  { name: 'output_compression = 101', request: gen({ output_compression: 101 }), status: 400, param: 'output_compression' },
  { name: 'output_compression = -1', request: gen({ output_compression: -1 }), status: 400, param: 'output_compression' },
  { name: 'output_compression is a word', request: gen({ output_compression: 'abc' }), status: 400, param: 'output_compression' },
  { name: 'max_sequence_length = 0', request: gen({ max_sequence_length: 0 }), status: 400, param: 'max_sequence_length' },
  { name: 'max_sequence_length = 10^6', request: gen({ max_sequence_length: 1_000_000 }), status: 400, param: 'max_sequence_length', message: /1024/ },
  { name: 'a 70 000 character prompt', request: gen({ prompt: 'a'.repeat(70_000) }), status: 400, param: 'prompt', code: 'text_too_long' },
  { name: 'videos: seconds = 0', request: video({ seconds: 0, num_frames: undefined }), status: 400, param: 'seconds' },
  { name: 'videos: fps = -1', request: video({ fps: -1 }), status: 400, param: 'fps' },
  { name: 'videos: num_frames = 0', request: video({ num_frames: 0 }), status: 400, param: 'num_frames' },
  { name: 'videos: num_frames above the limit', request: video({ num_frames: 100_000 }), status: 400, param: 'num_frames', code: 'limit_exceeded', message: new RegExp(`limit of ${LIMITS.frames}`) },
  { name: 'videos: seconds x fps above the frame limit', request: video({ num_frames: undefined, seconds: 1_000_000, fps: 24 }), status: 400, param: 'num_frames', code: 'limit_exceeded' },
  { name: 'videos: n = 11', request: video({ n: 11 }), status: 400, param: 'n' },
  { name: 'videos: size "axb"', request: video({ size: 'axb' }), status: 400, param: 'size' },
  { name: 'set_lora: lora_alpha = -1', request: json('/v1/set_lora', { lora_nickname: 'a', lora_alpha: -1 }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'lora_alpha' },

  // unknown words
  { name: 'response_format "xml"', request: gen({ response_format: 'xml' }), status: 400, param: 'response_format' },
  { name: 'output_format "gif"', request: gen({ output_format: 'gif' }), status: 400, param: 'output_format' },
  { name: 'output_quality "ultra"', request: gen({ output_quality: 'ultra' }), status: 400, param: 'output_quality' },
  { name: 'background "blue"', request: gen({ background: 'blue' }), status: 400, param: 'background' },
  { name: 'stream = true', request: gen({ stream: true }), status: 400, param: 'stream' },
  { name: 'generator_device "tpu"', request: gen({ generator_device: 'tpu' }), status: 400, param: 'generator_device' },
  { name: 'set_lora: target "everything"', request: json('/v1/set_lora', { lora_nickname: 'a', target: 'everything' }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'target' },
  { name: 'merge_lora_weights: target "nowhere"', request: json('/v1/merge_lora_weights', { target: 'nowhere' }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'target' },

  // huge bodies and headers
  { name: 'a JSON body above the body limit', request: json(GEN, { prompt: 'a', padding: 'x'.repeat(LIMITS.bodyMb * 1024 * 1024 + 1000) }), status: 413, code: 'request_too_large' },
  { name: 'a declared Content-Length of 500 MB', request: { method: 'POST', path: GEN, headers: { 'content-type': 'application/json', 'content-length': 500 * 1024 ** 2 }, body: '{"prompt":"a"}', stall: true }, status: 413, code: 'request_too_large' },
  { name: 'an uploaded file above the upload limit', request: edit([{ name: 'image', file: file(bigUpload, 'big.png', 'image/png') }]), status: 413, param: 'image', code: 'file_too_large' },
  { name: 'a data: URL above the upload limit', request: videoRef(`data:image/png;base64,${bigUpload.toString('base64')}`), status: 413, param: 'reference_url', code: 'file_too_large' },
  { name: 'a body that stops arriving', request: { method: 'POST', path: GEN, headers: { 'content-type': 'application/json', 'content-length': 1000 }, body: '{"prompt":', stall: true }, status: 408, code: 'request_timeout' },
  { name: 'one 20 KB header', request: { path: '/v1/models', headers: { 'x-padding': 'p'.repeat(20_000) } }, status: 431, code: 'headers_too_large' },
  { name: 'thirty 1 KB headers', request: { path: '/v1/models', headers: Object.fromEntries(Array.from({ length: 30 }, (_, i) => [`x-pad-${i}`, 'p'.repeat(1000)])) }, status: 431, code: 'headers_too_large' },
  { name: 'a 20 KB query string', request: { path: `/v1/videos?after=${'a'.repeat(20_000)}` }, status: 431, code: 'headers_too_large' },

  // broken multipart
  { name: 'multipart without a boundary', request: rawForm(EDITS, multipartBody([{ name: 'prompt', value: 'p' }]), 'multipart/form-data'), status: 400, code: 'invalid_multipart' },
  { name: 'multipart with another boundary than declared', request: rawForm(EDITS, multipartBody([{ name: 'prompt', value: 'p' }], 'other')), status: 400, code: 'invalid_multipart' },
  { name: 'multipart cut off before its closing boundary', request: rawForm(EDITS, multipartBody([{ name: 'prompt', value: 'p' }, { name: 'image', file: file(png, 'a.png', 'image/png') }]).subarray(0, 150)), status: 400, code: 'invalid_multipart' },
  { name: 'multipart with an empty body', request: rawForm(EDITS, ''), status: 400, code: 'invalid_multipart' },
  { name: 'multipart with only the closing boundary', request: rawForm(EDITS, '--sgldboundary--\r\n'), status: 400, code: 'invalid_multipart' },
  { name: 'multipart part without headers', request: rawForm(EDITS, '--sgldboundary\r\n\r\nhello\r\n--sgldboundary--\r\n'), status: 400, code: 'invalid_multipart' },
  { name: 'multipart part with a garbage header line', request: rawForm(EDITS, '--sgldboundary\r\nthis is not a header\r\n\r\nhello\r\n--sgldboundary--\r\n'), status: 400, code: 'invalid_multipart' },
  { name: 'videos: multipart without a boundary', request: rawForm(VIDEOS, multipartBody([{ name: 'prompt', value: 'p' }]), 'multipart/form-data'), status: 400, code: 'invalid_multipart' },
  { name: 'edits: a JSON body', request: json(EDITS, { prompt: 'p', url: 'data:image/png;base64,AAAA' }), status: 422, param: 'prompt' },
  { name: 'edits: no image and no url', request: edit([]), status: 422, param: 'image' },
  { name: 'edits: only a mask', request: edit([{ name: 'mask', file: file(png, 'mask.png', 'image/png') }]), status: 422, param: 'image' },
  { name: 'edits: n = "0"', request: edit([{ name: 'n', value: '0' }, { name: 'image', file: file(png, 'a.png', 'image/png') }]), status: 400, param: 'n' },
  { name: 'videos: empty prompt in multipart', request: form(VIDEOS, [{ name: 'prompt', value: '' }]), status: 400, param: 'prompt' },
  { name: 'videos: extra_body that is not JSON', request: form(VIDEOS, [{ name: 'prompt', value: 'p' }, { name: 'extra_body', value: '{nope' }]), status: 400, param: 'extra_body' },
  { name: 'videos: extra_body that is a list (JSON)', request: video({ extra_body: [] }), status: 400, param: 'extra_body' },

  // files that are not (acceptable) images
  { name: 'edits: a text file as the image', request: edit([{ name: 'image', file: file('hello, world', 'notes.txt', 'text/plain') }]), status: 400, param: 'image', code: 'invalid_image' },
  { name: 'edits: a PDF as the image', request: edit([{ name: 'image', file: file('%PDF-1.4\n1 0 obj << >> endobj\ntrailer\n%%EOF', 'doc.pdf', 'application/pdf') }]), status: 400, param: 'image' },
  { name: 'edits: a truncated PNG', request: edit([{ name: 'image', file: file(png.subarray(0, 40), 'cut.png', 'image/png') }]), status: 400, param: 'image', code: 'invalid_image' },
  { name: 'edits: an empty file', request: edit([{ name: 'image', file: file(Buffer.alloc(0), 'empty.png', 'image/png') }]), status: 400, param: 'image' },
  { name: 'edits: an SVG naming a server file', request: edit([{ name: 'image', file: file(svg, 'x.svg', 'image/svg+xml') }]), status: 400, param: 'image', code: 'unsupported_image_format' },
  { name: 'edits: a PNG declaring 9000x9000 pixels', request: edit([{ name: 'image', file: file(pngDeclaring(9000, 9000), 'bomb.png', 'image/png') }]), status: 400, param: 'image', code: 'image_too_large', message: /at most 50000000 pixels/ },
  { name: 'edits: a PNG declaring 20000x20000 pixels', request: edit([{ name: 'image', file: file(pngDeclaring(20_000, 20_000), 'bomb.png', 'image/png') }]), status: 400, param: 'image', code: 'image_too_large', message: /at most 50000000 pixels/ },
  { name: 'edits: a text file as image[]', request: edit([{ name: 'image[]', file: file('not an image', 'a.png', 'image/png') }]), status: 400, param: 'image[]' },
  { name: 'videos: an MP4 as input_reference', request: form(VIDEOS, [{ name: 'prompt', value: 'p' }, { name: 'input_reference', file: file(Buffer.from('....ftypisom'), 'clip.mp4', 'video/mp4') }]), status: 400, param: 'input_reference', code: 'unsupported_input' },
  { name: 'videos: a text file as input_reference', request: form(VIDEOS, [{ name: 'prompt', value: 'p' }, { name: 'input_reference', file: file('hello', 'ref.png', 'image/png') }]), status: 400, param: 'input_reference' },

  // bad base64 and data: URLs
  { name: 'data: URL with invalid base64', request: editUrl('data:image/png;base64,!!!not-base64!!!'), status: 400, param: 'url', code: 'invalid_data_url' },
  { name: 'data: URL without ;base64', request: editUrl('data:image/png,rawbytes'), status: 400, param: 'url', code: 'invalid_data_url' },
  { name: 'data: URL with a text media type', request: editUrl('data:text/plain;base64,aGVsbG8='), status: 400, param: 'url', code: 'invalid_data_url' },
  { name: 'data: URL with an empty payload', request: editUrl('data:image/png;base64,'), status: 400, param: 'url', code: 'invalid_data_url' },
  { name: 'data: URL of valid base64 that is not an image', request: editUrl('data:image/png;base64,aGVsbG8gd29ybGQ='), status: 400, param: 'url', code: 'invalid_image' },
  { name: 'data: URL with base64 padding in the middle', request: editUrl('data:image/png;base64,iVBO=Rw0KGgo='), status: 400, param: 'url', code: 'invalid_data_url' },
  { name: 'videos: reference data: URL with invalid base64', request: videoRef('data:image/png;base64,%%%%'), status: 400, param: 'reference_url', code: 'invalid_data_url' },

  // URLs: schemes and addresses the server does not fetch
  { name: 'url file:///etc/passwd', request: editUrl('file:///etc/passwd'), status: 400, param: 'url', code: 'unsupported_image_url' },
  { name: 'url ftp://', request: editUrl('ftp://example.com/a.png'), status: 400, param: 'url', code: 'unsupported_image_url' },
  { name: 'url gopher://', request: editUrl('gopher://127.0.0.1:6379/_INFO'), status: 400, param: 'url', code: 'unsupported_image_url' },
  { name: 'url javascript:', request: editUrl('javascript:alert(1)'), status: 400, param: 'url', code: 'unsupported_image_url' },
  { name: 'url that is not a URL', request: editUrl('not a url at all'), status: 400, param: 'url', code: 'unsupported_image_url' },
  { name: 'url to this server on 127.0.0.1', request: (base) => editUrl(`${base}/health`), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to localhost (resolved by DNS)', request: editUrl('http://localhost:9/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to the cloud metadata service 169.254.169.254', request: editUrl('http://169.254.169.254/latest/meta-data/'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 10.0.0.1', request: editUrl('http://10.0.0.1/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 10.255.255.254 over https', request: editUrl('https://10.255.255.254/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 192.168.1.1', request: editUrl('http://192.168.1.1/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 172.16.0.1', request: editUrl('http://172.16.0.1/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 100.64.0.1 (carrier-grade NAT)', request: editUrl('http://100.64.0.1/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 0.0.0.0', request: editUrl('http://0.0.0.0:80/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 127.1 (short form)', request: editUrl('http://127.1/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 0x7f000001 (hex form)', request: editUrl('http://0x7f000001/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to 2130706433 (decimal form)', request: editUrl('http://2130706433/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to [::1]', request: editUrl('http://[::1]/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to [::ffff:127.0.0.1]', request: editUrl('http://[::ffff:127.0.0.1]/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to [fe80::1] (link-local)', request: editUrl('http://[fe80::1]/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url to [fd00::1] (unique local)', request: editUrl('http://[fd00::1]/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url with credentials to 127.0.0.1', request: editUrl('http://user:secret@127.0.0.1/a.png'), status: 400, param: 'url', code: 'url_not_allowed' },
  { name: 'url[] to 169.254.169.254', request: edit([{ name: 'url[]', value: 'http://169.254.169.254/' }]), status: 400, param: 'url[]', code: 'url_not_allowed' },
  { name: 'videos: reference_url file://', request: videoRef('file:///etc/passwd'), status: 400, param: 'reference_url', code: 'unsupported_image_url' },
  { name: 'videos: reference_url to 169.254.169.254', request: videoRef('http://169.254.169.254/latest/meta-data/iam'), status: 400, param: 'reference_url', code: 'url_not_allowed' },
  { name: 'videos: reference_url to 10.1.2.3', request: videoRef('http://10.1.2.3/a.png'), status: 400, param: 'reference_url', code: 'url_not_allowed' },
  { name: 'videos: input_reference {image_url} to 127.0.0.1', request: video({ input_reference: { image_url: 'http://127.0.0.1:1/a.png' } }), status: 400, param: 'reference_url', code: 'url_not_allowed' },
  { name: 'videos: input_reference URL to 192.168.0.10', request: video({ input_reference: 'http://192.168.0.10/a.png' }), status: 400, param: 'input_reference', code: 'url_not_allowed' },

  // server paths outside the allowed folders
  { name: 'videos: input_reference /etc/passwd', request: video({ input_reference: '/etc/passwd' }), status: 400, param: 'input_reference', code: 'input_path_not_allowed' },
  { name: 'videos: input_reference climbing out with ../', request: video({ input_reference: '../../../../../../etc/passwd' }), status: 400, param: 'input_reference', code: 'input_path_not_allowed' },
  { name: 'videos: input_reference inside the input folder, then out', request: video({ input_reference: join(dir, 'inputs', '..', '..', '..', 'etc', 'hosts') }), status: 400, param: 'input_reference', code: 'input_path_not_allowed' },
  { name: 'videos: input_reference through a link out of the input folder', request: video({ input_reference: join(dir, 'inputs', 'escape', 'passwd') }), status: 400, param: 'input_reference', code: 'input_path_not_allowed' },
  { name: 'videos: output_path chosen by the request', request: video({ output_path: '/tmp/evil' }), status: 400, param: 'output_path', code: 'output_path_not_allowed' },
  { name: 'set_lora: lora_path /etc/passwd', request: json('/v1/set_lora', { lora_nickname: 'x', lora_path: '/etc/passwd' }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'lora_path', code: 'lora_path_not_allowed' },
  { name: 'set_lora: lora_path climbing out of the LoRA folder', request: json('/v1/set_lora', { lora_nickname: 'x', lora_path: join(dir, 'loras', '..', '..', '..', 'etc', 'shadow') }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'lora_path', code: 'lora_path_not_allowed' },
  { name: 'set_lora: lora_path through a link out of the LoRA folder', request: json('/v1/set_lora', { lora_nickname: 'x', lora_path: join(dir, 'loras', 'escape', 'passwd') }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'lora_path', code: 'lora_path_not_allowed' },
  { name: 'set_lora: a list with one path outside', request: json('/v1/set_lora', { lora_nickname: ['a', 'b'], lora_path: [join(dir, 'loras', 'a.safetensors'), '/etc/passwd'] }, { authorization: `Bearer ${ADMIN}` }), status: 400, param: 'lora_path', code: 'lora_path_not_allowed' },

  // ids that try to reach files
  { name: 'video id ../../etc/passwd (raw dots)', request: { path: '/v1/videos/../../etc/passwd' }, status: 404 },
  { name: 'video id with encoded slashes', request: { path: '/v1/videos/..%2F..%2Fetc%2Fpasswd' }, status: 404, code: 'video_not_found' },
  { name: 'video id %2e%2e', request: { path: '/v1/videos/%2e%2e' }, status: 404, code: 'video_not_found' },
  { name: 'video id naming the job index', request: { path: '/v1/videos/sgld-jobs.json' }, status: 404, code: 'video_not_found' },
  { name: 'video id with a NUL byte', request: { path: '/v1/videos/abc%00def' }, status: 404, code: 'video_not_found' },
  { name: 'video id of 5000 characters', request: { path: `/v1/videos/${'a'.repeat(5000)}` }, status: 404, code: 'video_not_found' },
  { name: 'video content of a traversal id', request: { path: '/v1/videos/..%2Fsgld-jobs.json/content' }, status: 404, code: 'video_not_found' },
  { name: 'delete of a traversal id', request: { method: 'DELETE', path: '/v1/videos/..%2F..%2Ftmp' }, status: 404, code: 'video_not_found' },
  { name: 'image content of a traversal id', request: { path: '/v1/images/..%2F..%2Fetc%2Fpasswd/content' }, status: 404, code: 'image_not_found' },
  { name: 'image content of an unknown UUID', request: { path: `/v1/images/${UNKNOWN_ID}/content` }, status: 404, code: 'image_not_found' },
  { name: 'image content with a traversal variant', request: { path: `/v1/images/${UNKNOWN_ID}/content?variant=../../x` }, status: 404 },
  { name: 'video of an unknown UUID', request: { path: `/v1/videos/${UNKNOWN_ID}` }, status: 404, code: 'video_not_found' },
  { name: 'model id with encoded traversal', request: { path: '/v1/models/..%2F..%2Fetc%2Fpasswd' }, status: 404, param: 'model', code: 'model_not_found' },
  { name: 'progress socket path without an upgrade', request: { path: '/v1/jobs/..%2F..%2Fetc/events' }, status: 426, code: 'upgrade_required' },

  // queries
  { name: 'videos list: limit = 0', request: { path: '/v1/videos?limit=0' }, status: 422, param: 'limit' },
  { name: 'videos list: limit = 1000', request: { path: '/v1/videos?limit=1000' }, status: 422, param: 'limit' },
  { name: 'videos list: limit is a word', request: { path: '/v1/videos?limit=all' }, status: 422, param: 'limit' },

  // auth
  { name: 'no key', request: { ...gen({}), headers: { 'content-type': 'application/json', authorization: '' } }, status: 401, code: 'invalid_api_key' },
  { name: 'a wrong key', request: { ...gen({}), headers: { 'content-type': 'application/json', authorization: 'Bearer sk-wrong' } }, status: 401, code: 'invalid_api_key' },
  { name: 'an empty bearer', request: { path: '/v1/models', headers: { authorization: 'Bearer ' } }, status: 401, code: 'invalid_api_key' },
  { name: 'a wrong x-api-key', request: { path: '/v1/models', headers: { authorization: '', 'x-api-key': 'sk-inpu' } }, status: 401, code: 'invalid_api_key' },
  { name: 'set_lora with the normal key when an admin key is set', request: json('/v1/set_lora', { lora_nickname: 'a' }), status: 401, code: 'invalid_api_key' },

  // routing
  { name: 'PUT on generations', request: { ...gen({}), method: 'PUT' }, status: 405, code: 'method_not_allowed' },
  { name: 'GET on generations', request: { path: GEN }, status: 405, code: 'method_not_allowed' },
  { name: 'an unknown route', request: { path: '/v1/nope' }, status: 404, code: 'route_not_found' },
  { name: 'remix (not provided)', request: json('/v1/videos/abc/remix', { prompt: 'p' }), status: 404, code: 'route_not_found' },
];

// ---- running them ---------------------------------------------------------------------------------------------------

/** What a case is judged on, with only the keys its expectation names. */
async function observe(base: string, c: Case): Promise<Record<string, unknown>> {
  const request = typeof c.request === 'function' ? c.request(base) : c.request;
  const answer: RawAnswer = await raw(base, request).catch((e: Error) => ({ status: 0, headers: {}, text: `request failed: ${e.message}` }));
  let envelope = 'ok', body: { error?: { message?: unknown; type?: unknown; param?: unknown; code?: unknown }; detail?: unknown } = {};
  try {
    body = JSON.parse(answer.text) as typeof body;
  } catch {
    envelope = `not JSON: ${answer.text.slice(0, 120)}`;
  }
  const e = body.error;
  if (envelope === 'ok') {
    if (!e || typeof e.message !== 'string' || typeof e.type !== 'string') envelope = `no error object: ${answer.text.slice(0, 160)}`;
    else if (body.detail !== e.message) envelope = 'detail differs from error.message';
    else if (!(e.param === null || typeof e.param === 'string') || !(e.code === null || typeof e.code === 'string')) envelope = 'param/code of the wrong type';
    else if (!String(answer.headers['content-type']).startsWith('application/json')) envelope = `content type ${answer.headers['content-type']}`;
  }
  const health = await fetch(`${base}/health`).then((r) => r.status, () => 0);
  const seen: Record<string, unknown> = { status: answer.status, envelope, health };
  if (c.param !== undefined) seen.param = e?.param;
  if (c.code !== undefined) seen.code = e?.code;
  if (c.message !== undefined) seen.message = typeof e?.message === 'string' && c.message.test(e.message) ? 'matches' : e?.message;
  return seen;
}

t.test(`${cases.length} bad requests: each a 4xx with the error envelope, and /health answers after each`, async (t) => {
  t.ok(cases.length >= 100, `at least 100 cases (${cases.length})`);
  // Folders the confinement cases point into, each with a link to /etc inside.
  for (const sub of ['inputs', 'loras']) {
    const { mkdirSync, symlinkSync } = await import('node:fs');
    mkdirSync(join(dir, sub), { recursive: true });
    symlinkSync('/etc', join(dir, sub, 'escape'));
  }
  writeFileSync(join(dir, 'loras', 'a.safetensors'), 'not really');
  sgld = await startSgld([
    '--port', '0', '--device', 'cpu', '--threads', '2', '--log-level', 'error',
    '--output-path', join(dir, 'outputs'), '--input-save-path', join(dir, 'inputs'), '--lora-dir', join(dir, 'loras'),
    '--api-key', KEY, '--admin-api-key', ADMIN,
    '--max-upload-mb', String(LIMITS.uploadMb), '--max-body-mb', String(LIMITS.bodyMb), '--body-timeout', String(LIMITS.bodyTimeoutS),
    '--max-steps', String(LIMITS.steps), '--max-frames', String(LIMITS.frames), '--max-pixels', String(LIMITS.pixels),
  ]);
  await waitReady(sgld.base);
  for (const c of cases) {
    const want: Record<string, unknown> = { status: c.status, envelope: 'ok', health: 200 };
    if (c.param !== undefined) want.param = c.param;
    if (c.code !== undefined) want.code = c.code;
    if (c.message !== undefined) want.message = 'matches';
    t.same(await observe(sgld.base, c), want, c.name);
  }
  t.equal(sgld.child.exitCode, null, 'the server is still running');
  if (t.counts.fail > 0) t.comment(sgld.output().slice(-3000));
});

// Requests the HTTP parser (uWS) refuses before any handler runs: no error envelope can be sent, the connection is
// closed (or left to its idle timeout). What matters is that nothing is answered 2xx/5xx and the server serves on.
const protocolCases: { name: string; bytes: string[] }[] = [
  { name: 'a declared Content-Length of 10 GB', bytes: [`POST ${GEN} HTTP/1.1\r\nHost: x\r\nContent-Length: ${10 * 1024 ** 3}\r\n\r\n{"prompt":"a"}`] },
  { name: 'a non-numeric Content-Length', bytes: [`POST ${GEN} HTTP/1.1\r\nHost: x\r\nContent-Length: lots\r\n\r\n{}`] },
  { name: 'a negative Content-Length', bytes: [`POST ${GEN} HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n{}`] },
  { name: 'a 300 KB header', bytes: [`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(300_000)}\r\n\r\n`] },
  { name: 'an 8 KB header arriving in two reads', bytes: [`GET /v1/models HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(100)}`, `${'b'.repeat(8000)}\r\n\r\n`] },
  { name: 'sixty headers', bytes: [`GET /v1/models HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 60 }, (_, i) => `X-H${i}: v\r\n`).join('')}\r\n`] },
  { name: 'a garbage request line', bytes: ['THIS IS NOT HTTP\r\n\r\n'] },
  { name: 'binary noise', bytes: [Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 97) % 256)).toString('latin1')] },
];

function rawSocket(base: string, parts: string[]): Promise<string> {
  const url = new URL(base);
  return new Promise((resolve) => {
    const s = net.connect(Number(url.port), url.hostname);
    let got = '';
    const done = (why: string): void => { s.destroy(); resolve(got ? got.split('\r\n')[0]! : why); };
    s.on('data', (d) => { got += d.toString('latin1'); });
    s.on('close', () => done('closed'));
    s.on('error', () => done('reset'));
    void (async () => {
      for (const p of parts) { s.write(Buffer.from(p, 'latin1')); await new Promise((r) => setTimeout(r, 50)); }
    })();
    setTimeout(() => done('no answer'), 800);
  });
}

t.test('requests the HTTP parser refuses: no 2xx or 5xx, and /health answers after each', async (t) => {
  if (!sgld) { t.fail('the server did not start'); return; }
  for (const c of protocolCases) {
    const first = await rawSocket(sgld.base, c.bytes);
    const health = await fetch(`${sgld.base}/health`).then((r) => r.status, () => 0);
    t.same({ refused: !/^HTTP\/1\.1 [25]/.test(first), health }, { refused: true, health: 200 }, `${c.name} (${first})`);
  }
});
