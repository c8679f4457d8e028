/**
 * What tracing costs (`npm run bench:tracing`, issue 18): the sidecar's CPU µs
 * per gRPC unary request (BookstoreService/GetShelf, h2load) with tracing off,
 * on at 0 % (every request unsampled, its context passed on), 1 % and 100 % sampling, spans exported over OTLP/HTTP protobuf to a
 * local receiver (in this process, so its CPU is not the sidecar's). Then
 * in-process microbenchmarks: the tracer's calls for one exchange with one
 * attempt (the request path), and the export side's encoding per request
 * (our encoder against the SDK's serializer), against the SDK Tracer.
 *
 * BENCH_SECONDS (3) per window, BENCH_ROUNDS (3); BENCH_MICRO_ONLY=1 skips
 * the end-to-end part. Before/after on a loaded machine:
 * BENCH_SIDECAR_ROOTS=/path/a,/path/b runs one sidecar per root and variant
 * (each root a checkout with its bin/ and dist/ or src/) and alternates the
 * windows round-robin across all of them, so load drifts hit every one alike
 * (each round starting one cell later than the last);
 * BENCH_SIDECAR_DIST=1 runs the roots' built dist/ instead of src/ via tsx.
 * BENCH_VARIANTS=0 %,no-log picks variants by label ('off' always runs;
 * 'no-log', tracing and the access log off, runs only when named: its delta
 * to 'off' is what the access log costs; 'off-b', a second 'off', likewise:
 * its delta is the method's own bias, an A/A control; 'no-istio', tracing off
 * and `--metrics-compat outrigger`: 'off' minus it is what Istio's standard
 * metrics cost).
 * BENCH_CONCURRENT=1 loads every sidecar at once in each round (one h2load
 * each, all on the load CPU, the sidecars sharing theirs): what the machine
 * does meanwhile then hits every variant in the same window, and the paired
 * differences resolve a few µs where one-after-another windows drift by tens.
 */
