import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect } from 'chai';
import { parseLocality } from '../../src/core/locality.js';
import { seededRandom } from '../../src/core/random.js';
import type { Doc } from '../support/config-docs.js';
import { listener, prefixRoute, routes } from '../support/config-docs.js';
import { FakeClock } from '../support/fake-clock.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { client, startCpSidecar, startTestControlPlane } from '../support/control-harness.js';
import { waitFor } from '../support/wait.js';

/** A real HTTP backend: answers its name, and `health` (plus optional headers) on /healthz. */
interface Backend {
  readonly name: string;
  port: number;
  hits: number;
  health: number;
  healthHeaders: Record<string, string>;
  /** Stops listening and drops its connections: connects are refused from now on (a killed process). */
  kill(): Promise<void>;
}

async function backend(name: string): Promise<Backend> {
  const b: Backend = { name, port: 0, hits: 0, health: 200, healthHeaders: {}, kill: async () => undefined };
  const srv = http.createServer((req, res) => {
    if (req.url === '/healthz') return void res.writeHead(b.health, b.healthHeaders).end();
    b.hits++;
    res.end(name);
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  b.port = (srv.address() as AddressInfo).port;
  let killed = false;
  b.kill = () => {
    if (killed) return Promise.resolve();
    killed = true;
    srv.closeAllConnections();
    return new Promise<void>((r) => srv.close(() => r()));
  };
  return b;
}

function clusterDoc(name: string, eps: { b: Backend; zone?: string; priority?: number }[], extra: Record<string, unknown> = {}): Doc {
  return {
    apiVersion: 'outrigger.io/v1',
    kind: 'Cluster',
    metadata: { name },
    spec: {
      type: 'DISCOVERY_TYPE_STATIC',
      protocol: 'UPSTREAM_PROTOCOL_HTTP1',
      endpoints: eps.map((e) => ({
        address: { host: '127.0.0.1', port: e.b.port },
        ...(e.zone ? { locality: { region: 'eu', zone: e.zone } } : {}),
        ...(e.priority ? { priority: e.priority } : {}),
      })),
      ...extra,
    },
  };
}

const HEALTH_CHECK = { interval: '1s', noTrafficInterval: '1s', timeout: '1s', unhealthyThreshold: 1, healthyThreshold: 1, http: { path: '/healthz' } };

/** `n` GETs through the sidecar, `concurrency` at a time; returns the statuses seen. */
async function load(sc: TestSidecar, n: number, concurrency = 8): Promise<Map<number, number>> {
  const statuses = new Map<number, number>();
  let next = 0;
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const one = (): Promise<number> =>
    new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port: sc.port(), path: '/x', agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < n) {
        next++;
        const s = await one();
        statuses.set(s, (statuses.get(s) ?? 0) + 1);
      }
    }),
  );
  agent.destroy();
  return statuses;
}

/** Advances the fake clock one health-check interval and waits until every endpoint was checked again. */
async function checkRound(sc: TestSidecar, clock: FakeClock, cluster: string, endpoints: number, ms = 1000): Promise<void> {
  const hc = sc.sidecar.listeners.health.get(cluster)!;
  const target = hc.checksDone + endpoints;
  clock.advance(ms);
  await waitFor(() => hc.checksDone >= target, `${endpoints} health checks`);
}

type ClustersJson = {
  clusters: Record<
    string,
    {
      localityRouting: {
        priorities: { priority: number; healthyLoad: number; degradedLoad: number; panic: boolean; healthy: number; degraded: number }[];
        zoneAware: { state: string; localPercent?: number };
      } | null;
      endpoints: { address: string; health: string; priority: number; locality: { region: string; zone: string; subZone: string } | null }[];
    }
  >;
};

async function clusters(sc: TestSidecar): Promise<ClustersJson> {
  const res = await fetch(`http://127.0.0.1:${sc.sidecar.adminPort}/clusters?format=json`);
  return (await res.json()) as ClustersJson;
}

const hitsOf = (bs: Backend[]): number => bs.reduce((a, b) => a + b.hits, 0);
const reset = (bs: Backend[]): void => bs.forEach((b) => (b.hits = 0));

