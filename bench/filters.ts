/**
 * What the security filter chain costs (`npm run bench:filters`, issue 13):
 * gRPC unary (BookstoreService/GetShelf, h2load, pre-framed body) through
 * jwtAuthn (a cached ES256 token) + rbac (3 policies, one CEL condition) +
 * localRateLimit (never limiting), against the same sidecar's listener
 * without filters — the sidecar's CPU µs per request from /proc (its process
 * tree, as bench/retry-overhead.ts measures), windows alternated, medians of
 * BENCH_ROUNDS (3) × BENCH_SECONDS (3). Then the chain alone in process
 * (runRequestHeaders on a protocol-less Downstream). Target: ≤ 15 µs added.
 */
import { fromJson, type JsonValue } from '@bufbuild/protobuf';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg } from 'node:os';
import { join, resolve } from 'node:path';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { Registry } from 'prom-client';
import { stringify } from 'yaml';
import { systemClock } from '../src/core/clock.js';
import { JwtAuthnSchema } from '../src/gen/outrigger/filters/jwt_authn/v1/jwt_authn_pb.js';
import { LocalRateLimitSchema } from '../src/gen/outrigger/filters/local_rate_limit/v1/local_rate_limit_pb.js';
import { RbacSchema } from '../src/gen/outrigger/filters/rbac/v1/rbac_pb.js';
import { AuditLog } from '../src/proxy/filters/audit/audit-log.js';
import { FilterRegistry } from '../src/proxy/filters/filter-chain.js';
import { jwtAuthnFactory } from '../src/proxy/filters/jwt-authn/jwt-authn-filter.js';
import { localRateLimitFactory } from '../src/proxy/filters/rate-limit/local-rate-limit-filter.js';
import { rbacFactory } from '../src/proxy/filters/rbac/rbac-filter.js';
import { BenchDownstream } from './lib/bench-downstream.js';
import { framedGetShelfRequest, GET_SHELF_PATH, SERVICE } from './lib/bookstore.js';
import { runH2load } from './lib/load.js';
import { cpuDelta, freePort, installCleanupHandlers, spawnManaged, stop, stopAll, treeCpu, waitForPort, startBackend, type Managed } from './lib/proc.js';

const ROOT = resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SERVER_CPUS = process.env.BENCH_SERVER_CPU ?? '0';
const LOAD_CPUS = process.env.BENCH_LOAD_CPU ?? '1';
const ISS = 'https://issuer.bench';

/** The three filters' configs (listener YAML = proto JSON). */
function filterConfigs(jwks: string): { jwtAuthn: JsonValue; rbac: JsonValue; localRateLimit: JsonValue } {
  return {
    jwtAuthn: { providers: [{ name: 'bench', issuer: ISS, localJwks: { inline: jwks } }] },
    rbac: {
      action: 'RBAC_ACTION_ALLOW',
      policies: {
        admins: { permissions: [{ any: true }], principals: [{ jwtClaim: { name: 'realm.roles', value: 'admin' } }] },
        ci: { permissions: [{ path: { prefix: '/ci/' } }], principals: [{ apiKey: { name: 'ci' } }] },
        readers: {
          permissions: [{ grpc: { service: SERVICE, method: 'GetShelf' } }],
          principals: [{ authenticated: {} }],
          condition: "request.headers['x-tenant'] == 'acme' && jwt.claims.sub == 'rita'",
        },
      },
    },
    localRateLimit: { limits: [{ key: { principal: {} }, tokenBucket: { maxTokens: 1000000000, tokensPerFill: 1000000000, fillInterval: '1s' } }] },
  };
}

async function token(): Promise<{ jwt: string; jwks: string }> {
  const { privateKey, publicKey } = await generateKeyPair('ES256');
  const jwk = { ...(await exportJWK(publicKey)), kid: 'k', alg: 'ES256' };
  const jwt = await new SignJWT({ realm: { roles: ['reader'] } })
    .setProtectedHeader({ alg: 'ES256', kid: 'k' })
    .setIssuer(ISS)
    .setSubject('rita')
    .setExpirationTime('2h')
    .sign(privateKey);
  return { jwt, jwks: JSON.stringify({ keys: [jwk] }) };
}

