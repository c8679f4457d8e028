/**
 * Load-balancing benchmark (issue 12, docs/benchmarks.md#load-balancing):
 * three endpoints, one of which adds 50 ms to 20 % of its responses
 * (bench/backends/lb.ts, seeded), behind one sidecar with a listener per
 * policy — round robin, least request, peak EWMA — plus round robin over the
 * two healthy endpoints and the healthy endpoint direct as references. Each
 * target gets a warm-up and one measured wrk window (req/s; the sidecar's
 * CPU per request from /proc); then the recording client
 * (bench/lib/recording-load.ts) drives all targets in interleaved turns (the
 * same machine conditions for each), its per-request latencies give p50/p99:
 * wrk 4 "corrects" its percentiles for coordinated omission, so every slow
 * response adds dozens of synthetic samples and one 50 ms response in 800
 * becomes a ~40 ms p99 (docs/benchmarks.md says how we found it); wrk's
 * figure is kept beside ours. Then a microbenchmark of the pickers alone
 * (µs per pick, and per pick + the attempt accounting a request does), in
 * this process. Bounded: about 75 s, never more than BENCH_LB_BUDGET (110 s).
 *
 * `npm run bench:lb` runs it alone; `npm run bench` runs it after the main
 * benchmark (BENCH_LB=0 skips it). Environment: BENCH_LB_SECONDS (6),
 * BENCH_LB_WARMUP (1), BENCH_LB_CONNECTIONS (16), BENCH_LB_PICKS_ONLY=1,
 * BENCH_LB_RECORD=0 (wrk only), BENCH_LB_SLICE_MS (250, the turns),
 * BENCH_SERVER_CPU (0), BENCH_LOAD_CPU (1),
 * BENCH_ACCESS_LOG=0, BENCH_KEEP_TMP=1 (keep sidecar.log).
 */
import { rmSync } from 'node:fs';
import { availableParallelism, cpus as osCpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromJson } from '@bufbuild/protobuf';
import { LB_LISTENERS, startLbRig } from './lib/lb-setup.js';
import { runWrk, type LoadResult } from './lib/load.js';
import { cpuDelta, installCleanupHandlers, stopAll, treeCpu, type Managed } from './lib/proc.js';
import { runRecordingTool, type RecordingSummary } from './lib/recording-load.js';
import { existsSync } from 'node:fs';
import type * as LocalityModule from '../src/core/locality.js';
import type * as RandomModule from '../src/core/random.js';
import type * as ClockModule from '../src/core/clock.js';
import type * as ClusterPbModule from '../src/gen/outrigger/config/v1/cluster_pb.js';
import type * as ClusterModule from '../src/proxy/upstream/cluster.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/**
 * The compiled build (dist/, `npm run build`) when there is one: the sources
 * through tsx are compiled with esbuild's keepNames, which wraps every closure
 * creation in a defineProperty call (≈ 0.4 µs each here) — figures the
 * shipped sidecar never pays. BENCH_SIDECAR_DIST=0 forces the sources.
 */
