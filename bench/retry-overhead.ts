/**
 * What a retry policy costs when nothing fails (`npm run bench:retries`):
 * the sidecar's CPU µs per request and req/s on one route without a retry
 * policy and one with `retryPolicy` (and one with `hedgePolicy`, never
 * firing), HTTP/2 (h2load) and HTTP/1.1 (wrk) pass-through to the bench
 * backends. With BENCH_BASELINE_DIR=<checkout> the route without a policy is
 * also measured on that checkout's sidecar (the single-attempt path before
 * and after). Short by design: BENCH_SECONDS (3) per window, BENCH_ROUNDS (2).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { runH2load, runWrk, type LoadResult } from './lib/load.js';
import { cpuDelta, drainOutput, freePort, installCleanupHandlers, spawnManaged, stop, stopAll, treeCpu, waitForLine, waitForPort, type Managed } from './lib/proc.js';

const ROOT = resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const SERVER_CPUS = process.env.BENCH_SERVER_CPU ?? '0';
const LOAD_CPUS = process.env.BENCH_LOAD_CPU ?? '1';
const VARIANTS = ['none', 'retry', 'hedge'] as const;
type Variant = (typeof VARIANTS)[number];
type Proto = 'h2c' | 'http1';

function docs(listen: Record<string, number>, upstream: Record<Proto, number>, variants: readonly Variant[]): object[] {
  const out: object[] = [];
  for (const proto of ['h2c', 'http1'] as const) {
    const c = `c-${proto}`;
    out.push({
      apiVersion: 'outrigger.io/v1',
      kind: 'Cluster',
      metadata: { name: c },
      spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: proto === 'h2c' ? 'UPSTREAM_PROTOCOL_HTTP2' : 'UPSTREAM_PROTOCOL_HTTP1', endpoints: [{ address: { host: '127.0.0.1', port: upstream[proto] } }] },
    });
    for (const v of variants) {
      const name = `${proto}-${v}`;
      const extra =
        v === 'retry' ? { retryPolicy: { retryOn: ['5xx', 'reset', 'connect-failure'], numRetries: 2 } } : v === 'hedge' ? { hedgePolicy: { maxAttempts: 2, hedgingDelay: '1s' } } : {};
      out.push({
        apiVersion: 'outrigger.io/v1',
        kind: 'RouteConfiguration',
        metadata: { name },
        spec: { virtualHosts: [{ name, domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: c, ...extra } }] }] },
      });
      out.push({ apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name }, spec: { address: { host: '127.0.0.1', port: listen[name] }, routeConfig: name } });
    }
  }
  return out;
}

async function backend(proto: Proto): Promise<{ proc: Managed; port: number }> {
  const proc = spawnManaged(`backend-${proto}`, process.execPath, ['--import', 'tsx', join(ROOT, 'bench', 'backends', `${proto}.ts`), '--port', '0'], { cpus: LOAD_CPUS, cwd: ROOT });
  const m = await waitForLine(proc, /LISTENING (\d+)/, 30_000);
  drainOutput(proc);
  return { proc, port: Number(m[1]) };
}

async function sidecar(root: string, dir: string, upstream: Record<Proto, number>, variants: readonly Variant[]): Promise<{ proc: Managed; listen: Record<string, number> }> {
  const listen: Record<string, number> = {};
  for (const p of ['h2c', 'http1']) for (const v of variants) listen[`${p}-${v}`] = await freePort();
  const conf = join(dir, `sidecar-${variants.join('-')}.yaml`);
  writeFileSync(conf, docs(listen, upstream, variants).map((d) => stringify(d)).join('---\n'));
  const proc = spawnManaged('sidecar', process.execPath, [join(root, 'bin', 'outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(await freePort())], {
    cpus: SERVER_CPUS,
    cwd: root,
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', OUTRIGGER_LOG_LEVEL: 'warn' },
    logFile: join(dir, 'sidecar.log'),
  });
  for (const port of Object.values(listen)) {
    if (!(await waitForPort(port, 30_000, () => proc.exitCode() === undefined))) throw new Error(`sidecar in ${root} did not listen`);
  }
  return { proc, listen };
}

async function measure(proc: Managed, proto: Proto, port: number): Promise<{ r: LoadResult; cpuUsPerReq: number }> {
  const url = `http://127.0.0.1:${port}/`;
  const run = (s: number): Promise<LoadResult> =>
    proto === 'h2c' ? runH2load({ url, seconds: s, clients: 10, streams: 10, cpus: LOAD_CPUS }) : runWrk({ url, seconds: s, connections: 50, cpus: LOAD_CPUS });
  await run(1); // warm-up
  const c0 = treeCpu(proc.pid);
  const r = await run(SECONDS);
  const cpu = cpuDelta(c0, treeCpu(proc.pid));
  if (r.failed > 0 || !r.ok) throw new Error(`${proto} on :${port}: ${r.failed} failed ${r.error ?? ''}`);
  return { r, cpuUsPerReq: (cpu * 1e6) / r.succeeded };
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-retries-'));
  try {
    const upstream = { h2c: (await backend('h2c')).port, http1: (await backend('http1')).port };
    const targets: { label: string; root: string; variants: readonly Variant[] }[] = [{ label: 'this checkout', root: ROOT, variants: VARIANTS }];
    if (process.env.BENCH_BASELINE_DIR) targets.push({ label: `baseline ${process.env.BENCH_BASELINE_DIR}`, root: resolve(process.env.BENCH_BASELINE_DIR), variants: ['none'] });
    const rows: string[] = [];
    for (const t of targets) {
      const sc = await sidecar(t.root, dir, upstream, t.variants);
      for (const proto of ['h2c', 'http1'] as const) {
        for (const v of t.variants) {
          const cpu: number[] = [];
          const rps: number[] = [];
          for (let i = 0; i < ROUNDS; i++) {
            const m = await measure(sc.proc, proto, sc.listen[`${proto}-${v}`]!);
            cpu.push(m.cpuUsPerReq);
            rps.push(m.r.rps);
          }
          const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
          rows.push(`| ${t.label} | ${proto} | ${v} | ${med(cpu).toFixed(1)} | ${Math.round(med(rps))} |`);
          process.stderr.write(`${rows.at(-1)}\n`);
        }
      }
      await stop(sc.proc);
    }
    process.stdout.write(`| sidecar | protocol | policy | CPU µs/req (median of ${ROUNDS}) | req/s |\n|---|---|---|---|---|\n${rows.join('\n')}\n`);
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