async function sidecar(dir: string, backendPort: number, jwks: string): Promise<{ proc: Managed; plain: number; filtered: number }> {
  const plain = await freePort();
  const filtered = await freePort();
  const f = filterConfigs(jwks);
  const docs = [
    { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'grpc' }, spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: backendPort } }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: 'r' }, spec: { virtualHosts: [{ name: 'r', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'grpc' } }] }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name: 'plain' }, spec: { address: { host: '127.0.0.1', port: plain }, routeConfig: 'r' } },
    {
      apiVersion: 'outrigger.io/v1',
      kind: 'Listener',
      metadata: { name: 'filtered' },
      spec: { address: { host: '127.0.0.1', port: filtered }, routeConfig: 'r', httpFilters: [{ jwtAuthn: f.jwtAuthn }, { rbac: f.rbac }, { localRateLimit: f.localRateLimit }] },
    },
  ];
  const conf = join(dir, 'sidecar.yaml');
  writeFileSync(conf, docs.map((d) => stringify(d)).join('---\n'));
  const proc = spawnManaged('sidecar', process.execPath, [join(ROOT, 'bin', 'outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(await freePort())], {
    cpus: SERVER_CPUS,
    cwd: ROOT,
    // BENCH_SIDECAR_DIST=1: the built sidecar (dist/), as users run it; through tsx, keepNames wraps every closure creation.
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: process.env.BENCH_SIDECAR_DIST === '1' ? '' : '1', OUTRIGGER_LOG_LEVEL: 'warn' },
    logFile: join(dir, 'sidecar.log'),
  });
  for (const port of [plain, filtered]) {
    if (!(await waitForPort(port, 30_000, () => proc.exitCode() === undefined))) throw new Error('the sidecar did not listen');
  }
  return { proc, plain, filtered };
}

async function endToEnd(dir: string, jwt: string, jwks: string): Promise<{ plain: number; filtered: number; rps: [number, number] }> {
  const { proc: backend, port } = await startBackend('grpc', LOAD_CPUS, ['--impl', 'standin']);
  const sc = await sidecar(dir, port, jwks);
  const body = join(dir, 'get-shelf.bin');
  writeFileSync(body, framedGetShelfRequest(1n));
  const headers = ['content-type: application/grpc', 'te: trailers', `authorization: Bearer ${jwt}`, 'x-tenant: acme'];
  const run = async (listen: number, s: number): Promise<{ cpuUs: number; rps: number }> => {
    const c0 = treeCpu(sc.proc.pid);
    const r = await runH2load({ url: `http://127.0.0.1:${listen}${GET_SHELF_PATH}`, seconds: s, clients: 10, streams: 10, dataFile: body, headers, cpus: LOAD_CPUS });
    const cpu = cpuDelta(c0, treeCpu(sc.proc.pid));
    if (r.failed > 0 || !r.ok) throw new Error(`:${listen}: ${r.failed} failed ${r.error ?? ''}`);
    return { cpuUs: (cpu * 1e6) / r.succeeded, rps: r.rps };
  };
  await run(sc.plain, 1);
  await run(sc.filtered, 1);
  const p: number[] = [];
  const f: number[] = [];
  const rp: number[] = [];
  const rf: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const a = await run(sc.plain, SECONDS);
    const b = await run(sc.filtered, SECONDS);
    p.push(a.cpuUs);
    f.push(b.cpuUs);
    rp.push(a.rps);
    rf.push(b.rps);
    process.stderr.write(`round ${i + 1}: no filters ${a.cpuUs.toFixed(1)} µs/req (${Math.round(a.rps)} req/s), filters ${b.cpuUs.toFixed(1)} µs/req (${Math.round(b.rps)} req/s)\n`);
  }
  await stop(sc.proc);
  await stop(backend);
  return { plain: median(p), filtered: median(f), rps: [median(rp), median(rf)] };
}

