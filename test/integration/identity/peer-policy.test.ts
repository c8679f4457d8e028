import { expect } from 'chai';
import http from 'node:http';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../../support/config-docs.js';
import { startMeshControlPlane, startMeshSidecar, type MeshControlPlane } from '../../support/mesh-harness.js';
import type { TestSidecar } from '../../support/sidecar-harness.js';

const ID = (sa: string): string => `spiffe://cluster.local/ns/shop/sa/${sa}`;

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
  });
}

describe('identity: authorization by peer identity (RBAC principals, CEL source.principal, XFCC)', function () {
  this.timeout(30_000);
  let cp: MeshControlPlane;
  let app: Started<http.Server>;
  let api: TestSidecar;
  let web: TestSidecar;
  let batch: TestSidecar;

  before(async () => {
    cp = await startMeshControlPlane({ 'tok-web': 'shop/web', 'tok-batch': 'shop/batch', 'tok-api': 'shop/api' });
    app = await startH1Echo('app');
    api = await startMeshSidecar(cp, 'api-0.shop', 'tok-api', [
      listener('guarded', {
        peerAuthentication: 'PEER_AUTHENTICATION_PERMISSIVE',
        forwardClientCert: true,
        httpFilters: [
          {
            rbac: {
              action: 'RBAC_ACTION_ALLOW',
              policies: {
                'web-only': { permissions: [{ any: true }], principals: [{ authenticated: { principalName: ID('web') } }] },
                'namespace': { permissions: [{ path: { prefix: '/ns/' } }], principals: [{ authenticated: { principalName: 'spiffe://cluster.local/ns/shop/*' } }] },
                'cel': { permissions: [{ path: { prefix: '/cel/' } }], principals: [{ any: true }], condition: `source.principal == '${ID('batch')}' && request.method == 'GET'` },
                'public': { permissions: [{ path: { prefix: '/public/' } }], principals: [{ any: true }] },
              },
            },
          },
        ],
      }),
      routes('main', [prefixRoute('/', 'app')]),
      cluster('app', [app.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    const client = async (token: string, node: string): Promise<TestSidecar> =>
      startMeshSidecar(cp, node, token, [
        listener('main'),
        routes('main', [prefixRoute('/', 'api')]),
        cluster('api', [api.port('guarded')], 'UPSTREAM_PROTOCOL_UNSPECIFIED', { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: [ID('api')] } }),
      ]);
    web = await client('tok-web', 'web-0.shop');
    batch = await client('tok-batch', 'batch-0.shop');
  });

  after(async () => {
    await web?.close();
    await batch?.close();
    await api?.close();
    await app?.close();
    await cp?.stop();
  });

  it('authenticated.principalName matches the mTLS peer exactly or by a "*" prefix', async () => {
    expect((await get(web.port('main'), '/x')).status).to.equal(200);
    expect((await get(batch.port('main'), '/x')).status, 'another service account').to.equal(403);
    expect((await get(batch.port('main'), '/ns/x')).status, 'the namespace pattern').to.equal(200);
    expect((await get(api.port('guarded'), '/ns/x')).status, 'plaintext: no principal').to.equal(403);
  });

  it("CEL's source.principal is the peer's SPIFFE ID", async () => {
    expect((await get(batch.port('main'), '/cel/x')).status).to.equal(200);
    expect((await get(web.port('main'), '/cel/x')).status, 'web is allowed anyway (web-only)').to.equal(200);
    expect((await get(api.port('guarded'), '/cel/x')).status, 'plaintext').to.equal(403);
  });

  it('forwards x-forwarded-client-cert (By=…;URI=…) for mesh peers, never a client-sent one; logs source_principal', async () => {
    const seen = JSON.parse((await get(web.port('main'), '/public/a', { 'x-forwarded-client-cert': 'URI=spiffe://forged' })).body) as { headers: Record<string, string> };
    expect(seen.headers['x-forwarded-client-cert']).to.equal(`By=${ID('api')};URI=${ID('web')}`);
    const plain = JSON.parse((await get(api.port('guarded'), '/public/b', { 'x-forwarded-client-cert': 'URI=spiffe://forged' })).body) as { headers: Record<string, string> };
    expect(plain.headers['x-forwarded-client-cert']).to.equal(undefined);
    const line = api.access.find((a) => a.path === '/public/a');
    expect(line?.source_principal).to.equal(ID('web'));
    expect(api.access.find((a) => a.path === '/public/b')?.source_principal).to.equal(undefined);
  });
});
