import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/loader.js';
import { startH1Echo, startH2Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

type Reply = { status: number; headers: http.IncomingHttpHeaders; body: string };

function call(port: number, path: string, method = 'GET', host = '127.0.0.1'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host, port, path, method, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

async function json<T>(port: number, path: string): Promise<T> {
  const r = await call(port, path);
  expect(r.status, `${path}: ${r.body}`).to.equal(200);
  expect(r.headers['content-type']).to.equal('application/json');
  return JSON.parse(r.body) as T;
}

function h2Get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = http2.connect(`http://127.0.0.1:${port}`);
    s.on('error', reject);
    const r = s.request({ ':path': path });
    r.on('response', (h) => {
      r.resume();
      r.on('end', () => {
        s.close();
        resolve(Number(h[':status']));
      });
    });
    r.on('error', reject);
    r.end();
  });
}

/** Whether a TCP connect to host:port is accepted. */
function accepts(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

type Endpoint = { address: string; state: string; lastError?: string };
type Clusters = { version: string; clusters: Record<string, { protocol: string; endpoints: Endpoint[] }> };

/** Loopback ports nothing listens on (bound, then released). */
async function freePorts(n: number): Promise<number[]> {
  const servers = Array.from({ length: n }, () => net.createServer());
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()))));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
}

/** `idle` gets its own endpoint (pools are keyed by endpoint) that no request ever uses. */
function docs(h1Port: number, h2Port: number, [deadPort, idlePort]: number[]): Doc[] {
  return [
    listener('main'),
    routes('main', [prefixRoute('/h1/', 'h1c'), prefixRoute('/h2/', 'h2c'), prefixRoute('/dead/', 'dead'), prefixRoute('/idle/', 'idle')]),
    cluster('h1c', [h1Port], 'UPSTREAM_PROTOCOL_HTTP1'),
    cluster('h2c', [h2Port], 'UPSTREAM_PROTOCOL_HTTP2'),
    cluster('dead', [deadPort!], 'UPSTREAM_PROTOCOL_HTTP2', { connectTimeout: '0.5s' }),
    cluster('idle', [idlePort!], 'UPSTREAM_PROTOCOL_HTTP2'),
  ];
}

