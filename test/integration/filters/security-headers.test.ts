import { expect } from 'chai';
import { createHash } from 'node:crypto';
import https from 'node:https';
import * as grpcJs from '@grpc/grpc-js';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, type BookstoreClient } from '../../support/bookstore-client.js';
import { makeTestCerts, type TestCerts } from '../../support/certs.js';
import { cluster, listener } from '../../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';
import { h2Request, RecordingBackend } from '../../support/traffic-backend.js';
import { SECURITY_HEADER_DEFAULTS } from '../../../src/proxy/filters/security-headers/security-headers-filter.js';

const NOT_HSTS = Object.entries(SECURITY_HEADER_DEFAULTS).filter(([n]) => n !== 'strict-transport-security');

/**
 * securityHeaders through real sockets: the OWASP defaults on every dialect's
 * responses (HTTP/1.1, HTTP/2, gRPC, gRPC-Web, Connect, REST) and on local
 * replies (no route, a filter's 401, a direct response); HSTS only over TLS
 * unless forced; upstream values kept unless `override`; Server and
 * X-Powered-By stripped when asked.
 */
describe('filters: securityHeaders', function () {
  let rec: RecordingBackend;
  let store: BookstoreServer;
  let certs: TestCerts;
  let sc: TestSidecar;
  let base: string;
  let grpc: BookstoreClient;

  before(async () => {
    certs = await makeTestCerts();
    rec = await new RecordingBackend().start();
    store = await startBookstore();
    const filters = [
      { apiKeys: { allowMissing: true, keys: [{ name: 'k', sha256: createHash('sha256').update('good').digest('hex') }] } },
      { securityHeaders: { referrerPolicy: 'strict-origin-when-cross-origin', permissionsPolicy: '' } },
    ];
    const app = {
      name: 'app',
      domains: ['app.test'],
      routes: [
        { name: 'direct', match: { prefix: '/direct' }, directResponse: { status: 200, body: 'hi' } },
        {
          name: 'strict',
          match: { prefix: '/strict' },
          route: { cluster: 'rec' },
          filters: { securityHeaders: { securityHeaders: { override: true, removeServerHeaders: true, forceHsts: true, contentSecurityPolicy: "default-src 'none'" } } },
        },
        { name: 'app', match: { prefix: '/' }, route: { cluster: 'rec' } },
      ],
    };
    sc = await startTestSidecar([
      listener('main', { httpFilters: filters }),
      listener('secure', { tls: { certFile: certs.certFile, keyFile: certs.keyFile }, httpFilters: filters }),
      hosts('main', [app, transcodeHost('store', ['store.test'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR })]),
      grpcCluster('store', store.port),
      cluster('rec', [rec.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    base = baseUrl(sc);
    grpc = bookstoreClient(`127.0.0.1:${sc.port()}`, { 'grpc.default_authority': 'store.test' });
  });
  after(async () => {
    grpc?.raw.close();
    await sc?.close();
    await store?.close();
    await rec?.close();
    await certs?.remove();
  });

  /** The configured set: the defaults, Referrer-Policy changed, Permissions-Policy removed, no HSTS on plain HTTP. */
  const expectSet = (h: Record<string, unknown>, what: string) => {
    for (const [n, v] of NOT_HSTS) {
      if (n === 'referrer-policy') expect(h[n], `${what}: ${n}`).to.equal('strict-origin-when-cross-origin');
      else if (n === 'permissions-policy') expect(h[n], `${what}: ${n}`).to.equal(undefined);
      else expect(h[n], `${what}: ${n}`).to.equal(v);
    }
    expect(h['strict-transport-security'], `${what}: no HSTS over plain HTTP`).to.equal(undefined);
  };

  const get = async (path: string, headers: Record<string, string> = {}, host = 'app.test') => {
    const r = await request(`${base}${path}`, { headers: { host, ...headers } });
    await r.body.dump();
    return r;
  };

  it('HTTP/1.1 and HTTP/2 pass-through answers', async () => {
    expectSet((await get('/x')).headers, 'h1');
    const h2 = await h2Request(sc.port(), { ':method': 'GET', ':path': '/x', ':authority': 'app.test' });
    expectSet(h2.headers, 'h2');
  });

  it('local replies: no route, a filter refusal (401), a direct response', async () => {
    const nr = await get('/x', {}, 'nobody.test.invalid');
    expect(nr.statusCode).to.equal(404);
    expect(nr.headers['x-outrigger-local-reply'], 'no route').to.equal('NR');
    expectSet(nr.headers, 'not found');
    const denied = await get('/x', { 'x-api-key': 'bad' });
    expect(denied.statusCode).to.equal(401);
    expectSet(denied.headers, '401');
    const direct = await get('/direct');
    expect(direct.statusCode).to.equal(200);
    expectSet(direct.headers, 'direct');
  });

  it('gRPC (headers and trailers-only errors), gRPC-Web, Connect and REST answers', async () => {
    const ok = await grpc.unary('getShelf', { shelf: 1n });
    expect(ok.metadata.get('x-content-type-options')).to.deep.equal(['nosniff']);
    const err = await callFailure(grpc.unary('getShelf', { shelf: 999n }));
    expect(err.code).to.equal(grpcJs.status.NOT_FOUND);
    expect(err.metadata.get('x-frame-options')).to.deep.equal(['DENY']);
    const web = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, {
      method: 'POST',
      headers: { host: 'store.test', 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
      body: Buffer.from([0, 0, 0, 0, 2, 8, 1]),
    });
    await web.body.dump();
    expectSet(web.headers, 'grpc-web');
    const connect = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, {
      method: 'POST',
      headers: { host: 'store.test', 'content-type': 'application/json', 'connect-protocol-version': '1' },
      body: '{"shelf":"1"}',
    });
    await connect.body.dump();
    expect(connect.statusCode).to.equal(200);
    expectSet(connect.headers, 'connect');
    const rest = await get('/v1/shelves/1', {}, 'store.test');
    expect(rest.statusCode).to.equal(200);
    expectSet(rest.headers, 'rest');
  });

  it("upstream values are kept unless override; Server / X-Powered-By stripped when asked", async () => {
    const kept = await get('/headers');
    expect(kept.headers['x-frame-options']).to.equal('SAMEORIGIN');
    expect(kept.headers['server']).to.equal('Apache/2.4');
    const strict = await get('/strict/headers');
    expect(strict.headers['x-frame-options']).to.equal('DENY');
    expect(strict.headers['content-security-policy']).to.equal("default-src 'none'");
    expect(strict.headers['server']).to.equal(undefined);
    expect(strict.headers['x-powered-by']).to.equal(undefined);
    expect(strict.headers['strict-transport-security'], 'forced on plain HTTP').to.equal(SECURITY_HEADER_DEFAULTS['strict-transport-security']);
  });

  it('HSTS on the TLS listener (HTTPS/1.1)', async () => {
    const h = await new Promise<Record<string, unknown>>((resolve, reject) => {
      const req = https.request({ host: '127.0.0.1', port: sc.port('secure'), path: '/x', ca: certs.ca, servername: 'localhost', headers: { host: 'app.test' }, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.headers));
      });
      req.on('error', reject);
      req.end();
    });
    expect(h['strict-transport-security']).to.equal('max-age=31536000; includeSubDomains');
    expect(h['x-content-type-options']).to.equal('nosniff');
  });
});
