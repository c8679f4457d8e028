import { expect } from 'chai';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, type BookstoreClient } from '../../support/bookstore-client.js';
import { cluster, listener } from '../../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';
import { h2Request, RecordingBackend } from '../../support/traffic-backend.js';
import { waitFor } from '../../support/wait.js';

const APP = 'https://app.example';

/**
 * The cors filter through real sockets: browser-shaped preflights (Origin,
 * Access-Control-Request-Method / -Headers, Private Network Access) answered
 * by the sidecar without reaching the upstream, actual requests decorated in
 * every dialect (HTTP/1.1, HTTP/2, REST, gRPC-Web, Connect, local replies),
 * `Vary: Origin`, per-route overrides, and the transcoder's implied CORS
 * stepping aside for it.
 */
describe('filters: cors', function () {
  let rec: RecordingBackend;
  let store: BookstoreServer;
  let sc: TestSidecar;
  let base: string;
  let grpc: BookstoreClient;

  before(async () => {
    rec = await new RecordingBackend().start();
    store = await startBookstore();
    const app = {
      name: 'app',
      domains: ['app.test'],
      routes: [
        { name: 'public', match: { prefix: '/public' }, route: { cluster: 'rec' }, filters: { cors: { cors: { allowOrigins: ['*'], maxAge: '60s' } } } },
        { name: 'nocors', match: { prefix: '/nocors' }, route: { cluster: 'rec' }, filters: { cors: { disabled: true } } },
        { name: 'app', match: { prefix: '/' }, route: { cluster: 'rec' } },
      ],
    };
    sc = await startTestSidecar([
      listener('main', {
        trustedHops: 1,
        httpFilters: [
          {
            cors: {
              allowOrigins: [APP, 'https://*.example.com'],
              allowOriginRegexes: ['https://dev-[0-9]+\\.test'],
              allowMethods: ['GET', 'POST', 'PUT'],
              allowHeaders: ['content-type', 'x-custom'],
              exposeHeaders: ['x-backend'],
              maxAge: '600s',
              allowCredentials: true,
              allowPrivateNetwork: true,
              preset: 'PRESET_GRPC_WEB_CONNECT',
            },
          },
        ],
      }),
      hosts('main', [app, transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR, allowedOrigins: ['https://only-transcoder.example'] })]),
      grpcCluster('store', store.port),
      cluster('rec', [rec.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    base = baseUrl(sc);
    grpc = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    grpc?.raw.close();
    await sc?.close();
    await store?.close();
    await rec?.close();
  });

  const preflight = async (path: string, origin: string, extra: Record<string, string> = {}, host = 'app.test') => {
    const r = await request(`${base}${path}`, {
      method: 'OPTIONS',
      headers: { host, origin, 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type,x-custom', ...extra },
    });
    await r.body.dump();
    return r;
  };

  it('a browser preflight is answered locally: 204, the allowances, Vary; the upstream never sees it', async () => {
    const before = rec.count('OPTIONS');
    const r = await preflight('/api/items', APP);
    expect(r.statusCode).to.equal(204);
    expect(r.headers['access-control-allow-origin']).to.equal(APP);
    expect(r.headers['access-control-allow-credentials']).to.equal('true');
    expect(String(r.headers['access-control-allow-methods']).split(', ')).to.include.members(['GET', 'POST', 'PUT']);
    expect(String(r.headers['access-control-allow-headers']).split(', ')).to.include.members(['content-type', 'x-custom', 'x-grpc-web', 'connect-protocol-version']);
    expect(r.headers['access-control-max-age']).to.equal('600');
    expect(String(r.headers['vary'])).to.match(/\bOrigin\b/);
    expect(r.headers['access-control-allow-private-network']).to.equal(undefined);
    expect(rec.count('OPTIONS')).to.equal(before);
  });

  it('suffix patterns and regexes match; the apex, other schemes and other origins are 403 (OR) with no allowances', async () => {
    for (const ok of ['https://a.example.com', 'https://a.b.example.com', 'https://dev-42.test']) {
      const r = await preflight('/x', ok);
      expect(r.statusCode, ok).to.equal(204);
      expect(r.headers['access-control-allow-origin']).to.equal(ok);
    }
    for (const bad of ['https://example.com', 'http://a.example.com', 'https://evil.example', 'https://dev-x.test', 'https://a.example.com.evil.io']) {
      const r = await preflight('/x', bad, { 'x-request-id': `cors-${bad}` });
      expect(r.statusCode, bad).to.equal(403);
      expect(r.headers['access-control-allow-origin'], bad).to.equal(undefined);
      expect(String(r.headers['vary'])).to.match(/\bOrigin\b/);
    }
    await waitFor(() => sc.access.some((l) => l['request_id'] === 'cors-https://evil.example'), 'the access-log line');
    expect(sc.access.find((l) => l['request_id'] === 'cors-https://evil.example')).to.include({ status: 403, flags: 'OR' });
    expect(rec.count('OPTIONS')).to.equal(0);
  });

  it('Private Network Access preflights get Access-Control-Allow-Private-Network', async () => {
    const r = await preflight('/x', APP, { 'access-control-request-private-network': 'true' });
    expect(r.statusCode).to.equal(204);
    expect(r.headers['access-control-allow-private-network']).to.equal('true');
  });

  it('HTTP/1.1 actual request: allowed origin decorated; others and no Origin get only Vary: Origin', async () => {
    const r = await request(`${base}/api/items`, { headers: { host: 'app.test', origin: 'https://shop.example.com' } });
    await r.body.dump();
    expect(r.statusCode).to.equal(200);
    expect(r.headers['access-control-allow-origin']).to.equal('https://shop.example.com');
    expect(r.headers['access-control-allow-credentials']).to.equal('true');
    expect(String(r.headers['access-control-expose-headers']).split(', ')).to.include.members(['x-backend', 'grpc-status', 'grpc-message', 'grpc-status-details-bin']);
    expect(r.headers['vary']).to.equal('Origin');
    const evil = await request(`${base}/api/items`, { headers: { host: 'app.test', origin: 'https://evil.example' } });
    await evil.body.dump();
    expect(evil.statusCode, 'the browser, not the proxy, blocks the read').to.equal(200);
    expect(evil.headers['access-control-allow-origin']).to.equal(undefined);
    expect(evil.headers['vary']).to.equal('Origin');
    const none = await request(`${base}/api/items`, { headers: { host: 'app.test' } });
    await none.body.dump();
    expect(none.headers['access-control-allow-origin']).to.equal(undefined);
    expect(none.headers['vary'], 'a shared cache must not serve this to a browser').to.equal('Origin');
  });

  it('HTTP/2: preflight and actual request', async () => {
    const port = sc.port();
    const pre = await h2Request(port, { ':method': 'OPTIONS', ':path': '/x', ':authority': 'app.test', origin: APP, 'access-control-request-method': 'POST' });
    expect(pre.status).to.equal(204);
    expect(pre.headers['access-control-allow-origin']).to.equal(APP);
    const r = await h2Request(port, { ':method': 'GET', ':path': '/x', ':authority': 'app.test', origin: APP });
    expect(r.status).to.equal(200);
    expect(r.headers['access-control-allow-origin']).to.equal(APP);
  });

  it('a route override replaces the policy (`*`: literal, no credentials, no Vary); disabled lets preflights through', async () => {
    const r = await preflight('/public/a', 'https://anyone.example');
    expect(r.statusCode).to.equal(204);
    expect(r.headers['access-control-allow-origin']).to.equal('*');
    expect(r.headers['access-control-allow-credentials']).to.equal(undefined);
    expect(r.headers['access-control-max-age']).to.equal('60');
    const a = await request(`${base}/public/a`, { headers: { host: 'app.test', origin: 'https://anyone.example' } });
    await a.body.dump();
    expect(a.headers['access-control-allow-origin']).to.equal('*');
    expect(a.headers['vary']).to.equal(undefined);
    const n = rec.count('OPTIONS');
    const d = await preflight('/nocors/a', APP);
    expect(d.statusCode, 'the upstream answered').to.equal(200);
    expect(rec.count('OPTIONS')).to.equal(n + 1);
  });

  it('gRPC-Web, Connect and REST on a transcoding route: the cors filter owns CORS (the route allowedOrigins step aside)', async () => {
    const pre = await preflight(`${BOOKSTORE_SVC}/GetShelf`, APP, { 'access-control-request-headers': 'content-type,connect-protocol-version' }, 'store.test');
    expect(pre.statusCode).to.equal(204);
    expect(pre.headers['access-control-allow-origin']).to.equal(APP);
    expect(pre.headers['access-control-max-age'], 'the filter policy, not the transcoder default 7200').to.equal('600');
    const only = await preflight(`${BOOKSTORE_SVC}/GetShelf`, 'https://only-transcoder.example', {}, 'store.test');
    expect(only.statusCode).to.equal(403);
    const connect = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, {
      method: 'POST',
      headers: { origin: APP, 'content-type': 'application/json', 'connect-protocol-version': '1' },
      body: '{"shelf":"1"}',
    });
    expect(connect.statusCode).to.equal(200);
    expect(((await connect.body.json()) as { theme: string }).theme).to.equal('Fiction');
    expect(connect.headers['access-control-allow-origin']).to.equal(APP);
    expect(String(connect.headers['access-control-expose-headers'])).to.include('grpc-status');
    const web = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, {
      method: 'POST',
      headers: { origin: APP, 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: Buffer.from([0, 0, 0, 0, 2, 8, 1]),
    });
    await web.body.dump();
    expect(web.headers['access-control-allow-origin']).to.equal(APP);
    expect(web.headers['access-control-allow-credentials']).to.equal('true');
    const rest = await request(`${base}/v1/shelves/1`, { headers: { origin: APP } });
    await rest.body.dump();
    expect(rest.statusCode).to.equal(200);
    expect(rest.headers['access-control-allow-origin']).to.equal(APP);
  });

  it('local replies carry the allowances (a REST path no binding matches: 404 in the REST dialect)', async () => {
    const r = await request(`${base}/v2/unknown`, { headers: { host: 'store.test', origin: APP } });
    await r.body.dump();
    expect(r.statusCode).to.equal(404);
    expect(r.headers['access-control-allow-origin']).to.equal(APP);
    expect(r.headers['vary']).to.match(/Origin/);
  });

  it('gRPC through the same listener is untouched (no Origin, no CORS headers)', async () => {
    const res = await grpc.unary('getShelf', { shelf: 1n });
    expect(res.response.theme).to.equal('Fiction');
    expect(res.metadata.get('access-control-allow-origin')).to.deep.equal([]);
  });
});
