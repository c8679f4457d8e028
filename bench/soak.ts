/**
 * Soak run (not in CI): mixed traffic through one sidecar for --minutes, with
 * a config swap every --swap-seconds, reporting the sidecar's RSS and
 * event-loop delay over time and every failed request. The sidecar and its
 * backends run in a child process (so the load generator does not share its
 * event loop); this process sends, with --concurrency workers, gRPC unary
 * calls (grpc-js), HTTP/2 requests, HTTP/1.1 JSON requests and WebSocket
 * round trips, in turn.
 *
 *   npm run soak -- --minutes 30 [--swap-seconds 5] [--concurrency 8] [--sample-seconds 30]
 *
 * Goal (issue 19): RSS growth under 5 % after warm-up (the first sample
 * after one minute), no failed requests.
 */
import { fork, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import http2 from 'node:http2';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import { startBookstore } from '../examples/bookstore/server.js';
import { startH1Echo, startH2Echo, startWsEcho } from '../test/support/backends.js';
import { bookstoreClient } from '../test/support/bookstore-client.js';
import { cluster, listener, prefixRoute, routes, type Doc } from '../test/support/config-docs.js';
import { startTestSidecar } from '../test/support/sidecar-harness.js';

const SVC_PREFIX = '/outrigger.examples.bookstore.v1.BookstoreService/';

interface Sample {
  readonly kind: 'sample';
  readonly rss: number;
  readonly eldP99Ms: number;
  readonly eldMaxMs: number;
  readonly swaps: number;
  /** Access-log lines of sidecar answers ≥ 500 since the last sample (at most 20): why a request failed. */
  readonly errors: string[];
}
type FromChild = { kind: 'ready'; port: number } | Sample;

async function sidecarRole(swapSeconds: number): Promise<void> {
  const [h1, h2, ws, store] = await Promise.all([startH1Echo(), startH2Echo(), startWsEcho(), startBookstore()]);
  const docs = (variant: number): Doc[] => [
    listener('main'),
    routes('main', [
      // The variant changes the table (an extra route on odd swaps) so every swap is a real new version.
      ...(variant % 2 ? [prefixRoute(`/never-${variant}`, 'h1')] : []),
      prefixRoute(SVC_PREFIX, 'store'),
      prefixRoute('/h2', 'h2c'),
      prefixRoute('/ws', 'wsc'),
      prefixRoute('/', 'h1'),
    ]),
    cluster('h1', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
    cluster('h2c', [h2.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    cluster('store', [store.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    cluster('wsc', [ws.port], 'UPSTREAM_PROTOCOL_HTTP1'),
  ];
  const sc = await startTestSidecar(docs(0));
  const errors: string[] = [];
  const trim = setInterval(() => {
    for (const l of sc.access.splice(0)) {
      if (Number(l.status) >= 500 && errors.length < 20) errors.push(JSON.stringify(l));
    }
  }, 1000);
  trim.unref();
  let swaps = 0;
  const swap = setInterval(() => void sc.writeConfig(docs(++swaps)), swapSeconds * 1000);
  swap.unref();
  const eld = monitorEventLoopDelay({ resolution: 10 });
  eld.enable();
  process.on('message', (m: string) => {
    if (m === 'sample') {
      (globalThis as { gc?: () => void }).gc?.();
      process.send!({ kind: 'sample', rss: process.memoryUsage().rss, eldP99Ms: eld.percentile(99) / 1e6, eldMaxMs: eld.max / 1e6, swaps, errors: errors.splice(0) } satisfies FromChild);
      eld.reset();
    } else if (m === 'exit') process.exit(0);
  });
  process.send!({ kind: 'ready', port: sc.port() } satisfies FromChild);
}

function sample(child: ChildProcess): Promise<Sample> {
  return new Promise((resolve) => {
    const on = (m: FromChild): void => {
      if (m.kind !== 'sample') return;
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
    child.send('sample');
  });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string', default: '30' },
      'swap-seconds': { type: 'string', default: '5' },
      concurrency: { type: 'string', default: '8' },
      'sample-seconds': { type: 'string', default: '30' },
    },
  });
  const minutes = Number(values.minutes);
  const child = fork(fileURLToPath(import.meta.url), ['--role-sidecar', values['swap-seconds']!], { execArgv: ['--import', 'tsx', '--expose-gc'] });
  const port = await new Promise<number>((resolve) => child.on('message', (m: FromChild) => m.kind === 'ready' && resolve(m.port)));
  const base = `127.0.0.1:${port}`;
  const grpc = bookstoreClient(base);
  const h2 = http2.connect(`http://${base}`);
  h2.on('error', () => {});
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const counts = { grpc: 0, h2: 0, h1: 0, ws: 0 };
  const failures = new Map<string, number>();
  const fail = (what: string, e: unknown): void => {
    const key = `${what}: ${(e as Error).message ?? String(e)}`.slice(0, 120);
    failures.set(key, (failures.get(key) ?? 0) + 1);
  };

  const kinds: (() => Promise<void>)[] = [
    async () => {
      await grpc.unary('listShelves', {});
      counts.grpc++;
    },
    () =>
      new Promise<void>((resolve, reject) => {
        const req = h2.request({ ':path': '/h2/soak' }, { endStream: true });
        let status = 0;
        req.on('response', (h) => (status = Number(h[':status'])));
        req.on('error', reject);
        req.resume();
        req.on('close', () => (status === 200 ? (counts.h2++, resolve()) : reject(new Error(`h2 status ${status}`))));
      }),
    () =>
      new Promise<void>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port, path: '/h1/soak', method: 'POST', agent, headers: { 'content-type': 'application/json' } }, (res) => {
          res.resume();
          res.on('end', () => (res.statusCode === 200 ? (counts.h1++, resolve()) : reject(new Error(`h1 status ${res.statusCode}`))));
        });
        req.on('error', reject);
        req.end('{"soak":true}');
      }),
    () =>
      new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(`ws://${base}/ws/soak`);
        ws.on('error', reject);
        ws.on('open', () => ws.send('ping'));
        ws.on('message', () => ws.close());
        ws.on('close', () => (counts.ws++, resolve()));
      }),
  ];
  const end = Date.now() + minutes * 60_000;
  const workers = Array.from({ length: Number(values.concurrency) }, async (_, w) => {
    for (let i = w; Date.now() < end; i++) {
      const k = i % kinds.length;
      await kinds[k]!().catch((e) => fail(['grpc', 'h2', 'h1', 'ws'][k]!, e));
    }
  });

  const t0 = Date.now();
  const rows: string[] = [];
  const sidecarErrors: string[] = [];
  let warm: number | undefined;
  let last: Sample | undefined;
  const mb = (n: number): string => (n / 2 ** 20).toFixed(1);
  const sampler = (async () => {
    while (Date.now() < end) {
      await new Promise((r) => setTimeout(r, Math.min(Number(values['sample-seconds']) * 1000, Math.max(0, end - Date.now()))));
      const s = await sample(child);
      last = s;
      sidecarErrors.push(...s.errors);
      const min = (Date.now() - t0) / 60_000;
      if (warm === undefined && min >= 1) warm = s.rss;
      const total = counts.grpc + counts.h2 + counts.h1 + counts.ws;
      const failed = [...failures.values()].reduce((a, b) => a + b, 0);
      const row = `${min.toFixed(1).padStart(6)} min  RSS ${mb(s.rss).padStart(7)} MiB  loop delay p99 ${s.eldP99Ms.toFixed(1).padStart(6)} ms (max ${s.eldMaxMs.toFixed(0)})  requests ${total}  failed ${failed}  swaps ${s.swaps}`;
      rows.push(row);
      console.log(row);
    }
  })();
  await Promise.all([...workers, sampler]);
  grpc.close();
  h2.close();
  agent.destroy();
  child.send('exit');
  console.log(`\nsoak ${minutes} min: gRPC ${counts.grpc}, h2 ${counts.h2}, HTTP/1.1 ${counts.h1}, WebSocket ${counts.ws}`);
  if (warm !== undefined && last) console.log(`RSS after warm-up ${mb(warm)} MiB, at the end ${mb(last.rss)} MiB (${((100 * (last.rss - warm)) / warm).toFixed(1)} %)`);
  console.log(failures.size ? `failures:\n${[...failures].map(([k, n]) => `  ${n} × ${k}`).join('\n')}` : 'no failed requests');
  if (sidecarErrors.length) console.log(`the sidecar's answers ≥ 500 (access log):\n${sidecarErrors.map((l) => `  ${l}`).join('\n')}`);
  process.exit(failures.size ? 1 : 0);
}

if (process.argv.includes('--role-sidecar')) void sidecarRole(Number(process.argv[process.argv.indexOf('--role-sidecar') + 1]));
else void main();
