import { expect } from 'chai';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Client, request } from 'undici';
import type { JsonObject } from '../../src/config/snapshot.js';
import { startH1Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes, toYaml, type Doc } from '../support/config-docs.js';
import { client, removeDir, spawnControlPlane, spawnSidecar, startTestControlPlane, tempDir, writeToken } from '../support/control-harness.js';
import { freePort } from '../support/redis-server.js';
import { waitFor } from '../support/wait.js';

/*
 * `outrigger sidecar --concurrency 2` as a real process: a primary and two
 * node:cluster workers sharing the listening socket. Which worker served a
 * request is read from the tap (the primary's fan-in names each event's
 * worker pid) and, after the drain, from the access log's `worker` field.
 */

interface TapSeen {
  readonly byId: Map<string, number>;
  close(): void;
}

/** Subscribes to the admin /tap and records the worker pid of every request id seen. */
async function tapWorkers(admin: number): Promise<TapSeen> {
  const byId = new Map<string, number>();
  const ac = new AbortController();
  const res = await request(`http://127.0.0.1:${admin}/tap`, { signal: ac.signal });
  expect(res.statusCode).to.equal(200);
  let buf = '';
  let live = false;
  res.body.on('data', (c: Buffer) => {
    buf += c.toString();
    let i;
    while ((i = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      if (block.startsWith(': tap')) live = true;
      if (!block.startsWith('data: ')) continue;
      const e = JSON.parse(block.slice(6)) as { request_id?: string; worker?: number };
      if (e.request_id !== undefined && e.worker !== undefined) byId.set(e.request_id, e.worker);
    }
  });
  res.body.on('error', () => {});
  // The tap is live once its comment line arrived (the workers are told to forward from then on).
  await waitFor(() => live, 'tap subscription');
  return { byId, close: () => ac.abort() };
}

async function get(port: number, path: string, id: string, on?: Client, headers: Record<string, string> = {}): Promise<number> {
  const c = on ?? new Client(`http://127.0.0.1:${port}`);
  try {
    const r = await c.request({ path, method: 'GET', headers: { 'x-request-id': id, ...headers } });
    await r.body.text();
    return r.statusCode;
  } finally {
    if (!on) await c.close();
  }
}

const adminGet = async (admin: number, path: string): Promise<{ status: number; text: string }> => {
  const r = await request(`http://127.0.0.1:${admin}${path}`);
  return { status: r.statusCode, text: await r.body.text() };
};

/** The sum of one counter's samples in Prometheus text whose labels contain `has`. */
function total(text: string, name: string, has = ''): number {
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (has && !line.includes(has)) continue;
    n += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return n;
}

describe('sidecar --concurrency 2 (a real multi-worker process)', function () {
  this.timeout(120_000);
  let dir: string;
  let backend: Started<unknown>;
  let port: number;
  let sc: Awaited<ReturnType<typeof spawnSidecar>>;
  let admin: number;
  let tap: TapSeen;
  const workersOf = async (): Promise<{ worker: number; pid: number | null; state: string; restarts: number }[]> =>
    (JSON.parse((await adminGet(admin, '/workers')).text) as { workers: { worker: number; pid: number | null; state: string; restarts: number }[] }).workers;
  const docs = (extra: unknown[] = []): Doc[] => [
    listener('main', {
      address: { host: '127.0.0.1', port },
      trustedHops: 1,
      // Applies only to requests with x-limit: 5 per hour for the sidecar, shared out 3 + 2 by the workers.
      httpFilters: [{ localRateLimit: { limits: [{ name: 'per-limit', key: { header: { name: 'x-limit' } }, fixedWindow: { requests: 5, window: '3600s' } }] } }],
    }),
    routes('main', [...extra, prefixRoute('/', 'web')]),
    cluster('web', [backend.port]),
  ];

  before(async () => {
    dir = await tempDir('outrigger-workers-');
    backend = await startH1Echo('web');
    port = await freePort();
    await writeFile(join(dir, 'sidecar.yaml'), toYaml(docs()));
    sc = await spawnSidecar(['--config', join(dir, 'sidecar.yaml'), '--concurrency', '2', '--drain-timeout', '2s']);
    admin = (JSON.parse(sc.stdout().split('\n').find((l) => l.includes('"sidecar ready"'))!) as { adminPort: number }).adminPort;
    tap = await tapWorkers(admin);
  });

  after(async () => {
    tap?.close();
    await sc?.stop();
    await backend?.close();
    if (dir) await removeDir(dir);
  });

  it('runs two workers that both serve the shared port, and is ready when both applied the config', async () => {
    const w = await workersOf();
    expect(w.map((x) => x.state)).to.deep.equal(['running', 'running']);
    expect(new Set(w.map((x) => x.pid)).size).to.equal(2);
    expect((await adminGet(admin, '/ready')).status).to.equal(200);
    // New connections until both workers have served one (the kernel picks the accepting worker).
    const pids = new Set<number>();
    for (let i = 0; i < 400 && pids.size < 2; i++) {
      expect(await get(port, '/a', `both-${i}`)).to.equal(200);
      await waitFor(() => tap.byId.has(`both-${i}`), 'the tap event');
      pids.add(tap.byId.get(`both-${i}`)!);
    }
    expect([...pids].sort()).to.deep.equal(w.map((x) => x.pid).sort());
  });

  it('sums both workers\' request counts exactly in /metrics (prom-client cluster aggregation), and /stats/live and /clusters too', async () => {
    const before = total((await adminGet(admin, '/metrics')).text, 'outrigger_request_duration_seconds_count', 'route="web-"');
    // At least 30 requests, and on until both workers served some: the sum must take both.
    const served = new Set<number>();
    let n = 0;
    for (; n < 400 && (n < 30 || served.size < 2); n++) {
      expect(await get(port, '/m', `metrics-${n}`)).to.equal(200);
      await waitFor(() => tap.byId.has(`metrics-${n}`), 'the tap event');
      served.add(tap.byId.get(`metrics-${n}`)!);
    }
    expect(served.size).to.equal(2);
    const text = (await adminGet(admin, '/metrics')).text;
    expect(total(text, 'outrigger_request_duration_seconds_count', 'route="web-"') - before).to.equal(n);
    expect(total(text, 'outrigger_worker_restarts_total')).to.equal(0);
    expect(total(text, 'outrigger_config_info')).to.equal(1); // the primary's: one config per sidecar
    const live = JSON.parse((await adminGet(admin, '/stats/live?by=route')).text) as { rows: { key: string; requests: number }[] };
    const clusters = JSON.parse((await adminGet(admin, '/clusters')).text) as { workers: number; clusters: { web: { endpoints: { totalRequests: number; workers: unknown[] }[] } } };
    const all = total(text, 'outrigger_request_duration_seconds_count', 'route="web-"');
    expect(live.rows.find((r) => r.key === 'web-')?.requests).to.equal(all);
    expect(clusters.workers).to.equal(2);
    expect(clusters.clusters.web.endpoints[0]!.totalRequests).to.equal(all);
    expect(clusters.clusters.web.endpoints[0]!.workers).to.have.length(2);
  });

  it('shares a local rate limit out between the workers: the sidecar admits exactly the configured number', async () => {
    const refusedBy = new Set<number>();
    let admitted = 0;
    for (let i = 0; i < 400 && refusedBy.size < 2; i++) {
      const status = await get(port, '/limited', `limit-${i}`, undefined, { 'x-limit': 'k' });
      expect(status).to.be.oneOf([200, 429]);
      if (status === 200) admitted++;
      else {
        await waitFor(() => tap.byId.has(`limit-${i}`), 'the tap event');
        refusedBy.add(tap.byId.get(`limit-${i}`)!);
      }
    }
    expect(refusedBy.size, 'workers that refused').to.equal(2);
    expect(admitted).to.equal(5);
    expect(await get(port, '/limited', 'limit-other')).to.equal(200); // no x-limit: the limit does not apply
  });

  it('hands a reloaded config to both workers: a route added answers on either', async () => {
    await writeFile(join(dir, 'sidecar.yaml'), toYaml(docs([{ name: 'added', match: { path: '/added' }, directResponse: { status: 201, body: 'added' } }])));
    let probe = 0;
    await waitFor(async () => (await get(port, '/added', `probe-${probe++}`)) === 201, 'the added route', 20_000);
    await waitFor(async () => (await adminGet(admin, '/ready')).status === 200, 'both workers on the new version', 20_000);
    const pids = new Set<number>();
    for (let i = 0; i < 400 && pids.size < 2; i++) {
      expect(await get(port, '/added', `added-${i}`)).to.equal(201);
      await waitFor(() => tap.byId.has(`added-${i}`), 'the tap event');
      pids.add(tap.byId.get(`added-${i}`)!);
    }
    expect(pids.size).to.equal(2);
  });

  it('restarts a worker killed with SIGKILL; connections to the other worker lose no request meanwhile', async () => {
    const [victim, survivor] = await workersOf();
    // Keep-alive connections, one per client, spread over both workers by the kernel.
    const clients = Array.from({ length: 10 }, () => new Client(`http://127.0.0.1:${port}`, { pipelining: 1 }));
    try {
      for (let c = 0; c < clients.length; c++) expect(await get(port, '/k', `k${c}-0`, clients[c])).to.equal(200);
      await waitFor(() => clients.every((_, c) => tap.byId.has(`k${c}-0`)), 'the first request of every connection');
      const onSurvivor = clients.map((_, c) => tap.byId.get(`k${c}-0`) === survivor!.pid);
      expect(onSurvivor.filter(Boolean).length, 'connections on the surviving worker').to.be.greaterThan(0);
      const failures = clients.map(() => 0);
      let killed = false;
      // Each connection keeps sending; a connection to the killed worker stops at its first failure.
      const senders = clients.map(async (cl, c) => {
        for (let i = 1; i <= 60; i++) {
          if (i === 20 && c === 0 && !killed) {
            killed = true;
            process.kill(victim!.pid!, 'SIGKILL');
          }
          try {
            if ((await get(port, '/k', `k${c}-${i}`, cl)) !== 200) failures[c]!++;
          } catch {
            failures[c]!++;
            if (!onSurvivor[c]) return;
          }
        }
      });
      await Promise.all(senders);
      expect(killed).to.equal(true);
      expect(failures.filter((_, c) => onSurvivor[c])).to.satisfy((f: number[]) => f.every((x) => x === 0));
    } finally {
      await Promise.all(clients.map((c) => c.destroy()));
    }
    await waitFor(async () => (await workersOf())[victim!.worker]!.state === 'running', 'the restarted worker', 30_000);
    const after = await workersOf();
    expect(after[victim!.worker]!.pid).to.not.equal(victim!.pid);
    expect(after[victim!.worker]!.restarts).to.equal(1);
    expect(after[survivor!.worker]!.pid).to.equal(survivor!.pid);
    expect((await adminGet(admin, '/ready')).status).to.equal(200);
    expect(total((await adminGet(admin, '/metrics')).text, 'outrigger_worker_restarts_total')).to.equal(1);
    expect(sc.stdout()).to.include('"msg":"worker exited; restarting it"');
  });

  it('drains both workers on SIGTERM and exits 0; every access-log line names its worker', async () => {
    tap.close();
    const pids = (await workersOf()).map((w) => w.pid);
    const exit = new Promise<number | null>((r) => sc.child.once('exit', (code) => r(code)));
    sc.child.kill('SIGTERM');
    expect(await exit).to.equal(0);
    for (const pid of pids) expect(() => process.kill(pid!, 0)).to.throw(); // the workers are gone too
    const access = sc
      .stdout()
      .split('\n')
      .filter((l) => l.includes('"msg":"access"'))
      .map((l) => JSON.parse(l) as { worker?: number; request_id?: string });
    expect(access.length).to.be.greaterThan(0);
    for (const a of access) expect(a.worker).to.be.a('number');
    // The access log agrees with the tap on who served what (lines of the killed worker's buffer are lost with it).
    for (const a of access) if (tap.byId.has(a.request_id!)) expect(a.worker).to.equal(tap.byId.get(a.request_id!));
  });
});

describe('sidecar --concurrency 2 with a control plane', function () {
  this.timeout(120_000);

  it('keeps one xDS stream, the primary\'s, and hands its config to both workers', async () => {
    const cp = await startTestControlPlane({ debounceMs: 10 });
    const backend = await startH1Echo('web');
    const port = await freePort();
    let sc: Awaited<ReturnType<typeof spawnSidecar>> | undefined;
    try {
      const J = (...d: Doc[]): JsonObject[] => d as unknown as JsonObject[];
      await client(cp.address).apply({ documents: J(listener('main', { address: { host: '127.0.0.1', port } }), routes('main', [prefixRoute('/', 'web')]), cluster('web', [backend.port])) });
      sc = await spawnSidecar(['--control-plane', cp.address, '--node-id', 'workers-1', '--concurrency', '2', '--drain-timeout', '1s']);
      const admin = (JSON.parse(sc.stdout().split('\n').find((l) => l.includes('"sidecar ready"'))!) as { adminPort: number }).adminPort;
      await waitFor(async () => (await adminGet(admin, '/ready')).status === 200, 'ready', 20_000);
      expect(await get(port, '/x', 'cp-1')).to.equal(200);
      const streams = async (): Promise<number> => total(await cp.registry.metrics(), 'outrigger_control_connected_sidecars');
      expect(await streams()).to.equal(1);
      const w = JSON.parse((await adminGet(admin, '/workers')).text) as { workers: { pid: number }[] };
      // A restarted worker gets the primary's config; it opens no stream of its own.
      process.kill(w.workers[1]!.pid, 'SIGKILL');
      await waitFor(async () => (JSON.parse((await adminGet(admin, '/workers')).text) as { workers: { state: string; restarts: number }[] }).workers[1]!.restarts === 1, 'the restart', 30_000);
      await waitFor(async () => (await adminGet(admin, '/ready')).status === 200, 'ready again', 30_000);
      expect(await streams()).to.equal(1);
      // A change at the control plane reaches both workers through the primary.
      await client(cp.address).apply({ documents: J(routes('main', [{ name: 'added', match: { path: '/added' }, directResponse: { status: 201 } }, prefixRoute('/', 'web')])) });
      await waitFor(async () => (await get(port, '/added', 'cp-2')) === 201, 'the pushed route', 20_000);
      await waitFor(async () => (await adminGet(admin, '/ready')).status === 200, 'both workers on the pushed version', 20_000);
      for (let i = 0; i < 20; i++) expect(await get(port, '/added', `cp-added-${i}`)).to.equal(201);
      expect(await streams()).to.equal(1);
      // POST /quitquitquit drains every worker as SIGTERM does; the stream closes with the primary.
      const exit = new Promise<number | null>((r) => sc!.child.once('exit', (code) => r(code)));
      const quit = await request(`http://127.0.0.1:${admin}/quitquitquit`, { method: 'POST' });
      expect(quit.statusCode).to.equal(200);
      await quit.body.text();
      expect(await exit).to.equal(0);
      await waitFor(async () => (await streams()) === 0, 'the xDS stream closed');
    } finally {
      await sc?.stop();
      await backend.close();
      await cp.close();
      await removeDir(cp.dir);
    }
  });
});

describe('sidecar --concurrency 2 with a workload certificate', function () {
  this.timeout(120_000);

  it('relays the primary\'s SVID to both workers: a STRICT mesh listener completes mTLS on either', async () => {
    const dir = await tempDir('outrigger-workers-id-');
    const stops: (() => Promise<void>)[] = [];
    try {
      const tokens = join(dir, 'workloads');
      await writeFile(tokens, '# token namespace/serviceaccount\nboot-api shop/api\nboot-web shop/web\n');
      const cp = await spawnControlPlane(['--store', `file:${join(dir, 'store')}`, '--port', '0', '--token-file', await writeToken(dir), '--workload-token-file', tokens, '--trust-domain', 'example.org', '--cert-ttl', '1h']);
      stops.push(async () => {
        cp.child.kill('SIGTERM');
        await new Promise((r) => cp.child.once('exit', r));
      });
      const [apiPort, webPort] = [await freePort(), await freePort()];
      // api: two workers behind a STRICT listener (mTLS with the mesh certificate required).
      const apiCfg = join(dir, 'api.yaml');
      await writeFile(apiCfg, toYaml([listener('main', { address: { host: '127.0.0.1', port: apiPort }, peerAuthentication: 'PEER_AUTHENTICATION_STRICT', trustedHops: 1 }), routes('main', [{ name: 'api', match: { prefix: '/' }, directResponse: { status: 200, body: 'api' } }])]));
      await writeFile(join(dir, 'boot-api'), 'boot-api\n');
      const api = await spawnSidecar(['--config', apiCfg, '--control-plane', `127.0.0.1:${cp.port}`, '--node-id', 'api-0.shop', '--bootstrap-token-file', join(dir, 'boot-api'), '--concurrency', '2']);
      stops.push(() => api.stop());
      const apiAdmin = (JSON.parse(api.stdout().split('\n').find((l) => l.includes('"sidecar ready"'))!) as { adminPort: number }).adminPort;
      expect((await adminGet(apiAdmin, '/certs')).status).to.equal(200);
      // web: one process calling api over mesh mTLS.
      const webCfg = join(dir, 'web.yaml');
      await writeFile(webCfg, toYaml([listener('out', { address: { host: '127.0.0.1', port: webPort }, routeConfig: 'out' }), routes('out', [prefixRoute('/', 'api')]), cluster('api', [apiPort], 'UPSTREAM_PROTOCOL_HTTP1', { tls: { mode: 'TLS_MODE_MESH', subjectAltNames: ['spiffe://example.org/ns/shop/sa/api'] } })]));
      await writeFile(join(dir, 'boot-web'), 'boot-web\n');
      const web = await spawnSidecar(['--config', webCfg, '--control-plane', `127.0.0.1:${cp.port}`, '--node-id', 'web-0.shop', '--bootstrap-token-file', join(dir, 'boot-web')]);
      stops.push(() => web.stop());
      const tap = await tapWorkers(apiAdmin);
      stops.push(async () => tap.close());
      // Concurrent requests make web open several upstream connections, which the kernel spreads over api's workers.
      const pids = new Set<number>();
      for (let round = 0; round < 20 && pids.size < 2; round++) {
        const statuses = await Promise.all(Array.from({ length: 20 }, (_, i) => get(webPort, '/', `mtls-${round}-${i}`)));
        expect(statuses.every((st) => st === 200), `statuses ${statuses.join(',')}`).to.equal(true);
        await waitFor(() => tap.byId.size >= (round + 1) * 20, 'the tap events at api');
        for (const pid of tap.byId.values()) pids.add(pid);
      }
      expect(pids.size, 'api workers that completed mTLS').to.equal(2);
    } finally {
      for (const s of stops.reverse()) await s();
      await removeDir(dir);
    }
  });
});
