// The answer side of one HTTP exchange. It registers onAborted at once (uWS aborts the process if an async handler
// returns without one), makes every write inside res.cork (writes after an await are otherwise uncorked), and
// becomes a no-op once the client has gone: touching a uWS response after abort throws.
import { open } from 'node:fs/promises';
import type { HttpResponse } from 'uWebSockets.js';
import { type ApiError, errorBody } from './errors.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 204: 'No Content', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 408: 'Request Timeout', 409: 'Conflict', 413: 'Payload Too Large', 422: 'Unprocessable Entity',
  426: 'Upgrade Required', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error',
  503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export const statusLine = (status: number): string => `${status} ${STATUS_TEXT[status] ?? 'Unknown'}`;

/** File reads while streaming: large enough to keep syscalls rare, small enough to bound memory per download. */
const STREAM_CHUNK_BYTES = 256 * 1024;

export class Reply {
  #aborted = false;
  #sent = false;
  #status = 0;
  readonly #abortListeners: (() => void)[] = [];

  constructor(
    private readonly res: HttpResponse,
    /** HEAD answers carry the headers and length of the GET answer without its body. */
    private readonly head: boolean,
    /** Headers on every response (CORS). */
    private readonly commonHeaders: Record<string, string>,
    private readonly onFinish: (status: number) => void,
  ) {
    res.onAborted(() => {
      this.#aborted = true;
      if (!this.#sent) { this.#sent = true; this.onFinish(499); }
      for (const fn of this.#abortListeners.splice(0)) fn();
    });
  }

  /** The client went away before the answer was complete. */
  get aborted(): boolean { return this.#aborted; }
  /** An answer was (or is being) sent. */
  get sent(): boolean { return this.#sent; }
  get status(): number { return this.#status; }

  onAbort(fn: () => void): void {
    if (this.#aborted) fn(); else this.#abortListeners.push(fn);
  }

  /** A complete answer. `closeConnection` drops the connection afterwards (e.g. a body we stopped reading). */
  send(status: number, body: string | Uint8Array, headers: Record<string, string> = {}, closeConnection = false): void {
    if (this.#aborted || this.#sent) return;
    this.#sent = true;
    this.#status = status;
    this.res.cork(() => {
      this.#writeHead(status, headers);
      if (this.head) this.res.endWithoutBody(typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength, closeConnection);
      else this.res.end(body, closeConnection);
    });
    this.onFinish(status);
  }

  json(status: number, body: unknown, headers: Record<string, string> = {}): void {
    this.send(status, JSON.stringify(body), { 'Content-Type': 'application/json', ...headers });
  }

  error(err: ApiError, closeConnection = false): void {
    this.send(err.status, JSON.stringify(errorBody(err)), { 'Content-Type': 'application/json', ...err.headers }, closeConnection);
  }

  /**
   * Streams `size` bytes of the file at `path` with backpressure: tryEnd until uWS reports the socket full, then
   * wait for onWritable and resend the unsent tail. Resolves when done or when the client has gone.
   */
  async sendFile(path: string, size: number, headers: Record<string, string>): Promise<void> {
    if (this.#aborted || this.#sent) return;
    const file = await open(path, 'r');
    let started = false;
    try {
      if (this.#aborted || this.#sent) return;
      this.#sent = started = true;
      this.#status = 200;
      if (this.head || size === 0) {
        this.res.cork(() => {
          this.#writeHead(200, headers);
          if (this.head) this.res.endWithoutBody(size); else this.res.end();
        });
        return;
      }
      this.res.cork(() => this.#writeHead(200, headers));
      let position = 0;
      while (position < size && !this.#aborted) {
        const chunk = Buffer.allocUnsafe(Math.min(STREAM_CHUNK_BYTES, size - position));
        const { bytesRead } = await file.read(chunk, 0, chunk.byteLength, position);
        if (bytesRead === 0) throw new Error(`file ${path} shrank while streaming`);
        position += bytesRead;
        await this.#writeChunk(chunk.subarray(0, bytesRead), size);
      }
    } catch (err) {
      // Headers are out: the only honest signal left is to cut the connection.
      if (!this.#aborted) this.res.close();
      throw err;
    } finally {
      await file.close();
      if (started && !this.#aborted) this.onFinish(200);
    }
  }

  #writeChunk(chunk: Buffer, total: number): Promise<void> {
    return new Promise((resolve) => {
      if (this.#aborted) { resolve(); return; }
      let startOffset = 0, ok = false;
      this.res.cork(() => {
        startOffset = this.res.getWriteOffset();
        [ok] = this.res.tryEnd(chunk, total);
      });
      if (ok) { resolve(); return; }
      this.onAbort(resolve);
      this.res.onWritable((offset) => {
        const [sent] = this.res.tryEnd(chunk.subarray(offset - startOffset), total);
        if (sent) resolve();
        return sent;
      });
    });
  }

  #writeHead(status: number, headers: Record<string, string>): void {
    this.res.writeStatus(statusLine(status));
    for (const [k, v] of Object.entries(this.commonHeaders)) this.res.writeHeader(k, v);
    for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
  }
}
