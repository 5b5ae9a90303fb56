// Input images (edits inputs, image-to-video references): uploaded files, data: URLs, http(s) URLs and, for
// JSON video requests, paths inside --input-save-path. Each is decoded here, so a bad image is a 400 before any
// job exists (spec 3.2, 5.3).
import { realpath, readFile, stat } from 'node:fs/promises';
import { basename, extname, sep } from 'node:path';
import sharp from 'sharp';
import type { InputImage } from '../actors/api.js';
import { decodeImage } from '../media/image.js';
import type { ResolvedHttpOptions } from './context.js';
import { ApiError } from './errors.js';
import { fetchRemoteImage } from './remote-image.js';

export interface RawInput {
  data: Uint8Array;
  filename: string;
  contentType: string;
  source: InputImage['source'];
}

const sourceError = (param: string, why: string, code = 'invalid_image'): ApiError =>
  new ApiError(400, `Failed to process image source: ${why}`, { param, code });

const VIDEO_EXTENSIONS = new Set(['.mp4', '.mov', '.webm', '.mkv', '.avi', '.m4v', '.gif']);

/** Spec 5.3: a reference that says it is a video is a video-to-video input, which no sgld pipeline takes yet. */
export function rejectVideoInput(input: Pick<RawInput, 'filename' | 'contentType'>, param: string): void {
  if (input.contentType.toLowerCase().startsWith('video/') || VIDEO_EXTENSIONS.has(extname(input.filename).toLowerCase())) {
    throw new ApiError(400, `${param} is a video; video inputs need a video-to-video model, which this server does not serve`, {
      param, code: 'unsupported_input',
    });
  }
}

/**
 * Raster formats accepted as inputs. SVG (which libvips renders and which can name other resources) and the
 * document formats some libvips builds read are refused.
 */
const DECODED_FORMATS = new Set(['jpeg', 'png', 'webp', 'gif', 'tiff', 'avif', 'heif']);

/**
 * Decodes an input after reading only its header for the pixel count, so a small file that declares a huge
 * picture (a decompression bomb) is refused before its pixels are allocated.
 */
export async function decodeInput(raw: RawInput, param: string, maxPixels: number): Promise<InputImage> {
  let width: number | undefined, height: number | undefined, format: string | undefined;
  try {
    // Only the header is read here, so sharp's own pixel limit is lifted: the check below names ours.
    ({ width, height, format } = await sharp(raw.data, { limitInputPixels: false }).metadata());
  } catch (err) {
    throw sourceError(param, `${raw.filename} is not a decodable image (${(err as Error).message})`);
  }
  if (format === undefined || !DECODED_FORMATS.has(format)) {
    throw sourceError(param, `${raw.filename} is ${format ?? 'of an unknown format'}; input images must be PNG, JPEG, WebP, GIF, TIFF or AVIF`, 'unsupported_image_format');
  }
  if (width !== undefined && height !== undefined && width * height > maxPixels) {
    throw new ApiError(400, `${param}: ${raw.filename} is ${width}x${height} (${width * height} pixels); this server decodes input images of at most ${maxPixels} pixels`, {
      param, code: 'image_too_large',
    });
  }
  try {
    return { ...raw, image: await decodeImage(raw.data) };
  } catch (err) {
    throw sourceError(param, `${raw.filename} is not a decodable image (${(err as Error).message})`);
  }
}

const EXTENSION_OF: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg', 'image/webp': 'webp', 'image/gif': 'gif', 'image/bmp': 'bmp', 'image/tiff': 'tiff' };

/** A `data:image/<type>;base64,<payload>` URL or an http(s) URL -> bytes (spec 3.2). `index` names the file. */
export async function loadImageUrl(url: string, param: string, index: number, options: ResolvedHttpOptions): Promise<RawInput> {
  const trimmed = url.trim();
  if (/^data:/i.test(trimmed)) return parseDataUrl(trimmed, param, index, options.maxUploadBytes);
  if (/^https?:\/\//i.test(trimmed)) {
    if (!options.remoteInputs) {
      throw new ApiError(400, `Fetching remote images is disabled on this server; send the image as a file or a data: URL`, {
        param, code: 'remote_input_disabled',
      });
    }
    return fetchImage(trimmed, param, index, options);
  }
  throw sourceError(param, 'Unsupported image url format', 'unsupported_image_url');
}

function parseDataUrl(url: string, param: string, index: number, maxBytes: number): RawInput {
  const comma = url.indexOf(',');
  const header = comma < 0 ? url : url.slice(5, comma);
  const [mediaType = '', ...flags] = header.split(';');
  if (comma < 0 || !flags.some((f) => f.toLowerCase() === 'base64')) throw sourceError(param, 'a data URL must be base64-encoded (data:image/<type>;base64,...)', 'invalid_data_url');
  if (!/^image\/[\w.+-]+$/i.test(mediaType)) throw sourceError(param, `a data URL must have an image media type; got '${mediaType}'`, 'invalid_data_url');
  const payload = url.slice(comma + 1).replace(/\s+/g, '');
  if (payload === '') throw sourceError(param, 'the data URL has an empty payload', 'invalid_data_url');
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(payload)) throw sourceError(param, 'the data URL payload is not valid base64', 'invalid_data_url');
  if ((payload.length * 3) / 4 > maxBytes) throw new ApiError(413, `The image in ${param} is larger than the limit of ${maxBytes} bytes`, { param, code: 'file_too_large' });
  const contentType = mediaType.toLowerCase();
  return { data: new Uint8Array(Buffer.from(payload, 'base64')), filename: `url_${index}.${EXTENSION_OF[contentType] ?? 'img'}`, contentType, source: 'url' };
}

async function fetchImage(url: string, param: string, index: number, options: ResolvedHttpOptions): Promise<RawInput> {
  const image = await fetchRemoteImage(url, param, {
    maxBytes: options.maxUploadBytes, timeoutMs: options.remoteFetchTimeoutMs, allowPrivate: options.allowPrivateUrls,
  });
  const name = basename(image.finalUrl.pathname) || `url_${index}.${EXTENSION_OF[image.contentType] ?? 'img'}`;
  return { data: image.data, filename: name, contentType: image.contentType, source: 'url' };
}

/**
 * A server path given as JSON `input_reference` (spec 5.3 [sgld]): only files inside --input-save-path, after
 * resolving links, so a request cannot read arbitrary server files.
 */
export async function loadServerPath(path: string, inputSavePath: string | null, param: string, maxBytes: number): Promise<RawInput> {
  const refuse = (): ApiError => new ApiError(400, `${param} may only name files inside the server's input folder (--input-save-path); send a file, a data: URL or an http(s) URL`, {
    param, code: 'input_path_not_allowed',
  });
  if (!inputSavePath) throw refuse();
  let real: string, root: string;
  try {
    [real, root] = await Promise.all([realpath(path), realpath(inputSavePath)]);
  } catch {
    throw refuse();
  }
  if (!real.startsWith(root.endsWith(sep) ? root : root + sep)) throw refuse();
  const st = await stat(real);
  if (!st.isFile()) throw refuse();
  if (st.size > maxBytes) throw new ApiError(413, `${param} is larger than the limit of ${maxBytes} bytes`, { param, code: 'file_too_large' });
  const ext = extname(real).toLowerCase().slice(1);
  const contentType = Object.entries(EXTENSION_OF).find(([, e]) => e === ext)?.[0] ?? 'application/octet-stream';
  return { data: new Uint8Array(await readFile(real)), filename: basename(real), contentType, source: 'path' };
}
