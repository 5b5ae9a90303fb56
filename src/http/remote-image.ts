// Downloads of http(s) image URLs (edits `url`, video `reference_url`) that a caller cannot turn against the
// server's own network (SSRF): every address a host resolves to is checked against the non-public ranges at
// connect time (node's `lookup` hook, so a DNS answer cannot change between the check and the connection), literal
// IP hosts are checked before any connection, redirects are followed by hand and each hop is checked again, and
// each attempt has a deadline and a byte limit. Retries follow SGLang's downloader: 3 attempts, 0.2 s then 0.4 s
// apart, on 429 / 5xx / network errors (spec 3.2).
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import { ApiError } from './errors.js';

/**
 * Addresses that are not on the public internet (IANA special-purpose registries, RFC 6890 and successors):
 * "this network", private (RFC 1918), carrier-grade NAT, loopback, link-local (cloud metadata services live at
 * 169.254.169.254), IETF protocol assignments, documentation and benchmarking nets, multicast, reserved and
 * broadcast; for IPv6 the unspecified and loopback addresses, unique-local, link-local, site-local, multicast,
 * documentation, discard-only, and the transition prefixes (NAT64, 6to4, Teredo) whose embedded IPv4 address
 * could be private. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are matched by the IPv4 rules (node's BlockList).
 */
const NON_PUBLIC = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.88.99.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15],
  ['198.51.100.0', 24], ['203.0.113.0', 24], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NON_PUBLIC.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [
  ['::', 128], ['::1', 128], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['100::', 64], ['2001::', 32], ['2001:db8::', 32],
  ['2002::', 16], ['fc00::', 7], ['fe80::', 10], ['fec0::', 10], ['ff00::', 8],
] as const) NON_PUBLIC.addSubnet(net, bits, 'ipv6');

/** Whether `address` (an IPv4 or IPv6 literal) is outside the public internet. Non-addresses count as non-public. */
export function isNonPublicAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 0) return true;
  return NON_PUBLIC.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

export interface RemoteFetchOptions {
  /** Largest body accepted (413 `file_too_large` beyond). */
  maxBytes: number;
  /** Deadline of one attempt: connect, headers and body. */
  timeoutMs: number;
  /** Whether non-public addresses may be reached (`--allow-private-input-urls`). */
  allowPrivate: boolean;
  /** Which addresses may be reached when `allowPrivate` is false; tests replace it. */
  isAllowedAddress?: (address: string) => boolean;
  /** Back-off between attempts (default SGLang's 200 ms, 400 ms). */
  retryDelaysMs?: readonly number[];
}

export interface RemoteImage {
  data: Uint8Array;
  /** Media type without parameters, lower-case. */
  contentType: string;
  /** The URL the bytes came from (after redirects). */
  finalUrl: URL;
}

/** Redirects followed per attempt; each hop is checked like the first URL. */
const MAX_REDIRECTS = 3;
const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308]);
const RETRY_DELAYS_MS = [200, 400];

const sourceError = (param: string, why: string, code: string): ApiError =>
  new ApiError(400, `Failed to process image source: ${why}`, { param, code });

/** A refusal that no retry changes (address policy, size, content type): thrown through the retry loop. */
class FinalError extends Error {
  constructor(readonly apiError: ApiError) { super(apiError.message); }
}

/** A problem a retry may fix (network error, 429, 5xx, timeout). */
class RetryableError extends Error {}

export async function fetchRemoteImage(url: string, param: string, options: RemoteFetchOptions): Promise<RemoteImage> {
  const delays = options.retryDelaysMs ?? RETRY_DELAYS_MS;
  let lastProblem = '';
  for (let attempt = 0; attempt <= delays.length; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, delays[attempt - 1]));
    try {
      return await attemptDownload(new URL(url), param, options);
    } catch (err) {
      if (err instanceof FinalError) throw err.apiError;
      if (err instanceof ApiError) throw err;
      lastProblem = (err as Error).message;
      if (!(err instanceof RetryableError)) break;
    }
  }
  throw sourceError(param, `${redact(url)}: ${lastProblem}`, 'image_download_failed');
}

/** The URL without credentials and query, for messages and logs. */
const redact = (url: string | URL): string => {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid URL)';
  }
};