const FROM_DIST = existsSync(join(ROOT, 'dist/src/cli/main.js')) && process.env.BENCH_SIDECAR_DIST !== '0';
const lib = async <T>(rel: string): Promise<T> => (await import(join(ROOT, FROM_DIST ? `dist/${rel}.js` : `${rel}.ts`))) as T;
const { parseLocality } = await lib<typeof LocalityModule>('src/core/locality');
const { seededRandom } = await lib<typeof RandomModule>('src/core/random');
const { systemClock } = await lib<typeof ClockModule>('src/core/clock');
const { ClusterSchema } = await lib<typeof ClusterPbModule>('src/gen/outrigger/config/v1/cluster_pb');
const { ClusterRuntime } = await lib<typeof ClusterModule>('src/proxy/upstream/cluster');
type ClusterRuntime = ClusterModule.ClusterRuntime;
const env = (name: string, dflt: number): number => {
  const v = Number(process.env[name] ?? '');
  return process.env[name] !== undefined && process.env[name] !== '' && Number.isFinite(v) && v >= 0 ? v : dflt;
};
const cfg = {
  seconds: Math.max(1, Math.round(env('BENCH_LB_SECONDS', 6))),
  warmup: Math.round(env('BENCH_LB_WARMUP', 1)),
  connections: Math.max(1, Math.round(env('BENCH_LB_CONNECTIONS', 16))),
  budgetS: env('BENCH_LB_BUDGET', 110),
  picksOnly: process.env.BENCH_LB_PICKS_ONLY === '1',
  record: process.env.BENCH_LB_RECORD !== '0',
  sliceMs: Math.max(20, env('BENCH_LB_SLICE_MS', 250)),
  accessLog: process.env.BENCH_ACCESS_LOG !== '0',
  serverCpu: process.env.BENCH_SERVER_CPU ?? '0',
  loadCpu: process.env.BENCH_LOAD_CPU ?? '1',
};
const pinning = availableParallelism() >= 2;
const SERVER_CPUS = pinning ? cfg.serverCpu : undefined;
const LOAD_CPUS = pinning ? cfg.loadCpu : undefined;
const started = performance.now();
const elapsedS = (): number => (performance.now() - started) / 1000;
const log = (msg: string): void => void process.stderr.write(`bench:lb: ${msg}\n`);

// ---- the picker microbenchmark ------------------------------------------------

const POLICIES = ['LB_POLICY_ROUND_ROBIN', 'LB_POLICY_LEAST_REQUEST', 'LB_POLICY_RANDOM', 'LB_POLICY_PEAK_EWMA', 'LB_POLICY_RING_HASH', 'LB_POLICY_MAGLEV'] as const;

interface PickCost {
  policy: string;
  /** µs per pick over 3 endpoints. */
  plain: number;
  /** µs per pick + beginAttempt + end (what a request pays). */
  withAttempt: number;
  /** µs per pick, 9 endpoints in 3 zones, zone-aware routing spilling (the layered picker). */
  zoned: number;
}

function runtimeOf(policy: string, zoned: boolean): ClusterRuntime {
  const n = zoned ? 9 : 3;
  const c = fromJson(ClusterSchema, {
    name: 'bench',
    type: 'DISCOVERY_TYPE_STATIC',
    lbPolicy: policy,
    endpoints: Array.from({ length: n }, (_, i) => ({
      address: { host: `10.0.0.${i + 1}`, port: 8080 },
      ...(zoned ? { locality: { region: 'r', zone: `z${Math.floor(i / 3)}` } } : {}),
    })),
  } as never);
  const rt = ClusterRuntime.build(c, undefined, { clock: systemClock(), random: seededRandom(1), ...(zoned ? { locality: parseLocality('r/z0') } : {}) });
  // Zoned: one local endpoint failed, so every pick goes through the residual decision.
  if (zoned) rt.setFailedActiveHealth(new Set(['10.0.0.1:8080']));
  return rt;
}

/**
 * CPU µs per iteration of `fn` (this process's user + system time, so time
 * other processes take from a shared machine does not count), after a
 * warm-up; the best of 3 runs.
 */
function timeIt(iterations: number, fn: (i: number) => void): number {
  for (let i = 0; i < iterations / 4; i++) fn(i);
  let best = Infinity;
  for (let run = 0; run < 3; run++) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < iterations; i++) fn(i);
    const c = process.cpuUsage(c0);
    best = Math.min(best, (c.user + c.system) / iterations);
  }
  return best;
}

function pickCosts(): PickCost[] {
  const N = 200_000;
  const hashes = Uint32Array.from({ length: 4096 }, (_, i) => Math.imul(i + 1, 0x9e3779b1) >>> 0);
  const outcome = { status: 200, flag: undefined, grpcStatus: undefined };
  return POLICIES.map((policy) => {
    const plain = runtimeOf(policy, false);
    const zoned = runtimeOf(policy, true);
    const info = (i: number): { hash: number } => ({ hash: hashes[i & 4095]! });
    return {
      policy,
      plain: timeIt(N, (i) => void plain.pick(info(i))),
      withAttempt: timeIt(N, (i) => {
        const p = plain.pick(info(i));
        plain.beginAttempt(p.ep!.key).end(outcome);
      }),
      zoned: timeIt(N, (i) => void zoned.pick(info(i))),
    };
  });
}

