/**
 * Control-plane scale run: N simulated sidecar streams (light xDS clients in
 * this process, on 127.0.0.1) on one real `outrigger control` process; apply
 * a change and measure, per stream, the time from the start of the Apply
 * call until the stream has ACKed the new version. Reports p50/p99/max
 * convergence (the push debounce is included), and the control plane's RSS
 * and CPU (from /proc). Bounded: every wait has a deadline and the whole run
 * is killed after --deadline seconds.
 *
 *   node --import tsx bench/control-plane.ts [--streams 1000] [--changes 5] [--debounce 0.1s] [--per-connection 1]
 *     [--client raw|connect] [--xds sotw|delta] [--cp-node-arg=--cpu-prof --cp-node-arg=--cpu-prof-dir=/tmp/prof]   (node flags for the control-plane process)
 *
 * --client raw (default): each simulated sidecar is a RawSotw (test/support/xds-raw.ts) on
 * its own HTTP/2 session, so the client process costs little next to the control plane;
 * --client connect: the connect-based light client the tests use (heavier per message).
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Transport } from '@connectrpc/connect';
import { operatorClient } from '../src/control/client/operator-client.js';
import type { DeltaDiscoveryResponse, DiscoveryResponse } from '../src/gen/outrigger/control/v1/discovery_pb.js';
import http2 from 'node:http2';
import { LightDelta, LightSotw, TYPE, kindOf, nodeOf, transportFor } from '../test/support/xds-light.js';
import { RawDelta, RawSotw } from '../test/support/xds-raw.js';
import { pct, procStats } from './lib/stats.js';

const { values } = parseArgs({
  options: {
    streams: { type: 'string', default: '1000' },
    changes: { type: 'string', default: '5' },
    debounce: { type: 'string', default: '0.1s' },
    'per-connection': { type: 'string', default: '1' },
    deadline: { type: 'string', default: '180' },
    'cp-node-arg': { type: 'string', multiple: true, default: [] },
    client: { type: 'string', default: 'raw' },
    xds: { type: 'string', default: 'sotw' },
  },
});
const N = Number(values.streams);
const CHANGES = Number(values.changes);
const PER_CONN = Math.max(1, Number(values['per-connection']));
const RAW = values.client === 'raw';
if (!RAW && values.client !== 'connect') throw new Error('--client must be raw or connect');
const DELTA = values.xds === 'delta';
if (!DELTA && values.xds !== 'sotw') throw new Error('--xds must be sotw or delta');
const ROOT = fileURLToPath(new URL('../', import.meta.url));
const deadline = setTimeout(() => {
  console.error(`bench: deadline of ${values.deadline}s passed; giving up`);
  process.exit(2);
}, Number(values.deadline) * 1000);
deadline.unref();

const doc = (kind: string, name: string, spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'outrigger.io/v1', kind, metadata: { name }, spec });
const clusterDoc = (port: number): Record<string, unknown> =>
  doc('Cluster', 'web', { type: 'DISCOVERY_TYPE_STATIC', endpoints: [{ address: { host: '127.0.0.1', port } }] });
const SUBS: Record<string, string[]> = { Cluster: ['*'], Listener: ['*'], RouteConfiguration: ['main'] };


async function waitUntil(cond: () => boolean, what: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function main(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'outrigger-bench-cp-'));
  const child = spawn(
    process.execPath,
    [...values['cp-node-arg']!, join(ROOT, 'bin/outrigger.js'), 'control', '--store', `file:${dir}`, '--no-auth', '--host', '127.0.0.1', '--port', '0', '--metrics-port', '0', '--debounce', values.debounce!],
    { cwd: ROOT, env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1' }, stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const streams: { close(): void; error: Error | undefined }[] = [];
  const sessions: http2.ClientHttp2Session[] = [];
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /"msg":"control plane ready","port":(\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      child.once('exit', (code) => reject(new Error(`control plane exited ${code}`)));
    });
    const address = `127.0.0.1:${port}`;
    const api = operatorClient({ address });
    await api.apply({
      documents: [
        doc('Listener', 'main', { address: { host: '127.0.0.1', port: 15001 }, routeConfig: 'main' }),
        doc('RouteConfiguration', 'main', { virtualHosts: [{ name: 'default', domains: ['*'], routes: [{ name: 'all', match: { prefix: '/' }, route: { cluster: 'web' } }] }] }),
        clusterDoc(20000),
      ] as never,
    });
    const idle = await procStats(child.pid!);

    // Per stream: when it ACKed each Cluster version.
    const ackedAt: Map<string, number>[] = [];
    const transports: Transport[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) {
      const acks = new Map<string, number>();
      ackedAt.push(acks);
      if (RAW && i % PER_CONN === 0) sessions.push(http2.connect(`http://${address}`));
      if (!RAW && i % PER_CONN === 0) transports.push(transportFor(address));
      if (DELTA) {
        // Delta: subscribe by name, ACK by nonce; a Cluster response of the change's revision is its ACK time.
        const s = RAW ? new RawDelta(sessions[sessions.length - 1]!) : new LightDelta(transports[transports.length - 1]!);
        s.onResponse = (r: DeltaDiscoveryResponse) => {
          s.ack(r);
          if (kindOf(r.typeUrl) === 'Cluster') acks.set(r.systemVersionInfo, performance.now());
        };
        let first = true;
        for (const [kind, names] of Object.entries(SUBS)) {
          s.send({ node: first ? nodeOf(`bench-${i}`, 'bench') : undefined, typeUrl: TYPE(kind), resourceNamesSubscribe: names });
          first = false;
        }
        streams.push(s);
      } else {
        const s = RAW ? new RawSotw(sessions[sessions.length - 1]!) : new LightSotw(transports[transports.length - 1]!);
        s.onResponse = (r: DiscoveryResponse) => {
          const kind = kindOf(r.typeUrl);
          s.ack(r, SUBS[kind]!);
          if (kind === 'Cluster') acks.set(r.versionInfo, performance.now());
        };
        let first = true;
        for (const [kind, names] of Object.entries(SUBS)) {
          s.send({ node: first ? nodeOf(`bench-${i}`, 'bench') : undefined, typeUrl: TYPE(kind), resourceNames: names });
          first = false;
        }
        streams.push(s);
      }
      if (i % 100 === 99) await new Promise((r) => setImmediate(r));
    }
    await waitUntil(() => ackedAt.every((m) => m.size === 1), `${N} streams to receive the initial config`, 60_000);
    const connectMs = performance.now() - t0;
    const errors = streams.filter((s) => s.error).length;
    const connected = await procStats(child.pid!);

    const samples: number[] = [];
    const perChange: { p50: number; p99: number; max: number }[] = [];
    const cpu0 = await procStats(child.pid!);
    const wall0 = performance.now();
    for (let c = 0; c < CHANGES; c++) {
      const before = ackedAt.map((m) => m.size);
      const start = performance.now();
      await api.apply({ documents: [clusterDoc(20001 + c)] as never });
      await waitUntil(() => ackedAt.every((m, i) => m.size > before[i]!), `change ${c + 1} to be ACKed by every stream`, 30_000);
      const times = ackedAt.map((m) => [...m.values()].pop()! - start).sort((a, b) => a - b);
      samples.push(...times);
      perChange.push({ p50: pct(times, 50), p99: pct(times, 99), max: times[times.length - 1]! });
      await new Promise((r) => setTimeout(r, 200));
    }
    const cpu1 = await procStats(child.pid!);
    const wallSec = (performance.now() - wall0) / 1000;
    samples.sort((a, b) => a - b);
    const r = (x: number): number => Math.round(x * 10) / 10;
    const result = {
      streams: N,
      client: values.client,
      xds: values.xds,
      connections: RAW ? sessions.length : transports.length,
      streamErrors: errors,
      connectAllMs: Math.round(connectMs),
      changes: CHANGES,
      debounce: values.debounce,
      convergenceMs: { p50: r(pct(samples, 50)), p90: r(pct(samples, 90)), p99: r(pct(samples, 99)), max: r(samples[samples.length - 1]!) },
      perChangeMs: perChange.map((p) => ({ p50: r(p.p50), p99: r(p.p99), max: r(p.max) })),
      controlPlane: {
        rssMiBIdle: r(idle.rssMiB),
        rssMiBWithStreams: r(connected.rssMiB),
        rssMiBAfterChanges: r(cpu1.rssMiB),
        cpuSecDuringChanges: r(cpu1.cpuSec - cpu0.cpuSec),
        cpuPercentDuringChanges: r((100 * (cpu1.cpuSec - cpu0.cpuSec)) / wallSec),
        cpuSecConnectingAll: r(connected.cpuSec - idle.cpuSec),
      },
      targetP99Ms: 500,
      pass: pct(samples, 99) < 500,
    };
    console.log(JSON.stringify(result, null, 2));
  } finally {
    for (const s of streams) s.close();
    for (const s of sessions) s.destroy();
    child.kill('SIGTERM');
    await rm(dir, { recursive: true, force: true });
  }
}

main().then(
  () => process.exit(0),
  (err: Error) => {
    console.error(`bench: ${err.message}`);
    process.exit(1);
  },
);