import http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { Registry } from 'prom-client';
import { ROOT_CONTEXT, SpanKind, trace } from '@opentelemetry/api';
import { BasicTracerProvider, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { runH2load } from './lib/load.js';
import { framedGetShelfRequest, GET_SHELF_PATH } from './lib/bookstore.js';
import { cpuDelta, freePort, installCleanupHandlers, spawnManaged, stop, stopAll, treeCpu, waitForPort, startBackend, type Managed } from './lib/proc.js';
import { systemClock } from '../src/core/clock.js';
import { systemRandom } from '../src/core/random.js';
import { buildTracer, resolveTracing } from '../src/observability/trace-config.js';
import type { SpanSink } from '../src/observability/span-export.js';
import { SpanEncoder, type EncodableSpan } from '../src/observability/span-encoding.js';
import type { ExchangeRecord } from '../src/observability/exchange-record.js';

const ROOT = resolve(import.meta.dirname, '..');
const SECONDS = Number(process.env.BENCH_SECONDS ?? 3);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const SERVER_CPUS = process.env.BENCH_SERVER_CPU ?? '0';
const LOAD_CPUS = process.env.BENCH_LOAD_CPU ?? '1';
const ROOTS = (process.env.BENCH_SIDECAR_ROOTS ?? ROOT).split(',').map((r) => resolve(r.trim()));
const FROM_DIST = process.env.BENCH_SIDECAR_DIST === '1';
/** BENCH_CONCURRENT=1: each round loads every sidecar at once (one h2load each) instead of one after another. */
const CONCURRENT = process.env.BENCH_CONCURRENT === '1';
/** BENCH_NODE_FLAGS: node options for every sidecar (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p` to compare variants' profiles). */
const NODE_FLAGS = (process.env.BENCH_NODE_FLAGS ?? '').split(' ').filter((f) => f !== '');
const ALL_VARIANTS = [
  { label: 'off', flags: [] as string[], accessLog: true },
  { label: '0 %', flags: ['--trace-sampling', '0'], accessLog: true },
  { label: '1 %', flags: ['--trace-sampling', '0.01'], accessLog: true },
  { label: '100 %', flags: ['--trace-sampling', '1'], accessLog: true },
  // Tracing off and the access log off too: against 'off', what the access log costs (issue 14: ≤ 10 %).
  { label: 'no-log', flags: [] as string[], accessLog: false },
  // A second 'off' (A/A control): its delta to 'off' is the method's own bias and noise.
  { label: 'off-b', flags: [] as string[], accessLog: true },
  // Tracing off and Istio's standard metrics off (`--metrics-compat outrigger`): 'off' minus this is what
  // Istio's metrics cost per request (issue 18: ≤ 5 µs).
  { label: 'no-istio', flags: [] as string[], accessLog: true, args: ['--metrics-compat', 'outrigger'] },
];
const ON_REQUEST = new Set(['no-log', 'off-b', 'no-istio']);
/** BENCH_VARIANTS: the labels to run (default: all but no-log and off-b); 'off' is always run, as every delta's reference. */
const VARIANTS = ALL_VARIANTS.filter((v) =>
  v.label === 'off' || (process.env.BENCH_VARIANTS ? process.env.BENCH_VARIANTS.split(',').includes(v.label) : !ON_REQUEST.has(v.label)),
);

const med = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/** A local OTLP/HTTP receiver: accepts every export (200), counts requests and bytes. */
async function receiver(): Promise<{ port: number; requests: () => number; bytes: () => number; close(): void }> {
  let requests = 0;
  let bytes = 0;
  const srv = http.createServer((req, res) => {
    req.on('data', (c: Buffer) => (bytes += c.length));
    req.on('end', () => {
      requests++;
      res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
    });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  return { port: (srv.address() as { port: number }).port, requests: () => requests, bytes: () => bytes, close: () => srv.close() };
}

/** GC seconds and collections so far, by kind (minor, major, incremental, weakcb), from the sidecar's /metrics (prom-client's GC histogram). */
async function gcTotals(adminPort: number): Promise<Map<string, { count: number; sum: number }>> {
  const text = await (await fetch(`http://127.0.0.1:${adminPort}/metrics`)).text();
  const out = new Map<string, { count: number; sum: number }>();
  for (const m of text.matchAll(/^outrigger_nodejs_gc_duration_seconds_(count|sum)\{kind="(\w+)"\} (\S+)$/gm)) {
    const e = out.get(m[2]!) ?? { count: 0, sum: 0 };
    e[m[1] as 'count' | 'sum'] = Number(m[3]);
    out.set(m[2]!, e);
  }
  return out;
}

async function sidecar(root: string, dir: string, backendPort: number, otlpPort: number, flags: string[], accessLog: boolean, args: readonly string[] = []): Promise<{ proc: Managed; port: number; adminPort: number }> {
  const port = await freePort();
  const adminPort = await freePort();
  const conf = join(dir, `sidecar-${port}.yaml`);
  const docs = [
    { apiVersion: 'outrigger.io/v1', kind: 'Cluster', metadata: { name: 'g' }, spec: { type: 'DISCOVERY_TYPE_STATIC', protocol: 'UPSTREAM_PROTOCOL_HTTP2', endpoints: [{ address: { host: '127.0.0.1', port: backendPort } }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'RouteConfiguration', metadata: { name: 'r' }, spec: { virtualHosts: [{ name: 'r', domains: ['*'], routes: [{ match: { prefix: '/' }, route: { cluster: 'g' } }] }] } },
    { apiVersion: 'outrigger.io/v1', kind: 'Listener', metadata: { name: 'main' }, spec: { address: { host: '127.0.0.1', port }, routeConfig: 'r', ...(accessLog ? {} : { accessLog: { disabled: true } }) } },
  ];
  writeFileSync(conf, docs.map((d) => stringify(d)).join('---\n'));
  const tracing = flags.length > 0 ? ['--trace-otlp-endpoint', `http://127.0.0.1:${otlpPort}`, ...flags] : [];
  const proc = spawnManaged('sidecar', process.execPath, [...NODE_FLAGS, join(root, 'bin', 'outrigger.js'), 'sidecar', '--config', conf, '--admin-port', String(adminPort), ...tracing, ...args], {
    cpus: SERVER_CPUS,
    cwd: root,
    env: { ...process.env, OUTRIGGER_FROM_SOURCE: FROM_DIST ? '' : '1', OUTRIGGER_LOG_LEVEL: 'warn' },
    logFile: join(dir, `sidecar-${port}.log`),
  });
  if (!(await waitForPort(port, 120_000, () => proc.exitCode() === undefined))) throw new Error(`sidecar did not listen (log: ${join(dir, `sidecar-${port}.log`)})`);
  return { proc, port, adminPort };
}

async function endToEnd(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'outrigger-bench-tracing-'));
  const otlp = await receiver();
  try {
    const bodyFile = join(dir, 'getshelf.bin');
    writeFileSync(bodyFile, framedGetShelfRequest(1n));
    const backendPort = (await startBackend('grpc', LOAD_CPUS)).port;
    // Every (root, variant) sidecar runs at once; each round measures all of them in turn.
    const cells: { root: string; v: (typeof VARIANTS)[number]; sc: { proc: Managed; port: number; adminPort: number }; cpu: number[]; rps: number[]; gc: number[]; scav: number[] }[] = [];
    // Variant-major order: the same variant of each root is measured back to back.
    for (const v of VARIANTS) for (const root of ROOTS) cells.push({ root, v, sc: await sidecar(root, dir, backendPort, otlp.port, v.flags, v.accessLog, 'args' in v ? v.args : []), cpu: [], rps: [], gc: [], scav: [] });
    const run = (port: number, s: number) =>
      runH2load({ url: `http://127.0.0.1:${port}${GET_SHELF_PATH}`, seconds: s, clients: 10, streams: 10, dataFile: bodyFile, headers: ['content-type: application/grpc', 'te: trailers'], cpus: LOAD_CPUS });
    for (const c of cells) await run(c.sc.port, 2); // warm-up (JIT, connections, the exporter's import)
    const exportsBefore = otlp.requests();
    const measure = async (c: (typeof cells)[number], i: number): Promise<void> => {
      const g0 = await gcTotals(c.sc.adminPort);
      const c0 = treeCpu(c.sc.proc.pid);
      const r = await run(c.sc.port, SECONDS);
      const cpu = cpuDelta(c0, treeCpu(c.sc.proc.pid));
      const g1 = await gcTotals(c.sc.adminPort);
      // A loaded machine can starve a window (h2load sees no answer in time): say so, and keep the other rounds.
      if (r.failed > 0 || !r.ok || r.succeeded === 0) {
        process.stderr.write(`tracing ${c.v.label} (${c.root}): round ${i + 1} failed (${r.failed} failed ${r.error ?? ''}); not counted\n`);
        c.cpu.push(NaN);
        return;
      }
      c.cpu.push((cpu * 1e6) / r.succeeded);
      c.rps.push(r.rps);
      // Where the CPU goes besides the request path: GC pause time per request (all kinds), scavenges per 1,000 requests.
      let gcSec = 0;
      for (const [k, e] of g1) gcSec += e.sum - (g0.get(k)?.sum ?? 0);
      c.gc.push((gcSec * 1e6) / r.succeeded);
      c.scav.push((((g1.get('minor')?.count ?? 0) - (g0.get('minor')?.count ?? 0)) * 1000) / r.succeeded);
    };
    for (let i = 0; i < ROUNDS; i++) {
      if (CONCURRENT) {
        // Every cell loaded at once for the same window: whatever else the machine does hits them all alike.
        await Promise.all(cells.map((c) => measure(c, i)));
      } else {
        // Each round starts one cell later, so no variant is always measured first or last in a round.
        for (let j = 0; j < cells.length; j++) await measure(cells[(i + j) % cells.length]!, i);
      }
      process.stderr.write(`round ${i + 1}/${ROUNDS} done, load ${loadavg()[0]!.toFixed(2)}\n`);
    }
    // "vs off": the median of each round's difference to the same root's off window of that round
    // (measured minutes apart at most), which drifts less than the difference of the medians.
    const rows: string[] = [];
    const ok = (a: number[]): number[] => a.filter((x) => !Number.isNaN(x));
    for (const c of cells) {
      const off = cells.find((o) => o.root === c.root && o.v.label === 'off')!;
      const m = ok(c.cpu).length === 0 ? NaN : med(ok(c.cpu));
      const paired = ok(c.cpu.map((x, i) => x - off.cpu[i]!));
      const delta = c === off || paired.length === 0 ? '' : `${med(paired) >= 0 ? '+' : ''}${med(paired).toFixed(1)}`;
      const gc = c.gc.length === 0 ? '-' : med(c.gc).toFixed(1);
      const scav = c.scav.length === 0 ? '-' : med(c.scav).toFixed(2);
      rows.push(`| ${ROOTS.length > 1 ? `${c.root} ` : ''}${c.v.label} | ${Number.isNaN(m) ? '-' : m.toFixed(1)} | ${delta} | ${gc} | ${scav} | ${c.rps.length === 0 ? '-' : Math.round(med(c.rps))} | ${c.cpu.map((x) => x.toFixed(0)).join(' ')} |`);
      await stop(c.sc.proc);
    }
    return `| tracing | sidecar CPU µs/req (median of ${ROUNDS}) | vs off (median of paired rounds) | GC µs/req | scavenges per 1k req | req/s | rounds |\n|---|---|---|---|---|---|---|\n${rows.join('\n')}\n\nOTLP exports received: ${otlp.requests() - exportsBefore}\n`;
  } finally {
    otlp.close();
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The request path alone — begin, one attempt (inject, span start/end), the
 * server span's end — with spans going to a queue-like array; then the
 * export side's work per request (encoding both spans of 256 requests per
 * batch): our encoder against the SDK's serializer on the same records.
 */
function micro(): string {
  const N = 200_000;
  let held: ReadableSpan[] = [];
  const sink: SpanSink = {
    onEnd: (sp) => {
      held.push(sp);
      if (held.length >= 512) held = [];
    },
    forceFlush: async () => undefined,
    shutdown: async () => undefined,
  };
  const ex: ExchangeRecord = {
    method: 'POST', authority: 'bench', path: GET_SHELF_PATH, protocol: 'grpc', status: 200, grpc_status: '0', duration_ms: 0.4, bytes_in: 7, bytes_out: 20,
    upstream: '127.0.0.1:1', route: 'r', cluster: 'g', request_id: '8e0f5b9c-3a0d-4f3e-9b7e-1c2d3e4f5a6b', trace_id: undefined, flags: undefined, headers: undefined, source_principal: undefined, upstream_principal: undefined,
  };
  const rows: string[] = [];
  const time = (label: string, fn: () => void, n = N, per = 1): void => {
    for (let i = 0; i < Math.max(10, n / 10); i++) fn();
    const t0 = process.cpuUsage();
    for (let i = 0; i < n; i++) fn();
    const d = process.cpuUsage(t0);
    rows.push(`| ${label} | ${(((d.user + d.system) / n / per) * 1000).toFixed(0)} |`);
  };
  const clock = systemClock();
  const oneExchange = (tr: ReturnType<typeof buildTracer>, h: Record<string, unknown>): void => {
    const start = clock.monotonicMs();
    const t = tr.begin(h);
    const up: Record<string, unknown> = { ':path': GET_SHELF_PATH, ':method': 'POST', 'content-type': 'application/grpc' };
    const s = tr.attemptStarted(t, up, 'POST', GET_SHELF_PATH);
    if (s !== undefined) tr.attemptEnded(s, { cluster: 'g', endpointHost: '127.0.0.1', endpointPort: 1, index: 0, kind: 'first', status: 200, grpcStatus: '0', flag: undefined, result: 'success' });
    tr.exchangeEnded(t, ex, start, clock.monotonicMs());
  };
  for (const ratio of ['0.01', '1']) {
    const tr = buildTracer(resolveTracing({ endpoint: 'http://127.0.0.1:4318', sampling: ratio }, {})!, { clock, random: systemRandom(), registry: new Registry(), sink });
    for (const incoming of ['no parent', 'unsampled parent arrives', 'sampled parent arrives'] as const) {
      const h: Record<string, unknown> = incoming === 'no parent' ? {} : { traceparent: `00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0${incoming === 'sampled parent arrives' ? 1 : 0}` };
      time(`request path: outrigger tracer, ${ratio === '1' ? '100 %' : '1 %'}, ${incoming}`, () => oneExchange(tr, h));
    }
  }
  // The export side: 256 requests' spans per batch, encoded by ours and by the SDK's serializer.
  const batch: ReadableSpan[] = [];
  const tr = buildTracer(resolveTracing({ endpoint: 'http://127.0.0.1:4318', sampling: '1' }, {})!, {
    clock, random: systemRandom(), registry: new Registry(), sink: { onEnd: (sp) => void batch.push(sp), forceFlush: async () => undefined, shutdown: async () => undefined },
  });
  for (let i = 0; i < 256; i++) oneExchange(tr, {});
  const enc = new SpanEncoder();
  time('export: our OTLP encoder, per request (2 spans)', () => void enc.encode(batch as unknown as EncodableSpan[]), 400, 256);
  time("export: the SDK's ProtobufTraceSerializer, per request (2 spans)", () => void ProtobufTraceSerializer.serializeRequest(batch), 400, 256);
  // The SDK's Tracer making the same two spans (no-op processor): what the request path would pay with it.
  const provider = new BasicTracerProvider({ spanProcessors: [{ onStart: () => undefined, onEnd: () => void held.push(), forceFlush: async () => undefined, shutdown: async () => undefined }] });
  const sdk = provider.getTracer('bench');
  time('request path: SDK Tracer, 100 %, same spans and attributes', () => {
    const server = sdk.startSpan('outrigger.examples.bookstore.v1.BookstoreService/GetShelf', {
      kind: SpanKind.SERVER,
      attributes: { 'http.request.method': 'POST', 'url.path': GET_SHELF_PATH, 'rpc.system': 'grpc', 'rpc.service': 'outrigger.examples.bookstore.v1.BookstoreService', 'rpc.method': 'GetShelf', 'outrigger.route': 'r', 'outrigger.cluster': 'g' },
    });
    const client = sdk.startSpan('GetShelf', { kind: SpanKind.CLIENT, attributes: { 'server.address': '127.0.0.1', 'outrigger.attempt': 'first' } }, trace.setSpan(ROOT_CONTEXT, server));
    client.setAttribute('rpc.grpc.status_code', 0);
    client.end();
    server.setAttributes({ 'http.response.status_code': 200, 'rpc.grpc.status_code': 0 });
    server.end();
  });
  return `| in process (${N} iterations; export: 400 batches) | ns per request |\n|---|---|\n${rows.join('\n')}\n`;
}

async function main(): Promise<void> {
  installCleanupHandlers();
  const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
  const out: string[] = [`load average before: ${load()}`];
  out.push(micro());
  if (process.env.BENCH_MICRO_ONLY !== '1') out.push(await endToEnd());
  out.push(`load average after: ${load()}`);
  process.stdout.write(out.join('\n') + '\n');
}

await main();