/** The chain alone: runRequestHeaders over a gRPC request with a cached token, in ns per request. */
async function inProcess(jwt: string, jwks: string): Promise<number> {
  const clock = systemClock();
  const audit = new AuditLog(undefined, new Registry());
  const registry = new FilterRegistry([jwtAuthnFactory({ clock, audit }), rbacFactory({ audit }), localRateLimitFactory({ clock, audit })]);
  const f = filterConfigs(jwks);
  const chain = registry.compile(
    [
      { name: 'jwtAuthn', config: fromJson(JwtAuthnSchema, f.jwtAuthn) },
      { name: 'rbac', config: fromJson(RbacSchema, f.rbac) },
      { name: 'localRateLimit', config: fromJson(LocalRateLimitSchema, f.localRateLimit) },
    ],
    undefined,
  );
  const headers = { 'content-type': 'application/grpc', te: 'trailers', authorization: `Bearer ${jwt}`, 'x-tenant': 'acme' };
  const once = (): Promise<void> | undefined => {
    // A fresh Downstream per request, as the proxy has (auth facts and headers are per exchange).
    const ds = new BenchDownstream({ ...headers }, { method: 'POST', target: GET_SHELF_PATH, grpc: true });
    let settled = false;
    let resolveP: (() => void) | undefined;
    chain.runRequestHeaders(ds, (v) => {
      if (v !== undefined) throw new Error(`refused: ${JSON.stringify(v)}`);
      settled = true;
      resolveP?.();
    });
    if (settled) return undefined;
    return new Promise<void>((r) => (resolveP = r));
  };
  const baseline = (): void => void new BenchDownstream({ ...headers }, { method: 'POST', target: GET_SHELF_PATH, grpc: true });
  await once(); // the first verification (async); then the token is cached
  const N = 100_000;
  let best = Infinity;
  // CPU time of this process (not wall time): a shared machine's descheduling does not count.
  const cpuNs = (c: NodeJS.CpuUsage): number => (c.user + c.system) * 1000;
  for (let r = 0; r < 7; r++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < N; i++) {
      const p = once();
      if (p) await p;
    }
    const c1 = process.cpuUsage();
    for (let i = 0; i < N; i++) baseline();
    const c2 = process.cpuUsage();
    best = Math.min(best, (cpuNs(c1) - cpuNs(c0) - (cpuNs(c2) - cpuNs(c1))) / N);
  }
  return best;
}

function median(a: number[]): number {
  return [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-filters-'));
  try {
    const { jwt, jwks } = await token();
    const load = loadavg().map((x) => x.toFixed(2)).join(' ');
    const chainNs = await inProcess(jwt, jwks);
    process.stdout.write(`in process: jwtAuthn (cached) + rbac (3 policies, 1 CEL) + localRateLimit: ${(chainNs / 1000).toFixed(2)} µs per request\n`);
    if (process.env.BENCH_IN_PROCESS_ONLY === '1') return;
    const e = await endToEnd(dir, jwt, jwks);
    const added = e.filtered - e.plain;
    process.stdout.write(
      `| listener | sidecar CPU µs/req (median of ${ROUNDS}) | req/s |\n|---|---|---|\n` +
        `| no filters | ${e.plain.toFixed(1)} | ${Math.round(e.rps[0])} |\n` +
        `| jwtAuthn + rbac + localRateLimit | ${e.filtered.toFixed(1)} | ${Math.round(e.rps[1])} |\n` +
        `added: ${added.toFixed(1)} µs/req (${((e.filtered / e.plain - 1) * 100).toFixed(1)} %), target ≤ 15 µs — load average at start ${load}\n`,
    );
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
