/**
 * Load generator for bench/streaming.ts (run as its own process, pinned to
 * the load CPU): one HTTP/2 connection, `--streams` concurrent
 * server-streaming calls of /outrigger.bench.v1.Firehose/Stream, each asking
 * for `--count` messages of `--size` bytes; a finished call is replaced at
 * once. Messages are counted from their 5-byte gRPC prefixes as the bytes
 * arrive (no decoding: the client should cost little). After `--warmup`
 * seconds it prints `MEASURE`, counts for `--seconds`, prints one JSON line
 * ({messages, bytes, seconds, calls, failed}) and exits. Bounded: every call
 * is cancelled at the end, and a watchdog ends the process.
 */
import http2 from 'node:http2';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    streams: { type: 'string', default: '4' },
    count: { type: 'string', default: '10000' },
    size: { type: 'string', default: '64' },
    warmup: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '3' },
  },
});
const url = new URL(values.url!);
const STREAMS = Number(values.streams);
const COUNT = Number(values.count);
const SIZE = Number(values.size);
const WARMUP_MS = Number(values.warmup) * 1000;
const MEASURE_MS = Number(values.seconds) * 1000;
setTimeout(() => {
  process.stderr.write('firehose-client: watchdog\n');
  process.exit(3);
}, WARMUP_MS + MEASURE_MS + 30_000).unref();

const request = Buffer.alloc(13);
request.writeUInt32BE(8, 1);
request.writeUInt32BE(COUNT, 5);
request.writeUInt32BE(SIZE, 9);

let counting = false;
let stopping = false;
let messages = 0;
let bytes = 0;
let calls = 0;
const failures: string[] = [];
const session = http2.connect(url.origin, { settings: { initialWindowSize: 1 << 20 } });
session.on('error', (e) => failures.push(`session: ${e.message}`));
// A connection window as large as the streams', so flow control is per stream as grpc-js's own client has it.
session.on('connect', () => session.setLocalWindowSize(1 << 24));

function call(): void {
  if (stopping) return;
  const s = session.request({ ':method': 'POST', ':path': url.pathname, 'content-type': 'application/grpc', te: 'trailers' });
  let status: string | undefined;
  let left = 0;
  let head = 0;
  let len = 0;
  let got = 0;
  s.on('data', (c: Buffer) => {
    let off = 0;
    while (off < c.length) {
      if (left > 0) {
        const n = Math.min(left, c.length - off);
        left -= n;
        off += n;
        if (left === 0) got++;
        continue;
      }
      // The 5-byte prefix: flag (1), length (4, big-endian); it may straddle chunks.
      if (head >= 1) len = len * 256 + c[off]!;
      off++;
      if (++head === 5) {
        head = 0;
        left = len;
        len = 0;
        if (left === 0) got++;
      }
    }
    if (counting) {
      messages += got;
      bytes += c.length;
    }
    got = 0;
  });
  s.on('response', (h) => {
    if (h['grpc-status'] !== undefined) status = String(h['grpc-status']);
  });
  s.on('trailers', (t) => (status = String(t['grpc-status'])));
  s.on('error', () => {});
  s.on('close', () => {
    if (stopping) return;
    if (status === '0') {
      if (counting) calls++;
    } else failures.push(`status ${status} rst ${s.rstCode}`);
    if (failures.length > 100) return finish();
    call();
  });
  s.end(request);
}

let t0 = 0;
let cpu0 = process.cpuUsage();
function finish(): void {
  if (stopping) return;
  stopping = true;
  const seconds = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(cpu0);
  // The client's own CPU share of the window: near 1, the client (not the servers) set the pace.
  const clientBusy = (c.user + c.system) / 1e6 / seconds;
  process.stdout.write(JSON.stringify({ messages, bytes, seconds, clientBusy, calls, failed: failures.length, failures: failures.slice(0, 5) }) + '\n');
  session.destroy();
  setTimeout(() => process.exit(0), 50);
}

for (let i = 0; i < STREAMS; i++) call();
setTimeout(() => {
  counting = true;
  t0 = performance.now();
  cpu0 = process.cpuUsage();
  process.stdout.write('MEASURE\n');
  setTimeout(finish, MEASURE_MS);
}, WARMUP_MS);