async function attemptDownload(first: URL, param: string, options: RemoteFetchOptions): Promise<RemoteImage> {
  const deadline = Date.now() + options.timeoutMs;
  let url = first;
  for (let hop = 0; ; hop++) {
    checkUrl(url, param, options);
    const response = await request(url, param, options, deadline);
    const location = response.headers.location;
    if (REDIRECT_STATUSES.has(response.statusCode ?? 0) && location) {
      response.resume();
      if (hop >= MAX_REDIRECTS) throw new FinalError(sourceError(param, `${redact(first)}: more than ${MAX_REDIRECTS} redirects`, 'image_download_failed'));
      try {
        url = new URL(location, url);
      } catch {
        throw new FinalError(sourceError(param, `${redact(url)} redirected to an invalid URL`, 'image_download_failed'));
      }
      continue;
    }
    const status = response.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      response.resume();
      const problem = `download answered HTTP ${status}`;
      if (status === 429 || status >= 500) throw new RetryableError(problem);
      throw new Error(problem);
    }
    const contentType = (response.headers['content-type'] ?? 'application/octet-stream').split(';')[0]!.trim().toLowerCase();
    if (!contentType.startsWith('image/') && contentType !== 'application/octet-stream') {
      response.destroy();
      throw new FinalError(sourceError(param, `${redact(url)} is not an image (content type ${contentType})`, 'invalid_image'));
    }
    const data = await readBody(response, param, options.maxBytes, deadline);
    return { data, contentType, finalUrl: url };
  }
}

/** Scheme and literal-address checks of one hop (host names are checked when they resolve). */
function checkUrl(url: URL, param: string, options: RemoteFetchOptions): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new FinalError(sourceError(param, `${redact(url)}: only http(s) URLs can be fetched`, 'unsupported_image_url'));
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !addressAllowed(host, options)) throw new FinalError(notAllowed(param, url));
}

const addressAllowed = (address: string, options: RemoteFetchOptions): boolean =>
  options.allowPrivate || (options.isAllowedAddress ? options.isAllowedAddress(address) : !isNonPublicAddress(address));

const notAllowed = (param: string, url: URL): ApiError => new ApiError(400,
  `Failed to process image source: ${redact(url)} points to a loopback, private or link-local address, which this server does not fetch (--allow-private-input-urls allows it)`,
  { param, code: 'url_not_allowed' });

/** One GET with the address policy in its DNS lookup; resolves with the response head. */
function request(url: URL, param: string, options: RemoteFetchOptions, deadline: number): Promise<http.IncomingMessage> {
  return new Promise((resolve, reject) => {
    const lookup = (hostname: string, opts: { all?: boolean; family?: number }, callback: (...args: unknown[]) => void): void => {
      dnsLookup(hostname, { ...opts, all: true }, (err, addresses: LookupAddress[]) => {
        if (err) { callback(err); return; }
        // Every address must pass: a host that also resolves to a private address is refused as a whole.
        if (addresses.length === 0 || addresses.some((a) => !addressAllowed(a.address, options))) {
          callback(new FinalError(notAllowed(param, url)));
          return;
        }
        if (opts.all) callback(null, addresses);
        else callback(null, addresses[0]!.address, addresses[0]!.family);
      });
    };
    const client = url.protocol === 'https:' ? https : http;
    const req = client.get(url, {
      lookup: lookup as never, agent: false,
      headers: { accept: 'image/*, application/octet-stream;q=0.5', 'user-agent': 'sgld' },
    });
    let response: http.IncomingMessage | undefined;
    const timer = setTimeout(() => {
      const timeout = new RetryableError(`timed out after ${options.timeoutMs} ms`);
      // Once the head is in, the body stream is what is waiting: end it with the timeout as its error.
      if (response) response.destroy(timeout); else req.destroy(timeout);
    }, Math.max(0, deadline - Date.now()));
    req.once('response', (res) => {
      response = res;
      // The body may still be read under the same deadline; the timer is cleared when the socket closes.
      res.once('close', () => clearTimeout(timer));
      resolve(res);
    });
    req.once('error', (err) => {
      clearTimeout(timer);
      if (err instanceof FinalError || err instanceof RetryableError) reject(err);
      else reject(new RetryableError(`download failed (${err.message})`));
    });
  });
}

function readBody(res: http.IncomingMessage, param: string, maxBytes: number, deadline: number): Promise<Uint8Array> {
  const tooLarge = (): FinalError => new FinalError(new ApiError(413, `The image in ${param} is larger than the limit of ${maxBytes} bytes`, { param, code: 'file_too_large' }));
  return new Promise((resolve, reject) => {
    const declared = Number(res.headers['content-length']);
    if (declared > maxBytes) { res.destroy(); reject(tooLarge()); return; }
    const chunks: Buffer[] = [];
    let total = 0;
    res.on('data', (chunk: Buffer) => {
      total += chunk.byteLength;
      if (total > maxBytes) { res.destroy(); reject(tooLarge()); return; }
      chunks.push(chunk);
    });
    res.once('end', () => resolve(new Uint8Array(Buffer.concat(chunks, total))));
    res.once('error', (err) => reject(err instanceof FinalError || err instanceof RetryableError ? err : new RetryableError(`download failed (${err.message})`)));
    res.once('close', () => {
      if (!res.complete && Date.now() >= deadline) reject(new RetryableError('timed out while reading the body'));
      else if (!res.complete) reject(new RetryableError('the connection closed before the whole body arrived'));
    });
  });
}
