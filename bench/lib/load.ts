/** Load generators: h2load (h2c and gRPC) and wrk (HTTP/1.1), with output parsers. */
import { readFileSync, rmSync } from 'node:fs';
import { runTool } from './proc.js';

export interface LoadResult {
  ok: boolean;
  /** Responses with a 2xx status. */
  succeeded: number;
  /** Everything that was not a 2xx response (errors, timeouts, other statuses). */
  failed: number;
  /** Wall time the tool reports for the run, seconds. */
  seconds: number;
  rps: number;
  p50Ms: number | null;
  p99Ms: number | null;
  error?: string;
  /** CPU seconds the load generator itself used (sampled while it ran). */
  clientCpuS: number;
  /** The tool's summary output (trimmed), kept in the JSON results. */
  output: string;
}

export interface H2loadSpec {
  url: string;
  seconds: number;
  clients: number;
  streams: number;
  /** POST this file's content (h2load -d). */
  dataFile?: string;
  headers?: string[];
  /** Write per-request rows here to compute percentiles; removed afterwards. */
  logFile?: string;
  cpus?: string | undefined;
  /** Open loop: requests per second for each client (h2load --rps); unset = closed loop. */
  rpsPerClient?: number;
  /** HTTP/1.1 instead of h2c (h2load --h1); `streams` must then be 1 (no pipelining). */
  h1?: boolean;
}

function percentile(sorted: Float64Array | number[], p: number): number | null {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

/** p50/p99 in ms from an h2load --log-file (start µs, status, duration µs). */
export function percentilesFromH2loadLog(file: string): { p50: number | null; p99: number | null; p999: number | null; rows: number } {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return { p50: null, p99: null, p999: null, rows: 0 };
  }
  const values: number[] = [];
  let start = 0;
  while (start < text.length) {
    let end = text.indexOf('\n', start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end);
    start = end + 1;
    const t1 = line.indexOf('\t');
    const t2 = line.indexOf('\t', t1 + 1);
    if (t1 < 0 || t2 < 0) continue;
    const status = Number(line.slice(t1 + 1, t2));
    if (status < 200 || status > 299) continue;
    const t3 = line.indexOf('\t', t2 + 1);
    values.push(Number(line.slice(t2 + 1, t3 < 0 ? undefined : t3)));
  }
  const sorted = Float64Array.from(values).sort();
  const p50 = percentile(sorted, 50);
  const p99 = percentile(sorted, 99);
  const p999 = percentile(sorted, 99.9);
  const ms = (v: number | null): number | null => (v === null ? null : v / 1000);
  return { p50: ms(p50), p99: ms(p99), p999: ms(p999), rows: values.length };
}

const num = (s: string | undefined): number => (s === undefined ? NaN : Number(s));

/** A load-tool run that timed out or printed no result. */
function failedRun(tool: string, r: Awaited<ReturnType<typeof runTool>>, out: string, summary: string): LoadResult {
  return {
    ok: false,
    succeeded: 0,
    failed: 0,
    seconds: 0,
    rps: 0,
    p50Ms: null,
    p99Ms: null,
    error: r.timedOut ? `${tool} timed out` : `${tool} failed (exit ${r.code}): ${(r.stderr || out).trim().slice(-400)}`,
    output: summary,
    clientCpuS: r.cpuS,
  };
}