describe('admin API', function () {
  this.timeout(8000);
  let h1: Started<unknown>;
  let h2: Started<unknown>;
  let sc: TestSidecar;
  let admin: number;
  let unused: number[];

  before(async () => {
    h1 = await startH1Echo('h1');
    h2 = await startH2Echo('h2');
    unused = await freePorts(2);
    sc = await startTestSidecar(docs(h1.port, h2.port, unused));
    admin = sc.sidecar.adminPort;
    // Traffic for the metrics and cluster states below.
    expect((await call(sc.port(), '/h1/a')).status).to.equal(200);
    expect(await h2Get(sc.port(), '/h2/b')).to.equal(200);
    expect((await call(sc.port(), '/dead/c')).status).to.equal(503);
  });
  after(async () => {
    await sc?.close();
    await h1?.close();
    await h2?.close();
  });

  it('/ready is 200 with a config, /healthz 200', async () => {
    const ready = await call(admin, '/ready');
    expect(ready.status).to.equal(200);
    expect(ready.body).to.equal('ready\n');
    expect((await call(admin, '/healthz')).status).to.equal(200);
  });

  it('/metrics is Prometheus text with the config version, detection and request metrics', async () => {
    const r = await call(admin, '/metrics');
    expect(r.status).to.equal(200);
    expect(r.headers['content-type']).to.match(/^text\/plain; version=0\.0\.4/);
    const { version } = await json<{ version: string }>(admin, '/config_dump');
    expect(version).to.be.a('string').and.not.equal('');
    expect(r.body).to.include(`outrigger_config_info{version="${version}"} 1\n`);
    expect(r.body).to.match(/^outrigger_protocol_detection_total\{listener="main",outcome="http1"\} [1-9]/m);
    expect(r.body).to.match(/^outrigger_protocol_detection_total\{listener="main",outcome="h2c"\} [1-9]/m);
    expect(r.body).to.match(/^outrigger_request_duration_seconds_count\{[^}]*cluster="h1c",code="200"[^}]*\} 1$/m);
    expect(r.body).to.match(/^outrigger_request_duration_seconds_count\{[^}]*cluster="h2c",code="200"[^}]*\} 1$/m);
    expect(r.body).to.match(/^outrigger_local_replies_total\{listener="main",flag="UF"\} 1$/m);
    expect(r.body).to.match(/^outrigger_config_reloads_total\{result="applied"\} 1$/m);
    // Process metrics under one prefix (not outrigger_process_process_*).
    expect(r.body).to.match(/^outrigger_process_cpu_seconds_total \d/m);
    expect(r.body).to.match(/^outrigger_nodejs_heap_size_used_bytes \d/m);
    expect(r.body).to.not.contain('process_process');
  });

  it('/config_dump as JSON, and as YAML that loads back to the same version', async () => {
    const dump = await json<{ version: string; documents: { kind: string; metadata: { name: string } }[] }>(admin, '/config_dump');
    const names = dump.documents.map((d) => `${d.kind}/${d.metadata.name}`);
    expect(names).to.include.members(['Listener/main', 'RouteConfiguration/main', 'Cluster/h1c', 'Cluster/h2c', 'Cluster/dead']);

    const y = await call(admin, '/config_dump?format=yaml');
    expect(y.status).to.equal(200);
    expect(y.headers['content-type']).to.equal('application/yaml');
    expect(y.body.startsWith(`# version: ${dump.version}\n`)).to.equal(true);
    const file = join(sc.dir, 'dumped.yaml');
    await writeFile(file, y.body);
    const loaded = await loadConfig(file, { allowEphemeralPorts: true });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.value.version).to.equal(dump.version);
  });

  it('/config_dump redacts secret-bearing values (a credential header matcher) but keeps the version; the route still matches', async () => {
    const secret = 'Bearer s3cr3t-0123456789';
    const own = await startTestSidecar([
      listener('main'),
      routes('main', [{ name: 'authed', match: { prefix: '/', headers: [{ name: 'authorization', exact: secret }] }, route: { cluster: 'h1c' } }]),
      cluster('h1c', [h1.port]),
    ]);
    try {
      const r = await call(own.sidecar.adminPort, '/config_dump');
      expect(r.status).to.equal(200);
      expect(r.body).to.not.contain('s3cr3t');
      expect(r.body).to.contain('[redacted]');
      expect((JSON.parse(r.body) as { version: string }).version).to.equal(own.sidecar.store.current()!.version);
      const y = await call(own.sidecar.adminPort, '/config_dump?format=yaml');
      expect(y.body).to.not.contain('s3cr3t');
      // Redaction is of the dump only: the live route still compares against the real value.
      const ok = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: own.port(), path: '/x', headers: { authorization: secret }, agent: false }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        });
        req.on('error', reject);
        req.end();
      });
      expect(ok).to.equal(200);
      expect((await call(own.port(), '/x')).status).to.equal(404);
    } finally {
      await own.close();
    }
  });

  it('/clusters shows each endpoint with its connection state', async () => {
    const c = await json<Clusters>(admin, '/clusters');
    expect(c.version).to.equal(sc.sidecar.store.current()?.version);
    expect(Object.keys(c.clusters).sort()).to.deep.equal(['dead', 'h1c', 'h2c', 'idle']);
    expect(c.clusters.h2c!.endpoints).to.have.length(1);
    expect(c.clusters.h2c!.endpoints[0]).to.include({ address: `127.0.0.1:${h2.port}`, state: 'ready' });
    expect(c.clusters.h1c!.endpoints[0]).to.include({ address: `127.0.0.1:${h1.port}`, state: 'ready' });
    expect(c.clusters.idle!.endpoints[0]!.state).to.equal('idle');
    const dead = c.clusters.dead!.endpoints[0]!;
    expect(dead.state).to.equal('failed');
    expect(dead.lastError).to.match(/ECONNREFUSED/);
    // Upstream resilience fields (docs/resilience.md).
    const h1ep = c.clusters.h1c!.endpoints[0]! as unknown as Record<string, unknown>;
    expect(h1ep).to.include({ health: 'healthy', activeRequests: 0, ejections: 0 });
    expect(h1ep.totalRequests).to.be.above(0);
    expect(h1ep.ewmaLatencyMs).to.be.a('number');
    expect(dead as unknown as Record<string, unknown>).to.include({ successRate: 0 });
    expect(c.clusters.idle!.endpoints[0] as unknown as Record<string, unknown>).to.include({ successRate: null, ewmaLatencyMs: null });
    expect(c.clusters.h1c as unknown as Record<string, unknown>).to.deep.include({
      lbPolicy: 'round_robin',
      circuitBreakers: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, maxRetries: 3 },
      pendingRequests: 0,
      activeRetries: 0,
      openCircuitBreakers: [],
    });
  });

  it('/routes describes the route tables, /listeners the bound addresses', async () => {
    const r = await json<{ version: string; routeConfigs: Record<string, { name: string; virtualHosts: unknown[] }> }>(admin, '/routes');
    expect(r.routeConfigs.main!.name).to.equal('main');
    expect(r.routeConfigs.main!.virtualHosts).to.have.length(1);
    const text = JSON.stringify(r.routeConfigs.main);
    for (const name of ['h1c-h1-', 'h2c-h2-', 'dead-dead-']) expect(text).to.include(name);
    const l = await json<{ version: string; listeners: Record<string, { host: string; port: number }> }>(admin, '/listeners');
    expect(l.listeners.main).to.deep.equal({ host: '127.0.0.1', port: sc.port() });
    expect(l.version).to.equal(r.version);
  });

  it('404 for an unknown path; GET /quitquitquit is 405 and does not drain', async () => {
    const nf = await call(admin, '/nope');
    expect(nf.status).to.equal(404);
    const q = await call(admin, '/quitquitquit');
    expect(q.status).to.equal(405);
    expect(q.headers.allow).to.equal('POST');
    expect((await call(admin, '/ready')).status).to.equal(200);
  });

  it('listens on 127.0.0.1 only', async () => {
    expect(await accepts('127.0.0.1', admin)).to.equal(true);
    // Another loopback address (Linux routes all of 127/8 to lo) and IPv6 loopback are refused.
    expect(await accepts('127.0.0.2', admin)).to.equal(false);
    expect(await accepts('::1', admin)).to.equal(false);
  });

  it('POST /quitquitquit drains a sidecar: /ready turns 503 (or the admin closes), then it exits', async () => {
    const own = await startTestSidecar(docs(h1.port, h2.port, unused), { drainTimeoutMs: 500 });
    try {
      const port = own.sidecar.adminPort;
      // A keep-alive client keeps the listener busy, so the drain lasts long enough to observe.
      const agent = new http.Agent({ keepAlive: true });
      await new Promise<void>((r) => http.get({ agent, host: '127.0.0.1', port: own.port(), path: '/h1/x' }, (res) => res.resume().on('end', () => r())));
      const q = await call(port, '/quitquitquit', 'POST');
      expect(q.status).to.equal(200);
      expect(q.body).to.equal('draining\n');
      const ready = await call(port, '/ready').then((r) => r.status, () => 'closed');
      expect([503, 'closed']).to.include(ready);
      let exited = false;
      void own.sidecar.closed.then(() => (exited = true));
      await waitFor(() => exited, 'sidecar to exit after /quitquitquit', 3000);
      expect(await accepts('127.0.0.1', port)).to.equal(false);
      agent.destroy();
    } finally {
      await own.close();
    }
  });
});
