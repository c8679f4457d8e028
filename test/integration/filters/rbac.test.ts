import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, metadataOf, type BookstoreClient } from '../../support/bookstore-client.js';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener } from '../../support/config-docs.js';
import { collector, startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, requestJson, transcodeHost } from '../../support/transcode-harness.js';
import { signingKey, type SigningKey } from '../../support/filter-harness.js';

const ISS = 'https://issuer.test';

/**
 * rbac behind jwtAuthn and apiKeys through real sockets (HTTP/1.1, REST
 * transcoding, gRPC): ALLOW policies over claims, API keys, the peer address
 * and a CEL condition; a DENY list; a LOG (shadow) policy that only audits.
 */
describe('filters: rbac', function () {
  let key: SigningKey;
  let store: BookstoreServer;
  let echo: Started<http.Server>;
  let sc: TestSidecar;
  let client: BookstoreClient;
  const audit: Record<string, unknown>[] = [];
  let admin: string, reader: string;

  before(async () => {
    key = await signingKey('ES256', 'k');
    const exp = Math.floor(Date.now() / 1000) + 600;
    admin = await key.sign({ iss: ISS, sub: 'root', exp, realm: { roles: ['admin'] } });
    reader = await key.sign({ iss: ISS, sub: 'rita', exp, realm: { roles: ['reader'] } });
    store = await startBookstore();
    echo = await startH1Echo('echo');
    const h1Host = { name: 'h1', domains: ['h1.test'], routes: [{ name: 'h1', match: { prefix: '/' }, route: { cluster: 'echo' } }] };
    sc = await startTestSidecar(
      [
        listener('main', {
          httpFilters: [
            { jwtAuthn: { allowMissing: true, providers: [{ name: 'p', issuer: ISS, localJwks: { inline: JSON.stringify({ keys: [key.publicJwk] }) } }] } },
            { apiKeys: { allowMissing: true, keys: [{ name: 'ci', sha256: createHash('sha256').update('ci-key').digest('hex') }] } },
            {
              rbac: {
                action: 'RBAC_ACTION_ALLOW',
                policies: {
                  admins: { permissions: [{ any: true }], principals: [{ jwtClaim: { name: 'realm.roles', value: 'admin' } }] },
                  readers: {
                    permissions: [{ methods: ['GET'] }, { grpc: { service: BOOKSTORE_SVC.slice(1), method: 'ListShelves' } }],
                    principals: [{ authenticated: {} }],
                    condition: "'x-tenant' in request.headers && request.headers['x-tenant'] == 'acme' && jwt.claims.sub == 'rita'",
                  },
                  robots: { permissions: [{ path: { template: '/v1/shelves/**' } }], principals: [{ apiKey: { name: 'ci' } }] },
                  local: { permissions: [{ path: { exact: '/health' } }], principals: [{ and: [{ remoteIp: { cidr: '127.0.0.0/8' } }, { not: { authenticated: {} } }] }] },
                },
              },
            },
            {
              name: 'blocklist',
              rbac: {
                action: 'RBAC_ACTION_DENY',
                policies: { 'no-delete': { permissions: [{ methods: ['DELETE'] }], principals: [{ not: { jwtClaim: { name: 'realm.roles', value: 'admin' } } }] } },
              },
            },
            {
              name: 'shadow',
              rbac: {
                action: 'RBAC_ACTION_LOG',
                policies: { watch: { permissions: [{ header: { name: 'x-watch', present: true } }], principals: [{ any: true }], condition: "source.address.endsWith('127.0.0.1')" } },
              },
            },
          ],
        }),
        hosts('main', [h1Host, transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR })]),
        grpcCluster('store', store.port),
        cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ],
      { auditLog: collector(audit) },
    );
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    client?.raw.close();
    await sc?.close();
    await store?.close();
    await echo?.close();
  });

  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const h1 = (method: string, path: string, headers: Record<string, string> = {}) =>
    requestJson(`${baseUrl(sc)}${path}`, { method: method as 'GET', headers: { host: 'h1.test', ...headers } });

  it('HTTP/1.1: a policy with its CEL condition grants; failing the condition is 403, the policy named only in the audit log', async () => {
    expect((await h1('GET', '/x', { ...bearer(reader), 'x-tenant': 'acme' })).status).to.equal(200);
    audit.length = 0;
    const r = await h1('GET', '/x', { ...bearer(reader), 'x-tenant': 'other', 'x-request-id': 'rb-1' });
    expect(r.status).to.equal(403);
    expect(r.headers['x-outrigger-local-reply']).to.equal('UZ');
    expect(r.text).to.equal('access denied\n');
    // The audit line carries the exchange's request id (the reply's), not the client's untrusted header.
    expect(audit.find((l) => l['request_id'] === r.headers['x-request-id'])).to.include({ filter: 'rbac', outcome: 'denied', reason: 'no_policy_matched', principal: `${ISS}/rita` });
    expect((await h1('GET', '/x', bearer(reader))).status, 'a missing header fails the condition closed').to.equal(403);
    expect((await h1('POST', '/x', { ...bearer(reader), 'x-tenant': 'acme' })).status, 'readers only GET').to.equal(403);
  });

  it('HTTP/1.1: claims (nested, in a list), API keys, the peer address', async () => {
    expect((await h1('POST', '/anything', bearer(admin))).status).to.equal(200);
    expect((await h1('GET', '/v1/shelves/1/books', { 'x-api-key': 'ci-key' })).status).to.equal(200);
    expect((await h1('GET', '/v2/other', { 'x-api-key': 'ci-key' })).status).to.equal(403);
    expect((await h1('GET', '/health')).status, 'unauthenticated from loopback').to.equal(200);
    expect((await h1('GET', '/health', bearer(reader))).status, 'not(authenticated) fails for a caller with a token').to.equal(403);
    expect((await h1('GET', '/elsewhere')).status).to.equal(403);
  });

  it('DENY: a matching policy refuses whatever ALLOW granted, audited with the policy', async () => {
    audit.length = 0;
    const r = await h1('DELETE', '/v1/shelves/1', { 'x-api-key': 'ci-key', 'x-request-id': 'rb-2' });
    expect(r.status).to.equal(403);
    expect(audit.find((l) => l['request_id'] === r.headers['x-request-id'])).to.include({ filter: 'blocklist', outcome: 'denied', policy: 'no-delete', principal: 'ci' });
    expect((await h1('DELETE', '/v1/shelves/1', bearer(admin))).status).to.equal(200);
  });

  it('LOG: a matching shadow policy is audited, never blocks', async () => {
    audit.length = 0;
    const r = await h1('GET', '/x', { ...bearer(admin), 'x-watch': '1', 'x-request-id': 'rb-3' });
    expect(r.status).to.equal(200);
    expect(audit.find((l) => l['filter'] === 'shadow')).to.include({ filter: 'shadow', outcome: 'logged', policy: 'watch' });
    expect(await sc.metrics()).to.match(/outrigger_filter_decisions_total\{filter="shadow",outcome="logged"\} [1-9]/);
  });

  it('REST transcoding: 403 as google.rpc.Status PERMISSION_DENIED', async () => {
    expect((await requestJson(`${baseUrl(sc)}/v1/shelves`, { headers: { ...bearer(reader), 'x-tenant': 'acme' } })).status).to.equal(200);
    const r = await requestJson(`${baseUrl(sc)}/v1/shelves`, { headers: bearer(reader) });
    expect(r.status).to.equal(403);
    expect(r.json).to.deep.equal({ code: 7, message: 'access denied' });
  });

  it('gRPC: the grpc permission grants ListShelves only; others are PERMISSION_DENIED', async () => {
    const md = { ...bearer(reader), 'x-tenant': 'acme' };
    expect((await client.unary('listShelves', {}, { metadata: metadataOf(md) })).status.code).to.equal(grpc.status.OK);
    const e = await callFailure(client.unary('getShelf', { shelf: 1n }, { metadata: metadataOf(md) }));
    expect(e.code).to.equal(grpc.status.PERMISSION_DENIED);
    expect(e.details).to.equal('access denied');
  });
});
