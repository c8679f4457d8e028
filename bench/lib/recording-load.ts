/**
 * A latency-recording HTTP/1.1 load client: N keep-alive connections, each
 * sending GETs back to back (like wrk), every request carrying an
 * `x-request-id` so it can be matched against the sidecar's access log.
 * Unlike wrk it keeps every request: id, connection, when it was sent, when
 * the first response byte and the last arrived, and how many reads the
 * response took (a response split over two reads with a gap between them is
 * the mark of a Nagle / delayed-ACK stall). Bounded by time and count.
 *
 * Run as a program (bench/lb.ts spawns it pinned to the load CPU):
 *   node --import tsx bench/lib/recording-load.ts --port P --connections 16 --seconds 6 --out FILE [--id-prefix x]
 * It writes one TSV row per request to FILE and a JSON summary line to stdout.
 */
import * as net from 'node:net';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { runTool } from './proc.js';
import { pct } from './stats.js';

export interface RecordingSpec {
  host: string;
  port: number;
  connections: number;
  seconds: number;
  /** Stop after this many requests in all (default: unbounded within `seconds`). */
  maxRequests?: number;
  path?: string;
  /** Prefix of every x-request-id (`PREFIX-CONN-N`). */
  idPrefix?: string;
}

export interface RequestSample {
  id: string;
  conn: number;
  /** µs since the run started: request written, first response byte read, response complete. */
  sentUs: number;
  firstByteUs: number;
  doneUs: number;
  status: number;
  /** Socket reads this response arrived in. */
  reads: number;
}

