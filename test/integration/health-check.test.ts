import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { create, toBinary } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom } from '../../src/core/random.js';
import { ClusterSchema, Cluster_DiscoveryType, type Cluster } from '../../src/gen/outrigger/config/v1/cluster_pb.js';
import { HealthCheckResponseSchema, HealthCheckResponse_ServingStatus } from '../../src/gen/grpc/health/v1/health_pb.js';
import { fromJson } from '@bufbuild/protobuf';
import { ClusterRuntime } from '../../src/proxy/upstream/cluster.js';
import { HealthCheckers } from '../../src/proxy/upstream/health/health-checkers.js';
import { FakeClock } from '../support/fake-clock.js';
import { waitFor } from '../support/wait.js';
import { cluster as clusterDoc, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar } from '../support/sidecar-harness.js';

/** An HTTP backend answering `name` on every path, and `healthStatus` on /healthz. */
async function backend(name: string): Promise<{ port: number; healthStatus: number; hits: number; close(): Promise<void> }> {
  const state = { port: 0, healthStatus: 200, hits: 0, close: async () => undefined as void };
  const srv = http.createServer((req, res) => {
    if (req.url === '/healthz') {
      res.writeHead(state.healthStatus).end();
      return;
    }
    state.hits++;
    res.end(name);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  state.port = (srv.address() as AddressInfo).port;
  state.close = () => new Promise<void>((r) => srv.close(() => r()));
  srv.unref();
  return state;
}

function clusterOf(ports: number[], healthCheck: unknown): Cluster {
  return fromJson(ClusterSchema, {
    name: 'c',
    type: 'DISCOVERY_TYPE_STATIC',
    endpoints: ports.map((port) => ({ address: { host: '127.0.0.1', port } })),
    healthCheck,
  } as never);
}

function harness(c: Cluster): { clock: FakeClock; runtime: ClusterRuntime; checkers: HealthCheckers; picks(n: number): Set<string>; done(): number } {
  const clock = new FakeClock();
  const runtime = ClusterRuntime.build(c, undefined, { clock, random: seededRandom(1) });
  const checkers = new HealthCheckers(clock, seededRandom(2));
  checkers.sync(new Map([['c', c]]), new Map([['c', runtime]]));
  return {
    clock,
    runtime,
    checkers,
    picks: (n) => new Set(Array.from({ length: n }, () => runtime.pick({}).ep?.key ?? 'none')),
    done: () => checkers.get('c')!.checksDone,
  };
}

/** Advances the fake clock by `ms` and waits until `n` more checks have finished on real sockets. */
async function tick(h: ReturnType<typeof harness>, ms: number, n: number): Promise<void> {
  const target = h.done() + n;
  h.clock.advance(ms);
  await waitFor(() => h.done() >= target, `${n} health checks`);
}

describe('active health checks', () => {
  it('HTTP: a backend answering 503 on its health path leaves rotation and comes back after healthyThreshold passes', async () => {
    const a = await backend('a');
    const b = await backend('b');
    b.healthStatus = 503;
    const h = harness(clusterOf([a.port, b.port], { interval: '1s', noTrafficInterval: '1s', unhealthyThreshold: 2, healthyThreshold: 2, http: { path: '/healthz' } }));
    const ka = `127.0.0.1:${a.port}`;
    const kb = `127.0.0.1:${b.port}`;
    try {
      // Pending endpoints are in rotation until their first check, which decides at once.
      expect(h.picks(4)).to.deep.equal(new Set([ka, kb]));
      await tick(h, 0, 2);
      expect(h.runtime.healthLabelOf(kb)).to.equal('failed_active_hc');
      expect(h.picks(6)).to.deep.equal(new Set([ka]));
      b.healthStatus = 200;
      await tick(h, 1000, 2);
      expect(h.picks(6), 'one pass is below healthyThreshold').to.deep.equal(new Set([ka]));
      await tick(h, 1000, 2);
      expect(h.picks(6)).to.deep.equal(new Set([ka, kb]));
      // A healthy endpoint needs unhealthyThreshold consecutive failures to leave.
      b.healthStatus = 500;
      await tick(h, 1000, 2);
      expect(h.picks(6)).to.deep.equal(new Set([ka, kb]));
      await tick(h, 1000, 2);
      expect(h.picks(6)).to.deep.equal(new Set([ka]));
    } finally {
      h.checkers.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('a check that hangs fails at its timeout; expectedStatuses are [start, end) ranges', async () => {
    const hang = net.createServer(() => undefined); // accepts, never answers
    await new Promise<void>((r) => hang.listen(0, '127.0.0.1', r));
    const a = await backend('a');
    a.healthStatus = 204;
    const hangPort = (hang.address() as AddressInfo).port;
    const h = harness(
      clusterOf([a.port, hangPort], { interval: '2s', noTrafficInterval: '2s', timeout: '0.5s', http: { path: '/healthz', expectedStatuses: [{ start: 204, end: 205 }] } }),
    );
    try {
      h.clock.advance(0);
      await waitFor(() => h.done() >= 1, 'the answering backend checked');
      expect(h.runtime.healthLabelOf(`127.0.0.1:${a.port}`)).to.equal('healthy');
      expect(h.done()).to.equal(1);
      await tick(h, 500, 1);
      expect(h.runtime.healthLabelOf(`127.0.0.1:${hangPort}`)).to.equal('failed_active_hc');
      a.healthStatus = 200; // not in [204, 205)
      await tick(h, 2000, 1);
      expect(h.checkers.get('c')!.statusOf(`127.0.0.1:${a.port}`)).to.equal('healthy'); // 1 failure < 3
    } finally {
      h.checkers.close();
      hang.close();
      await a.close();
    }
  });

  it('TCP: connect, send hex, expect hex', async () => {
    let reply = 'PONG';
    const srv = net.createServer((s) => s.on('data', (d) => d.toString() === 'PING' && s.write(reply)));
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const closed = net.createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r())); // connection refused from now on
    const hc = { interval: '1s', noTrafficInterval: '1s', unhealthyThreshold: 1, tcp: { send: Buffer.from('PING').toString('hex'), expect: Buffer.from('PONG').toString('hex') } };
    const h = harness(clusterOf([port, closedPort], hc));
    try {
      await tick(h, 0, 2);
      expect(h.runtime.healthLabelOf(`127.0.0.1:${port}`)).to.equal('healthy');
      expect(h.runtime.healthLabelOf(`127.0.0.1:${closedPort}`)).to.equal('failed_active_hc');
      reply = 'NOPE';
      h.clock.advance(1000);
      await waitFor(() => h.done() >= 3, 'the refused endpoint checked again');
      // The wrong answer never matches: the check fails at its timeout (default 1s).
      await tick(h, 1000, 1);
      expect(h.runtime.healthLabelOf(`127.0.0.1:${port}`)).to.equal('failed_active_hc');
    } finally {
      h.checkers.close();
      srv.close();
    }
  });

  it('gRPC: grpc.health.v1.Health/Check, SERVING only, for the configured service', async () => {
    let status = HealthCheckResponse_ServingStatus.SERVING;
    const asked: string[] = [];
    const srv = http2.createServer();
    srv.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        const msg = Buffer.concat(chunks);
        asked.push(`${headers[':path']} ${msg.subarray(5).toString('latin1')}`);
        const body = toBinary(HealthCheckResponseSchema, create(HealthCheckResponseSchema, { status }));
        const frame = Buffer.alloc(5 + body.length);
        frame.writeUInt32BE(body.length, 1);
        frame.set(body, 5);
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(frame);
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    const a = await backend('a');
    const h = harness(clusterOf([port, a.port], { interval: '1s', noTrafficInterval: '1s', unhealthyThreshold: 1, grpc: { service: 'books.v1.Books' } }));
    const key = `127.0.0.1:${port}`;
    try {
      await tick(h, 0, 2);
      expect(h.runtime.healthLabelOf(key)).to.equal('healthy');
      expect(asked[0]).to.match(/^\/grpc\.health\.v1\.Health\/Check [\s\S]*books\.v1\.Books$/);
      // The plain HTTP/1.1 backend does not speak gRPC health: it fails.
      expect(h.runtime.healthLabelOf(`127.0.0.1:${a.port}`)).to.equal('failed_active_hc');
      status = HealthCheckResponse_ServingStatus.NOT_SERVING;
      await tick(h, 1000, 2);
      expect(h.runtime.healthLabelOf(key)).to.equal('failed_active_hc');
    } finally {
      h.checkers.close();
      srv.close();
      await a.close();
    }
  });

  it('checks every noTrafficInterval until the cluster has had a request, then every interval', async () => {
    const a = await backend('a');
    const h = harness(clusterOf([a.port], { interval: '1s', noTrafficInterval: '10s', http: { path: '/healthz' } }));
    const checker = h.checkers.get('c')!;
    try {
      await tick(h, 0, 1);
      h.clock.advance(1000);
      expect(checker.inFlight).to.equal(0);
      h.runtime.beginAttempt(`127.0.0.1:${a.port}`).end({ status: 200, flag: undefined, grpcStatus: undefined });
      await tick(h, 9000, 1);
      h.clock.advance(1000);
      expect(checker.inFlight).to.equal(1);
    } finally {
      h.checkers.close();
      await a.close();
    }
  });

  it('follows config versions: state kept for known endpoints, checker stopped when the cluster goes', async () => {
    const a = await backend('a');
    const b = await backend('b');
    b.healthStatus = 503;
    const c1 = clusterOf([a.port, b.port], { interval: '1s', http: { path: '/healthz' } });
    const h = harness(c1);
    try {
      await tick(h, 0, 2);
      const next = ClusterRuntime.build(c1, undefined, { clock: h.clock });
      h.checkers.sync(new Map([['c', c1]]), new Map([['c', next]]));
      expect(next.healthLabelOf(`127.0.0.1:${b.port}`), 'the new version starts with what is known').to.equal('failed_active_hc');
      h.checkers.sync(new Map(), new Map());
      expect(h.checkers.get('c')).to.equal(undefined);
      expect(h.clock.pending).to.equal(0);
    } finally {
      h.checkers.close();
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('end to end: the sidecar stops sending requests to an endpoint failing its health checks', async () => {
    const a = await backend('a');
    const b = await backend('b');
    b.healthStatus = 503;
    const clock = new FakeClock();
    const docs = [
      listener('main'),
      routes('main', [prefixRoute('/', 'c')]),
      clusterDoc('c', [a.port, b.port], 'UPSTREAM_PROTOCOL_HTTP1', { healthCheck: { interval: '1s', http: { path: '/healthz' } } }),
    ];
    const sc = await startTestSidecar(docs, { clock });
    try {
      const checker = sc.sidecar.listeners.health.get('c')!;
      clock.advance(0);
      await waitFor(() => checker.checksDone >= 2, 'first checks');
      const got: string[] = [];
      for (let i = 0; i < 6; i++) got.push(await (await fetch(`http://127.0.0.1:${sc.port()}/x`)).text());
      expect(new Set(got)).to.deep.equal(new Set(['a']));
      expect(b.hits).to.equal(0);
    } finally {
      await sc.close();
      await Promise.all([a.close(), b.close()]);
    }
  });
});
