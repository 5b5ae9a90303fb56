// JSON request bodies: malformed JSON is a 400 (spec 1.5), a body that is JSON but not an object is a 422 (the
// schema cannot apply).
import { ApiError } from './errors.js';

export function parseJsonObject(body: Buffer, options: { emptyIsObject: boolean }): Record<string, unknown> {
  const text = body.toString('utf8');
  if (text.trim() === '') {
    if (options.emptyIsObject) return {};
    throw new ApiError(400, 'Request body is empty; send a JSON object', { code: 'invalid_json' });
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ApiError(400, `Request body is not valid JSON: ${(err as Error).message}`, { code: 'invalid_json' });
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError(422, 'Request body must be a JSON object', { code: 'invalid_type' });
  }
  return value as Record<string, unknown>;
}
