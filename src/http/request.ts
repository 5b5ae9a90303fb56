// What a handler may know about a request, copied out of uWS's HttpRequest synchronously (the HttpRequest object
// is only valid until the handler first returns or awaits).
import type { HttpRequest } from 'uWebSockets.js';

export interface RequestInfo {
  /** Upper-case method. */
  method: string;
  /** Raw path (percent-encoded as sent), without the query. */
  path: string;
  query: URLSearchParams;
  /** Header names lower-case; repeated headers joined with ", ". */
  headers: Record<string, string>;
  /** Size of the request head as received (request line and header lines, roughly), for the header limit. */
  headBytes: number;
}

export function readRequest(req: HttpRequest): RequestInfo {
  const headers: Record<string, string> = {};
  const path = req.getUrl(), rawQuery = req.getQuery() ?? '';
  let headBytes = path.length + rawQuery.length + 16;
  req.forEach((key, value) => {
    headBytes += key.length + value.length + 4;
    headers[key] = key in headers ? `${headers[key]}, ${value}` : value;
  });
  return {
    method: req.getCaseSensitiveMethod().toUpperCase(),
    path,
    query: new URLSearchParams(rawQuery),
    headers,
    headBytes,
  };
}

/** The media type of a Content-Type header, lower-case, without parameters ('' when absent). */
export const mediaType = (contentType: string | undefined): string => (contentType ?? '').split(';')[0]!.trim().toLowerCase();