// ---- the latency benchmark ----------------------------------------------------

interface Target {
  name: string;
  port: number;
  note: string;
}

interface Result {
  target: Target;
  /** The wrk window: req/s, and wrk's own (corrected) percentiles. */
  load: LoadResult;
  /** The recording client's window: percentiles of the requests themselves. */
  rec: RecordingSummary | null;
  proxyCpuUsPerReq: number | null;
  /** Share of requests each endpoint answered (the sidecar's /clusters) in the window p50/p99 come from. */
  shares: number[] | null;
}

async function measure(t: Target, proxy: Managed | undefined, adminPort: number, ports: number[]): Promise<Result> {
  if (cfg.warmup > 0) await runWrk({ url: `http://127.0.0.1:${t.port}/`, seconds: cfg.warmup, connections: cfg.connections, cpus: LOAD_CPUS });
  const atStart = proxy ? await rawCounts(adminPort, t.name, ports) : null;
  const before = proxy ? treeCpu(proxy.pid) : undefined;
  const load = await runWrk({ url: `http://127.0.0.1:${t.port}/`, seconds: cfg.seconds, connections: cfg.connections, cpus: LOAD_CPUS });
  const cpuS = proxy && before ? cpuDelta(before, treeCpu(proxy.pid)) : null;
  // Endpoint shares from the sidecar's own counters (read outside the CPU window).
  const shares = sharesOf(atStart, proxy ? await rawCounts(adminPort, t.name, ports) : null);
  return { target: t, load, rec: null, proxyCpuUsPerReq: cpuS !== null && load.succeeded > 0 ? (cpuS / load.succeeded) * 1e6 : null, shares };
}

/**
 * The recording client over every target at once, in interleaved turns
 * (recording-load.ts): each target gets cfg.seconds in all, under the same
 * machine conditions as the others. Sets each result's `rec` and, for the
 * sidecar's targets, `shares` over this window (the one p50/p99 come from).
 */
async function record(results: Result[], adminPort: number, ports: number[]): Promise<void> {
  const proxied = results.filter((r) => r.target.name !== 'direct');
  const before = await Promise.all(proxied.map((r) => rawCounts(adminPort, r.target.name, ports)));
  const got = await runRecordingTool({
    root: ROOT,
    targets: results.map((r) => ({ name: r.target.name, port: r.target.port })),
    connections: cfg.connections,
    seconds: cfg.seconds * results.length,
    sliceMs: cfg.sliceMs,
    cpus: LOAD_CPUS,
  });
  if ('error' in got) return void log(String(got.error));
  const after = await Promise.all(proxied.map((r) => rawCounts(adminPort, r.target.name, ports)));
  for (const r of results) r.rec = got[r.target.name] ?? null;
  // Peak EWMA's estimates at the end (ms, sick last): what its last picks saw.
  const ewma = await endpointsOf(adminPort, 'ewma', ports);
  if (ewma) log(`  peak-EWMA estimates after the recording run: ${ewma.map((e) => fmt(e?.ewmaLatencyMs, 2)).join(' / ')} ms (sick last)`);
  proxied.forEach((r, i) => (r.shares = sharesOf(before[i]!, after[i]!)));
}

function sharesOf(from: number[] | null, to: number[] | null): number[] | null {
  if (!from || !to) return null;
  const d = to.map((c, i) => c - from[i]!);
  const total = d.reduce((a, b) => a + b, 0);
  return total > 0 ? d.map((c) => c / total) : null;
}

interface EndpointView {
  address: string;
  totalRequests: number;
  ewmaLatencyMs: number | null;
}

