import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import WebSocket from 'ws';
import { fromBinary } from '@bufbuild/protobuf';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, metadataOf, type BookstoreClient } from '../../support/bookstore-client.js';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener } from '../../support/config-docs.js';
import { collector, startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { BOOKSTORE_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, transcodeHost } from '../../support/transcode-harness.js';
import { waitFor } from '../../support/wait.js';
import { StatusSchema } from '../../../src/gen/google/rpc/status_pb.js';
import { RetryInfoSchema } from '../../../src/gen/google/rpc/error_details_pb.js';

const sha = (k: string) => createHash('sha256').update(k).digest('hex');

/**
 * apiKeys (inline digests and a watched key file, header and query parameter)
 * and localRateLimit (keyed by a header, by the principal on a route override)
 * through real sockets: HTTP/1.1 pass-through, REST transcoding and gRPC.
 */
describe('filters: apiKeys and localRateLimit', function () {
  let store: BookstoreServer;
  let echo: Started<http.Server>;
  let sc: TestSidecar;
  let client: BookstoreClient;
  let keyFile: string;
  let keyDir: string;
  const audit: Record<string, unknown>[] = [];

  before(async () => {
    store = await startBookstore();
    echo = await startH1Echo('echo');
    const h1Host = {
      name: 'h1',
      domains: ['h1.test'],
      routes: [
        {
          name: 'per-principal',
          match: { prefix: '/per-principal' },
          route: { cluster: 'echo' },
          filters: { perClient: { localRateLimit: { limits: [{ key: { principal: {} }, tokenBucket: { maxTokens: 1, fillInterval: '3600s' } }] } } },
        },
        { name: 'h1', match: { prefix: '/' }, route: { cluster: 'echo' } },
      ],
    };
    keyDir = await mkdtemp(join(tmpdir(), 'outrigger-keys-'));
    keyFile = join(keyDir, 'keys.txt');
    await writeFile(keyFile, `# team keys\nbob:${sha('bob-secret')}\n`);
    sc = await startTestSidecar([
      listener('main', {
        httpFilters: [
          { apiKeys: { keys: [{ name: 'alice', sha256: sha('alice-secret') }], file: keyFile, queryParam: 'api_key' } },
          { name: 'perClient', localRateLimit: { limits: [{ name: 'per-client', key: { header: { name: 'x-client' } }, fixedWindow: { requests: 2, window: '3600s' } }] } },
        ],
      }),
      hosts('main', [h1Host, transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR, websocket: {} })]),
      grpcCluster('store', store.port),
      cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ], { auditLog: collector(audit) });
    client = bookstoreClient(`127.0.0.1:${sc.port()}`);
  });
  after(async () => {
    client?.raw.close();
    await sc?.close();
    await store?.close();
    await echo?.close();
    await rm(keyDir, { recursive: true, force: true });
  });

  const h1 = (headers: Record<string, string>, path = '/x') => requestJson(`${baseUrl(sc)}${path}`, { headers: { host: 'h1.test', ...headers } });
  const rest = (headers: Record<string, string>) => requestJson(`${baseUrl(sc)}/v1/shelves`, { headers });
  const grpcCall = (headers: Record<string, string>) => client.unary('listShelves', {}, { metadata: metadataOf(headers) });

  describe('apiKeys', () => {
    it('accepts an inline key (header or query parameter) and a key from the file; the key is not forwarded', async () => {
      const r = await h1({ 'x-api-key': 'alice-secret' });
      expect(r.status).to.equal(200);
      expect(r.json.headers['x-api-key']).to.equal(undefined);
      expect((await h1({}, '/x?api_key=alice-secret')).status).to.equal(200);
      expect((await h1({ 'x-api-key': 'bob-secret' })).status).to.equal(200);
      expect((await rest({ 'x-api-key': 'bob-secret' })).status).to.equal(200);
      expect((await grpcCall({ 'x-api-key': 'alice-secret' })).status.code).to.equal(grpc.status.OK);
    });
    it('refuses a wrong or missing key: 401 in each dialect, audited without the key', async () => {
      audit.length = 0;
      const r = await h1({ 'x-api-key': 'guess' });
      expect(r.status).to.equal(401);
      expect(r.headers['x-outrigger-local-reply']).to.equal('UA');
      expect((await h1({})).status).to.equal(401);
      const j = await rest({ 'x-api-key': 'guess' });
      expect(j.status).to.equal(401);
      expect(j.json.code).to.equal(16);
      expect((await callFailure(grpcCall({ 'x-api-key': 'guess' }))).code).to.equal(grpc.status.UNAUTHENTICATED);
      expect(audit.map((l) => l['reason'])).to.include.members(['unknown_key', 'missing']);
      expect(JSON.stringify(audit)).to.not.include('guess');
    });
    it("audit lines carry the exchange's decided request id (the access log's and the reply's), not the client's header", async () => {
      audit.length = 0;
      // The listener trusts no hop in front of it: a client's x-request-id is replaced by one of ours.
      const r = await h1({ 'x-api-key': 'guess', 'x-request-id': 'client-chosen' });
      expect(r.status).to.equal(401);
      const id = r.headers['x-request-id'];
      expect(id).to.be.a('string').and.not.equal('client-chosen');
      expect(audit.at(-1)).to.include({ outcome: 'unauthenticated', request_id: id });
      await waitFor(() => sc.access.some((l) => l['request_id'] === id), 'the access-log line of the refused request');
    });
    it('re-reads the key file when it changes', async () => {
      expect((await h1({ 'x-api-key': 'carol-secret' })).status).to.equal(401);
      const tmp = `${keyFile}.tmp`;
      await writeFile(tmp, `carol:${sha('carol-secret')}\n`);
      await rename(tmp, keyFile);
      await waitFor(async () => (await h1({ 'x-api-key': 'carol-secret' })).status === 200, 'the new key file');
      expect((await h1({ 'x-api-key': 'bob-secret' })).status).to.equal(401);
    });
  });

  describe('localRateLimit', () => {
    it('HTTP/1.1: the third request of a client is refused with 429 and RateLimit headers', async () => {
      const h = { 'x-api-key': 'alice-secret', 'x-client': 'h1-client' };
      expect((await h1(h)).status).to.equal(200);
      expect((await h1(h)).status).to.equal(200);
      const r = await h1(h);
      expect(r.status).to.equal(429);
      expect(r.headers['x-outrigger-local-reply']).to.equal('RLX');
      expect(r.headers['ratelimit-limit']).to.equal('2');
      expect(r.headers['ratelimit-remaining']).to.equal('0');
      expect(Number(r.headers['retry-after'])).to.be.within(1, 3600);
      expect(r.headers['ratelimit-reset']).to.equal(r.headers['retry-after']);
      expect((await h1({ 'x-api-key': 'alice-secret', 'x-client': 'other' })).status, 'another key value').to.equal(200);
      expect(audit.at(-1)).to.not.equal(undefined);
    });
    it('REST: 429 with a google.rpc.Status carrying RetryInfo', async () => {
      const h = { 'x-api-key': 'alice-secret', 'x-client': 'rest-client' };
      await rest(h);
      await rest(h);
      const r = await rest(h);
      expect(r.status).to.equal(429);
      expect(r.json.code).to.equal(8);
      expect(r.json.details[0]['@type']).to.equal('type.googleapis.com/google.rpc.RetryInfo');
      expect(r.headers['retry-after']).to.match(/^\d+$/);
    });
    it('gRPC: RESOURCE_EXHAUSTED with a google.rpc.RetryInfo in grpc-status-details-bin', async () => {
      const h = { 'x-api-key': 'alice-secret', 'x-client': 'grpc-client' };
      await grpcCall(h);
      await grpcCall(h);
      const e = await callFailure(grpcCall(h));
      expect(e.code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      const bin = e.metadata.get('grpc-status-details-bin')[0] as Buffer;
      const st = fromBinary(StatusSchema, bin);
      expect(st.code).to.equal(8);
      const ri = fromBinary(RetryInfoSchema, st.details[0]!.value);
      expect(Number(ri.retryDelay!.seconds)).to.be.within(1, 3600);
      expect(e.metadata.get('retry-after')[0]).to.match(/^\d+$/);
      const line = audit.filter((l) => l['outcome'] === 'rate_limited').at(-1)!;
      expect(line).to.include({ filter: 'perClient', descriptor: 'per-client (header:x-client)', principal: 'alice' });
      expect(await sc.metrics()).to.match(/outrigger_filter_decisions_total\{filter="perClient",outcome="rate_limited"\} [1-9]/);
    });
    it('WebSocket bridge: the refused upgrade is accepted, then closed with 4008 and the RetryInfo in the status frame', async () => {
      const h = { 'x-api-key': 'alice-secret', 'x-client': 'ws-client' };
      await rest(h);
      await rest(h);
      const ws = new WebSocket(`${baseUrl(sc, 'ws')}/outrigger.examples.bookstore.v1.BookstoreService/ListShelves`, ['grpc-ws+json'], { headers: h });
      const upgrade = new Promise<http.IncomingMessage>((res) => ws.once('upgrade', res));
      const frames: string[] = [];
      ws.on('message', (d) => frames.push(String(d)));
      const [code, reason] = await new Promise<[number, string]>((res) => ws.once('close', (c, r) => res([c, r.toString()])));
      expect(code).to.equal(4000 + grpc.status.RESOURCE_EXHAUSTED);
      expect(reason).to.equal('rate limited');
      const st = JSON.parse(frames[0]!) as { code: number; details: { '@type': string }[] };
      expect(st.code).to.equal(8);
      expect(st.details[0]!['@type']).to.equal('type.googleapis.com/google.rpc.RetryInfo');
      const head = await upgrade;
      expect(head.headers['retry-after']).to.match(/^\d+$/);
      expect(head.headers['x-outrigger-local-reply']).to.equal('RLX');
    });
    it('a route override replaces the listener limit: one request per principal', async () => {
      expect((await h1({ 'x-api-key': 'alice-secret' }, '/per-principal')).status).to.equal(200);
      expect((await h1({ 'x-api-key': 'alice-secret' }, '/per-principal')).status).to.equal(429);
      expect((await h1({ 'x-api-key': 'carol-secret' }, '/per-principal')).status).to.equal(200);
    });
  });
});
