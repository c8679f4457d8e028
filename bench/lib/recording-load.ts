/**
 * A latency-recording HTTP/1.1 load client: N keep-alive connections per
 * target, each sending GETs back to back (like wrk), every request carrying
 * an `x-request-id` so it can be matched against the sidecar's access log.
 * Unlike wrk it keeps every request: target, id, connection, when it was
 * sent, when the first response byte and the last arrived, and how many
 * reads the response took (a response split over reads with a gap between
 * them is the mark of a Nagle / delayed-ACK stall). Bounded by time and count.
 *
 * With several targets and `sliceMs`, the targets take turns: only the
 * current target's connections send (the others' stay open and idle), and
 * the turn passes every `sliceMs`. On a shared machine whose load comes and
 * goes, short interleaved turns give every target the same conditions, so a
 * ratio between targets means something; `seconds` is the total, each of K
 * targets gets about seconds / K of it.
 *
 * Run as a program (bench/lb.ts spawns it pinned to the load CPU):
 *   node --import tsx bench/lib/recording-load.ts --targets a=PORT,b=PORT [--slice-ms 250] --connections 16 --seconds 6 [--out FILE]
 * It writes one TSV row per request to FILE and a JSON line to stdout: a
 * RecordingSummary per target.
 */
import * as net from 'node:net';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { runTool } from './proc.js';
import { pct } from './stats.js';

export interface RecordingTarget {
  name: string;
  port: number;
}

export interface RecordingSpec {
  host: string;
  targets: readonly RecordingTarget[];
  /** Connections per target. */
  connections: number;
  /** Total run time, all targets. */
  seconds: number;
  /** Turn length when there are several targets (default: 250 ms). */
  sliceMs?: number;
  /** Stop after this many requests in all (default: unbounded within `seconds`). */
  maxRequests?: number;
  path?: string;
}

export interface RequestSample {
  target: string;
  /** `TARGET-CONN-N`. */
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
  /** Connection errors and unparsable responses, by target name. */
  errors: Record<string, number>;
  seconds: number;
}

const CRLFCRLF = Buffer.from('\r\n\r\n');

