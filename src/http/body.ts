// Request bodies: collected from uWS onData with a size limit (413 beyond it, spec 1.5 [sgld]).
import type { HttpResponse } from 'uWebSockets.js';
import { ApiError } from './errors.js';

export const bodyTooLarge = (limit: number): ApiError =>
  new ApiError(413, `Request body is larger than the limit of ${limit} bytes`, { code: 'request_too_large' });

/**
 * Starts reading the body; must be called synchronously in the handler (before any await), since uWS delivers
 * data from the next loop turn on. Rejects with a 413 ApiError as soon as the body (or its declared
 * Content-Length) exceeds `limit`; later chunks are dropped. Never settles when the client aborts.
 */
export function readBody(res: HttpResponse, limit: number, contentLength: string | undefined): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = contentLength === undefined ? NaN : Number(contentLength);
    let failed = declared > limit;
    if (failed) reject(bodyTooLarge(limit));
    const chunks: Buffer[] = [];
    let received = 0;
    res.onData((chunk, isLast) => {
      if (failed) return;
      received += chunk.byteLength;
      if (received > limit) { failed = true; chunks.length = 0; reject(bodyTooLarge(limit)); return; }
      // uWS detaches the ArrayBuffer when this callback returns: copy it.
      if (chunk.byteLength > 0) chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
    });
  });
}
