import { expect } from 'chai';
import * as grpcJs from '@grpc/grpc-js';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, type BookstoreClient } from '../../support/bookstore-client.js';
import { cluster, listener } from '../../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, baseUrl, grpcCluster, hosts, transcodeHost } from '../../support/transcode-harness.js';
import { h2Request, RecordingBackend } from '../../support/traffic-backend.js';
import { editBase, errorsOf } from '../../unit/config/helpers.js';

/**
 * headerMutation and route.regexRewrite through real sockets: what the
 * upstream sees (HTTP/1.1 and HTTP/2 clients), what the client gets (response
 * heads of every dialect, gRPC trailers), the variables, and the validation
 * refusing pseudo and hop-by-hop headers.
 */
describe('filters: headerMutation', function () {
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
        { name: 'rewrite', match: { prefix: '/api/' }, route: { cluster: 'rec', regexRewrite: { pattern: '^/api/v(\\d+)/(\\w+)', substitution: '/internal/\\2/version-\\1' } } },
        {
          name: 'plain',
          match: { prefix: '/plain' },
          route: { cluster: 'rec' },
          filters: { headerMutation: { headerMutation: { response: { set: [{ name: 'x-route-only', value: 'yes' }] } } } },
        },
        { name: 'app', match: { prefix: '/' }, route: { cluster: 'rec' } },
      ],
    };
    sc = await startTestSidecar([
      listener('main', {
        trustedHops: 1,
        httpFilters: [
          {
            headerMutation: {
              request: {
                remove: ['x-secret'],
                set: [
                  { name: 'x-client', value: '%DOWNSTREAM_REMOTE_ADDRESS%' },
                  { name: 'x-user', value: 'u=%REQ(x-user-id)%;r=%ROUTE%;c=%CLUSTER%' },
                  { name: 'x-rid', value: '%REQUEST_ID%' },
                  { name: 'x-start', value: '%START_TIME%' },
                  { name: 'x-pct', value: '100%%' },
                ],
                add: [{ name: 'x-tag', value: 'sidecar' }],
              },
              response: {
                remove: ['x-backend'],
                set: [{ name: 'x-served-by', value: '%CLUSTER%@%ROUTE%' }],
                add: [{ name: 'x-proto', value: '%PROTOCOL%' }],
              },
              responseTrailers: { set: [{ name: 'x-trailer', value: 'added-%ROUTE%' }], remove: ['x-drop-me'] },
            },
          },
        ],
      }),
      hosts('main', [app, transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR })]),
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

  it('HTTP/1.1: the upstream sees removed, set (with variables) and added headers; the client sees the response changes', async () => {
    const t0 = Date.now();
    const r = await request(`${base}/x`, {
      headers: { host: 'app.test', 'x-secret': 's3cret', 'x-user-id': 'alice', 'x-tag': 'client', 'x-request-id': 'hm-1' },
    });
    await r.body.dump();
    expect(r.statusCode).to.equal(200);
    const seen = rec.seen.at(-1)!;
    expect(seen.headers['x-secret']).to.equal(undefined);
    expect(seen.headers['x-client']).to.equal('127.0.0.1');
    expect(seen.headers['x-user']).to.equal('u=alice;r=app;c=rec');
    expect(seen.headers['x-rid']).to.equal('hm-1');
    expect(seen.headers['x-pct']).to.equal('100%');
    expect(seen.headers['x-tag']).to.equal('client, sidecar');
    const start = Date.parse(String(seen.headers['x-start']));
    expect(start).to.be.within(t0 - 1000, Date.now() + 1000);
    expect(r.headers['x-backend'], 'removed from the response').to.equal(undefined);
    expect(r.headers['x-served-by']).to.equal('rec@app');
    expect(r.headers['x-proto']).to.equal('http1');
    expect(r.headers['x-route-only']).to.equal(undefined);
  });

  it('a missing %REQ()% expands to empty; a route override replaces the listener config', async () => {
    const r = await request(`${base}/plain/a`, { headers: { host: 'app.test', 'x-secret': 'kept' } });
    await r.body.dump();
    expect(r.headers['x-route-only']).to.equal('yes');
    expect(r.headers['x-served-by']).to.equal(undefined);
    expect(rec.seen.at(-1)!.headers['x-secret'], 'the override has no request part').to.equal('kept');
    const r2 = await request(`${base}/y`, { headers: { host: 'app.test' } });
    await r2.body.dump();
    expect(rec.seen.at(-1)!.headers['x-user']).to.equal('u=;r=app;c=rec');
  });

  it('HTTP/2 client: request and response mutations', async () => {
    const r = await h2Request(sc.port(), { ':method': 'GET', ':path': '/h2', ':authority': 'app.test', 'x-secret': 'x' });
    expect(r.status).to.equal(200);
    expect(rec.seen.at(-1)!.headers['x-secret']).to.equal(undefined);
    expect(rec.seen.at(-1)!.headers['x-tag']).to.equal('sidecar');
    expect(r.headers['x-served-by']).to.equal('rec@app');
    expect(r.headers['x-proto']).to.equal('h2');
  });

  it('regexRewrite: capture groups (Envoy \\N form), the query kept', async () => {
    const r = await request(`${base}/api/v2/books?page=3`, { headers: { host: 'app.test' } });
    await r.body.dump();
    expect(rec.seen.at(-1)!.url).to.equal('/internal/books/version-2?page=3');
    const n = await request(`${base}/api/unversioned`, { headers: { host: 'app.test' } });
    await n.body.dump();
    expect(rec.seen.at(-1)!.url, 'no match: unchanged').to.equal('/api/unversioned');
  });

  it('gRPC: response headers and trailers changed (trailers-only errors: in the head)', async () => {
    const ok = await grpc.unary('getShelf', { shelf: 1n });
    expect(ok.metadata.get('x-served-by')).to.deep.equal(['store@store']);
    expect(ok.status.metadata.get('x-trailer')).to.deep.equal(['added-store']);
    const err = await callFailure(grpc.unary('getShelf', { shelf: 999n }));
    expect(err.code).to.equal(grpcJs.status.NOT_FOUND);
    expect(err.metadata.get('x-served-by')).to.deep.equal(['store@store']);
  });

  it('REST transcoding: the response head is changed like any other', async () => {
    const r = await request(`${base}/v1/shelves/1`, { headers: { host: 'store.test' } });
    expect(((await r.body.json()) as { theme: string }).theme).to.equal('Fiction');
    expect(r.headers['x-served-by']).to.equal('store@store');
    expect(r.headers['x-proto']).to.equal('rest');
  });

  it('validation: pseudo, hop-by-hop and framing headers, unknown variables, bad regexRewrite (field paths)', () => {
    const errs = errorsOf(
      editBase((find) => {
        find('Listener', 'main').httpFilters = [
          {
            headerMutation: {
              request: { set: [{ name: ':path', value: '/x' }, { name: 'connection', value: 'close' }], remove: ['transfer-encoding'] },
              response: { add: [{ name: 'x-a', value: '%NOPE%' }, { name: 'x-b', value: '%REQ()%' }, { name: 'x-c', value: '50%' }] },
              responseTrailers: { set: [{ name: 'grpc-status', value: '0' }] },
            },
          },
        ];
        const route = (find('RouteConfiguration', 'main').virtualHosts as { routes: { route?: Record<string, unknown> }[] }[])[0]!.routes[2]!;
        route.route!['regexRewrite'] = { pattern: '(', substitution: 'x' };
      }),
    );
    const at = 'Listener/main: spec.httpFilters[0].headerMutation';
    expect(errs).to.include(`${at}.request.set[0].name: pseudo-header :path cannot be changed (use route rewrites for :path / :authority)`);
    expect(errs).to.include(`${at}.request.set[1].name: connection is a hop-by-hop or framing header and cannot be changed`);
    expect(errs).to.include(`${at}.request.remove[0]: transfer-encoding is a hop-by-hop or framing header and cannot be changed`);
    expect(errs.some((e) => e.startsWith(`${at}.response.add[0].value: unknown variable %NOPE%`))).to.equal(true);
    expect(errs).to.include(`${at}.response.add[1].value: %REQ(name)% needs a header name`);
    expect(errs.some((e) => e.startsWith(`${at}.response.add[2].value: unterminated variable`))).to.equal(true);
    expect(errs).to.include(`${at}.responseTrailers.set[0].name: grpc-status is the call outcome and cannot be changed`);
    expect(errs.some((e) => /virtualHosts\[0\]\.routes\[2\]\.route\.regexRewrite\.pattern: /.test(e))).to.equal(true);
  });
});
