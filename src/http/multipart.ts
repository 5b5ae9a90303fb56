// multipart/form-data bodies through uWS.getParts, with the checks getParts leaves to us: a boundary, a
// terminating delimiter (a truncated body otherwise parses as a shorter form) and a per-file size limit.
import uWS from 'uWebSockets.js';
import { ApiError } from './errors.js';

export interface FilePart {
  name: string;
  filename: string;
  contentType: string;
  data: Uint8Array;
}

export interface Form {
  /** Text parts by name, every value in part order. */
  fields: Map<string, string[]>;
  /** File parts (those with a filename) in part order. */
  files: FilePart[];
}

export const invalidMultipart = (why: string): ApiError =>
  new ApiError(400, `Invalid multipart/form-data body: ${why}`, { code: 'invalid_multipart' });

function boundaryOf(contentType: string): string | null {
  const m = /;\s*boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  return m ? (m[1] ?? m[2]!) : null;
}

export function parseMultipart(body: Buffer, contentType: string, maxFileBytes: number): Form {
  const boundary = boundaryOf(contentType);
  if (!boundary) throw invalidMultipart('the Content-Type has no boundary');
  if (body.indexOf(`--${boundary}--`) < 0) throw invalidMultipart('missing the closing boundary (truncated body?)');
  const parts = uWS.getParts(body, contentType);
  if (!parts || parts.length === 0) throw invalidMultipart('no parts could be read');
  const form: Form = { fields: new Map(), files: [] };
  for (const part of parts) {
    // getParts reads a part without a usable Content-Disposition as one with an undefined name.
    if (typeof part.name !== 'string' || part.name === '') throw invalidMultipart('a part has no name (Content-Disposition: form-data; name="...")');
    if (part.filename !== undefined) {
      if (part.data.byteLength > maxFileBytes) {
        throw new ApiError(413, `File '${part.filename}' in part '${part.name}' is larger than the limit of ${maxFileBytes} bytes`, {
          param: part.name, code: 'file_too_large',
        });
      }
      // getParts' ArrayBuffers view the body buffer: copy so the body can be released.
      form.files.push({ name: part.name, filename: part.filename, contentType: part.type ?? 'application/octet-stream', data: new Uint8Array(part.data.slice(0)) });
    } else {
      const values = form.fields.get(part.name) ?? [];
      values.push(Buffer.from(part.data).toString('utf8'));
      form.fields.set(part.name, values);
    }
  }
  return form;
}

/** Scalar view of the text parts for schema parsing: the last value of each name wins (as in Starlette). */
export function lastValues(form: Form): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, values] of form.fields) out[name] = values[values.length - 1]!;
  return out;
}
