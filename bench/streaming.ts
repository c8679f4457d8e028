/**
 * Server-streaming throughput (`npm run bench:streaming`, issue 14: messages/s
 * through the sidecar ≥ 0.8× direct). A grpc-js backend
 * (bench/backends/firehose.ts) streams `BENCH_STREAM_COUNT` messages of
 * `BENCH_STREAM_SIZE` bytes per call as fast as flow control allows; a
 * raw node:http2 client (bench/lib/firehose-client.ts) keeps
 * `BENCH_STREAM_CALLS` calls open on one connection and counts messages.
 * Targets: `direct` (client → backend) and `outrigger` (client → sidecar →
 * backend), and `nginx` (`grpc_pass`) when installed. As in bench/run.ts the
 * backend and the proxy share the server CPU (an app and its sidecar), the
 * client has the load CPU. Rounds alternate the targets (each round starts
 * one later); each reports the median messages/s, its ratio to direct, and
 * the proxy's and the backend's CPU µs per 1,000 messages, and how busy the
 * client was (near 100 %, the client set the pace, not the servers).
 *
 * BENCH_SECONDS (3) per window, BENCH_ROUNDS (3), BENCH_STREAM_SIZES (64,1024:
 * one table row per message size). BENCH_SIDECAR_BASE=<checkout> adds
 * `outrigger-base`, the sidecar of that checkout, to the same rounds (a
 * before/after pair under the same load). Bounded: every window has a deadline and
 * each process is stopped at the end.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { cpuDelta, freePort, installCleanupHandlers, spawnManaged, stop, stopAll, treeCpu, waitForLine, waitForPort, startBackend, type Managed } from './lib/proc.js';
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { writeNginxConfig } from './lib/nginx.js';

const ROOT = resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SERVER_CPUS = process.env.BENCH_SERVER_CPU ?? '0';
const LOAD_CPUS = process.env.BENCH_LOAD_CPU ?? '1';
const CALLS = Number(process.env.BENCH_STREAM_CALLS ?? 4);
const COUNT = Number(process.env.BENCH_STREAM_COUNT ?? 10_000);
const SIZES = (process.env.BENCH_STREAM_SIZES ?? '64,1024').split(',').map(Number);
const FROM_DIST = process.env.BENCH_SIDECAR_DIST === '1';
/** Another checkout (a worktree at an earlier commit) measured as `outrigger-base` in the same rounds: a before/after pair under the same load. */
const BASE_ROOT = process.env.BENCH_SIDECAR_BASE;
const PATH = '/outrigger.bench.v1.Firehose/Stream';

const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

interface Target {
  readonly name: string;
  readonly port: number;
  /** The proxy process whose CPU is counted (none for direct). */
  readonly proc: Managed | undefined;
  msgs: Map<number, number[]>;
  cpu: Map<number, number[]>;
  backend: Map<number, number[]>;
  client: Map<number, number[]>;
}

function push(m: Map<number, number[]>, k: number, v: number): void {
  (m.get(k) ?? m.set(k, []).get(k)!).push(v);
}

/** nginx in front of the backend with grpc_pass (bench/lib/nginx.ts's gRPC server block); undefined when nginx is not installed. */
async function startNginx(dir: string, backendPort: number): Promise<{ proc: Managed; port: number } | undefined> {
  if (spawnSync('nginx', ['-v']).error !== undefined) return undefined;
  mkdirSync(dir, { recursive: true });
  const listen = { grpc: await freePort(), h2c: await freePort(), http1: await freePort() };
  const conf = writeNginxConfig(dir, { listen, upstream: { grpc: backendPort, h2c: backendPort, http1: backendPort } }, { keepalive: 128, accessLog: true });
  const base = ['-p', `${dir}/`, '-e', join(dir, 'error.log'), '-c', conf];
  const proc = spawnManaged('nginx', 'nginx', [...base, '-g', 'daemon off;'], { cpus: SERVER_CPUS, logFile: join(dir, 'stdout.log') });
  if (!(await waitForPort(listen.grpc, 10_000, () => proc.exitCode() === undefined))) throw new Error('nginx did not listen');
  return { proc, port: listen.grpc };
}

async function sidecar(dir: string, backendPort: number, root = ROOT, label = 'sidecar'): Promise<{ proc: Managed; port: number }> {
  const port = await freePort();
  const conf = join(dir, `${label}.yaml`);
  const docs = [
    { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'g' }, spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: backendPort } }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: 'r' }, spec: { virtualHosts: [{ name: 'r', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'g' } }] }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name: 'main' }, spec: { address: { host: '127.0.0.1', port }, routeConfig: 'r' } },
  ];
  writeFileSync(conf, docs.map((d) => stringify(d)).join('---\n'));
  const proc = spawnManaged(label, process.execPath, [join(root, 'bin', 'outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(await freePort()), '--concurrency', '1'], {
    cpus: SERVER_CPUS,
    cwd: root,
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: FROM_DIST ? '' : '1', OUTRIGGER_LOG_LEVEL: 'warn' },
    logFile: join(dir, `${label}.log`),
  });
  if (!(await waitForPort(port, 120_000, () => proc.exitCode() === undefined))) throw new Error(`${label} did not listen (log: ${join(dir, `${label}.log`)})`);
  return { proc, port };
}