describe('locality and priority through the sidecar (real backends)', function () {
  this.timeout(30_000);

  it('zone-aware routing: all traffic stays in the caller\'s zone while it is healthy; spills proportionally when its endpoints fail', async () => {
    const zones = { a: [] as Backend[], b: [] as Backend[], c: [] as Backend[] };
    for (const z of ['a', 'b', 'c'] as const) for (let i = 0; i < 3; i++) zones[z].push(await backend(`${z}${i}`));
    const all = [...zones.a, ...zones.b, ...zones.c];
    const clock = new FakeClock();
    const sc = await startTestSidecar(
      [
        listener('main'),
        routes('main', [prefixRoute('/', 'svc')]),
        clusterDoc(
          'svc',
          (['a', 'b', 'c'] as const).flatMap((z) => zones[z].map((b) => ({ b, zone: z }))),
          { healthCheck: HEALTH_CHECK },
        ),
      ],
      { clock, random: seededRandom(42), locality: parseLocality('eu/a') },
    );
    try {
      await checkRound(sc, clock, 'svc', 9, 0);
      let st = await load(sc, 300);
      expect(st.get(200)).to.equal(300);
      // Direct: every request in zone a, round robin within it.
      expect(zones.a.map((b) => b.hits)).to.deep.equal([100, 100, 100]);
      expect(hitsOf([...zones.b, ...zones.c])).to.equal(0);
      let view = await clusters(sc);
      expect(view.clusters.svc!.localityRouting!.zoneAware.state).to.equal('direct');
      expect(view.clusters.svc!.endpoints[0]).to.deep.include({ priority: 0, locality: { region: 'eu', zone: 'a', subZone: '' }, health: 'healthy' });

      // One zone-a endpoint fails its health checks, another is killed.
      zones.a[0]!.health = 503;
      await zones.a[1]!.kill();
      await checkRound(sc, clock, 'svc', 9);
      view = await clusters(sc);
      expect(view.clusters.svc!.endpoints.slice(0, 2).map((e) => e.health)).to.deep.equal(['failed_active_hc', 'failed_active_hc']);
      // Zone a holds 1 of 7 healthy endpoints (14.28 %) for a third of the callers: 14.28/33.33 = 42.84 % stays local
      // (Envoy's local_percent_to_route, 4284 of 10000), the rest goes to b and c by their equal spare capacity.
      expect(view.clusters.svc!.localityRouting!.zoneAware).to.deep.include({ state: 'residual', localPercent: 42.84 });
      reset(all);
      st = await load(sc, 2000);
      expect(st.get(200)).to.equal(2000);
      expect(zones.a[0]!.hits + zones.a[1]!.hits).to.equal(0);
      expect(zones.a[2]!.hits / 2000).to.be.closeTo(0.4284, 0.04);
      const b = hitsOf(zones.b);
      const c = hitsOf(zones.c);
      expect(b / (b + c)).to.be.closeTo(0.5, 0.06);

      // The failing endpoint recovers: one passing check brings it back (healthyThreshold 1), 2 of 8 in zone a: 25 % < 33 %.
      zones.a[0]!.health = 200;
      await checkRound(sc, clock, 'svc', 9);
      expect((await clusters(sc)).clusters.svc!.localityRouting!.zoneAware).to.deep.include({ state: 'residual', localPercent: 75 });
    } finally {
      await sc.close();
      await Promise.all(all.map((b) => b.kill()));
    }
  });

  it('priorities fail over with the 1.4 overprovisioning factor; degraded endpoints stay idle while the healthy ones suffice', async () => {
    const p0 = await Promise.all([0, 1, 2, 3, 4].map((i) => backend(`p0-${i}`)));
    const p1 = await Promise.all([0, 1, 2, 3, 4].map((i) => backend(`p1-${i}`)));
    const clock = new FakeClock();
    const sc = await startTestSidecar(
      [
        listener('main'),
        routes('main', [prefixRoute('/', 'svc')]),
        clusterDoc('svc', [...p0.map((b) => ({ b })), ...p1.map((b) => ({ b, priority: 1 }))], { healthCheck: HEALTH_CHECK, lbPolicy: 'LB_POLICY_LEAST_REQUEST' }),
      ],
      { clock, random: seededRandom(7) },
    );
    const all = [...p0, ...p1];
    try {
      await checkRound(sc, clock, 'svc', 10, 0);
      expect((await load(sc, 200)).get(200)).to.equal(200);
      expect(hitsOf(p1)).to.equal(0);

      // 4 of 5 healthy, 1 degraded (x-envoy-degraded on its health check): 80 % × 1.4 ≥ 100, so P=0's healthy take it all.
      p0[4]!.healthHeaders = { 'x-envoy-degraded': 'true' };
      await checkRound(sc, clock, 'svc', 10);
      let view = await clusters(sc);
      expect(view.clusters.svc!.endpoints[4]!.health).to.equal('degraded');
      expect(view.clusters.svc!.localityRouting!.priorities.map((p) => [p.healthyLoad, p.degradedLoad])).to.deep.equal([
        [100, 0],
        [0, 0],
      ]);
      reset(all);
      await load(sc, 400);
      expect(p0[4]!.hits).to.equal(0);
      expect(hitsOf(p1)).to.equal(0);

      // Two of P=0 killed, one degraded: 2 of 5 healthy → health 56, degraded 28; P=1 healthy 100:
      // 56 % to P=0's healthy, 44 % to P=1, none to the degraded endpoint (the healthy of all levels come first).
      p0[4]!.healthHeaders = {};
      await p0[0]!.kill();
      await p0[1]!.kill();
      p0[2]!.healthHeaders = { 'x-envoy-degraded': 'true' };
      await checkRound(sc, clock, 'svc', 10);
      view = await clusters(sc);
      expect(view.clusters.svc!.localityRouting!.priorities.map((p) => [p.healthyLoad, p.degradedLoad, p.panic])).to.deep.equal([
        [56, 0, false],
        [44, 0, false],
      ]);
      reset(all);
      expect((await load(sc, 2000)).get(200)).to.equal(2000);
      expect(p0[0]!.hits + p0[1]!.hits + p0[2]!.hits).to.equal(0);
      expect((p0[3]!.hits + p0[4]!.hits) / 2000).to.be.closeTo(0.56, 0.04);
      expect(hitsOf(p1) / 2000).to.be.closeTo(0.44, 0.04);

      // P=1 loses everything too: normalized total health 56 + 28 (degraded) = 84, so the degraded endpoint
      // takes 28/84 and the healthy 56/84 (Envoy: 66 % + 33 % and the 1 % leftover to the first healthy level).
      await Promise.all(p1.map((b) => b.kill()));
      await checkRound(sc, clock, 'svc', 10);
      view = await clusters(sc);
      expect(view.clusters.svc!.localityRouting!.priorities.map((p) => [p.healthyLoad, p.degradedLoad])).to.deep.equal([
        [67, 33],
        [0, 0],
      ]);
      reset(all);
      expect((await load(sc, 1000)).get(200)).to.equal(1000);
      expect(p0[2]!.hits / 1000).to.be.closeTo(0.33, 0.05);
    } finally {
      await sc.close();
      await Promise.all(all.map((b) => b.kill()));
    }
  });

  it('a cookie hash policy with a ttl sets the cookie on the first answer and the client then sticks to its endpoint', async () => {
    const bs = await Promise.all(['a', 'b', 'c', 'd'].map((n) => backend(n)));
    const sc = await startTestSidecar([
      listener('main'),
      routes('main', [
        prefixRoute('/plain', 'svc'),
        prefixRoute('/', 'svc', { hashPolicy: [{ cookie: { name: 'lb', ttl: '3600s', path: '/' } }] }),
      ]),
      clusterDoc('svc', bs.map((b) => ({ b })), { lbPolicy: 'LB_POLICY_RING_HASH' }),
    ]);
    try {
      /** One request on a connection of its own (a new client each time). */
      const get = (headers: Record<string, string> = {}): Promise<{ body: string; setCookie: string[] | undefined }> =>
        new Promise((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port: sc.port(), path: '/x', agent: false, headers }, (res) => {
            let body = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (body += d));
            res.on('end', () => resolve({ body, setCookie: res.headers['set-cookie'] }));
          });
          req.on('error', reject);
        });
      const seen = new Set<string>();
      for (let client = 0; client < 12; client++) {
        const first = await get();
        expect(first.setCookie).to.have.length(1);
        expect(first.setCookie![0]).to.match(/^lb=[0-9a-f]{16}; Max-Age=3600; Path=\/; HttpOnly$/);
        seen.add(first.body);
        const cookie = first.setCookie![0]!.split(';')[0]!;
        for (let i = 0; i < 4; i++) {
          const again = await get({ cookie });
          expect(again.setCookie).to.equal(undefined);
          expect(again.body).to.equal(first.body);
        }
      }
      expect(seen.size).to.be.above(1);
      // The route without a hashPolicy is a warning (random hash), logged when the config was applied.
      const warned = sc.logs.find((l) => l.msg === 'config warnings') as { warnings?: string[] } | undefined;
      expect(warned?.warnings).to.deep.equal([
        'RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.hashPolicy: cluster "svc" balances with LB_POLICY_RING_HASH but this route has no hashPolicy: each request gets a random hash (no stickiness)',
      ]);
    } finally {
      await sc.close();
      await Promise.all(bs.map((b) => b.kill()));
    }
  });

  it('from a control plane: the sidecar reports its locality (node topology labels) and keeps EDS traffic in its zone', async () => {
    const zones = { a: [] as Backend[], b: [] as Backend[] };
    for (const z of ['a', 'b'] as const) for (let i = 0; i < 3; i++) zones[z].push(await backend(`${z}${i}`));
    const cp = await startTestControlPlane();
    const api = client(cp.address);
    const docs: Doc[] = [
      listener('main'),
      routes('main', [prefixRoute('/', 'svc', { hashPolicy: [] })]),
      { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'svc' }, spec: { type: 'DISCOVERY_TYPE_EDS', protocol: 'UPSTREAM_PROTOCOL_HTTP1' } },
      {
        apiVersion: 'outrigger.io/v1',
        kind: 'ClusterLoadAssignment',
        metadata: { name: 'svc' },
        spec: {
          endpoints: (['a', 'b'] as const).flatMap((z) =>
            zones[z].map((b) => ({ address: { host: '127.0.0.1', port: b.port }, locality: { region: 'eu-west', zone: `eu-west-1${z}` } })),
          ),
        },
      },
    ];
    const applied = await api.apply({ documents: docs as never });
    expect(applied.warnings).to.deep.equal([]);
    const sc = await startCpSidecar({
      address: cp.address,
      nodeId: 'zonal-1',
      nodeLabels: { app: 'web', 'topology.kubernetes.io/region': 'eu-west', 'topology.kubernetes.io/zone': 'eu-west-1b' },
    });
    try {
      await waitFor(async () => (await api.status({})).sidecars.some((s) => s.nodeId === 'zonal-1' && s.types.length > 0 && s.types.every((t) => t.state === 1)), 'sidecar synced');
      const st = (await api.status({})).sidecars.find((s) => s.nodeId === 'zonal-1')!;
      expect(st.locality).to.equal('eu-west/eu-west-1b/');
      const port = sc.port();
      for (let i = 0; i < 60; i++) expect((await fetch(`http://127.0.0.1:${port}/x`)).status).to.equal(200);
      expect(hitsOf(zones.b)).to.equal(60);
      expect(hitsOf(zones.a)).to.equal(0);
      // An apply that leaves a Maglev cluster without a hash policy succeeds, with the warning and its path.
      const warn = await api.apply({ documents: [{ ...docs[2]!, spec: { ...(docs[2]!.spec as object), lbPolicy: 'LB_POLICY_MAGLEV' } }] as never });
      expect(warn.warnings.map((w) => `${w.document}: ${w.path}`)).to.deep.equal(['RouteConfiguration/main: spec.virtualHosts[0].routes[0].route.hashPolicy']);
    } finally {
      await sc.close();
      await cp.close();
      await Promise.all([...zones.a, ...zones.b].map((b) => b.kill()));
    }
  });
});
