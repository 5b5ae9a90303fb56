// Request bodies: collected from uWS onData with a size limit (413 beyond it, spec 1.5 [sgld]) and a time limit
// (408 beyond it), so neither a huge nor a trickling body can hold memory or a connection for long.
import type { HttpResponse } from 'uWebSockets.js';
import { ApiError } from './errors.js';

export const bodyTooLarge = (limit: number): ApiError =>
  new ApiError(413, `Request body is larger than the limit of ${limit} bytes`, { code: 'request_too_large' });

export const bodyTimedOut = (timeoutMs: number): ApiError =>
  new ApiError(408, `The request body did not arrive within ${timeoutMs / 1000} s`, { code: 'request_timeout' });

export interface BodyLimits {
  /** Largest body in bytes. */
  maxBytes: number;
  /** Time from the request head to the body's last byte; 0: no limit. */
  timeoutMs: number;
}

/**
 * Starts reading the body; must be called synchronously in the handler (before any await), since uWS delivers
 * data from the next loop turn on. Rejects with a 413 ApiError as soon as the body (or its declared
 * Content-Length) exceeds the limit, and with a 408 when it is not complete in time; later chunks are dropped.
 * Never settles when the client aborts (`onAbort` must then be called, which stops the timer).
 */
export function readBody(res: HttpResponse, limits: BodyLimits, contentLength: string | undefined): { body: Promise<Buffer>; onAbort(): void } {
  let timer: NodeJS.Timeout | undefined;
  const body = new Promise<Buffer>((resolve, reject) => {
    const declared = contentLength === undefined ? NaN : Number(contentLength);
    let failed = declared > limits.maxBytes;
    if (failed) reject(bodyTooLarge(limits.maxBytes));
    const fail = (error: ApiError): void => {
      failed = true;
      chunks.length = 0;
      clearTimeout(timer);
      reject(error);
    };
    if (!failed && limits.timeoutMs > 0) timer = setTimeout(() => fail(bodyTimedOut(limits.timeoutMs)), limits.timeoutMs);
    const chunks: Buffer[] = [];
    let received = 0;
    res.onData((chunk, isLast) => {
      if (failed) return;
      received += chunk.byteLength;
      if (received > limits.maxBytes) { fail(bodyTooLarge(limits.maxBytes)); return; }
      // uWS detaches the ArrayBuffer when this callback returns: copy it.
      if (chunk.byteLength > 0) chunks.push(Buffer.from(new Uint8Array(chunk).slice()));
      if (isLast) {
        clearTimeout(timer);
        resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, received));
      }
    });
  });
  return { body, onAbort: () => clearTimeout(timer) };
}