async function endpointsOf(adminPort: number, cluster: string, ports: number[]): Promise<(EndpointView | undefined)[] | null> {
  try {
    const res = await fetch(`http://127.0.0.1:${adminPort}/clusters?format=json`);
    const body = (await res.json()) as { clusters: Record<string, { endpoints: EndpointView[] }> };
    const eps = body.clusters[cluster]?.endpoints ?? [];
    return ports.map((p) => eps.find((e) => e.address === `127.0.0.1:${p}`));
  } catch {
    return null;
  }
}

async function rawCounts(adminPort: number, cluster: string, ports: number[]): Promise<number[] | null> {
  return (await endpointsOf(adminPort, cluster, ports))?.map((e) => e?.totalRequests ?? 0) ?? null;
}

const fmt = (v: number | null | undefined, digits = 1): string => (v === null || v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits));

async function latencyBench(): Promise<Result[]> {
  let tmp: string | undefined;
  try {
    const rig = await startLbRig({ root: ROOT, listeners: LB_LISTENERS, accessLog: cfg.accessLog, trustedHops: 0, fromDist: FROM_DIST, serverCpus: SERVER_CPUS });
    tmp = rig.tmp;
    const { ports, listen, sidecar, adminPort } = rig;
    log(`backends :${ports.join(', :')} (the last one sick), sidecar pid ${sidecar.pid}, ${cfg.connections} connections, ${cfg.warmup}+${cfg.seconds} s per target`);
    const targets: Target[] = [
      { name: 'rr', port: listen.rr!, note: 'LB_POLICY_ROUND_ROBIN' },
      { name: 'lr', port: listen.lr!, note: 'LB_POLICY_LEAST_REQUEST' },
      { name: 'ewma', port: listen.ewma!, note: 'LB_POLICY_PEAK_EWMA' },
      { name: 'healthy', port: listen.healthy!, note: 'round robin over the 2 healthy endpoints (reference)' },
      { name: 'direct', port: ports[0]!, note: 'a healthy endpoint, no proxy (reference)' },
    ];
    const out: Result[] = [];
    for (const t of targets) {
      // This target's wrk windows, and its share of the recording run after them.
      const need = cfg.warmup + cfg.seconds + 2 + (cfg.record ? cfg.seconds : 0);
      if (elapsedS() + need + (cfg.record ? 4 : 0) > cfg.budgetS - 4) {
        log(`skipping ${t.name}: the ${cfg.budgetS} s budget is nearly spent`);
        continue;
      }
      out.push(await measure(t, t.name === 'direct' ? undefined : sidecar, adminPort, ports));
    }
    if (cfg.record && out.length > 0) await record(out, adminPort, ports);
    for (const r of out) {
      log(
        `  ${r.target.name.padEnd(8)} ${fmt(r.load.rps, 0).padStart(6)} req/s  p50 ${fmt(r.rec?.p50Ms, 2)} ms  p99 ${fmt(r.rec?.p99Ms, 2)} ms (wrk: ${fmt(r.load.p50Ms, 2)} / ${fmt(r.load.p99Ms, 2)})  proxy ${fmt(r.proxyCpuUsPerReq, 0)} µs/req` +
          `${r.shares ? `  shares ${r.shares.map((s) => (s * 100).toFixed(1)).join('/')} %` : ''}${r.load.failed ? `  failed ${r.load.failed}` : ''}${r.rec?.errors ? `  recording errors ${r.rec.errors}` : ''}`,
      );
    }
    return out;
  } finally {
    await stopAll();
    if (tmp === undefined) {
      /* the rig never started */
    } else if (process.env.BENCH_KEEP_TMP === '1') process.stderr.write(`bench:lb: kept ${tmp}\n`);
    else rmSync(tmp, { recursive: true, force: true });
  }
}

// ---- report -----------------------------------------------------------------------

