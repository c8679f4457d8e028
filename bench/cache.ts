/**
 * What a cache hit costs the sidecar (`npm run bench:cache`, issue 16): CPU µs
 * per gRPC unary request (BookstoreService/GetShelf, h2load with a pre-framed
 * body) on a listener passing the call through to the grpc-js backend, and on
 * one whose `cache` filter answers it from memory (every request after the
 * first is a hit, checked on the admin metrics). A hit skips the pick, the
 * upstream stream and relaying the answer, but reads the request message and
 * hashes it. Short by design: BENCH_SECONDS (3) per window, BENCH_ROUNDS (3).
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { runH2load, type LoadResult } from './lib/load.js';
import { cpuDelta, freePort, installCleanupHandlers, spawnManaged, stop, stopAll, treeCpu, waitForPort, startBackend, type Managed } from './lib/proc.js';
import { BOOKSTORE_DESCRIPTORS } from './lib/sidecar.js';
import { framedGetShelfRequest, GET_SHELF_PATH, SERVICE } from './lib/bookstore.js';

const ROOT = resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SERVER_CPUS = process.env.BENCH_SERVER_CPU ?? '0';
const LOAD_CPUS = process.env.BENCH_LOAD_CPU ?? '1';
const VARIANTS = ['pass-through', 'cache-hit'] as const;
type Variant = (typeof VARIANTS)[number];

function docs(listen: Record<Variant, number>, upstream: number): object[] {
  const descriptorBin = readFileSync(join(ROOT, BOOKSTORE_DESCRIPTORS)).toString('base64');
  const out: object[] = [
    {
      apiVersion: 'outrigger.io/v1',
      kind: 'Cluster',
      metadata: { name: 'grpc' },
      spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: upstream } }] },
    },
    {
      apiVersion: 'outrigger.io/v1',
      kind: 'RouteConfiguration',
      metadata: { name: 'grpc' },
      spec: { virtualHosts: [{ name: 'grpc', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'grpc' } }] }] },
    },
  ];
  for (const v of VARIANTS) {
    const httpFilters = v === 'cache-hit' ? [{ cache: { memory: {}, descriptorBin, grpcMethods: [{ method: `/${SERVICE}/GetShelf`, ttl: '3600s' }] } }] : [];
    out.push({ apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name: v }, spec: { address: { host: '127.0.0.1', port: listen[v] }, routeConfig: 'grpc', httpFilters } });
  }
  return out;
}

async function measure(proc: Managed, port: number, bodyFile: string): Promise<{ r: LoadResult; cpuUsPerReq: number }> {
  const run = (s: number): Promise<LoadResult> =>
    runH2load({ url: `http://127.0.0.1:${port}${GET_SHELF_PATH}`, seconds: s, clients: 10, streams: 10, dataFile: bodyFile, headers: ['content-type: application/grpc', 'te: trailers'], cpus: LOAD_CPUS });
  await run(1); // warm-up (and the one miss that fills the cache)
  const c0 = treeCpu(proc.pid);
  const r = await run(SECONDS);
  const cpu = cpuDelta(c0, treeCpu(proc.pid));
  if (r.failed > 0 || !r.ok) throw new Error(`:${port}: ${r.failed} failed ${r.error ?? ''}`);
  return { r, cpuUsPerReq: (cpu * 1e6) / r.succeeded };
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-cache-'));
  try {
    const { proc: backend, port: upstream } = await startBackend('grpc', LOAD_CPUS);
    const listen = { 'pass-through': await freePort(), 'cache-hit': await freePort() };
    const adminPort = await freePort();
    const conf = join(dir, 'sidecar.yaml');
    writeFileSync(conf, docs(listen, upstream).map((d) => stringify(d)).join('---\n'));
    const sc = spawnManaged('sidecar', process.execPath, [join(ROOT, 'bin', 'outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(adminPort)], {
      cpus: SERVER_CPUS,
      cwd: ROOT,
      env: { ...process.env, OUTRIGGER_FROM_SOURCE: '1', OUTRIGGER_LOG_LEVEL: 'warn' },
      logFile: join(dir, 'sidecar.log'),
    });
    for (const port of Object.values(listen)) if (!(await waitForPort(port, 30_000, () => sc.exitCode() === undefined))) throw new Error('sidecar did not listen');
    const bodyFile = join(dir, 'get-shelf.bin');
    writeFileSync(bodyFile, framedGetShelfRequest(1n));
    const cpu: Record<Variant, number[]> = { 'pass-through': [], 'cache-hit': [] };
    const rps: Record<Variant, number[]> = { 'pass-through': [], 'cache-hit': [] };
    // Interleaved rounds, so drift in machine load hits both alike.
    for (let i = 0; i < ROUNDS; i++) {
      for (const v of VARIANTS) {
        const m = await measure(sc, listen[v], bodyFile);
        cpu[v].push(m.cpuUsPerReq);
        rps[v].push(m.r.rps);
        process.stderr.write(`round ${i + 1} ${v}: ${m.cpuUsPerReq.toFixed(1)} µs/req, ${Math.round(m.r.rps)} req/s\n`);
      }
    }
    const metrics = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
    const count = (result: string): number => Number(new RegExp(`outrigger_cache_lookups_total\\{filter="cache",result="${result}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
    const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const pass = med(cpu['pass-through']);
    const hit = med(cpu['cache-hit']);
    process.stdout.write(
      `| variant | sidecar CPU µs/req (median of ${ROUNDS}) | req/s |\n|---|---|---|\n` +
        VARIANTS.map((v) => `| ${v} | ${med(cpu[v]).toFixed(1)} | ${Math.round(med(rps[v]))} |`).join('\n') +
        `\n\ncache hit / pass-through CPU: ${(hit / pass).toFixed(2)} (lookups: ${count('hit')} hits, ${count('miss')} misses)\n`,
    );
    await stop(sc);
    await stop(backend);
    if (count('hit') === 0 || hit >= pass) process.exitCode = 1;
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
