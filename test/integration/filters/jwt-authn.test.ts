import { expect } from 'chai';
import * as grpc from '@grpc/grpc-js';
import { base64url, SignJWT, UnsecuredJWT } from 'jose';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, metadataOf, type BookstoreClient } from '../../support/bookstore-client.js';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener } from '../../support/config-docs.js';
import { collector, startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, transcodeHost } from '../../support/transcode-harness.js';
import { signingKey, startJwksServer, type JwksServer, type SigningKey } from '../../support/filter-harness.js';
import type http from 'node:http';
import WebSocket from 'ws';
import { request } from 'undici';

const ISS = 'https://issuer.test';
const AUD = 'bookstore';

/**
 * jwtAuthn through real sockets: a grpc-js client (gRPC pass-through), undici
 * on the REST transcoding of the same service, and HTTP/1.1 pass-through to
 * an echo backend; tokens signed here with RS256, ES256 and EdDSA, keys
 * served by a JWKS endpoint on loopback (remote provider) and inline (local).
 */
describe('filters: jwtAuthn', function () {
  let rs: SigningKey, es: SigningKey, ed: SigningKey, other: SigningKey;
  let jwks: JwksServer;
  let store: BookstoreServer;
  let echo: Started<http.Server>;
  let sc: TestSidecar;
  let grpcClient: BookstoreClient;
  const audit: Record<string, unknown>[] = [];
  const now = () => Math.floor(Date.now() / 1000);
  const claims = (extra: Record<string, unknown> = {}) => ({ iss: ISS, aud: AUD, sub: 'alice', exp: now() + 600, ...extra });

  before(async () => {
    rs = await signingKey('RS256', 'rs');
    es = await signingKey('ES256', 'es');
    ed = await signingKey('EdDSA', 'ed');
    other = await signingKey('RS256', 'rs'); // same kid, different key: a forged signature
    jwks = await startJwksServer([rs.publicJwk, es.publicJwk]);
    store = await startBookstore();
    echo = await startH1Echo('echo');
    const vh = transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR, websocket: {} });
    const h1Host = { name: 'h1', domains: ['h1.test'], routes: [{ name: 'h1', match: { prefix: '/' }, route: { cluster: 'echo' } }] };
    const openHost = {
      name: 'open',
      domains: ['open.test'],
      filters: { jwtAuthn: { disabled: true } },
      routes: [{ name: 'open', match: { prefix: '/' }, route: { cluster: 'echo' } }],
    };
    sc = await startTestSidecar(
      [
        listener('main', {
          httpFilters: [
            {
              jwtAuthn: {
                providers: [
                  {
                    name: 'remote',
                    issuer: ISS,
                    audiences: [AUD],
                    remoteJwks: { uri: jwks.url, cacheDuration: '600s', timeout: '2s' },
                    claimToHeaders: [{ claim: 'sub', header: 'x-sub' }, { claim: 'realm.role', header: 'x-role' }],
                    forwardPayloadHeader: 'x-jwt-payload',
                  },
                  {
                    name: 'local',
                    issuer: ISS,
                    audiences: [AUD],
                    localJwks: { inline: JSON.stringify({ keys: [ed.publicJwk] }) },
                    fromHeaders: [{ name: 'x-token' }],
                    fromParams: ['access_token'],
                  },
                ],
                requires: { anyOf: ['remote', 'local'] },
              },
            },
          ],
        }),
        hosts('main', [h1Host, openHost, vh]),
        grpcCluster('store', store.port),
        cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      ],
      { auditLog: collector(audit) },
    );
    grpcClient = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    grpcClient?.raw.close();
    await sc?.close();
    await store?.close();
    await echo?.close();
    await jwks?.close();
  });

  const bearer = (t: string) => ({ authorization: `Bearer ${t}` });
  const h1 = (headers: Record<string, string>, path = '/x') => requestJson(`${baseUrl(sc)}${path}`, { headers: { host: 'h1.test', ...headers } });
  const rest = (headers: Record<string, string>) => requestJson(`${baseUrl(sc)}/v1/shelves`, { headers });
  const grpcCall = (headers: Record<string, string>) => grpcClient.unary('listShelves', {}, { metadata: metadataOf(headers) });

  describe('valid tokens pass in every dialect', () => {
    it('RS256 and ES256 from the remote JWKS, EdDSA from the inline one (HTTP/1.1)', async () => {
      for (const k of [rs, es]) {
        const r = await h1(bearer(await k.sign(claims({ realm: { role: 'admin' } }))));
        expect(r.status, k.alg).to.equal(200);
        expect(r.json.headers['x-sub']).to.equal('alice');
        expect(r.json.headers['x-role']).to.equal('admin');
        expect(r.json.headers.authorization, 'the token is not forwarded by default').to.equal(undefined);
        expect(JSON.parse(Buffer.from(r.json.headers['x-jwt-payload'], 'base64url').toString()).sub).to.equal('alice');
      }
      const r = await h1({ 'x-token': await ed.sign(claims()) });
      expect(r.status).to.equal(200);
      const q = await h1({}, `/x?access_token=${await ed.sign(claims())}`);
      expect(q.status).to.equal(200);
    });
    it('gRPC (grpc-js) and REST transcoding', async () => {
      const t = await es.sign(claims());
      const g = await grpcCall(bearer(t));
      expect(g.status.code).to.equal(grpc.status.OK);
      expect((await rest(bearer(t))).status).to.equal(200);
    });
  });

  describe('rejections: 401 / UNAUTHENTICATED, never echoing the token', () => {
    const bad: [string, () => Promise<string>][] = [
      ['expired', () => rs.sign(claims({ exp: now() - 3600 }))],
      ['not yet valid', () => rs.sign(claims({ nbf: now() + 3600 }))],
      ['wrong audience', () => rs.sign(claims({ aud: 'someone-else' }))],
      ['wrong issuer', () => rs.sign(claims({ iss: 'https://evil.test' }))],
      ['forged signature', () => other.sign(claims())],
      ['alg none', async () => new UnsecuredJWT(claims()).encode()],
      [
        'HS256 with the public key as secret',
        async () => {
          const secret = new TextEncoder().encode(JSON.stringify(rs.publicJwk));
          return new SignJWT(claims()).setProtectedHeader({ alg: 'HS256', kid: 'rs' }).sign(secret);
        },
      ],
      ['garbage', async () => 'not.a.jwt'],
    ];
    for (const [name, make] of bad) {
      it(`${name}: HTTP/1.1 401 with www-authenticate, REST google.rpc.Status, gRPC UNAUTHENTICATED`, async () => {
        const t = await make();
        const r = await h1(bearer(t));
        expect(r.status).to.equal(401);
        expect(r.headers['www-authenticate']).to.equal('Bearer error="invalid_token"');
        expect(r.headers['x-outrigger-local-reply']).to.equal('UA');
        expect(r.text).to.not.include(t);
        const j = await rest(bearer(t));
        expect(j.status).to.equal(401);
        expect(j.json.code).to.equal(16);
        expect(j.json.message).to.match(/^unauthenticated/);
        expect(j.text).to.not.include(t);
        const e = await callFailure(grpcCall(bearer(t)));
        expect(e.code).to.equal(grpc.status.UNAUTHENTICATED);
        expect(e.details).to.not.include(t);
      });
    }
    it('in the caller\'s dialect: Connect unary and streaming, gRPC-Web, a WebSocket bridge closed with 4000 + the status', async () => {
      const SVC = '/outrigger.examples.bookstore.v1.BookstoreService';
      const t = await rs.sign(claims({ exp: now() - 3600 }));
      const cu = await requestJson(`${baseUrl(sc)}${SVC}/ListShelves`, { method: 'POST', headers: { ...bearer(t), 'content-type': 'application/json' }, body: '{}' });
      expect(cu.status).to.equal(401);
      expect(cu.json).to.deep.equal({ code: 'unauthenticated', message: 'unauthenticated: Jwt verification fails: expired' });
      expect(cu.headers['www-authenticate']).to.equal('Bearer error="invalid_token"');
      const cs = await request(`${baseUrl(sc)}${SVC}/ListShelves`, { method: 'POST', headers: { ...bearer(t), 'content-type': 'application/connect+json' }, body: Buffer.from([0, 0, 0, 0, 2, 0x7b, 0x7d]) });
      const frame = Buffer.from(await cs.body.arrayBuffer());
      expect(cs.statusCode).to.equal(200);
      expect(frame[0]).to.equal(0x02);
      expect(JSON.parse(frame.subarray(5).toString()).error.code).to.equal('unauthenticated');
      const gw = await request(`${baseUrl(sc)}${SVC}/ListShelves`, { method: 'POST', headers: { ...bearer(t), 'content-type': 'application/grpc-web+proto' }, body: Buffer.alloc(5) });
      expect(gw.statusCode).to.equal(200);
      expect(gw.headers['grpc-status']).to.equal('16');
      expect(gw.headers['content-type']).to.equal('application/grpc-web+proto');
      expect((await gw.body.arrayBuffer()).byteLength).to.equal(0);
      // The bridge: the upgrade is accepted, then the status frame and a close with 4000 + the gRPC code.
      const ws = new WebSocket(`${baseUrl(sc, 'ws')}${SVC}/ListShelves`, ['grpc-ws+json'], { headers: bearer(t) });
      const upgrade = new Promise<http.IncomingMessage>((res) => ws.once('upgrade', res));
      const frames: string[] = [];
      ws.on('message', (d) => frames.push(String(d)));
      const [code, reason] = await new Promise<[number, string]>((res, rej) => {
        ws.once('unexpected-response', () => rej(new Error('the upgrade was refused')));
        ws.once('close', (c, r) => res([c, r.toString()]));
      });
      expect(code).to.equal(4000 + grpc.status.UNAUTHENTICATED);
      expect(reason).to.equal('unauthenticated: Jwt verification fails: expired');
      expect(JSON.parse(frames[0]!)).to.deep.equal({ code: 16, message: reason, details: [] });
      const head = await upgrade;
      expect(head.headers['www-authenticate']).to.equal('Bearer error="invalid_token"');
      expect(head.headers['x-outrigger-local-reply']).to.equal('UA');
      expect(head.headers['sec-websocket-protocol']).to.equal('grpc-ws+json');
      expect(JSON.stringify(frames) + reason).to.not.include(t);
    });
    it('a missing token: 401 with a bare Bearer challenge', async () => {
      const r = await h1({});
      expect(r.status).to.equal(401);
      expect(r.headers['www-authenticate']).to.equal('Bearer');
      expect((await callFailure(grpcCall({}))).code).to.equal(grpc.status.UNAUTHENTICATED);
    });
    it('audits failures with the reason, never the token', async () => {
      audit.length = 0;
      const t = await rs.sign(claims({ exp: now() - 3600 }));
      const r = await h1({ ...bearer(t), 'x-request-id': 'req-1' });
      // The exchange's own id (the reply's): the listener trusts no hop, so not the client's header.
      const line = audit.find((l) => l['request_id'] === r.headers['x-request-id']);
      expect(line).to.include({ filter: 'jwtAuthn', outcome: 'unauthenticated', reason: 'expired', route: 'h1', provider: 'remote' });
      expect(line!['source']).to.equal('127.0.0.1');
      expect(JSON.stringify(audit)).to.not.include(t);
      const m = await sc.metrics();
      expect(m).to.match(/outrigger_filter_decisions_total\{filter="jwtAuthn",outcome="unauthenticated"\} \d+/);
    });
  });

  it('a virtual host override disables the filter', async () => {
    const r = await requestJson(`${baseUrl(sc)}/free`, { headers: { host: 'open.test' } });
    expect(r.status).to.equal(200);
  });

  it('rejects a token whose header claims a key type the JWKS does not hold (kid confusion)', async () => {
    const t = `${base64url.encode(JSON.stringify({ alg: 'RS256', kid: 'es' }))}.${base64url.encode(JSON.stringify(claims()))}.${base64url.encode('x')}`;
    expect((await h1(bearer(t))).status).to.equal(401);
  });
  // Last: it stops the JWKS endpoint (child suites run after the tests above, in order).
  describe('the JWKS endpoint goes away', () => {
    it('serves cached keys while the JWKS endpoint is down; a new kid is fetched once', async () => {
      const t = await rs.sign(claims({ sub: 'bob' }));
      expect((await h1(bearer(t))).status).to.equal(200);
      // A rotated-in key: not in the cached set, so the kid miss fetches once.
      const rotated = await signingKey('ES256', 'rotated');
      jwks.setKeys([rs.publicJwk, es.publicJwk, rotated.publicJwk]);
      const before = jwks.hits();
      expect((await h1(bearer(await rotated.sign(claims())))).status).to.equal(200);
      expect(jwks.hits()).to.equal(before + 1);
      // An unknown kid, twice: at most one refetch for it.
      const stranger = await signingKey('ES256', 'stranger');
      expect((await h1(bearer(await stranger.sign(claims())))).status).to.equal(401);
      expect((await h1(bearer(await stranger.sign(claims({ sub: 'x' }))))).status).to.equal(401);
      expect(jwks.hits()).to.equal(before + 2);
      await jwks.close();
      // Not cached yet (new token), verified with the keys fetched before the endpoint went away.
      expect((await h1(bearer(await es.sign(claims({ sub: 'carol' }))))).status).to.equal(200);
      expect((await h1(bearer(await rotated.sign(claims({ sub: 'dave' }))))).status).to.equal(200);
    });
  });
});
