/**
 * Outrigger benchmark: the sidecar against a direct baseline and nginx, for
 * gRPC unary, h2c and HTTP/1.1. Method from PERFORMANCE.md: servers (backend
 * + proxy) pinned on one CPU, the load generator on the other; targets
 * alternated round-robin (reversed every other round) with a warm-up before
 * each measured window; proxy CPU per request from /proc/PID/stat; foreign
 * load on the server CPU from /proc/stat; medians and same-round ratios.
 *
 * Run with `npm run bench` (bench/run.sh installs the tools). Environment:
 * see docs/benchmarks.md.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus as osCpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { framedGetShelfRequest, GET_SHELF_PATH } from './lib/bookstore.js';
import { runH2load, runWrk, wrkSeconds, type LoadResult } from './lib/load.js';
import { writeNginxConfig } from './lib/nginx.js';
import {
  cpuDelta,
  cpuStat,
  drainOutput,
  freePort,
  installCleanupHandlers,
  runTool,
  spawnManaged,
  stop,
  stopAll,
  treeCpu,
  waitForLine,
  waitForPort,
  type Managed,
} from './lib/proc.js';
import { writeSidecarConfig, type Protocol } from './lib/sidecar.js';
import { compareLines, entriesOf, readBaseline, writeBaseline } from './lib/baseline.js';
import { CONNECT_GET_SHELF, grpcCheck, h2cCheck, http1Check, REST_GET_SHELF, REST_POST_BODY, restCheck, wrkPostScript, type Check } from './lib/verify.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PROTOCOLS = ['grpc', 'h2c', 'http1', 'rest', 'rest-post'] as const;
/** Served only through the sidecar's transcoder: no direct or nginx figure (the backend speaks gRPC only). */
const TRANSCODED: readonly Protocol[] = ['rest', 'rest-post'];
/**
 * `outrigger-base`: the same sidecar built from another checkout (BENCH_BASELINE_DIR, e.g. a
 * `git worktree` of the commit before a change, with its own node_modules), measured in the same
 * rounds, so a data-path change reports its before and after from one run.
 * `outrigger-nolog`: this checkout's sidecar with its access log off (opt-in: not in the default
 * targets), beside `outrigger` in the same rounds: what the access log costs (issue 14: ≤ 10 %).
 */
const TARGETS = ['direct', 'nginx', 'outrigger', 'outrigger-base', 'outrigger-nolog'] as const;
type Target = (typeof TARGETS)[number];

// ---- configuration ------------------------------------------------------------

function envNum(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`${name}=${v} is not a non-negative number`);
  return n;
}

function envList<T extends string>(name: string, all: readonly T[]): T[] {
  const v = process.env[name];
  if (!v) return [...all];
  const items = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const i of items) if (!(all as readonly string[]).includes(i)) throw new Error(`${name}: unknown "${i}" (one of ${all.join(', ')})`);
  return all.filter((a) => items.includes(a));
}

const argv = process.argv.slice(2);
if (argv.includes('--help') || argv.includes('-h')) {
  process.stdout.write(
    'usage: npm run bench [-- --quick] [--compare] [--accept]\n' +
      '  --compare  print the ratios to bench/baseline.json (the last accepted figures)\n' +
      '  --accept   write this run\'s figures to bench/baseline.json\n' +
      'env: BENCH_QUICK=1 BENCH_ROUNDS BENCH_SECONDS BENCH_WARMUP BENCH_PROTOCOLS=grpc,h2c,http1\n' +
      '     BENCH_TARGETS=direct,nginx,outrigger[,outrigger-base with BENCH_BASELINE_DIR=<checkout>][,outrigger-nolog] BENCH_H2_CLIENTS BENCH_H2_STREAMS BENCH_H1_CONNECTIONS\n' +
      '     (protocols also: rest = REST GET /v1/shelves/1 → gRPC, rest-post = JSON POST → gRPC; sidecar only)\n' +
      '     BENCH_FOREIGN_MAX BENCH_MAX_REPEATS BENCH_ACCESS_LOG=0 BENCH_GRPC_BACKEND=auto|bookstore|standin\n' +
      '     BENCH_SERVER_CPU BENCH_LOAD_CPU BENCH_SIDECAR_DIST=1 BENCH_KEEP_TMP=1\n' +
      '     BENCH_CONCURRENCY=N (sidecar workers; give BENCH_SERVER_CPU=0,1 to let them use both CPUs)\n' +
      '     BENCH_RPS=1000 (open loop at that total rate, h2load for every protocol: the added-latency table)\n' +
      'See docs/benchmarks.md.\n',
  );
  process.exit(0);
}
const quick = argv.includes('--quick') || process.env.BENCH_QUICK === '1';
const cfg = {
  quick,
  rounds: Math.max(1, Math.round(envNum('BENCH_ROUNDS', quick ? 2 : 3))),
  seconds: Math.max(1, envNum('BENCH_SECONDS', quick ? 2 : 6)),
  warmup: envNum('BENCH_WARMUP', quick ? 0.5 : 1),
  protocols: envList('BENCH_PROTOCOLS', PROTOCOLS),
  targets: envList('BENCH_TARGETS', TARGETS).filter(
    (t) => (t !== 'outrigger-base' || !!process.env.BENCH_BASELINE_DIR) && (t !== 'outrigger-nolog' || !!process.env.BENCH_TARGETS?.includes('outrigger-nolog')),
  ),
  baselineDir: process.env.BENCH_BASELINE_DIR,
  h2Clients: Math.max(1, Math.round(envNum('BENCH_H2_CLIENTS', 10))),
  h2Streams: Math.max(1, Math.round(envNum('BENCH_H2_STREAMS', 10))),
  h1Connections: Math.max(1, Math.round(envNum('BENCH_H1_CONNECTIONS', 50))),
  /** Percent of the server CPU used by processes that are not ours above which a sample is repeated. */
  foreignMax: envNum('BENCH_FOREIGN_MAX', 15),
  /** Repeats allowed in a whole run (keeps the run bounded). */
  maxRepeats: Math.round(envNum('BENCH_MAX_REPEATS', 6)),
  // On by default: the sidecar's budget is stated with routing, metrics and access logs on.
  accessLog: process.env.BENCH_ACCESS_LOG !== '0',
  grpcBackend: process.env.BENCH_GRPC_BACKEND ?? 'auto',
  serverCpu: process.env.BENCH_SERVER_CPU ?? '0',
  loadCpu: process.env.BENCH_LOAD_CPU ?? '1',
  sidecarFromDist: process.env.BENCH_SIDECAR_DIST === '1',
  /** `outrigger sidecar --concurrency` (undefined: the sidecar's default, the CPUs it is pinned to). */
  concurrency: process.env.BENCH_CONCURRENCY,
  keepTmp: process.env.BENCH_KEEP_TMP === '1',
  /**
   * Open loop at this many requests per second in total (h2load --rps, every protocol, HTTP/1.1 with
   * --h1): the added-latency figure of issue 14 ("added p99 at a fixed 1,000 req/s ≤ 1 ms"). 0 = the
   * closed-loop saturation run.
   */
  rps: Math.max(0, envNum('BENCH_RPS', 0)),
};
const pinning = availableParallelism() >= 2;
const SERVER_CPUS = pinning ? cfg.serverCpu : undefined;
const LOAD_CPUS = pinning ? cfg.loadCpu : undefined;

