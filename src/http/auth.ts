// Optional API keys (spec 1.2). Keys are compared through SHA-256 digests with timingSafeEqual, so neither the
// content nor the length of a wrong key shows in the response time.
import { createHash, timingSafeEqual } from 'node:crypto';
import { ApiError } from './errors.js';

export interface AuthOptions {
  /** --api-key: required on normal routes (and on admin routes when no admin key is set). */
  apiKey?: string;
  /** --admin-api-key: the only key accepted on the LoRA mutators. */
  adminApiKey?: string;
}

/** Which keys a route accepts: probes none, normal routes the api key, LoRA mutators the admin key. */
export type AuthClass = 'public' | 'normal' | 'admin';

const PUBLIC_PREFIXES = ['/health', '/ready', '/metrics'];

/** Probe paths never need a key, whatever route (or none) serves them. */
export const isPublicPath = (path: string): boolean => PUBLIC_PREFIXES.some((p) => path.startsWith(p));

const digest = (s: string): Buffer => createHash('sha256').update(s, 'utf8').digest();

/** The keys a request presents: `Authorization: Bearer <key>` and/or `x-api-key: <key>`. */
export function presentedKeys(headers: Record<string, string>): string[] {
  const keys: string[] = [];
  const m = /^\s*bearer\s+(.+?)\s*$/i.exec(headers.authorization ?? '');
  if (m) keys.push(m[1]!);
  const x = headers['x-api-key'];
  if (x !== undefined && x !== '') keys.push(x.trim());
  return keys;
}

export class Authenticator {
  readonly #api: Buffer | null;
  readonly #admin: Buffer | null;

  constructor(options: AuthOptions) {
    this.#api = options.apiKey ? digest(options.apiKey) : null;
    this.#admin = options.adminApiKey ? digest(options.adminApiKey) : null;
  }

  /** The key a route class requires, or null when the route is open. */
  #required(cls: AuthClass): Buffer | null {
    if (cls === 'public') return null;
    if (cls === 'admin') return this.#admin ?? this.#api;
    return this.#api;
  }

  /** Throws 401 when the route needs a key and none of the presented keys is it. */
  check(cls: AuthClass, headers: Record<string, string>): void {
    const required = this.#required(cls);
    if (!required) return;
    const keys = presentedKeys(headers);
    // Compare every presented key (no early exit), so timing does not reveal which header matched.
    let ok = false;
    for (const k of keys) ok = timingSafeEqual(digest(k), required) || ok;
    if (!ok) {
      throw new ApiError(401, keys.length ? 'Invalid API key' : 'Missing API key: send "Authorization: Bearer <key>" or "x-api-key: <key>"', {
        code: 'invalid_api_key',
      });
    }
  }
}