export async function runH2load(spec: H2loadSpec): Promise<LoadResult> {
  const args = ['-t1', `-c${spec.clients}`, `-m${spec.streams}`, '-D', `${Math.max(1, Math.round(spec.seconds * 1000))}ms`];
  if (spec.rpsPerClient !== undefined) args.push(`--rps=${spec.rpsPerClient}`);
  if (spec.h1) args.push('--h1');
  for (const h of spec.headers ?? []) args.push('-H', h);
  if (spec.dataFile) args.push('-d', spec.dataFile);
  if (spec.logFile) args.push('--log-file', spec.logFile);
  args.push(spec.url);
  const r = await runTool('h2load', 'h2load', args, { cpus: spec.cpus, timeoutMs: (spec.seconds + 20) * 1000 });
  const out = r.stdout;
  const summary = out
    .split('\n')
    .filter((l) => /^(finished in|requests:|status codes:|traffic:|time for request:|req\/s)/.test(l.trim()))
    .join('\n');
  const fin = /finished in ([\d.]+)(ms|s),/.exec(out);
  const reqs = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(out);
  const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out);
  let p50: number | null = null;
  let p99: number | null = null;
  if (spec.logFile) {
    const p = percentilesFromH2loadLog(spec.logFile);
    p50 = p.p50;
    p99 = p.p99;
    rmSync(spec.logFile, { force: true });
  }
  if (!fin || !reqs || !codes || r.timedOut) {
    return failedRun('h2load', r, out, summary);
  }
  const seconds = num(fin[1]) / (fin[2] === 'ms' ? 1000 : 1);
  // `succeeded` counts completed streams with a 2xx/3xx status; `status codes`
  // also counts streams still open at the end, so it can exceed `done`.
  const nonSuccessCodes = num(codes[3]) + num(codes[4]);
  const ok2xx = nonSuccessCodes > 0 ? Math.min(num(reqs[4]), num(codes[1])) : num(reqs[4]);
  const done = num(reqs[3]);
  const failed = done - ok2xx;
  return {
    ok: ok2xx > 0,
    succeeded: ok2xx,
    failed: Math.max(0, failed),
    seconds,
    rps: seconds > 0 ? ok2xx / seconds : 0,
    p50Ms: p50,
    p99Ms: p99,
    ...(ok2xx > 0 ? {} : { error: 'no 2xx responses' }),
    output: summary,
    clientCpuS: r.cpuS,
  };
}

export interface WrkSpec {
  url: string;
  seconds: number;
  connections: number;
  cpus?: string | undefined;
  /** A wrk Lua script (e.g. a JSON POST: wrk.method/body/headers). */
  script?: string | undefined;
}

function wrkDurationMs(v: string, unit: string): number {
  const n = Number(v);
  switch (unit) {
    case 'us':
      return n / 1000;
    case 'ms':
      return n;
    case 's':
      return n * 1000;
    case 'm':
      return n * 60_000;
    default:
      return NaN;
  }
}

export async function runWrk(spec: WrkSpec): Promise<LoadResult> {
  const args = ['-t1', `-c${spec.connections}`, `-d${wrkSeconds(spec.seconds)}s`, '--timeout', '5s', '--latency', ...(spec.script ? ['-s', spec.script] : []), spec.url];
  const r = await runTool('wrk', 'wrk', args, { cpus: spec.cpus, timeoutMs: (spec.seconds + 20) * 1000 });
  const out = r.stdout;
  const total = /(\d+) requests in ([\d.]+)(us|ms|s|m),/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const sockErr = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const pct = (p: string): number | null => {
    const m = new RegExp(`^\\s+${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? wrkDurationMs(m[1]!, m[2]!) : null;
  };
  const summary = out.trim();
  if (!total || r.timedOut) {
    return failedRun('wrk', r, out, summary);
  }
  const seconds = wrkDurationMs(total[2]!, total[3]!) / 1000;
  const bad = non2xx ? num(non2xx[1]) : 0;
  const errs = sockErr ? num(sockErr[1]) + num(sockErr[2]) + num(sockErr[3]) + num(sockErr[4]) : 0;
  const succeeded = num(total[1]) - bad;
  return {
    ok: succeeded > 0,
    succeeded,
    failed: bad + errs,
    seconds,
    rps: seconds > 0 ? succeeded / seconds : 0,
    p50Ms: pct('50'),
    p99Ms: pct('99'),
    ...(succeeded > 0 ? {} : { error: 'no 2xx responses' }),
    output: summary,
    clientCpuS: r.cpuS,
  };
}

/** wrk takes whole seconds only. */
export function wrkSeconds(s: number): number {
  return Math.max(1, Math.round(s));
}