export interface RecordingResult {
  samples: RequestSample[];
  errors: number;
  seconds: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Runs the load; resolves when every connection has stopped (time, count or error). */
export function runRecording(spec: RecordingSpec): Promise<RecordingResult> {
  const t0 = process.hrtime.bigint();
  const nowUs = (): number => Number(process.hrtime.bigint() - t0) / 1000;
  const deadlineUs = spec.seconds * 1e6;
  const max = spec.maxRequests ?? Number.MAX_SAFE_INTEGER;
  const prefix = spec.idPrefix ?? 'rec';
  const samples: RequestSample[] = [];
  let errors = 0;
  let issued = 0;
  return new Promise((resolve) => {
    let open = spec.connections;
    const finished = (): void => {
      if (--open === 0) resolve({ samples, errors, seconds: nowUs() / 1e6 });
    };
    for (let c = 0; c < spec.connections; c++) {
      const sock = net.connect({ host: spec.host, port: spec.port, noDelay: true });
      let n = 0;
      let cur: RequestSample | undefined;
      let buf: Buffer = Buffer.alloc(0);
      let need = -1; // total bytes of the current response once its head is parsed
      let done = false;
      const stop = (): void => {
        if (done) return;
        done = true;
        sock.destroy();
        finished();
      };
      const send = (): void => {
        if (nowUs() >= deadlineUs || issued >= max) return stop();
        issued++;
        const id = `${prefix}-${c}-${n++}`;
        cur = { id, conn: c, sentUs: nowUs(), firstByteUs: -1, doneUs: -1, status: 0, reads: 0 };
        sock.write(`GET ${spec.path ?? '/'} HTTP/1.1\r\nhost: ${spec.host}:${spec.port}\r\nx-request-id: ${id}\r\n\r\n`);
      };
      sock.on('connect', send);
      sock.on('data', (chunk: Buffer) => {
        const r = cur;
        if (r === undefined) return;
        const t = nowUs();
        if (r.firstByteUs < 0) r.firstByteUs = t;
        r.reads++;
        buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
        if (need < 0) {
          const end = buf.indexOf(CRLFCRLF);
          if (end < 0) return;
          const head = buf.subarray(0, end).toString('latin1');
          r.status = Number(head.slice(9, 12));
          const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
          if (!cl) {
            // Only content-length bodies (what the benchmark backends send).
            errors++;
            return stop();
          }
          need = end + 4 + Number(cl[1]);
        }
        if (buf.length < need) return;
        r.doneUs = t;
        samples.push(r);
        buf = buf.subarray(need);
        need = -1;
        cur = undefined;
        send();
      });
      sock.on('error', () => {
        errors++;
        stop();
      });
      sock.on('close', stop);
    }
  });
}

/**
 * The samples as wrk 4.1 reports them: before printing, wrk "corrects" its
 * latency histogram for coordinated omission (wrk.c main → stats_correct in
 * stats.c): with `expected` = run time / (requests per connection), every
 * sample n ≥ 2·expected also adds samples at n − expected, n − 2·expected, …
 * down to expected — the requests a constant-rate client would have sent on
 * that connection while it waited. Integer µs, as wrk. Returns the latencies
 * (µs) with the synthetic ones, sorted.
 */
export function wrkCorrected(latUs: ArrayLike<number>, runUs: number, connections: number): Float64Array {
  const perConn = Math.floor(latUs.length / connections);
  const out: number[] = Array.from(latUs, (v) => Math.floor(v));
  if (perConn > 0) {
    const expected = Math.floor(runUs / perConn);
    for (let i = 0; i < latUs.length; i++) {
      const n = Math.floor(latUs[i]!);
      if (n < 2 * expected) continue;
      for (let m = n - expected; m > expected; m -= expected) out.push(m);
    }
  }
  return Float64Array.from(out).sort();
}

/** What the program prints: percentiles of its own samples (raw), and p99 as wrk would report the same samples. */
export interface RecordingSummary {
  requests: number;
  errors: number;
  seconds: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /** p99 after wrk's coordinated-omission correction (wrkCorrected). */
  wrkStyleP99Ms: number;
  /** Sample count after that correction (requests + the synthetic ones). */
  wrkStyleSamples: number;
}

/**
 * Runs this file as a program in a child pinned to `cpus` (like wrk, so the
 * client does not share the servers' CPU); `out`: keep the per-request TSV.
 */
export async function runRecordingTool(o: { root: string; port: number; connections: number; seconds: number; cpus: string | undefined; idPrefix?: string; out?: string }): Promise<RecordingSummary | { error: string }> {
  const args = ['--import', 'tsx', join(o.root, 'bench/lib/recording-load.ts'), '--port', String(o.port), '--connections', String(o.connections), '--seconds', String(o.seconds)];
  if (o.idPrefix !== undefined) args.push('--id-prefix', o.idPrefix);
  if (o.out !== undefined) args.push('--out', o.out);
  const r = await runTool('recording-load', process.execPath, args, { cpus: o.cpus, timeoutMs: (o.seconds + 30) * 1000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !last.startsWith('{')) return { error: `recording client failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}` };
  return JSON.parse(last) as RecordingSummary;
}

/** The per-request TSV (header line first). */
export function samplesTsv(samples: readonly RequestSample[]): string {
  const rows = ['id\tconn\tsent_us\tfirst_byte_us\tdone_us\tstatus\treads'];
  for (const s of samples) rows.push(`${s.id}\t${s.conn}\t${s.sentUs.toFixed(0)}\t${s.firstByteUs.toFixed(0)}\t${s.doneUs.toFixed(0)}\t${s.status}\t${s.reads}`);
  return rows.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string' },
      connections: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '6' },
      'max-requests': { type: 'string' },
      'id-prefix': { type: 'string', default: 'rec' },
      out: { type: 'string' },
    },
  });
  const r = await runRecording({
    host: values.host!,
    port: Number(values.port),
    connections: Number(values.connections),
    seconds: Number(values.seconds),
    ...(values['max-requests'] !== undefined ? { maxRequests: Number(values['max-requests']) } : {}),
    idPrefix: values['id-prefix']!,
  });
  if (values.out) writeFileSync(values.out, samplesTsv(r.samples));
  const lat = Float64Array.from(r.samples, (s) => s.doneUs - s.sentUs).sort();
  const corrected = wrkCorrected(lat, r.seconds * 1e6, Number(values.connections));
  const ms = (sorted: Float64Array, p: number): number => pct(sorted, p) / 1000;
  const summary: RecordingSummary = { requests: r.samples.length, errors: r.errors, seconds: r.seconds, p50Ms: ms(lat, 50), p99Ms: ms(lat, 99), maxMs: ms(lat, 100), wrkStyleP99Ms: ms(corrected, 99), wrkStyleSamples: corrected.length };
  process.stdout.write(JSON.stringify(summary) + '\n');
}
