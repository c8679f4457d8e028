/**
 * HTTP/2 rapid reset (CVE-2023-44487) against a real sidecar, bounded: the
 * figures of issue 19 point 1. A child process runs an h2c backend and the
 * sidecar (so the attack and the measuring clients here do not share its
 * event loop); this process attacks it for --seconds over raw HTTP/2
 * connections (HEADERS + RST_STREAM pairs, written as fast as the socket
 * takes them, reconnecting whenever the sidecar ends a connection), while a
 * legitimate client on its own connection sends a request every
 * --interval-ms. Prints the time from a connection's first attack byte to its
 * GOAWAY, the attack's streams that reached the backend, the legitimate
 * requests' latency, and the sidecar's RSS before and after, split into the
 * V8 heap, glibc's main arena (the [heap] mapping: nghttp2's and Node's
 * native allocations) and the change per kind of mapping of
 * /proc/PID/smaps (V8's 256 KiB pages, [heap], files, other anonymous). With
 * --malloc-trim (needs gdb and ptrace) it then calls malloc_trim(0) in the
 * sidecar and reports RSS again: what that gives back was free memory glibc
 * kept, not live memory. --warmup N requests (50; 50 at a time past the
 * first 50) come first, and both measurements follow 2 s to settle;
 * --max-semi-space-size N starts the sidecar's process with that V8 flag
 * (docs/benchmarks.md: what the young generation does to the figure);
 * --control sends ordinary requests (50 at a time) instead of the attack.
 *
 *   npm run bench:rapid-reset -- [--seconds 5] [--interval-ms 20] [--pairs-per-write 500] [--warmup 50]
 *                                [--max-semi-space-size MiB] [--control] [--malloc-trim]
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import type net from 'node:net';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cluster, listener, prefixRoute, routes } from '../test/support/config-docs.js';
import { FRAME, headersFrame, rawH2, rstFrame } from '../test/support/h2-raw.js';
import { startTestSidecar } from '../test/support/sidecar-harness.js';

const CANCEL = 0x8;

interface Stats {
  readonly rss: number;
  /** V8 heap in use after the GC: tells retained objects from pages the allocator keeps. */
  readonly heapUsed: number;
  /** V8 heap committed (heapTotal): pages V8 keeps for its generations, used or not. */
  readonly heapTotal: number;
  /** Resident bytes of glibc's main arena (the [heap] mapping of /proc/self/smaps). */
  readonly mainArena: number;
  readonly attackSeen: number;
  readonly legitSeen: number;
  /** Resident bytes per mapping (start address → [rss, size, name]). */
  readonly mappings: Record<string, [number, number, string]>;
}

type FromChild = { kind: 'ready'; port: number } | ({ kind: 'stats' } & Stats);

async function sidecarRole(): Promise<void> {
  const seen = { attack: 0, legit: 0 };
  const backend = http2.createServer();
  backend.on('stream', (stream, headers) => {
    if (String(headers[':path']).startsWith('/attack')) seen.attack++;
    else seen.legit++;
    stream.on('error', () => {});
    stream.on('end', () => {
      if (stream.closed || stream.destroyed) return;
      stream.respond({ ':status': 200 });
      stream.end('ok');
    });
    stream.resume();
  });
  await new Promise<void>((res) => backend.listen(0, '127.0.0.1', () => res()));
  const sc = await startTestSidecar([
    listener('main'),
    routes('main', [prefixRoute('/', 'be')]),
    cluster('be', [(backend.address() as net.AddressInfo).port], 'UPSTREAM_PROTOCOL_HTTP2'),
  ]);
  // The harness keeps every access-log and log line in memory; drop them so RSS measures the sidecar.
  const trim = setInterval(() => void (sc.access.splice(0), sc.logs.splice(0)), 200);
  trim.unref();
  process.on('message', (m: string) => {
    if (m === 'stats') {
      (globalThis as { gc?: () => void }).gc?.();
      const mu = process.memoryUsage();
      const mappings = mappingRss();
      // glibc's main arena is the [heap] mapping (grown with brk).
      const mainArena = Object.values(mappings).find(([, , name]) => name === '[heap]')?.[0] ?? 0;
      process.send!({ kind: 'stats', rss: mu.rss, heapUsed: mu.heapUsed, heapTotal: mu.heapTotal, mainArena, mappings, attackSeen: seen.attack, legitSeen: seen.legit } satisfies FromChild);
    } else if (m === 'exit') void sc.close().then(() => process.exit(0));
  });
  process.send!({ kind: 'ready', port: sc.port() } satisfies FromChild);
}

