import { expect } from 'chai';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type http from 'node:http';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { startBookstore, type BookstoreServer } from '../../../examples/bookstore/server.js';
import { bookstoreClient, callFailure, type BookstoreClient } from '../../support/bookstore-client.js';
import { startH1Echo, type Started } from '../../support/backends.js';
import { cluster, listener, routes, toYaml, type Doc } from '../../support/config-docs.js';
import { freePort, RedisServer } from '../../support/redis-server.js';
import { collector, startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { spawnSidecar } from '../../support/sidecar-process.js';
import { BOOKSTORE_DESCRIPTOR, baseUrl, grpcCluster, hosts, requestJson, transcodeHost } from '../../support/transcode-harness.js';
import { waitFor } from '../../support/wait.js';

/**
 * globalRateLimit against a real redis-server: two sidecar processes share
 * one limit exactly; each dialect gets its 429; Redis going away is answered
 * by failureMode (allow by default, deny on request).
 */
describe('filters: globalRateLimit (real Redis)', function () {
  this.timeout(60000);
  let dir: string;
  let redis: RedisServer;
  let echo: Started<http.Server>;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'outrigger-grl-'));
    redis = await RedisServer.start(dir);
    echo = await startH1Echo('echo');
  });
  after(async () => {
    await redis?.stop();
    await echo?.close();
    await rm(dir, { recursive: true, force: true });
  });

  const globalFilter = (extra: Record<string, unknown>) => ({ globalRateLimit: { redis: { url: redis.url }, ...extra } });

  it('two sidecar processes sharing a limit of 50: 100 requests, exactly 50 pass', async () => {
    const configPath = join(dir, 'two.yaml');
    const docs: Doc[] = [
      // A loaded machine must not turn into fail-open decisions (default timeout 20 ms) or
      // connections taken for opaque TCP (detection 100 ms): the count must be exact.
      listener('main', {
        detectTimeout: '5s',
        httpFilters: [globalFilter({ domain: 'shared', decisionTimeout: '5s', limits: [{ name: 'all', key: { constant: { value: 'x' } }, tokenBucket: { maxTokens: 50, fillInterval: '3600s' } }] })],
      }),
      routes('main', [{ match: { prefix: '/' }, route: { cluster: 'echo' } }]),
      cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ];
    await writeFile(configPath, toYaml(docs));
    const auditPath = join(dir, 'audit.log');
    const a = await spawnSidecar(configPath, ['--audit-log', auditPath]);
    const b = await spawnSidecar(configPath);
    try {
      const statuses = await Promise.all(
        Array.from({ length: 100 }, async (_, i) => {
          const r = await request(`http://127.0.0.1:${i % 2 ? a.port : b.port}/r${i}`);
          await r.body.text();
          if (r.statusCode === 429) expect(r.headers['ratelimit-limit']).to.equal('50');
          return r.statusCode;
        }),
      );
      expect(statuses.filter((s) => s === 200)).to.have.length(50);
      expect(statuses.filter((s) => s === 429)).to.have.length(50);
      a.proc.kill('SIGTERM');
      await a.exit;
      const lines = (await readFile(auditPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines.length).to.be.greaterThan(0);
      expect(lines[0]).to.include({ filter: 'globalRateLimit', outcome: 'rate_limited', descriptor: 'all (constant)', log: 'audit' });
    } finally {
      a.proc.kill('SIGTERM');
      b.proc.kill('SIGTERM');
      await Promise.all([a.exit, b.exit]);
    }
  });

  it('a Redis that starts after the sidecar: the first decisions wait for its first connection instead of failureMode', async () => {
    const port = await freePort();
    const lateDir = await mkdtemp(join(tmpdir(), 'outrigger-grl-late-'));
    // FAILURE_MODE_DENY: a decision made before the first connection would be a 500, not Redis's answer.
    const limits = [{ name: 'late', key: { header: { name: 'x-client' } }, fixedWindow: { requests: 1, window: '3600s' } }];
    const sc = await startTestSidecar([
      listener('main', { httpFilters: [{ globalRateLimit: { redis: { url: `redis://127.0.0.1:${port}` }, limits, failureMode: 'FAILURE_MODE_DENY', decisionTimeout: '5s' } }] }),
      routes('main', [{ match: { prefix: '/' }, route: { cluster: 'echo' } }]),
      cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    ]);
    let late: RedisServer | undefined;
    try {
      const first = requestJson(`${baseUrl(sc)}/x`, { headers: { 'x-client': 'early' } });
      late = await RedisServer.start(lateDir, port);
      expect((await first).status, 'decided by Redis once it came up').to.equal(200);
      const second = await requestJson(`${baseUrl(sc)}/x`, { headers: { 'x-client': 'early' } });
      expect(second.status).to.equal(429);
      expect(second.headers['ratelimit-limit']).to.equal('1');
    } finally {
      await sc.close();
      await late?.stop();
      await rm(lateDir, { recursive: true, force: true });
    }
  });

  describe('in process: dialects and failure modes', () => {
    let store: BookstoreServer;
    let sc: TestSidecar;
    let client: BookstoreClient;
    const audit: Record<string, unknown>[] = [];

    before(async () => {
      store = await startBookstore();
      const limits = [{ name: 'per-client', key: { header: { name: 'x-client' } }, fixedWindow: { requests: 1, window: '3600s' } }];
      const h1Hosts = ['open', 'closed'].map((n) => ({
        name: n,
        domains: [`${n}.test`],
        filters: n === 'closed' ? { globalRateLimit: globalFilter({ limits, failureMode: 'FAILURE_MODE_DENY', decisionTimeout: '2s' }) } : {},
        routes: [{ name: n, match: { prefix: '/' }, route: { cluster: 'echo' } }],
      }));
      sc = await startTestSidecar(
        [
          listener('main', { httpFilters: [globalFilter({ limits, decisionTimeout: '2s' })] }),
          hosts('main', [...h1Hosts, transcodeHost('store', ['*'], 'store', { descriptorBin: BOOKSTORE_DESCRIPTOR })]),
          grpcCluster('store', store.port),
          cluster('echo', [echo.port], 'UPSTREAM_PROTOCOL_HTTP1'),
        ],
        { auditLog: collector(audit) },
      );
      client = bookstoreClient(`127.0.0.1:${sc.port()}`);
      // Decisions before the filter's first Redis connection follow failureMode (allow): wait until a
      // warm-up key is really limited, so the tests below start with Redis deciding (Node 24 starts faster).
      let n = 0;
      await waitFor(async () => {
        const key = `warm-up-${n++}`;
        await h1('open.test', key);
        return (await h1('open.test', key)).status === 429;
      }, 'the global limit to be decided by Redis');
    });
    after(async () => {
      client?.raw.close();
      await sc?.close();
      await store?.close();
    });

    const h1 = (host: string, client_: string) => requestJson(`${baseUrl(sc)}/x`, { headers: { host, 'x-client': client_ } });

    it('HTTP/1.1, REST and gRPC: the second request of a client in the window is refused', async () => {
      expect((await h1('open.test', 'c1')).status).to.equal(200);
      const r = await h1('open.test', 'c1');
      expect(r.status).to.equal(429);
      expect(r.headers['x-outrigger-local-reply']).to.equal('RLX');
      expect(Number(r.headers['retry-after'])).to.be.within(1, 3600);
      expect((await requestJson(`${baseUrl(sc)}/v1/shelves`, { headers: { 'x-client': 'c2' } })).status).to.equal(200);
      const rest = await requestJson(`${baseUrl(sc)}/v1/shelves`, { headers: { 'x-client': 'c2' } });
      expect(rest.status).to.equal(429);
      expect(rest.json.details[0]['@type']).to.equal('type.googleapis.com/google.rpc.RetryInfo');
      const md = new grpc.Metadata();
      md.set('x-client', 'c3');
      await client.unary('listShelves', {}, { metadata: md });
      expect((await callFailure(client.unary('listShelves', {}, { metadata: md }))).code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
      // Keys are hashed and hash-tagged: one Redis Cluster slot per key, no header value in Redis.
      expect((await h1('open.test', 'unlimited-other')).status).to.equal(200);
    });

    it('Redis down: FAILURE_MODE_ALLOW lets requests through, FAILURE_MODE_DENY answers 500 RLSE; both audited', async () => {
      await redis.stop();
      try {
        await waitFor(async () => (await h1('closed.test', 'd1')).status === 500, 'the client to notice Redis is gone');
        const denied = await h1('closed.test', 'd2');
        expect(denied.status).to.equal(500);
        expect(denied.headers['x-outrigger-local-reply']).to.equal('RLSE');
        expect((await h1('open.test', 'c1')).status, 'over its limit, but Redis cannot say so').to.equal(200);
        expect(audit.some((l) => l['outcome'] === 'service_error')).to.equal(true);
      } finally {
        await redis.start();
      }
      await waitFor(async () => (await h1('open.test', 'c1')).status === 429, 'the limit to apply again after Redis is back', 15000);
    });
  });
});
