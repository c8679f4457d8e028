/**
 * Discovery scale run (issue 15, docs/discovery.md#scale): the test
 * Kubernetes API server (test/support/kube-api-server.ts, real list/watch)
 * in this process with S Services × E endpoints, one real
 * `outrigger control --discover kubernetes` process, and N simulated
 * sidecars (raw xDS clients, test/support/xds-raw.ts, each on its own HTTP/2
 * session) subscribed to what an injected sidecar gets: every generated
 * Cluster, the ClusterLoadAssignment of each, and the RouteConfiguration
 * `outbound`. Then C EndpointSlice changes, one at a time (one endpoint of a
 * different Service replaced each time): per change, the time from the
 * write to the API server until every sidecar has the new assignment and
 * has ACKed it, p50/p99/max; and the control plane's RSS and CPU (/proc).
 * Bounded: every wait has a deadline and the run gives up after --deadline s.
 *
 *   node --import tsx bench/discovery.ts [--services 1000] [--endpoints 10] [--sidecars 100] [--changes 20]
 *     [--xds sotw|delta] [--full-eds] [--debounce 0.1s] [--deadline 300] [--cp-node-arg=--cpu-prof …] (node flags for the control plane)
 *
 * --xds sotw (default) is what the sidecar's client speaks: it announces
 * SOTW_EDS_SUBSETS, so an EDS response after an ACK carries only the changed
 * assignment (--full-eds: a client without it, every subscribed assignment
 * per response); delta sends only the changed one.
 */
import { spawn } from 'node:child_process';
import http2 from 'node:http2';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { DeltaDiscoveryResponse, DiscoveryResponse } from '../src/gen/outrigger/control/v1/discovery_pb.js';
import { endpointSlice, service, startKubeApiServer } from '../test/support/kube-api-server.js';
import { RawDelta, RawSotw } from '../test/support/xds-raw.js';
import { TYPE, kindOf, nodeOf } from '../test/support/xds-light.js';
import { pct, procStats } from './lib/stats.js';
import { SOTW_EDS_SUBSETS } from '../src/control/protocol.js';

const { values } = parseArgs({
  options: {
    services: { type: 'string', default: '1000' },
    endpoints: { type: 'string', default: '10' },
    sidecars: { type: 'string', default: '100' },
    changes: { type: 'string', default: '20' },
    xds: { type: 'string', default: 'sotw' },
    debounce: { type: 'string', default: '0.1s' },
    deadline: { type: 'string', default: '300' },
    'cp-node-arg': { type: 'string', multiple: true, default: [] },
    'full-eds': { type: 'boolean', default: false },
  },
});
const S = Number(values.services);
const E = Number(values.endpoints);
const N = Number(values.sidecars);
const C = Number(values.changes);
const DELTA = values.xds === 'delta';
if (!DELTA && values.xds !== 'sotw') throw new Error('--xds must be sotw or delta');
const NS = 'bench';
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const deadline = setTimeout(() => {
  console.error(`bench: deadline of ${values.deadline}s passed; giving up`);
  process.exit(2);
}, Number(values.deadline) * 1000);
deadline.unref();

const clusterName = (i: number): string => `outbound|8080||svc-${i}.${NS}.svc.cluster.local`;
// Endpoint ep of a Service is .ep+1; a changed one (gen > 0) takes an address past the others', never its first
// (`(ep + gen * E) % 250` wrapped back to it at gen 25, so a run of more than 24 changes waited on a change that was none).
const ip = (svc: number, ep: number, gen = 0): string => `10.${(svc >> 8) & 255}.${svc & 255}.${gen === 0 ? ep + 1 : E + 1 + ((gen - 1) % (250 - E))}`;
const slice = (svc: number, gen = 0) =>
  endpointSlice(NS, `svc-${svc}-1`, `svc-${svc}`, [{ name: 'http', port: 8080 }], Array.from({ length: E }, (_, ep) => ({ ip: ip(svc, ep, ep === 0 ? gen : 0) })));


