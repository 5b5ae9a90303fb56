// Image URL downloads (src/http/remote-image.ts): which addresses count as non-public, and the limits of a download
// against real local HTTP servers: size (declared and streamed), time, redirects (count, scheme, and the address
// policy applied again on every hop), retries on 5xx, content type. Then the same through the HTTP front (engine
// test double) with --allow-private-input-urls on and off.
import { type IncomingMessage, type ServerResponse, createServer } from 'node:http';
import sharp from 'sharp';
import t, { type Test } from 'tap';
import { ApiError } from '../../src/http/errors.js';
import { fetchRemoteImage, isNonPublicAddress } from '../../src/http/remote-image.js';
import { startHarness } from '../unit/http-harness.js';

const png = await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 0, g: 0, b: 255 } } }).png().toBuffer();

t.test('non-public addresses', async (t) => {
  const table: [string, boolean][] = [
    ['127.0.0.1', true], ['127.255.0.9', true], ['10.0.0.1', true], ['172.16.0.1', true], ['172.31.255.255', true],
    ['192.168.0.1', true], ['169.254.169.254', true], ['100.64.0.1', true], ['0.0.0.0', true], ['224.0.0.1', true],
    ['255.255.255.255', true], ['198.18.0.1', true], ['::1', true], ['::', true], ['fe80::1', true], ['fd12:3456::1', true],
    ['::ffff:127.0.0.1', true], ['::ffff:10.0.0.1', true], ['64:ff9b::a00:1', true], ['2002:a00:1::', true], ['ff02::1', true],
    ['not an address', true],
    ['8.8.8.8', false], ['1.1.1.1', false], ['172.32.0.1', false], ['100.128.0.1', false], ['2606:4700:4700::1111', false],
    ['::ffff:8.8.8.8', false],
  ];
  for (const [address, nonPublic] of table) t.equal(isNonPublicAddress(address), nonPublic, `${address}: ${nonPublic ? 'non-public' : 'public'}`);
});

