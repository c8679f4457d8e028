import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import { startH1Echo, startH2Echo, type Started } from '../../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';
import { startMeshControlPlane, startMeshSidecar, type MeshControlPlane } from '../../support/mesh-harness.js';
import type { TestSidecar } from '../../support/sidecar-harness.js';
import { samplesOf } from '../../support/prom-text.js';

const API_ID = 'spiffe://cluster.local/ns/shop/sa/api';
const WEB_ID = 'spiffe://cluster.local/ns/shop/sa/web';

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', reject);
  });
}

/** The istio_requests_total series of `text` whose labels include `labels`, as label maps with their counts. */
function series(text: string, labels: Record<string, string>): { labels: Record<string, string>; value: number }[] {
  return samplesOf(text, 'istio_requests_total').filter((s) => Object.entries(labels).every(([k, v]) => s.labels[k] === v));
}

/**
 * Issue 17 point 5: Istio's principal labels come from the verified peer
 * identity. A live pair — web (client side, reporter `source`) → api
 * (PERMISSIVE listener, reporter `destination`) — over mesh mTLS (HTTP/1.1
 * and HTTP/2 upstreams) and over plaintext, both sidecars scraped.
 */
describe('identity: source/destination principal and connection security policy in Istio metrics', function () {
  this.timeout(30_000);
  let cp: MeshControlPlane;
  let h1: Started<http.Server>;
  let h2: Started<http2.Http2Server>;
  let api: TestSidecar;
  let web: TestSidecar;

  before(async () => {
    cp = await startMeshControlPlane({ 'tok-web': 'shop/web', 'tok-api': 'shop/api' });
    h1 = await startH1Echo('app');
    h2 = await startH2Echo('app-h2');
    api = await startMeshSidecar(cp, 'api-0.shop', 'tok-api', [
      listener('permissive', { peerAuthentication: 'PEER_AUTHENTICATION_PERMISSIVE' }),
      routes('main', [prefixRoute('/h2/', 'app-h2'), prefixRoute('/', 'app')]),
      cluster('app', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('app-h2', [h2.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
    const mesh = { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: [API_ID] } };
    web = await startMeshSidecar(
      cp,
      'web-0.shop',
      'tok-web',
      [
        listener('main'),
        routes('main', [prefixRoute('/plain/', 'api-plain'), prefixRoute('/h2/', 'api-h2'), prefixRoute('/', 'api')]),
        cluster('api', [api.port('permissive')], 'UPSTREAM_PROTOCOL_HTTP1', mesh),
        cluster('api-h2', [api.port('permissive')], 'UPSTREAM_PROTOCOL_HTTP2', mesh),
        cluster('api-plain', [api.port('permissive')], 'UPSTREAM_PROTOCOL_HTTP1'),
      ],
      // web's `main` is its outbound listener: it reports as the source.
      { telemetry: { outboundListeners: new Set(['main']) } },
    );
  });
  after(async () => {
    await web?.close();
    await api?.close();
    await h1?.close();
    await h2?.close();
    await cp?.stop();
  });

  it('labels mTLS requests with both verified principals and mutual_tls on each side; plaintext stays unknown / none', async () => {
    for (const path of ['/a', '/h2/b', '/plain/c', '/a', '/h2/b', '/plain/c']) expect(await get(web.port('main'), path)).to.equal(200);

    const client = await web.metrics();
    const mtlsOut = series(client, { reporter: 'source', source_principal: WEB_ID, destination_principal: API_ID, connection_security_policy: 'mutual_tls' });
    expect(mtlsOut.reduce((n, s) => n + s.value, 0)).to.equal(4);
    const plainOut = series(client, { reporter: 'source', source_principal: 'unknown', destination_principal: 'unknown', connection_security_policy: 'unknown' });
    expect(plainOut.reduce((n, s) => n + s.value, 0)).to.equal(2);

    const server = await api.metrics();
    const mtlsIn = series(server, { reporter: 'destination', source_principal: WEB_ID, destination_principal: API_ID, connection_security_policy: 'mutual_tls' });
    // HTTP/1.1 and HTTP/2 mTLS connections, two requests each.
    expect(mtlsIn.reduce((n, s) => n + s.value, 0)).to.equal(4);
    const plainIn = series(server, { reporter: 'destination', source_principal: 'unknown', destination_principal: 'unknown', connection_security_policy: 'none' });
    expect(plainIn.reduce((n, s) => n + s.value, 0)).to.equal(2);
    // Nothing else: every request is in exactly one of those series.
    expect(series(server, { reporter: 'destination' }).reduce((n, s) => n + s.value, 0)).to.equal(6);
  });
});