const PROTOCOL_TITLE: Record<Protocol, string> = {
  grpc: `gRPC unary — BookstoreService/GetShelf, h2load -t1 -c${cfg.h2Clients} -m${cfg.h2Streams}, pre-framed body`,
  h2c: `h2c GET — h2load -t1 -c${cfg.h2Clients} -m${cfg.h2Streams}`,
  http1: `HTTP/1.1 keep-alive GET — wrk -t1 -c${cfg.h1Connections}`,
  rest: `REST→gRPC unary — GET ${REST_GET_SHELF} transcoded to GetShelf, wrk -t1 -c${cfg.h1Connections}`,
  'rest-post': `JSON POST→gRPC unary — POST ${CONNECT_GET_SHELF} {"shelf":"1"} (application/json), wrk -t1 -c${cfg.h1Connections} with a Lua script`,
};

// ---- small helpers ------------------------------------------------------------

const log = (msg: string): void => void process.stderr.write(`bench: ${msg}\n`);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function median(xs: readonly number[]): number | null {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const m = v.length >> 1;
  return v.length % 2 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
}

function toolVersion(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

// ---- state --------------------------------------------------------------------

interface Sample {
  protocol: Protocol;
  target: Target;
  round: number;
  attempt: number;
  load: LoadResult;
  /** CPU seconds of the proxy process tree in the window (null for direct). */
  proxyCpuS: number | null;
  backendCpuS: number;
  proxyCpuUsPerReq: number | null;
  backendCpuUsPerReq: number | null;
  /** Percent of the server CPU's time used by processes other than ours. */
  foreignPct: number;
  /** Percent busy of the load generator's CPU (all processes). */
  loadCpuPct: number;
  /** The load generator's own CPU time as a percent of the window (near 100 = client-bound). */
  loadgenPct: number;
  windowS: number;
  checkBefore?: Check;
  checkAfter?: Check;
  repeatedForForeignLoad?: boolean;
}

interface TargetState {
  available: boolean;
  reason?: string;
  port?: number;
  proc?: Managed;
}

const backends = new Map<Protocol, { proc: Managed; port: number; impl?: string }>();
const targetState = new Map<string, TargetState>(); // key `${target}/${protocol}`
const samples: Sample[] = [];
const notes: string[] = [];
let repeatsLeft = cfg.maxRepeats;
/** Generated proxy configs, kept in the JSON results. */
const generatedConfigs: Record<string, string> = {};
let tmp = '';
let bodyFile = '';

const key = (t: Target, p: Protocol): string => `${t}/${p}`;
/** Minimum warm-up before the first measured window of each protocol and target (JIT), seconds. */
const FIRST_ROUND_WARMUP_S = 2;
/** Load generator CPU percent above which a sample may be client-bound. */
const LOADGEN_SATURATED = 90;

// ---- setup --------------------------------------------------------------------

function pinSelf(): void {
  if (!pinning) {
    log('fewer than 2 CPUs: no pinning (numbers will be far less meaningful)');
    return;
  }
  const r = spawnSync('taskset', ['-a', '-p', '-c', cfg.loadCpu, String(process.pid)], { encoding: 'utf8' });
  if (r.status !== 0) log(`could not pin the orchestrator to CPU ${cfg.loadCpu}: ${r.stderr}`);
}

function requireTools(): void {
  const missing = ['h2load', 'nghttp', 'wrk', ...(cfg.targets.includes('nginx') ? ['nginx'] : []), ...(pinning ? ['taskset'] : [])].filter(
    (t) => spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0,
  );
  if (missing.length) throw new Error(`missing tools: ${missing.join(', ')} (bench/run.sh installs them)`);
}

async function startBackend(proto: Protocol): Promise<void> {
  if (TRANSCODED.includes(proto)) {
    // The transcoded protocols call the gRPC backend; one process serves them all.
    if (!backends.has('grpc')) await startBackend('grpc');
    backends.set(proto, backends.get('grpc')!);
    return;
  }
  const script = join(ROOT, 'bench', 'backends', proto === 'grpc' ? 'grpc.ts' : proto === 'h2c' ? 'h2c.ts' : 'http1.ts');
  const args = ['--import', 'tsx', script, '--port', '0', ...(proto === 'grpc' ? ['--impl', cfg.grpcBackend] : [])];
  const proc = spawnManaged(`backend-${proto}`, process.execPath, args, { cpus: SERVER_CPUS, cwd: ROOT });
  const m = await waitForLine(proc, /LISTENING (\d+)(?: impl=(\S+))?/, 30_000);
  drainOutput(proc);
  const port = Number(m[1]);
  backends.set(proto, { proc, port, ...(m[2] ? { impl: m[2] } : {}) });
  log(`backend ${proto} on :${port}${m[2] ? ` (${m[2]})` : ''} pid ${proc.pid}`);
}

async function startNginx(): Promise<void> {
  const dir = join(tmp, 'nginx');
  mkdirSync(dir, { recursive: true });
  const listen = { grpc: await freePort(), h2c: await freePort(), http1: await freePort() };
  const upstream = {
    grpc: backends.get('grpc')?.port ?? 9,
    h2c: backends.get('h2c')?.port ?? 9,
    http1: backends.get('http1')?.port ?? 9,
  };
  for (const p of TRANSCODED) if (cfg.protocols.includes(p)) targetState.set(key('nginx', p), { available: false, reason: 'nginx does not transcode REST to gRPC' });
  // grpc_pass does not multiplex: one upstream connection per in-flight stream.
  const keepalive = Math.max(128, cfg.h2Clients * cfg.h2Streams, cfg.h1Connections);
  const conf = writeNginxConfig(dir, { listen, upstream }, { keepalive, accessLog: cfg.accessLog });
  generatedConfigs['nginx'] = readFileSync(conf, 'utf8');
  const base = ['-p', `${dir}/`, '-e', join(dir, 'error.log'), '-c', conf];
  const t = spawnSync('nginx', [...base, '-t'], { encoding: 'utf8', timeout: 10_000 });
  const fail = (reason: string): void => {
    for (const p of cfg.protocols) targetState.set(key('nginx', p), { available: false, reason });
  };
  if (t.status !== 0) return fail(`nginx -t failed: ${(t.stderr ?? '').trim().slice(-300)}`);
  const proc = spawnManaged('nginx', 'nginx', [...base, '-g', 'daemon off;'], { cpus: SERVER_CPUS, logFile: join(dir, 'stdout.log') });
  for (const p of cfg.protocols) {
    if (TRANSCODED.includes(p)) continue;
    const ok = await waitForPort(listen[p as keyof typeof listen], 10_000, () => proc.exitCode() === undefined);
    targetState.set(key('nginx', p), ok ? { available: true, port: listen[p as keyof typeof listen], proc } : { available: false, reason: 'nginx did not listen' });
  }
  log(`nginx pid ${proc.pid}, ports ${JSON.stringify(listen)}`);
}

function readTail(file: string, n = 1500): string {
  try {
    return readFileSync(file, 'utf8').slice(-n).trim();
  } catch {
    return '';
  }
}

async function startSidecar(target: 'outrigger' | 'outrigger-base' | 'outrigger-nolog' = 'outrigger', root = ROOT, accessLog = cfg.accessLog): Promise<void> {
  const fail = (reason: string): void => {
    for (const p of cfg.protocols) targetState.set(key(target, p), { available: false, reason });
    log(`${target} n/a: ${reason}`);
  };
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (!cfg.sidecarFromDist) env.OUTRIGGER_FROM_SOURCE = '1';
  const bin = join(root, 'bin', 'outrigger.js');
  const help = await runTool('outrigger-help', process.execPath, [bin, 'sidecar', '--help'], { timeoutMs: 30_000, env });
  if (help.code !== 0) {
    const why = (help.stderr || help.stdout).trim().split('\n').find((l) => /error|cannot|not found|unknown/i.test(l)) ?? '';
    return fail(`\`outrigger sidecar --help\` exited ${help.code}${why ? `: ${why.trim().slice(0, 200)}` : ''}`);
  }
  const dir = join(tmp, target);
  mkdirSync(dir, { recursive: true });
  const listen = { grpc: await freePort(), h2c: await freePort(), http1: await freePort(), rest: await freePort(), 'rest-post': await freePort() };
  const upstream = {
    grpc: backends.get('grpc')?.port ?? 9,
    h2c: backends.get('h2c')?.port ?? 9,
    http1: backends.get('http1')?.port ?? 9,
    rest: backends.get('grpc')?.port ?? 9,
    'rest-post': backends.get('grpc')?.port ?? 9,
  };
  const conf = join(dir, 'sidecar.yaml');
  writeSidecarConfig(conf, { listen, upstream }, { accessLog });
  generatedConfigs[target] = readFileSync(conf, 'utf8');
  const adminPort = await freePort();
  const logFile = join(dir, 'sidecar.log');
  const args = [bin, 'sidecar', '--config', conf, '--admin-port', String(adminPort)];
  // Optional flags, passed only when this build of the sidecar has them.
  if (help.stdout.includes('--state-dir')) args.push('--state-dir', join(dir, 'state'));
  if (help.stdout.includes('--drain-timeout')) args.push('--drain-timeout', '1s');
  if (cfg.concurrency !== undefined && help.stdout.includes('--concurrency')) args.push('--concurrency', cfg.concurrency);
  const proc = spawnManaged(target, process.execPath, args, {
    cpus: SERVER_CPUS,
    env,
    cwd: root,
    logFile,
  });
  let any = false;
  for (const p of cfg.protocols) {
    const ok = await waitForPort(listen[p], 30_000, () => proc.exitCode() === undefined);
    any ||= ok;
    targetState.set(
      key(target, p),
      ok ? { available: true, port: listen[p], proc } : { available: false, reason: `listener :${listen[p]} never opened` },
    );
  }
  if (!any) {
    const tail = readTail(logFile, 600).split('\n').slice(-4).join(' | ');
    await stop(proc);
    return fail(`sidecar did not start (exit ${proc.exitCode() ?? 'running'}): ${tail}`);
  }
  log(`${target} (${root}) pid ${proc.pid}, ports ${JSON.stringify(listen)}, admin :${adminPort}, log ${logFile}`);
}

// ---- checks and measurement -----------------------------------------------------

function check(proto: Protocol, port: number): Promise<Check> {
  switch (proto) {
    case 'grpc':
      return grpcCheck(port, bodyFile, LOAD_CPUS);
    case 'h2c':
      return h2cCheck(port);
    case 'http1':
      return http1Check(port);
    case 'rest':
    case 'rest-post':
      return restCheck(port, proto === 'rest-post');
  }
}

function portOf(t: Target, p: Protocol): number {
  return t === 'direct' ? backends.get(p)!.port : targetState.get(key(t, p))!.port!;
}

/**
 * Open loop (BENCH_RPS): h2load for every protocol at a fixed total rate, per-request latencies from its
 * log. 10 clients share the rate; h2 clients may have 10 streams in flight (so a slow answer does not
 * hold the schedule back), HTTP/1.1 clients one (no pipelining).
 */
function runFixedRate(proto: Protocol, port: number, seconds: number): Promise<LoadResult> {
  const clients = 10;
  const h1 = proto === 'http1' || TRANSCODED.includes(proto);
  const common = { seconds, clients, streams: h1 ? 1 : 10, rpsPerClient: cfg.rps / clients, h1, logFile: join(tmp, `h2load-${proto}.log`), cpus: LOAD_CPUS };
  if (proto === 'http1' || proto === 'h2c') return runH2load({ ...common, url: `http://127.0.0.1:${port}/` });
  if (proto === 'rest') return runH2load({ ...common, url: `http://127.0.0.1:${port}${REST_GET_SHELF}` });
  if (proto === 'rest-post') {
    const json = join(tmp, 'post.json');
    writeFileSync(json, REST_POST_BODY);
    return runH2load({ ...common, url: `http://127.0.0.1:${port}${CONNECT_GET_SHELF}`, dataFile: json, headers: ['content-type: application/json'] });
  }
  return runH2load({ ...common, url: `http://127.0.0.1:${port}${GET_SHELF_PATH}`, dataFile: bodyFile, headers: ['content-type: application/grpc', 'te: trailers'] });
}

function runLoad(proto: Protocol, port: number, seconds: number): Promise<LoadResult> {
  if (cfg.rps > 0) return runFixedRate(proto, port, seconds);
  if (proto === 'http1') return runWrk({ url: `http://127.0.0.1:${port}/`, seconds, connections: cfg.h1Connections, cpus: LOAD_CPUS });
  if (proto === 'rest') return runWrk({ url: `http://127.0.0.1:${port}${REST_GET_SHELF}`, seconds, connections: cfg.h1Connections, cpus: LOAD_CPUS });
  if (proto === 'rest-post') {
    const script = join(tmp, 'post.lua');
    writeFileSync(script, wrkPostScript());
    return runWrk({ url: `http://127.0.0.1:${port}${CONNECT_GET_SHELF}`, seconds, connections: cfg.h1Connections, cpus: LOAD_CPUS, script });
  }
  const logFile = join(tmp, `h2load-${proto}.log`);
  if (proto === 'h2c')
    return runH2load({ url: `http://127.0.0.1:${port}/`, seconds, clients: cfg.h2Clients, streams: cfg.h2Streams, logFile, cpus: LOAD_CPUS });
  return runH2load({
    url: `http://127.0.0.1:${port}${GET_SHELF_PATH}`,
    seconds,
    clients: cfg.h2Clients,
    streams: cfg.h2Streams,
    dataFile: bodyFile,
    headers: ['content-type: application/grpc', 'te: trailers'],
    logFile,
    cpus: LOAD_CPUS,
  });
}

/** Every process we pinned on the server CPU (backends and proxies). */
function serverRoots(): number[] {
  const pids = new Set<number>();
  for (const b of backends.values()) pids.add(b.proc.pid);
  for (const s of targetState.values()) if (s.proc && s.proc.exitCode() === undefined) pids.add(s.proc.pid);
  return [...pids];
}

async function measure(proto: Protocol, target: Target, round: number, attempt: number): Promise<Sample> {
  const port = portOf(target, proto);
  const backend = backends.get(proto)!.proc;
  const proxy = target === 'direct' ? undefined : targetState.get(key(target, proto))!.proc;
  const roots = serverRoots();
  // With BENCH_SERVER_CPU=0,1 (workers on both CPUs) the foreign load is read on the first.
  const serverCpu = Number(cfg.serverCpu.split(',')[0]);
  const loadCpu = Number(cfg.loadCpu);

  const all0 = roots.map((r) => treeCpu(r));
  const b0 = treeCpu(backend.pid);
  const p0 = proxy ? treeCpu(proxy.pid) : undefined;
  const s0 = cpuStat();
  const t0 = performance.now();
  const load = await runLoad(proto, port, cfg.seconds);
  const t1 = performance.now();
  const s1 = cpuStat();
  const b1 = treeCpu(backend.pid);
  const p1 = proxy ? treeCpu(proxy.pid) : undefined;
  const all1 = roots.map((r) => treeCpu(r));

  const backendCpuS = cpuDelta(b0, b1);
  const proxyCpuS = proxy ? cpuDelta(p0!, p1!) : null;
  const oursS = roots.reduce((acc, _r, i) => acc + cpuDelta(all0[i]!, all1[i]!), 0);
  const srv0 = s0.get(serverCpu);
  const srv1 = s1.get(serverCpu);
  const ld0 = s0.get(loadCpu);
  const ld1 = s1.get(loadCpu);
  const srvTotal = srv0 && srv1 ? srv1.total - srv0.total : 0;
  const foreignPct = srvTotal > 0 ? Math.max(0, (srv1!.busy - srv0!.busy - oursS) / srvTotal) * 100 : 0;
  const ldTotal = ld0 && ld1 ? ld1.total - ld0.total : 0;
  const loadCpuPct = ldTotal > 0 ? ((ld1!.busy - ld0!.busy) / ldTotal) * 100 : 0;
  const n = load.succeeded;
  return {
    protocol: proto,
    target,
    round,
    attempt,
    load,
    proxyCpuS,
    backendCpuS,
    proxyCpuUsPerReq: proxyCpuS !== null && n > 0 ? (proxyCpuS / n) * 1e6 : null,
    backendCpuUsPerReq: n > 0 ? (backendCpuS / n) * 1e6 : null,
    foreignPct,
    loadCpuPct,
    loadgenPct: t1 > t0 ? (load.clientCpuS / ((t1 - t0) / 1000)) * 100 : 0,
    windowS: (t1 - t0) / 1000,
  };
}

async function sampleTarget(proto: Protocol, target: Target, round: number): Promise<void> {
  const port = portOf(target, proto);
  const before = await check(proto, port);
  // The first window of a code path also pays for its JIT compilation (the transcoder's especially):
  // round 1 warms up for at least FIRST_ROUND_WARMUP_S.
  const warm = round === 1 ? Math.max(cfg.warmup, FIRST_ROUND_WARMUP_S) : cfg.warmup;
  if (warm > 0) await runLoad(proto, port, proto === 'http1' || TRANSCODED.includes(proto) ? wrkSeconds(warm) : warm);
  let s = await measure(proto, target, round, 1);
  while (s.foreignPct > cfg.foreignMax && repeatsLeft > 0) {
    repeatsLeft--;
    log(`  ${target}: ${s.foreignPct.toFixed(0)} % foreign load on CPU ${cfg.serverCpu}; repeating`);
    await sleep(500);
    const again = await measure(proto, target, round, s.attempt + 1);
    again.repeatedForForeignLoad = true;
    s = again.foreignPct < s.foreignPct ? again : { ...s, repeatedForForeignLoad: true };
  }
  s.checkBefore = before;
  s.checkAfter = await check(proto, port);
  samples.push(s);
  const cpu = s.proxyCpuUsPerReq ?? s.backendCpuUsPerReq;
  log(
    `  r${round} ${target.padEnd(9)} ${s.load.rps.toFixed(0).padStart(7)} req/s  p50 ${fmtMs(s.load.p50Ms)}  p99 ${fmtMs(s.load.p99Ms)}  ` +
      `cpu ${cpu === null ? '-' : cpu.toFixed(0)} µs/req  foreign ${s.foreignPct.toFixed(0)} %  loadgen ${s.loadgenPct.toFixed(0)} % (core ${s.loadCpuPct.toFixed(0)} %)` +
      `${s.load.failed ? `  failed ${s.load.failed}` : ''}${s.load.error ? `  ERROR ${s.load.error}` : ''}` +
      `${before.ok && s.checkAfter.ok ? '' : `  CHECK FAILED: ${before.ok ? s.checkAfter.detail : before.detail}`}`,
  );
}

// ---- report -------------------------------------------------------------------

function fmtMs(v: number | null): string {
  if (v === null) return '-';
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}
const fmtX = (v: number | null): string => (v === null ? '-' : v.toFixed(2));
const fmtInt = (v: number | null): string => (v === null ? '-' : Math.round(v).toString());

interface Row {
  target: Target;
  available: boolean;
  reason?: string;
  rounds: number;
  rps: number | null;
  p50Ms: number | null;
  p99Ms: number | null;
  xDirect: number | null;
  xNginx: number | null;
  proxyCpuUsPerReq: number | null;
  backendCpuUsPerReq: number | null;
  failedRequests: number;
  checksFailed: string[];
  highForeignRounds: number[];
  loadgenSaturatedRounds: number[];
}

function summarize(proto: Protocol): Row[] {
  const rows: Row[] = [];
  const by = (t: Target): Sample[] => samples.filter((s) => s.protocol === proto && s.target === t && s.load.ok);
  const sameRound = (t: Target, ref: Target): number[] => {
    const out: number[] = [];
    for (const s of by(t)) {
      const r = by(ref).find((x) => x.round === s.round);
      if (r && r.load.rps > 0) out.push(s.load.rps / r.load.rps);
    }
    return out;
  };
  for (const t of cfg.targets) {
    const st =
      t === 'direct'
        ? TRANSCODED.includes(proto)
          ? { available: false, reason: 'the backend speaks gRPC only' }
          : { available: backends.has(proto) }
        : targetState.get(key(t, proto));
    const all = samples.filter((s) => s.protocol === proto && s.target === t);
    const ok = by(t);
    const checksFailed = all.flatMap((s) =>
      [s.checkBefore, s.checkAfter].filter((c): c is Check => !!c && !c.ok).map((c) => `round ${s.round}: ${c.detail}`),
    );
    const errors = all.filter((s) => !s.load.ok).map((s) => `round ${s.round}: ${s.load.error ?? 'failed'}`);
    rows.push({
      target: t,
      available: !!st?.available && ok.length > 0,
      ...(st?.available ? (ok.length ? {} : { reason: errors.join('; ') || 'no successful samples' }) : { reason: st?.reason ?? 'not started' }),
      rounds: ok.length,
      rps: median(ok.map((s) => s.load.rps)),
      p50Ms: median(ok.map((s) => s.load.p50Ms ?? NaN)),
      p99Ms: median(ok.map((s) => s.load.p99Ms ?? NaN)),
      xDirect: median(sameRound(t, 'direct')),
      xNginx: median(sameRound(t, 'nginx')),
      proxyCpuUsPerReq: median(ok.map((s) => s.proxyCpuUsPerReq ?? NaN)),
      backendCpuUsPerReq: median(ok.map((s) => s.backendCpuUsPerReq ?? NaN)),
      failedRequests: all.reduce((a, s) => a + s.load.failed, 0),
      checksFailed: [...checksFailed, ...errors],
      highForeignRounds: all.filter((s) => s.foreignPct > cfg.foreignMax).map((s) => s.round),
      loadgenSaturatedRounds: all.filter((s) => s.loadgenPct > LOADGEN_SATURATED).map((s) => s.round),
    });
  }
  return rows;
}

function table(proto: Protocol, rows: Row[]): string {
  const lines = [
    `### ${PROTOCOL_TITLE[proto]}`,
    '',
    '| target | req/s | p50 ms | p99 ms | × direct | × nginx | proxy CPU µs/req | app CPU µs/req |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const foot: string[] = [];
  for (const r of rows) {
    if (!r.available) {
      lines.push(`| ${r.target} | n/a | n/a | n/a | n/a | n/a | n/a | n/a |`);
      foot.push(`- ${r.target}: n/a — ${r.reason ?? 'unavailable'}`);
      continue;
    }
    const flag = r.checksFailed.length || r.failedRequests ? ' ⚠' : r.highForeignRounds.length ? ' †' : '';
    const proxyCpu = r.target === 'direct' ? `(app) ${fmtInt(r.backendCpuUsPerReq)}` : fmtInt(r.proxyCpuUsPerReq);
    lines.push(
      `| ${r.target}${flag} | ${fmtInt(r.rps)} | ${fmtMs(r.p50Ms)} | ${fmtMs(r.p99Ms)} | ${fmtX(r.xDirect)} | ${fmtX(r.xNginx)} | ${proxyCpu} | ${fmtInt(r.backendCpuUsPerReq)} |`,
    );
    if (r.failedRequests) foot.push(`- ${r.target} ⚠: ${r.failedRequests} non-2xx or failed requests under load`);
    for (const c of r.checksFailed) foot.push(`- ${r.target} ⚠: ${c}`);
    if (r.highForeignRounds.length)
      foot.push(`- ${r.target} †: foreign load > ${cfg.foreignMax} % on the server CPU in round(s) ${r.highForeignRounds.join(', ')}`);
    if (r.loadgenSaturatedRounds.length)
      foot.push(
        `- ${r.target}: the load generator used > ${LOADGEN_SATURATED} % of its core in round(s) ${r.loadgenSaturatedRounds.join(', ')} — the figure may be client-bound`,
      );
  }
  if (proto === 'grpc') {
    const checked = samples.filter((s) => s.protocol === 'grpc');
    const allOk = checked.length > 0 && checked.every((s) => s.checkBefore?.ok && s.checkAfter?.ok);
    if (allOk) foot.push(`- grpc-status 0 verified with grpc-js and nghttp before and after each of the ${checked.length} measured loads`);
  }
  return [...lines, '', ...foot].join('\n');
}

/**
 * Open loop only: what each proxy adds to the p99 (and p50) of a direct call, per round (the same round's
 * direct figure), median over rounds. Issue 14's goal: ≤ 1 ms added p99 at 1,000 req/s.
 */
function addedLatency(): string[] {
  if (cfg.rps <= 0) return [];
  const lines = ['| protocol | target | p50 ms | p99 ms | added p50 ms | added p99 ms |', '|---|---|---:|---:|---:|---:|'];
  for (const proto of cfg.protocols) {
    const ofTarget = (t: Target): Sample[] => samples.filter((s) => s.protocol === proto && s.target === t && s.load.p99Ms !== null);
    const direct = ofTarget('direct');
    for (const t of cfg.targets) {
      if (t === 'direct') continue;
      const own = ofTarget(t);
      if (!own.length) continue;
      const added = (pick: (s: Sample) => number | null): number | null =>
        median(
          own.flatMap((s) => {
            const d = direct.find((x) => x.round === s.round);
            const a = pick(s);
            const b = d ? pick(d) : null;
            return a !== null && b !== null ? [a - b] : [];
          }),
        );
      lines.push(
        `| ${proto} | ${t} | ${fmtMs(median(own.map((s) => s.load.p50Ms!)))} | ${fmtMs(median(own.map((s) => s.load.p99Ms!)))} | ` +
          `${fmtMs(added((s) => s.load.p50Ms))} | ${fmtMs(added((s) => s.load.p99Ms))} |`,
      );
    }
  }
  return lines;
}

/** Sidecar CPU µs/request of each transcoded protocol against gRPC pass-through from the same run. */
function transcodingCost(summary: Record<string, Row[]>): string[] {
  const cpu = (p: Protocol): number | null => sidecarRow(summary, p, 'outrigger')?.proxyCpuUsPerReq ?? null;
  const base = cpu('grpc');
  const lines: string[] = [];
  for (const p of TRANSCODED) {
    const c = cpu(p);
    if (c === null) continue;
    if (base === null) {
      lines.push(`- ${p}: ${fmtInt(c)} µs/req (no gRPC pass-through figure in this run: include BENCH_PROTOCOLS=grpc)`);
      continue;
    }
    const x = c / base;
    lines.push(`- ${p}: ${fmtInt(c)} µs/req vs gRPC pass-through ${fmtInt(base)} µs/req = ${x.toFixed(2)}× ${x <= 2 ? '(within the 2× target)' : '(OVER the 2× target)'}`);
  }
  return lines;
}

/** The report row of a target that ran for protocol `p`, if any. */
function sidecarRow(summary: Record<string, Row[]>, p: Protocol, t: Target): Row | undefined {
  return summary[p]?.find((r) => r.target === t && r.available);
}

/** Sidecar CPU µs/request with the access log on (`outrigger`) against off (`outrigger-nolog`), per protocol. */
function accessLogCost(summary: Record<string, Row[]>): string[] {
  const lines: string[] = [];
  for (const p of cfg.protocols) {
    const on = sidecarRow(summary, p, 'outrigger');
    const off = sidecarRow(summary, p, 'outrigger-nolog');
    if (!on || !off || on.proxyCpuUsPerReq === null || off.proxyCpuUsPerReq === null) continue;
    const x = on.proxyCpuUsPerReq / off.proxyCpuUsPerReq;
    lines.push(`- ${p}: ${fmtInt(off.proxyCpuUsPerReq)} µs/req off, ${fmtInt(on.proxyCpuUsPerReq)} on: +${((x - 1) * 100).toFixed(0)} % ${x <= 1.1 ? '(within 10 %)' : '(OVER 10 %)'}`);
  }
  return lines;
}

/** Sidecar CPU µs/request and req/s of this checkout against BENCH_BASELINE_DIR's, per protocol. */
function baselineComparison(summary: Record<string, Row[]>): string[] {
  const lines: string[] = [];
  for (const p of cfg.protocols) {
    const now = sidecarRow(summary, p, 'outrigger');
    const base = sidecarRow(summary, p, 'outrigger-base');
    if (!now || !base || now.proxyCpuUsPerReq === null || base.proxyCpuUsPerReq === null || !now.rps || !base.rps) continue;
    lines.push(
      `- ${p}: ${fmtInt(base.proxyCpuUsPerReq)} → ${fmtInt(now.proxyCpuUsPerReq)} µs/req (${(now.proxyCpuUsPerReq / base.proxyCpuUsPerReq).toFixed(2)}×), ` +
        `${fmtInt(base.rps)} → ${fmtInt(now.rps)} req/s (${(now.rps / base.rps).toFixed(2)}×)`,
    );
  }
  return lines;
}

// ---- main ---------------------------------------------------------------------

async function main(): Promise<number> {
  installCleanupHandlers();
  pinSelf();
  requireTools();
  const started = new Date();
  const perSample = cfg.warmup + cfg.seconds + 0.5;
  const expectedS = cfg.protocols.length * cfg.targets.length * cfg.rounds * perSample;
  // Hard bound on the whole run, whatever happens.
  const watchdog = setTimeout(
    () => {
      log('watchdog: the run took far longer than planned; stopping');
      void stopAll().finally(() => process.exit(3));
    },
    (expectedS + cfg.maxRepeats * cfg.seconds + 180) * 1000,
  );
  watchdog.unref();
  log(
    `${cfg.quick ? 'quick mode: ' : ''}${cfg.rounds} round(s) × ${cfg.protocols.length} protocol(s) × ${cfg.targets.length} target(s), ` +
      `${cfg.warmup} s warm-up + ${cfg.seconds} s measured each (~${Math.ceil(expectedS / 60)} min)` +
      (pinning ? `; servers on CPU ${cfg.serverCpu}, load on CPU ${cfg.loadCpu}` : ''),
  );

  tmp = mkdtempSync(join(tmpdir(), 'outrigger-bench-'));
  // Also on SIGINT/SIGTERM, which exit without reaching the `finally` below.
  process.on('exit', () => {
    if (!cfg.keepTmp) rmSync(tmp, { recursive: true, force: true });
  });
  bodyFile = join(tmp, 'getshelf.bin');
  writeFileSync(bodyFile, framedGetShelfRequest(1n));

  for (const p of cfg.protocols) await startBackend(p);
  if (cfg.targets.includes('nginx')) await startNginx();
  if (cfg.targets.includes('outrigger')) await startSidecar();
  if (cfg.targets.includes('outrigger-base') && cfg.baselineDir) await startSidecar('outrigger-base', cfg.baselineDir);
  if (cfg.targets.includes('outrigger-nolog')) await startSidecar('outrigger-nolog', ROOT, false);

  for (const proto of cfg.protocols) {
    log(`— ${PROTOCOL_TITLE[proto]}`);
    const targets: Target[] = [];
    for (const t of cfg.targets) {
      if (t === 'direct' && TRANSCODED.includes(proto)) continue;
      if (t !== 'direct' && !targetState.get(key(t, proto))?.available) continue;
      const c = await check(proto, portOf(t, proto));
      if (!c.ok) {
        if (t === 'direct') throw new Error(`the ${proto} backend fails its own check: ${c.detail}`);
        targetState.set(key(t, proto), { ...targetState.get(key(t, proto))!, available: false, reason: `check failed before load: ${c.detail}` });
        log(`  ${t}: n/a (${c.detail})`);
        continue;
      }
      log(`  ${t}: ${c.detail}`);
      targets.push(t);
    }
    for (let round = 1; round <= cfg.rounds; round++) {
      const order = round % 2 === 0 ? [...targets].reverse() : targets;
      for (const t of order) await sampleTarget(proto, t, round);
    }
  }

  const summary = Object.fromEntries(cfg.protocols.map((p) => [p, summarize(p)]));
  const out: string[] = [];
  out.push(`## Outrigger benchmark — ${started.toISOString()}`);
  out.push('');
  out.push(
    `${cfg.rounds} round(s), ${cfg.warmup} s warm-up + ${cfg.seconds} s measured per target, targets alternated (reversed every other round). ` +
      `Backend and proxy on CPU ${cfg.serverCpu}, load generator on CPU ${cfg.loadCpu}. Medians over rounds; ratios are same-round. ` +
      `CPU µs/req: the proxy's own utime+stime ÷ completed requests (for direct: the backend's). ` +
      `gRPC backend: ${backends.get('grpc')?.impl ?? '-'}.`,
  );
  for (const p of cfg.protocols) out.push('', table(p, summary[p]!));
  const baseline = baselineComparison(summary);
  if (baseline.length) out.push('', `### This checkout against the baseline (${cfg.baselineDir}), same rounds`, '', ...baseline);
  const logCost = accessLogCost(summary);
  if (logCost.length) out.push('', '### Access log cost (issue 14 goal: on ≤ 10 % over off, same run)', '', ...logCost);
  const added = addedLatency();
  if (added.length) out.push('', `### Added latency at a fixed ${cfg.rps} req/s (open loop; issue 14 goal: ≤ 1 ms added p99)`, '', ...added);
  const transcodeCost = transcodingCost(summary);
  if (transcodeCost.length) out.push('', '### Transcoding cost (issue 3 target: ≤ 2× the gRPC pass-through CPU per request)', '', ...transcodeCost);
  const baselineFile = join(ROOT, 'bench', 'baseline.json');
  const entries = entriesOf(summary);
  if (argv.includes('--compare')) {
    const b = readBaseline(baselineFile);
    out.push('', '### Against bench/baseline.json', '');
    if (!b) out.push('- no bench/baseline.json yet: accept a run with `npm run bench -- --accept`');
    else out.push(`Accepted ${b.acceptedAt} at ${b.gitCommit.slice(0, 12)} (access log ${b.accessLog ? 'on' : 'off'}).`, '', ...compareLines(b, entries));
  }
  if (argv.includes('--accept') && cfg.rps > 0) notes.push('not accepted: an open-loop run (BENCH_RPS) is not comparable with the baseline');
  else if (argv.includes('--accept')) {
    writeBaseline(baselineFile, { acceptedAt: started.toISOString(), gitCommit: toolVersion('git', ['-C', ROOT, 'rev-parse', 'HEAD']) ?? '', accessLog: cfg.accessLog, protocols: entries });
    notes.push(`accepted as bench/baseline.json (commit it)`);
  }
  if (notes.length) out.push('', ...notes.map((n) => `- ${n}`));
  const report = out.join('\n');
  process.stdout.write(report + '\n');

  const resultsDir = join(ROOT, '.bench');
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `results-${started.toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    JSON.stringify(
      {
        startedAt: started.toISOString(),
        finishedAt: new Date().toISOString(),
        config: cfg,
        pinning,
        environment: {
          node: process.version,
          kernel: release(),
          cpu: osCpus()[0]?.model ?? '',
          cpus: osCpus().length,
          nginx: toolVersion('nginx', ['-v']),
          h2load: toolVersion('h2load', ['--version']),
          wrk: toolVersion('wrk', ['-v']),
          gitCommit: toolVersion('git', ['-C', ROOT, 'rev-parse', 'HEAD']),
        },
        backends: Object.fromEntries([...backends].map(([p, b]) => [p, { port: b.port, impl: b.impl ?? null }])),
        targets: Object.fromEntries([...targetState].map(([k, s]) => [k, { available: s.available, reason: s.reason ?? null, port: s.port ?? null }])),
        summary,
        samples,
        generatedConfigs,
        notes,
        report,
      },
      (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v),
      2,
    ) + '\n',
  );
  log(`raw results: ${file}`);
  return 0;
}

let code = 1;
try {
  code = await main();
} catch (err) {
  log(`failed: ${err instanceof Error ? err.stack ?? err.message : String(err)}`);
  code = 1;
} finally {
  await stopAll();
  if (tmp && !cfg.keepTmp) rmSync(tmp, { recursive: true, force: true });
  else if (tmp) log(`kept ${tmp}`);
}
process.exit(code);