async function waitUntil(cond: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/** One simulated sidecar: subscribes like an injected one, ACKs every response, counts EDS responses. */
interface Sim {
  eds: number;
  lastEdsAtMs: number;
  clusters: number;
  ready: boolean;
  close(): void;
  readonly error: Error | undefined;
}

function simulate(session: http2.ClientHttp2Session, id: number): Sim {
  const names = Array.from({ length: S }, (_, i) => clusterName(i));
  const sim = { eds: 0, lastEdsAtMs: 0, clusters: 0, ready: false } as Sim;
  const onType = (kind: string, count: number): void => {
    if (kind === 'Cluster') sim.clusters = count;
    if (kind === 'ClusterLoadAssignment') {
      sim.eds++;
      sim.lastEdsAtMs = performance.now();
    }
    if (kind === 'RouteConfiguration') sim.ready = true;
  };
  if (DELTA) {
    const s = new RawDelta(session);
    let subscribed = false;
    s.onResponse = (r: DeltaDiscoveryResponse) => {
      s.ack(r);
      const kind = kindOf(r.typeUrl);
      onType(kind, r.resources.length);
      if (kind === 'Cluster' && !subscribed && r.resources.length >= S) {
        subscribed = true;
        s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNamesSubscribe: names });
        s.send({ typeUrl: TYPE('RouteConfiguration'), resourceNamesSubscribe: ['outbound'] });
      }
    };
    s.send({ node: nodeOf(`sim-${id}.${NS}`, 'bench'), typeUrl: TYPE('Cluster'), resourceNamesSubscribe: ['*'] });
    return Object.assign(sim, { close: () => s.close(), get error() { return s.error; } });
  }
  const s = new RawSotw(session);
  let subscribed = false;
  s.onResponse = (r: DiscoveryResponse) => {
    const kind = kindOf(r.typeUrl);
    s.ack(r, kind === 'Cluster' ? ['*'] : kind === 'ClusterLoadAssignment' ? names : ['outbound']);
    onType(kind, r.resources.length);
    if (kind === 'Cluster' && !subscribed && r.resources.length >= S) {
      subscribed = true;
      s.send({ typeUrl: TYPE('ClusterLoadAssignment'), resourceNames: names });
      s.send({ typeUrl: TYPE('RouteConfiguration'), resourceNames: ['outbound'] });
    }
  };
  // Like the sidecar's XdsClient, the simulated one merges EDS subsets unless --full-eds.
  const node = { ...nodeOf(`sim-${id}.${NS}`, 'bench'), clientFeatures: values['full-eds'] ? [] : [SOTW_EDS_SUBSETS] };
  s.send({ node, typeUrl: TYPE('Cluster'), resourceNames: ['*'] });
  return Object.assign(sim, { close: () => s.close(), get error() { return s.error; } });
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-bench-disc-'));
  const api = await startKubeApiServer(dir, NS);
  const t0 = performance.now();
  for (let i = 0; i < S; i++) {
    api.put('services', service(NS, `svc-${i}`, [{ name: 'http', port: 8080 }], `10.96.${(i >> 8) & 255}.${i & 255}`));
    api.put('endpointslices', slice(i));
  }
  const child = spawn(
    process.execPath,
    [
      ...values['cp-node-arg']!,
      join(ROOT, 'bin/outrigger.js'), 'control', '--store', `file:${join(dir, 'store')}`, '--no-auth', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0',
      '--debounce', values.debounce!, '--discover', 'kubernetes', '--kubeconfig', api.kubeconfig, '--namespaces', NS,
    ],
    { cwd: ROOT, env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const sims: Sim[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const { port, metricsPort } = await new Promise<{ port: number; metricsPort: number }>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"msg":"control plane ready","port":(\d+),"metricsPort":(\d+)/.exec(out);
        if (m) resolve({ port: Number(m[1]), metricsPort: Number(m[2]) });
        if (out.length > 1 << 20) out = out.slice(-4096);
      });
      child.once('exit', (code) => reject(new Error(`control plane exited ${code}`)));
    });
    const idle = await procStats(child.pid!);
    for (let i = 0; i < N; i++) {
      const session = http2.connect(`http://127.0.0.1:${port}`);
      session.on('error', () => {});
      sessions.push(session);
      sims.push(simulate(session, i));
    }
    await waitUntil(() => sims.every((s) => s.ready && s.eds > 0) || sims.some((s) => s.error !== undefined), `${N} sidecars with ${S} clusters and their endpoints`, 240_000);
    const failed = sims.find((s) => s.error);
    if (failed) throw failed.error;
    const synced = performance.now();
    const before = await procStats(child.pid!);

    const perChange: number[] = [];
    const perSidecar: number[] = [];
    for (let c = 0; c < C; c++) {
      // Let the previous push settle (its ACKs in), then change one Service's endpoints.
      await new Promise((r) => setTimeout(r, 200));
      const counts = sims.map((s) => s.eds);
      const start = performance.now();
      const svc = (c * 37) % S;
      api.put('endpointslices', slice(svc, c + 1));
      await waitUntil(() => sims.every((s, i) => s.eds > counts[i]!), `change ${c} at every sidecar`, 30_000);
      const last = Math.max(...sims.map((s) => s.lastEdsAtMs));
      perChange.push(last - start);
      for (const s of sims) perSidecar.push(s.lastEdsAtMs - start);
    }
    const after = await procStats(child.pid!);
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    const histo = (name: string): number => Number(new RegExp(`^${name}\\{provider="kubernetes"\\} (\\S+)`, 'm').exec(metrics)?.[1] ?? NaN);
    perChange.sort((a, b) => a - b);
    perSidecar.sort((a, b) => a - b);
    const r = (x: number): number => Math.round(x * 10) / 10;
    console.log(
      JSON.stringify(
        {
          bench: 'discovery',
          services: S,
          endpointsPerService: E,
          sidecars: N,
          xds: DELTA ? 'delta' : values['full-eds'] ? 'sotw (full EDS)' : 'sotw',
          debounce: values.debounce,
          changes: C,
          // From the EndpointSlice write until the last sidecar has the new assignment (and ACKs it at once).
          everySidecarMs: { p50: r(pct(perChange, 50)), p99: r(pct(perChange, 99)), max: r(perChange.at(-1)!) },
          // The same per sidecar (all changes × all sidecars).
          perSidecarMs: { p50: r(pct(perSidecar, 50)), p99: r(pct(perSidecar, 99)) },
          // The control plane's own measure: informer event → last ACK (outrigger_discovery_push_seconds).
          controlPlanePushMeanMs: r((histo('outrigger_discovery_push_seconds_sum') / histo('outrigger_discovery_push_seconds_count')) * 1000),
          initialSyncMs: r(synced - t0),
          controlPlane: {
            rssMiB: { idleBeforeSidecars: r(idle.rssMiB), synced: r(before.rssMiB), afterChanges: r(after.rssMiB) },
            cpuSecondsDuringChanges: r(after.cpuSec - before.cpuSec),
          },
          loadavg: loadavg().map((x) => r(x)),
        },
        null,
        2,
      ),
    );
  } finally {
    for (const s of sims) s.close();
    for (const s of sessions) s.destroy();
    child.kill('SIGTERM');
    await api.close();
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