async function main(): Promise<void> {
  installCleanupHandlers();
  log(
    `${osCpus().length} CPUs (${osCpus()[0]?.model ?? '?'}), ${pinning ? `servers on CPU ${cfg.serverCpu}, wrk and the recording client on CPU ${cfg.loadCpu}` : 'no pinning'}; Node ${process.version}; ` +
      `${FROM_DIST ? 'sidecar and pickers from dist/' : 'sidecar and pickers from the sources (tsx)'}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`,
  );
  const costs = pickCosts();
  const lines: string[] = ['## Load balancing', ''];
  let results: Result[] = [];
  if (!cfg.picksOnly) results = await latencyBench();
  if (results.length > 0) {
    lines.push(
      `3 HTTP/1.1 endpoints, the third adds 50 ms to 20 % of its responses (seeded); ${cfg.connections} keep-alive connections, ${cfg.warmup} s wrk warm-up, then ${cfg.seconds} s of wrk -t1 ` +
        `(req/s, proxy CPU${cfg.record ? '' : ', shares'})${cfg.record ? ` then the recording client over all targets in ${cfg.sliceMs} ms turns, ${cfg.seconds} s each (p50/p99 of every request, shares); "wrk p99" is wrk's own figure, corrected for coordinated omission` : ''}; access log ${cfg.accessLog ? 'on' : 'off'}.`,
      '',
      '| target | req/s | p50 ms | p99 ms | wrk p99 ms | proxy CPU µs/req | share per endpoint (sick last) |',
      '|---|---:|---:|---:|---:|---:|---|',
    );
    for (const r of results) {
      lines.push(
        `| ${r.target.name} (${r.target.note}) | ${fmt(r.load.rps, 0)} | ${fmt(r.rec?.p50Ms, 2)} | ${fmt(r.rec?.p99Ms, 2)} | ${fmt(r.load.p99Ms, 2)} | ${r.target.name === 'direct' ? '-' : fmt(r.proxyCpuUsPerReq, 0)} | ${r.shares ? r.shares.map((s) => `${(s * 100).toFixed(1)} %`).join(' / ') : '-'} |`,
      );
    }
    const ratio = (of: (r: Result) => number | null | undefined, n: string): number => {
      const a = results.find((r) => r.target.name === n);
      const h = results.find((r) => r.target.name === 'healthy');
      const x = a ? of(a) : undefined;
      const y = h ? of(h) : undefined;
      return x === null || x === undefined || y === null || y === undefined ? NaN : x / y;
    };
    const rec = (r: Result): number | undefined => r.rec?.p99Ms;
    const wrk = (r: Result): number | null => r.load.p99Ms;
    lines.push(
      '',
      `p99 / the healthy pair's p99: peak EWMA ${fmt(ratio(rec, 'ewma'), 2)} (goal ≤ 2), least request ${fmt(ratio(rec, 'lr'), 2)}, round robin ${fmt(ratio(rec, 'rr'), 2)}; ` +
        `by wrk's corrected figures ${fmt(ratio(wrk, 'ewma'), 2)}, ${fmt(ratio(wrk, 'lr'), 2)}, ${fmt(ratio(wrk, 'rr'), 2)}.`,
      '',
    );
  }
  lines.push(
    `Picking cost (CPU time of this process, best of 3 × 200k picks, ${FROM_DIST ? 'compiled build (dist/)' : 'sources through tsx (run `npm run build` for production figures)'}; goal ≤ 2 µs per request):`,
    '',
    '| policy | µs/pick (3 endpoints) | µs/pick + attempt accounting | µs/pick, 3 zones spilling |',
    '|---|---:|---:|---:|',
    ...costs.map((c) => `| ${c.policy} | ${c.plain.toFixed(3)} | ${c.withAttempt.toFixed(3)} | ${c.zoned.toFixed(3)} |`),
    '',
    `(total ${elapsedS().toFixed(0)} s; load average at the end ${loadavg().map((l) => l.toFixed(1)).join(' ')})`,
  );
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch(async (err: unknown) => {
  log(`failed: ${(err as Error).stack ?? String(err)}`);
  await stopAll();
  process.exit(1);
});
