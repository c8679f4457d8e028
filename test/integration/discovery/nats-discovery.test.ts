import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { connect } from 'nats';
import { listener, prefixRoute, routes, type Doc } from '../../support/config-docs.js';
import { NatsServer } from '../../support/nats-server.js';
import { startNamedBackend, Traffic, type NamedBackend } from '../../support/discovery-traffic.js';
import { backendOf } from '../../support/backend-of.js';
import { startTestSidecar, type TestSidecar } from '../../support/sidecar-harness.js';
import { waitFor } from '../../support/wait.js';
import { metricValue } from '../../support/prom-text.js';
import { Announcer } from '../../../src/discovery/nats/announcer.js';
import { systemClock } from '../../../src/core/clock.js';
import { silentLogger } from '../../../src/observability/logger.js';

function natsCluster(name: string, service: string): Doc {
  return { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name }, spec: { type: 'DISCOVERY_TYPE_NATS', protocol: 'UPSTREAM_PROTOCOL_HTTP1', nats: { service } } };
}

/** `outrigger announce` as a child process; resolves once it logged that it is announcing. */
async function spawnAnnounce(natsUrl: string, args: string[]): Promise<{ proc: ChildProcess; exit: Promise<number | null> }> {
  const proc = spawn(process.execPath, ['bin/outrigger.js', 'announce', ...args], {
    env: { ...process.env, NATS_URL: natsUrl, OUTRIGGER_FROM_SOURCE: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exit = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  let err = '';
  proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  await new Promise<void>((resolve, reject) => {
    const lines = createInterface(proc.stdout!);
    lines.on('line', (l) => {
      if (l.includes('"announcing"')) resolve();
    });
    void exit.then((code) => reject(new Error(`announce exited ${code}: ${err}`)));
  });
  return { proc, exit };
}

describe('Discovery: NATS announcements against a real nats-server', function () {
  this.timeout(40_000);
  let nats: NatsServer;
  let a: NamedBackend;
  let b: NamedBackend;
  let sc: TestSidecar | undefined;
  const children: ChildProcess[] = [];
  const announcers: Announcer[] = [];

  const announcer = (be: NamedBackend, ttlSeconds: number, labels: Record<string, string> = {}) => {
    const x = new Announcer({ servers: [nats.url], service: 'cart', address: be.host, port: be.port, ttlSeconds, labels, clock: systemClock(), logger: silentLogger() });
    announcers.push(x);
    return x;
  };

  beforeEach(async () => {
    nats = await NatsServer.start();
    a = await startNamedBackend('a');
    b = await startNamedBackend('b');
  });

  afterEach(async () => {
    for (const c of children.splice(0)) if (c.exitCode === null) c.kill('SIGKILL');
    for (const x of announcers.splice(0)) await x.stop();
    await sc?.close();
    sc = undefined;
    await Promise.all([a.close(), b.close(), nats.stop()]);
  });

  const sidecar = () => startTestSidecar([listener('main'), routes('main', [prefixRoute('/', 'cart')]), natsCluster('cart', 'cart')], { discovery: { natsServers: nats.url } });

  it('a late sidecar learns members at once (query); a new member takes traffic and a goodbye (SIGTERM) removes one, with zero failed requests', async () => {
    // TTL 30 s: heartbeats every 10 s, so only the query can tell the sidecar within the test's bound.
    const first = await spawnAnnounce(nats.url, ['--service', 'cart', '--address', `127.0.0.1:${a.port}`, '--ttl', '30s', '--label', 'version=v1']);
    children.push(first.proc);
    const started = Date.now();
    sc = await sidecar();
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'the member announced before the sidecar started');
    expect(Date.now() - started).to.be.below(3000);

    const t = new Traffic(port);
    try {
      await announcer(b, 30, { version: 'v2' }).start();
      const at = Date.now();
      await waitFor(() => t.countsSince(0).b !== undefined, 'the new member takes traffic', 5000);
      expect(Date.now() - at).to.be.below(1000);
      first.proc.kill('SIGTERM');
      expect(await first.exit).to.equal(0);
      const gone = Date.now();
      await waitFor(() => t.lastAre('b', 20), 'the member that said goodbye stops taking traffic', 5000);
      expect(Date.now() - gone).to.be.below(1000);
    } finally {
      await t.stop();
    }
    expect(t.failures).to.deep.equal([]);
    const cla = sc.sidecar.store.current()!.documents.find((d) => d.kind === 'ClusterLoadAssignment')!;
    expect(cla.spec.endpoints).to.deep.equal([{ address: { host: '127.0.0.1', port: b.port }, healthStatus: 'HEALTH_STATUS_HEALTHY', metadata: { version: 'v2' }, source: 'nats:cart' }]);
  });

  it('drops a member a TTL after its last heartbeat (no goodbye: a crash), from any client speaking the JSON protocol', async () => {
    await announcer(a, 30).start();
    sc = await sidecar();
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first member');
    const nc = await connect({ servers: nats.url });
    try {
      nc.publish('outrigger.discovery.cart.announce', new TextEncoder().encode(JSON.stringify({ kind: 'heartbeat', service: 'cart', id: 'crashing', address: '127.0.0.1', port: b.port, ttl: 1 })));
      nc.publish('outrigger.discovery.cart.announce', new TextEncoder().encode('{"kind":"heartbeat","service":"cart"}')); // invalid: ignored, counted
      await nc.flush();
      await waitFor(() => sc!.sidecar.store.current()!.loadAssignments.get('cart')!.endpoints.length === 2, 'two members');
      const at = Date.now();
      await waitFor(() => sc!.sidecar.store.current()!.loadAssignments.get('cart')!.endpoints.length === 1, 'the silent member expires', 5000);
      expect(Date.now() - at).to.be.within(0, 2000);
    } finally {
      await nc.close();
    }
    const status = sc.sidecar.discovery.status().find((s) => s.kind === 'nats')!;
    expect(status.errors).to.be.at.least(1);
    // The bad message is metered too, but it says nothing about the connection.
    expect(status.connected).to.equal(true);
    expect(metricValue(await sc.metrics(), 'outrigger_discovery_errors_total', { provider: 'nats' })).to.be.at.least(1);
  });

  it('keeps the last members while the NATS server restarts, and follows changes after it is back', async () => {
    await announcer(a, 2).start();
    sc = await sidecar();
    const port = sc.port();
    await waitFor(async () => (await backendOf(port)) === 'a', 'first member');
    await nats.stop();
    const errors = async () => metricValue(await sc!.metrics(), 'outrigger_discovery_errors_total', { provider: 'nats' }) ?? 0;
    await waitFor(async () => (await errors()) > 0, 'the disconnect counted');
    // Longer than the TTL: expiry is suspended while nobody can be heard.
    const t0 = Date.now();
    await waitFor(() => Date.now() - t0 > 2500, 'past the TTL', 4000);
    const t = new Traffic(port, '/x', 30);
    await t.stop();
    expect(t.failures).to.deep.equal([]);
    expect(new Set(t.answers)).to.deep.equal(new Set(['a']));

    await nats.start();
    await waitFor(() => sc!.sidecar.discovery.status().find((s) => s.kind === 'nats')!.connected, 'reconnected', 10_000);
    await announcer(b, 2).start();
    await waitFor(() => sc!.sidecar.store.current()!.loadAssignments.get('cart')!.endpoints.length === 2, 'a member announced after the restart', 10_000);
    expect(sc.sidecar.store.current()!.loadAssignments.get('cart')!.endpoints.map((e) => e.address!.port).sort()).to.deep.equal([a.port, b.port].sort());
    const seen = new Set<string>();
    for (let i = 0; i < 4; i++) seen.add(await backendOf(port));
    expect(seen).to.deep.equal(new Set(['a', 'b']));
  });

  it('refuses invalid NATS discovery config with the field path', async () => {
    const { buildSnapshot } = await import('../../../src/config/loader.js');
    const docs = [listener('main'), routes('main', [prefixRoute('/', 'x'), prefixRoute('/y', 'y')]), natsCluster('x', ''), natsCluster('y', 'a.b')];
    const r = buildSnapshot(docs.map((value, index) => ({ value, source: { index } })), { allowEphemeralPorts: true });
    expect(r.ok ? [] : r.errors.map((e) => `${e.document} ${e.path}`)).to.deep.equal(['Cluster/x spec.nats.service', 'Cluster/y spec.nats.service']);
  });
});
