// Every error a client sees leaves through here: ApiError (src/actors/api.ts) rendered as the envelope of spec 1.4.
// Errors that are not ApiErrors but carry an HTTP status and a stable code (the LoRA engine's LoraError) keep
// them; anything else is an internal fault (500), whose details go to the log, not to the client.
import { ApiError, type ApiErrorType } from '../actors/api.js';

export { ApiError };

/** The wire body of an error (spec 1.4). `detail` duplicates the message for FastAPI-style clients. */
export interface ErrorBody {
  error: { message: string; type: ApiErrorType; param: string | null; code: string | null };
  detail: string;
}

export function errorBody(err: ApiError): ErrorBody {
  return { error: { message: err.message, type: err.type, param: err.param, code: err.code }, detail: err.message };
}

/** 400: a field has an invalid value. */
export const invalidField = (param: string, message: string, code: string | null = 'invalid_value'): ApiError =>
  new ApiError(400, message, { param, code });

/** 422: a required field is missing or has the wrong JSON type (FastAPI schema validation in SGLang). */
export const schemaError = (param: string | null, message: string, code: string | null = 'invalid_type'): ApiError =>
  new ApiError(422, message, { param, code });

export const missingField = (param: string): ApiError =>
  new ApiError(422, `Field '${param}' is required`, { param, code: 'missing_required_field' });

interface StatusCarrier { status: unknown; code?: unknown; param?: unknown; message?: unknown }

/** Anything thrown -> the ApiError to send. `onInternal` sees faults that become a 500. */
export function toApiError(err: unknown, onInternal?: (err: unknown) => void): ApiError {
  if (err instanceof ApiError) return err;
  if (err !== null && typeof err === 'object') {
    const e = err as StatusCarrier;
    // A typed engine error (e.g. LoraError) that already knows its 4xx status and code.
    if (typeof e.status === 'number' && e.status >= 400 && e.status < 500 && typeof e.message === 'string') {
      return new ApiError(e.status, e.message, {
        code: typeof e.code === 'string' ? e.code : null,
        param: typeof e.param === 'string' ? e.param : null,
      });
    }
  }
  onInternal?.(err);
  return new ApiError(500, 'Internal server error', { code: 'internal_error' });
}
