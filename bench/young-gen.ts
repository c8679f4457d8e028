/**
 * What capping V8's young generation costs per request and saves in RSS
 * (`npm run bench:young-gen`; issue 14, docs/benchmarks.md "Footprint"):
 * sidecars from dist/ (or the sources) with Node's default semi-space (grows
 * to 16 MiB) and with `--max-semi-space-size=N` for each N of BENCH_SEMI
 * (default 2,4,8), side by side on one h2c route to the bench backend.
 * Windows alternate between the sidecars for BENCH_ROUNDS (3) ×
 * BENCH_SECONDS (3); the figures are the sidecar's CPU µs per request from
 * /proc (medians), the time its garbage collections took per request (from
 * its /metrics: `nodejs_gc_duration_seconds`, young and full; wall time of
 * the pauses, less moved by a loaded machine than CPU per request), req/s,
 * and RSS idle after start and after the load.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { runH2load } from './lib/load.js';
import { cpuDelta, freePort, installCleanupHandlers, spawnManaged, stopAll, treeCpu, waitForPort, startBackend, type Managed } from './lib/proc.js';

const ROOT = resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SEMI = (process.env.BENCH_SEMI ?? '2,4,8').split(',').map(Number);
const SERVER_CPUS = process.env.BENCH_SERVER_CPU ?? '0';
const LOAD_CPUS = process.env.BENCH_LOAD_CPU ?? '1';

const rssMiB = (pid: number): number => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/** Seconds the sidecar's garbage collections have taken so far, every kind (its prom-client default metrics). */
async function gcSeconds(admin: number): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${admin}/metrics`)).text();
  let sum = 0;
  for (const m of text.matchAll(/^outrigger_nodejs_gc_duration_seconds_sum\{[^}]*\} (\S+)$/gm)) sum += Number(m[1]);
  return sum;
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-young-'));
  try {
    const upstream = (await startBackend('h2c', LOAD_CPUS)).port;
    const variants: { label: string; flags: string[] }[] = [{ label: 'default (16 MiB max)', flags: [] }, ...SEMI.map((n) => ({ label: `--max-semi-space-size=${n}`, flags: [`--max-semi-space-size=${n}`] }))];
    const sidecars: { label: string; proc: Managed; port: number; admin: number; idleRss: number; cpu: number[]; gc: number[]; rps: number[] }[] = [];
    for (const v of variants) {
      const port = await freePort();
      const conf = join(dir, `sidecar-${port}.yaml`);
      const docs = [
        { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'b' }, spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: upstream } }] } },
        { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: 'r' }, spec: { virtualHosts: [{ name: 'all', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'b' } }] }] } },
        { apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name: 'l' }, spec: { address: { host: '127.0.0.1', port }, routeConfig: 'r' } },
      ];
      writeFileSync(conf, docs.map((d) => stringify(d)).join('---\n'));
      const admin = await freePort();
      const proc = spawnManaged(`sidecar ${v.label}`, process.execPath, [...v.flags, join(ROOT, 'bin/outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(admin), '--concurrency', '1'], {
        cpus: SERVER_CPUS,
        cwd: ROOT,
        env: { ...process.env, OUTRIGGER_LOG_LEVEL: 'warn' },
        logFile: join(dir, `sidecar-${port}.log`),
      });
      if (!(await waitForPort(port, 30_000, () => proc.exitCode() === undefined))) throw new Error(`sidecar ${v.label} did not listen`);
      sidecars.push({ label: v.label, proc, port, admin, idleRss: NaN, cpu: [], gc: [], rps: [] });
    }
    await new Promise((r) => setTimeout(r, 2000));
    for (const s of sidecars) s.idleRss = rssMiB(s.proc.pid);
    for (const s of sidecars) await runH2load({ url: `http://127.0.0.1:${s.port}/`, seconds: 1, clients: 10, streams: 10, cpus: LOAD_CPUS }); // warm-up
    for (let i = 0; i < ROUNDS; i++) {
      for (const s of sidecars) {
        const g0 = await gcSeconds(s.admin);
        const c0 = treeCpu(s.proc.pid);
        const r = await runH2load({ url: `http://127.0.0.1:${s.port}/`, seconds: SECONDS, clients: 10, streams: 10, cpus: LOAD_CPUS });
        const cpu = cpuDelta(c0, treeCpu(s.proc.pid));
        const g1 = await gcSeconds(s.admin);
        if (!r.ok || r.failed > 0) throw new Error(`${s.label}: ${r.failed} failed ${r.error ?? ''}`);
        s.cpu.push((cpu * 1e6) / r.succeeded);
        s.gc.push(((g1 - g0) * 1e6) / r.succeeded);
        s.rps.push(r.rps);
      }
    }
    process.stdout.write(`## Young generation: h2c pass-through (load average ${loadavg()[0]!.toFixed(1)}, ${ROUNDS} × ${SECONDS} s alternating)\n\n`);
    process.stdout.write('| sidecar node flags | idle RSS | RSS after load | CPU µs/req (median) | GC µs/req (median) | req/s (median) |\n|---|---|---|---|---|---|\n');
    for (const s of sidecars) {
      process.stdout.write(`| ${s.label} | ${s.idleRss.toFixed(1)} MiB | ${rssMiB(s.proc.pid).toFixed(1)} MiB | ${median(s.cpu).toFixed(1)} | ${median(s.gc).toFixed(2)} | ${Math.round(median(s.rps))} |\n`);
    }
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