/** Rss of every mapping of /proc/self/smaps. */
function mappingRss(): Record<string, [number, number, string]> {
  const out: Record<string, [number, number, string]> = {};
  let cur: [number, number, string] | undefined;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (m) {
      cur = [0, parseInt(m[2]!, 16) - parseInt(m[1]!, 16), m[3] ?? ''];
      out[m[1]!] = cur;
      continue;
    }
    const r = /^Rss:\s+(\d+) kB/.exec(line);
    if (r && cur) cur[0] = 1024 * Number(r[1]);
  }
  return out;
}

function ask(child: ChildProcess): Promise<Stats> {
  return new Promise((resolve) => {
    const on = (m: FromChild): void => {
      if (m.kind !== 'stats') return;
      child.off('message', on);
      resolve(m);
    };
    child.on('message', on);
    child.send('stats');
  });
}

function pct(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '5' },
      'interval-ms': { type: 'string', default: '20' },
      'pairs-per-write': { type: 'string', default: '500' },
      deadline: { type: 'string', default: '60' },
      'malloc-trim': { type: 'boolean', default: false },
      warmup: { type: 'string', default: '50' },
      control: { type: 'boolean', default: false },
      'max-semi-space-size': { type: 'string' },
    },
  });
  const seconds = Number(values.seconds);
  const intervalMs = Number(values['interval-ms']);
  const perWrite = Number(values['pairs-per-write']);
  const kill = setTimeout(() => {
    console.error('deadline reached');
    process.exit(2);
  }, Number(values.deadline) * 1000);
  kill.unref();

  const child = fork(fileURLToPath(import.meta.url), ['--role-sidecar'], {
    execArgv: ['--import', 'tsx', '--expose-gc', ...(values['max-semi-space-size'] ? [`--max-semi-space-size=${values['max-semi-space-size']}`] : [])],
  });
  const port = await new Promise<number>((resolve) => child.on('message', (m: FromChild) => m.kind === 'ready' && resolve(m.port)));
  // Warm up: the upstream connection and the code paths the legitimate client uses.
  const legit = http2.connect(`http://127.0.0.1:${port}`);
  legit.on('error', () => {});
  const one = (): Promise<{ ms: number; ok: boolean }> =>
    new Promise((resolve) => {
      const t0 = performance.now();
      const req = legit.request({ ':path': '/legit' }, { endStream: true });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('error', () => {});
      req.resume();
      req.on('close', () => resolve({ ms: performance.now() - t0, ok: status === 200 }));
    });
  // --warmup N: N requests, 50 at a time after the first 50 (a sidecar in service has its young generation resident).
  const warmup = Number(values.warmup);
  for (let i = 0; i < Math.min(50, warmup); i++) await one();
  for (let i = 50; i < warmup; i += 50) await Promise.all(Array.from({ length: Math.min(50, warmup - i) }, one));
  // Measured as "after" is: once the sidecar has settled for the same 2 s.
  await new Promise((res) => setTimeout(res, 2000));
  const before = await ask(child);

  const latencies: number[] = [];
  let failed = 0;
  let attacking = true;
  const legitLoop = (async () => {
    while (attacking) {
      const started = performance.now();
      const r = await one();
      latencies.push(r.ms);
      if (!r.ok) failed++;
      const wait = intervalMs - (performance.now() - started);
      if (wait > 0) await new Promise((res) => setTimeout(res, wait));
    }
  })();

  const toGoaway: number[] = [];
  const goawayCodes = new Map<number, number>();
  let streamsSent = 0;
  let connections = 0;
  /** Connections the sidecar closed before the client read a GOAWAY (it may have been sent: a close with unread data is a TCP RST). */
  let noGoaway = 0;
  const attackOne = async (): Promise<void> => {
    const r = rawH2(port);
    connections++;
    await r.frame((f) => f.type === FRAME.SETTINGS).catch(() => undefined);
    const t0 = performance.now();
    let id = 1;
    let gotGoaway = false;
    void r.frame((f) => f.type === FRAME.GOAWAY, 10_000).then(
      (f) => {
        gotGoaway = true;
        toGoaway.push(performance.now() - t0);
        const code = f.payload.readUInt32BE(4);
        goawayCodes.set(code, (goawayCodes.get(code) ?? 0) + 1);
      },
      () => undefined,
    );
    while (!gotGoaway && !r.sock.destroyed && attacking && id < 2 ** 31 - 2 * perWrite) {
      const frames: Buffer[] = [];
      for (let i = 0; i < perWrite; i++, id += 2) frames.push(headersFrame(id, '/attack'), rstFrame(id, CANCEL));
      streamsSent += perWrite;
      if (!r.sock.write(Buffer.concat(frames))) await new Promise((res) => r.sock.once('drain', res).once('close', res));
      else await new Promise((res) => setImmediate(res));
    }
    if (!gotGoaway) noGoaway++;
    r.sock.destroy();
    await r.closed;
  };
  const attackEnd = Date.now() + seconds * 1000;
  if (values.control) {
    // The control: ordinary requests instead of the attack, 50 at a time for as long (what traffic alone does to RSS).
    while (Date.now() < attackEnd) await Promise.all(Array.from({ length: 50 }, one));
  } else while (Date.now() < attackEnd) await attackOne();
  attacking = false;
  await legitLoop;
  // Let the sidecar settle (closed connections collected), then measure.
  await new Promise((res) => setTimeout(res, 2000));
  const after = await ask(child);
  let trimmed: Stats | undefined;
  if (values['malloc-trim']) {
    execFileSync('gdb', ['-p', String(child.pid), '-batch', '-ex', 'call (int)malloc_trim(0)'], { stdio: 'ignore' });
    trimmed = await ask(child);
  }
  legit.close();
  child.send('exit');

  const sorted = [...latencies].sort((a, b) => a - b);
  const gs = [...toGoaway].sort((a, b) => a - b);
  const mb = (n: number): string => (n / 2 ** 20).toFixed(1);
  console.log(values.control ? `control: ordinary requests for ${seconds} s, 50 at a time, no attack` : `rapid reset, ${seconds} s, ${perWrite} pairs per write`);
  console.log(`  attack connections:           ${connections} (GOAWAY codes: ${[...goawayCodes].map(([c, n]) => `0x${c.toString(16)}×${n}`).join(', ') || 'none'}; ${noGoaway} closed before one was read)`);
  console.log(`  time to GOAWAY:               median ${pct(gs, 50).toFixed(1)} ms, max ${(gs[gs.length - 1] ?? NaN).toFixed(1)} ms`);
  console.log(`  attack streams sent:          ${streamsSent}`);
  const reached = after.attackSeen - before.attackSeen;
  console.log(`  reached the upstream:         ${reached} (${((100 * reached) / Math.max(1, streamsSent)).toFixed(3)} %)`);
  console.log(`  other connection:             ${sorted.length} requests, ${failed} failed, p50 ${pct(sorted, 50).toFixed(1)} ms, p99 ${pct(sorted, 99).toFixed(1)} ms, max ${(sorted[sorted.length - 1] ?? NaN).toFixed(1)} ms`);
  console.log(`  sidecar RSS:                  before ${mb(before.rss)} MiB, after ${mb(after.rss)} MiB (${after.rss >= before.rss ? '+' : ''}${mb(after.rss - before.rss)} MiB)`);
  const delta = (a: number, b: number): string => `before ${mb(a)} MiB, after ${mb(b)} MiB (${b >= a ? '+' : ''}${mb(b - a)} MiB)`;
  console.log(`  sidecar V8 heap used:         ${delta(before.heapUsed, after.heapUsed)}`);
  console.log(`  sidecar V8 heap committed:    ${delta(before.heapTotal, after.heapTotal)}`);
  console.log(`  sidecar glibc main arena:     ${delta(before.mainArena, after.mainArena)}`);
  const cats = new Map<string, number>();
  const add = (k: string, d: number): void => void cats.set(k, (cats.get(k) ?? 0) + d);
  const kindOf = (size: number, name: string): string => (name ? (name.startsWith('/') ? 'files' : name) : size === 256 * 1024 ? 'anon 256 KiB (V8 pages)' : size >= 60 * 2 ** 20 ? 'anon ≥ 60 MiB' : 'anon other');
  for (const [k, [rss, size, name]] of Object.entries(after.mappings)) add(`${kindOf(size, name)}${before.mappings[k] ? '' : ' (new)'}`, rss - (before.mappings[k]?.[0] ?? 0));
  for (const [k, [rss, size, name]] of Object.entries(before.mappings)) if (!after.mappings[k]) add(`${kindOf(size, name)} (gone)`, -rss);
  for (const [k, d] of [...cats].sort((a, b) => b[1] - a[1])) if (Math.abs(d) >= 2 ** 17) console.log(`    ${k}: ${d >= 0 ? '+' : ''}${mb(d)} MiB`);
  if (trimmed) console.log(`  after malloc_trim(0):         RSS ${mb(trimmed.rss)} MiB (${trimmed.rss >= before.rss ? '+' : ''}${mb(trimmed.rss - before.rss)} MiB), main arena ${mb(trimmed.mainArena)} MiB`);
  process.exit(0);
}

if (process.argv.includes('--role-sidecar')) void sidecarRole();
else void main();