/** One window: the client against `port`; the proxy's CPU over the counted seconds. */
async function window(t: Target, backend: Managed, size: number, seconds: number, warmup: number): Promise<{ msgs: number; cpuPerK: number; backendPerK: number; clientBusy: number } | string> {
  const client = spawnManaged('firehose-client', process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'lib', 'firehose-client.ts'), '--url', `http://127.0.0.1:${t.port}${PATH}`, '--streams', String(CALLS), '--count', String(COUNT), '--size', String(size), '--warmup', String(warmup), '--seconds', String(seconds)], { cpus: LOAD_CPUS, cwd: ROOT });
  try {
    await waitForLine(client, /MEASURE/, 60_000);
    const c0 = t.proc === undefined ? undefined : treeCpu(t.proc.pid);
    const b0 = treeCpu(backend.pid);
    const line = await waitForLine(client, /^\{.*\}$/m, (seconds + 30) * 1000);
    const cpu = c0 === undefined ? NaN : cpuDelta(c0, treeCpu(t.proc!.pid));
    const bcpu = cpuDelta(b0, treeCpu(backend.pid));
    const r = JSON.parse(line[0]) as { messages: number; seconds: number; clientBusy: number; failed: number; failures: string[] };
    if (r.failed > 0) return `${r.failed} calls failed: ${r.failures.join('; ')}`;
    return { msgs: r.messages / r.seconds, cpuPerK: (cpu * 1e9) / r.messages, backendPerK: (bcpu * 1e9) / r.messages, clientBusy: r.clientBusy };
  } finally {
    await stop(client);
  }
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-streaming-'));
  try {
    const { proc: be, port: backendPort } = await startBackend('firehose', SERVER_CPUS);
    const targets: Target[] = [{ name: 'direct', port: backendPort, proc: undefined, msgs: new Map(), cpu: new Map(), backend: new Map(), client: new Map() }];
    const sc = await sidecar(dir, backendPort);
    targets.push({ name: 'outrigger', port: sc.port, proc: sc.proc, msgs: new Map(), cpu: new Map(), backend: new Map(), client: new Map() });
    if (BASE_ROOT !== undefined) {
      const base = await sidecar(dir, backendPort, resolve(BASE_ROOT), 'sidecar-base');
      targets.push({ name: 'outrigger-base', port: base.port, proc: base.proc, msgs: new Map(), cpu: new Map(), backend: new Map(), client: new Map() });
    }
    let nginxNote = '';
    try {
      const ng = await startNginx(join(dir, 'nginx'), backendPort);
      if (ng !== undefined) targets.push({ name: 'nginx', port: ng.port, proc: ng.proc, msgs: new Map(), cpu: new Map(), backend: new Map(), client: new Map() });
    } catch (err) {
      nginxNote = `nginx: not measured (${(err as Error).message})\n`;
    }
    for (const t of targets) await window(t, be, SIZES[0]!, 1, 1); // warm-up: JIT, connections
    for (const size of SIZES) {
      for (let i = 0; i < ROUNDS; i++) {
        for (let j = 0; j < targets.length; j++) {
          const t = targets[(i + j) % targets.length]!;
          const r = await window(t, be, size, SECONDS, 1);
          if (typeof r === 'string') {
            process.stderr.write(`streaming ${t.name} ${size} B: round ${i + 1}: ${r}; not counted\n`);
            continue;
          }
          push(t.msgs, size, r.msgs);
          push(t.cpu, size, r.cpuPerK);
          push(t.backend, size, r.backendPerK);
          push(t.client, size, r.clientBusy);
        }
        process.stderr.write(`streaming ${size} B: round ${i + 1}/${ROUNDS} done, load ${loadavg()[0]!.toFixed(2)}\n`);
      }
    }
    const rows: string[] = [];
    for (const size of SIZES) {
      const direct = med(targets[0]!.msgs.get(size) ?? [NaN]);
      for (const t of targets) {
        const m = med(t.msgs.get(size) ?? [NaN]);
        const cpu = t.proc === undefined ? '-' : med(t.cpu.get(size) ?? [NaN]).toFixed(0);
        const bcpu = med(t.backend.get(size) ?? [NaN]).toFixed(0);
        const busy = `${Math.round(med(t.client.get(size) ?? [NaN]) * 100)} %`;
        rows.push(`| ${size} B | ${t.name} | ${Math.round(m)} | ${(m / direct).toFixed(2)}× | ${cpu} | ${bcpu} | ${busy} | ${(t.msgs.get(size) ?? []).map((x) => Math.round(x / 1000) + 'k').join(' ')} |`);
      }
    }
    process.stdout.write(
      `\nServer streaming: ${CALLS} calls at a time on one connection, ${COUNT} messages per call, ${SECONDS} s windows, ${ROUNDS} rounds (load ${loadavg()[0]!.toFixed(2)})\n\n` +
        `| message | target | messages/s (median) | vs direct (goal ≥ 0.8×) | proxy CPU µs per 1,000 messages | backend CPU µs per 1,000 | client busy | rounds |\n|---|---|---|---|---|---|---|---|\n${rows.join('\n')}\n\n${nginxNote}`,
    );
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