/** Runs the load; resolves when every connection has stopped (time, count or error). */
export function runRecording(spec: RecordingSpec): Promise<RecordingResult> {
  const t0 = process.hrtime.bigint();
  const nowUs = (): number => Number(process.hrtime.bigint() - t0) / 1000;
  const deadlineUs = spec.seconds * 1e6;
  const max = spec.maxRequests ?? Number.MAX_SAFE_INTEGER;
  const samples: RequestSample[] = [];
  const k = spec.targets.length;
  const sliceUs = (spec.sliceMs ?? 250) * 1000;
  /** Whose turn it is at `t` (always 0 with one target). */
  const turnAt = (t: number): number => (k === 1 ? 0 : Math.floor(t / sliceUs) % k);
  /** Per target, the sends of connections waiting for their target's turn. */
  const parked: (() => void)[][] = spec.targets.map(() => []);
  const errors: Record<string, number> = Object.fromEntries(spec.targets.map((t) => [t.name, 0]));
  let issued = 0;
  return new Promise((resolve) => {
    let open = spec.connections * k;
    let turnTimer: NodeJS.Timeout | undefined;
    const finished = (): void => {
      if (--open > 0) return;
      clearTimeout(turnTimer);
      resolve({ samples, errors, seconds: nowUs() / 1e6 });
    };
    // At each turn's start, wake the parked connections of its target; at the
    // deadline, all of them (their send stops them).
    const nextTurn = (): void => {
      const now = nowUs();
      const woken = now >= deadlineUs ? parked.flatMap((p) => p.splice(0)) : parked[turnAt(now)]!.splice(0);
      for (const send of woken) send();
      if (now >= deadlineUs) return;
      const next = Math.min(deadlineUs, (Math.floor(now / sliceUs) + 1) * sliceUs);
      turnTimer = setTimeout(nextTurn, Math.max(0, (next - nowUs()) / 1000));
    };
    if (k > 1) turnTimer = setTimeout(nextTurn, sliceUs / 1000);
    spec.targets.forEach((target, ti) => {
      for (let c = 0; c < spec.connections; c++) {
        const sock = net.connect({ host: spec.host, port: target.port, noDelay: true });
        const request = `GET ${spec.path ?? '/'} HTTP/1.1\r\nhost: ${spec.host}:${target.port}\r\nx-request-id: `;
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
          const now = nowUs();
          if (now >= deadlineUs || issued >= max) return stop();
          if (turnAt(now) !== ti) return void parked[ti]!.push(send);
          issued++;
          const id = `${target.name}-${c}-${n++}`;
          cur = { target: target.name, id, conn: c, sentUs: now, firstByteUs: -1, doneUs: -1, status: 0, reads: 0 };
          sock.write(`${request}${id}\r\n\r\n`);
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
              errors[target.name]!++;
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
          errors[target.name]!++;
          stop();
        });
        sock.on('close', stop);
      }
    });
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
 * Resolves to a summary per target.
 */
export async function runRecordingTool(o: {
  root: string;
  targets: readonly RecordingTarget[];
  connections: number;
  seconds: number;
  sliceMs?: number;
  cpus: string | undefined;
  out?: string;
}): Promise<Record<string, RecordingSummary> | { error: string }> {
  const args = ['--import', 'tsx', join(o.root, 'bench/lib/recording-load.ts'), '--targets', o.targets.map((t) => `${t.name}=${t.port}`).join(','), '--connections', String(o.connections), '--seconds', String(o.seconds)];
  if (o.sliceMs !== undefined) args.push('--slice-ms', String(o.sliceMs));
  if (o.out !== undefined) args.push('--out', o.out);
  const r = await runTool('recording-load', process.execPath, args, { cpus: o.cpus, timeoutMs: (o.seconds + 30) * 1000 });
  const last = r.stdout.trim().split('\n').pop() ?? '';
  if (r.code !== 0 || !last.startsWith('{')) return { error: `recording client failed (exit ${r.code}): ${(r.stderr || r.stdout).trim().slice(-300)}` };
  return JSON.parse(last) as Record<string, RecordingSummary>;
}

/** Percentiles of one target's samples; `runS`: the time that target had (its share of the turns). */
export function summarize(samples: readonly RequestSample[], errors: number, runS: number, connections: number): RecordingSummary {
  const lat = Float64Array.from(samples, (s) => s.doneUs - s.sentUs).sort();
  const corrected = wrkCorrected(lat, runS * 1e6, connections);
  const ms = (sorted: Float64Array, p: number): number => pct(sorted, p) / 1000;
  return { requests: samples.length, errors, seconds: runS, p50Ms: ms(lat, 50), p99Ms: ms(lat, 99), maxMs: ms(lat, 100), wrkStyleP99Ms: ms(corrected, 99), wrkStyleSamples: corrected.length };
}

/** The per-request TSV (header line first). */
export function samplesTsv(samples: readonly RequestSample[]): string {
  const rows = ['target\tid\tconn\tsent_us\tfirst_byte_us\tdone_us\tstatus\treads'];
  for (const s of samples) rows.push(`${s.target}\t${s.id}\t${s.conn}\t${s.sentUs.toFixed(0)}\t${s.firstByteUs.toFixed(0)}\t${s.doneUs.toFixed(0)}\t${s.status}\t${s.reads}`);
  return rows.join('\n') + '\n';
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      targets: { type: 'string' },
      connections: { type: 'string', default: '16' },
      seconds: { type: 'string', default: '6' },
      'slice-ms': { type: 'string' },
      'max-requests': { type: 'string' },
      out: { type: 'string' },
    },
  });
  const targets = (values.targets ?? '').split(',').filter(Boolean).map((t) => {
    const [name, port] = t.split('=');
    return { name: name!, port: Number(port) };
  });
  if (targets.length === 0 || targets.some((t) => !t.name || !(t.port > 0))) {
    process.stderr.write('recording-load: --targets name=port[,name=port…] is required\n');
    process.exit(2);
  }
  const connections = Number(values.connections);
  const r = await runRecording({
    host: values.host!,
    targets,
    connections,
    seconds: Number(values.seconds),
    ...(values['slice-ms'] !== undefined ? { sliceMs: Number(values['slice-ms']) } : {}),
    ...(values['max-requests'] !== undefined ? { maxRequests: Number(values['max-requests']) } : {}),
  });
  if (values.out) writeFileSync(values.out, samplesTsv(r.samples));
  const out: Record<string, RecordingSummary> = {};
  for (const t of targets) out[t.name] = summarize(r.samples.filter((s) => s.target === t.name), r.errors[t.name]!, r.seconds / targets.length, connections);
  process.stdout.write(JSON.stringify(out) + '\n');
}