/** A local server whose routes are the test's; resolves with its base URL (127.0.0.1). */
async function serve(t: Test, routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void>): Promise<string> {
  const server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (route) route(req, res); else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

const options = { maxBytes: 1000, timeoutMs: 300, allowPrivate: true, retryDelaysMs: [10, 10] };

/** The ApiError a download fails with, as {status, param, code, message}. */
const failure = (p: Promise<unknown>): Promise<unknown> => p.then(() => 'downloaded', (e: unknown) =>
  e instanceof ApiError ? { status: e.status, param: e.param, code: e.code, message: e.message } : `not an ApiError: ${e}`);

t.test('downloads: limits on size, time, redirects and content type; retries on 5xx', async (t) => {
  let flaky = 0;
  const base = await serve(t, {
    '/a.png': (_q, s) => s.writeHead(200, { 'content-type': 'image/png' }).end(png),
    '/declared-big': (_q, s) => s.writeHead(200, { 'content-type': 'image/png', 'content-length': '5000' }).end(Buffer.alloc(5000)),
    '/streamed-big': (_q, s) => { s.writeHead(200, { 'content-type': 'image/png' }); s.write(Buffer.alloc(600)); setTimeout(() => s.end(Buffer.alloc(600)), 20); },
    '/slow': (_q, s) => { s.writeHead(200, { 'content-type': 'image/png' }); s.write(png.subarray(0, 10)); },
    '/silent': () => { /* never answers */ },
    '/hop1': (_q, s) => s.writeHead(302, { location: '/hop2' }).end(),
    '/hop2': (_q, s) => s.writeHead(301, { location: '/a.png' }).end(),
    '/loop': (_q, s) => s.writeHead(302, { location: '/loop' }).end(),
    '/to-file': (_q, s) => s.writeHead(302, { location: 'file:///etc/passwd' }).end(),
    '/flaky': (_q, s) => { if (++flaky < 3) s.writeHead(503).end(); else s.writeHead(200, { 'content-type': 'image/png' }).end(png); },
    '/text': (_q, s) => s.writeHead(200, { 'content-type': 'text/html' }).end('<html>'),
    '/gone': (_q, s) => s.writeHead(404).end(),
  });
  const got = await fetchRemoteImage(`${base}/a.png`, 'url', options);
  t.same([Buffer.from(got.data).equals(png), got.contentType], [true, 'image/png'], 'a plain download');
  const hops = await fetchRemoteImage(`${base}/hop1`, 'url', options);
  t.same([Buffer.from(hops.data).equals(png), hops.finalUrl.pathname], [true, '/a.png'], 'two redirects are followed');
  t.ok(Buffer.from((await fetchRemoteImage(`${base}/flaky`, 'url', options)).data).equals(png), 'two 503s, then the third attempt succeeds');
  t.match(await failure(fetchRemoteImage(`${base}/declared-big`, 'url', options)), { status: 413, param: 'url', code: 'file_too_large', message: /1000 bytes/ }, 'a declared size above the limit');
  t.match(await failure(fetchRemoteImage(`${base}/streamed-big`, 'url', options)), { status: 413, code: 'file_too_large' }, 'a streamed body above the limit');
  const t0 = Date.now();
  t.match(await failure(fetchRemoteImage(`${base}/slow`, 'url', options)), { status: 400, code: 'image_download_failed', message: /timed out/ }, 'a body that stops coming');
  t.match(await failure(fetchRemoteImage(`${base}/silent`, 'url', options)), { status: 400, code: 'image_download_failed', message: /timed out/ }, 'a server that never answers');
  t.ok(Date.now() - t0 < 4000, `both time out within their deadlines (3 attempts of 300 ms each: ${Date.now() - t0} ms)`);
  t.match(await failure(fetchRemoteImage(`${base}/loop`, 'url', options)), { status: 400, code: 'image_download_failed', message: /more than 3 redirects/ }, 'a redirect loop');
  t.match(await failure(fetchRemoteImage(`${base}/to-file`, 'url', options)), { status: 400, code: 'unsupported_image_url' }, 'a redirect to file://');
  t.match(await failure(fetchRemoteImage(`${base}/text`, 'url', options)), { status: 400, code: 'invalid_image', message: /not an image/ }, 'an HTML answer');
  t.match(await failure(fetchRemoteImage(`${base}/gone`, 'url', options)), { status: 400, code: 'image_download_failed', message: /HTTP 404/ }, 'a 404');
});

t.test('the address policy holds on every redirect hop', async (t) => {
  const base = await serve(t, {
    // 127.0.0.2 is loopback too; the policy below only lets 127.0.0.1 through.
    '/away': (_q, s) => s.writeHead(302, { location: 'http://127.0.0.2:9/secret.png' }).end(),
  });
  const policy = { ...options, allowPrivate: false, isAllowedAddress: (a: string) => a === '127.0.0.1' };
  t.match(await failure(fetchRemoteImage(`${base}/away`, 'reference_url', policy)), { status: 400, param: 'reference_url', code: 'url_not_allowed' },
    'a redirect from an allowed host to a refused address is refused');
  t.match(await failure(fetchRemoteImage(`${base}/away`, 'url', { ...options, allowPrivate: false })), { status: 400, code: 'url_not_allowed' },
    'without the policy hook, loopback itself is refused');
});

t.test('through the HTTP front: private URLs need --allow-private-input-urls; download limits answer 413', async (t) => {
  const base = await serve(t, {
    '/a.png': (_q, s) => s.writeHead(200, { 'content-type': 'image/png' }).end(png),
    '/big.png': (_q, s) => s.writeHead(200, { 'content-type': 'image/png' }).end(Buffer.alloc(5000)),
  });
  const edit = (h: { fetch(path: string, init?: RequestInit): Promise<Response> }, url: string) => {
    const f = new FormData();
    f.append('prompt', 'p');
    f.append('url', url);
    f.append('size', '16x16');
    return h.fetch('/v1/images/edits', { method: 'POST', body: f });
  };
  const open = await startHarness(t, {}, { allowPrivateUrls: true, maxUploadBytes: 1000 });
  const ok = await edit(open, `${base}/a.png`);
  t.equal(ok.status, 200, `allowed: the image is downloaded and edited (${ok.status === 200 ? '' : await ok.text()})`);
  const big = await edit(open, `${base}/big.png`);
  t.match({ status: big.status, body: await big.json() }, { status: 413, body: { error: { param: 'url', code: 'file_too_large' } } }, 'above the upload limit: 413');
  const closed = await startHarness(t);
  const refused = await edit(closed, `${base}/a.png`);
  t.match({ status: refused.status, body: await refused.json() }, { status: 400, body: { error: { param: 'url', code: 'url_not_allowed' } } }, 'by default: refused');
});
