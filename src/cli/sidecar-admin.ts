import http from 'node:http';
import type { LiveRow } from '../observability/live-stats.js';
import type { TapEvent } from '../observability/tap.js';
import { operatorClient, resolveTarget, type TargetFlags } from '../control/client/operator-client.js';

/** The local sidecar's admin port, which `stat`, `tap` and `top` use without --sidecar. */
export const DEFAULT_SIDECAR = '127.0.0.1:15000';

/**
 * The shared flags of the live-view commands: `--sidecar HOST:PORT`
 * (repeatable), and `--control-plane` with the operator commands' token and
 * TLS flags for the whole mesh.
 */
export const SIDECAR_FLAG = {
  sidecar: { type: 'string', multiple: true },
  'control-plane': { type: 'string' },
  'token-file': { type: 'string' },
  'tls-ca': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
} as const;

export const SIDECAR_USAGE = `  --sidecar HOST:PORT  a sidecar's admin address (repeatable; default 127.0.0.1:15000)
  --control-plane H:P  every sidecar connected to the control plane (of every replica), at the admin
                       address each advertises (outrigger status lists them); with --token-file,
                       --tls-ca, --tls-cert, --tls-key as for the operator commands`;

type SidecarFlags = { sidecar?: string[] } & TargetFlags;

/**
 * The admin addresses to ask: the --sidecar flags, plus with --control-plane
 * every sidecar the control plane's Status lists (deduplicated: a sidecar
 * may hold a stream on two replicas while it moves). Sidecars that advertise
 * no admin address are named on stderr and skipped.
 */
export async function sidecarsOf(values: SidecarFlags, io?: Pick<LiveIo, 'err'>): Promise<string[]> {
  const explicit = values.sidecar ?? [];
  if (values['control-plane'] === undefined) return explicit.length ? explicit : [DEFAULT_SIDECAR];
  const reply = await operatorClient(resolveTarget(values)).status({});
  const silent = [...new Set(reply.sidecars.filter((s) => !s.adminAddress).map((s) => s.nodeId))];
  if (silent.length) io?.err(`outrigger: no admin address advertised by ${silent.join(', ')} (skipped)\n`);
  const all = [...new Set([...explicit, ...reply.sidecars.map((s) => s.adminAddress).filter((a) => a !== '')])];
  if (all.length === 0) throw new Error(`${values['control-plane']}: no connected sidecar advertises an admin address`);
  return all;
}

export interface LiveReply {
  readonly by: string;
  readonly window_s: number;
  readonly rows: LiveRow[];
}

/** GET /stats/live from one sidecar's admin port. */
export function fetchLive(sidecar: string, by: string, timeoutMs = 5000): Promise<LiveReply> {
  return new Promise((resolve, reject) => {
    const req = http.get(`http://${sidecar}/stats/live?by=${encodeURIComponent(by)}`, { timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`${sidecar}: /stats/live answered ${res.statusCode}: ${body.trim()}`));
        try {
          resolve(JSON.parse(body) as LiveReply);
        } catch (err) {
          reject(new Error(`${sidecar}: /stats/live: ${(err as Error).message}`));
        }
      });
    });
    req.on('timeout', () => req.destroy(new Error(`${sidecar}: timed out`)));
    req.on('error', reject);
  });
}

/**
 * Rows of several sidecars merged by key: counts and rates add up; a
 * percentile across sidecars is not derivable from theirs, so the highest
 * (the worst) is shown.
 */
export function mergeRows(replies: readonly LiveReply[]): LiveRow[] {
  const m = new Map<string, LiveRow>();
  for (const r of replies) {
    for (const row of r.rows) {
      const prev = m.get(row.key);
      if (!prev) {
        m.set(row.key, row);
        continue;
      }
      const requests = prev.requests + row.requests;
      const success = prev.success + row.success;
      m.set(row.key, {
        key: row.key,
        requests,
        success,
        success_rate: requests ? success / requests : null,
        rps: Math.round((prev.rps + row.rps) * 1000) / 1000,
        p50_ms: worst(prev.p50_ms, row.p50_ms),
        p95_ms: worst(prev.p95_ms, row.p95_ms),
        p99_ms: worst(prev.p99_ms, row.p99_ms),
      });
    }
  }
  return [...m.values()].sort((a, b) => b.requests - a.requests || (a.key < b.key ? -1 : 1));
}

function worst(a: number | null, b: number | null): number | null {
  return a === null ? b : b === null ? a : Math.max(a, b);
}

/** Left-aligned columns, two spaces apart. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n') + '\n';
}

export function ms(v: number | null): string {
  return v === null ? '-' : `${v}ms`;
}

export function percent(v: number | null): string {
  return v === null ? '-' : `${(v * 100).toFixed(2)}%`;
}

export interface TapStream {
  /** Resolves when the stream ends (the sidecar closed it, or close() was called). */
  readonly done: Promise<void>;
  close(): void;
}

/** Subscribes to one sidecar's /tap and calls onEvent per server-sent event. */
export function openTap(sidecar: string, query: URLSearchParams, onEvent: (e: TapEvent) => void, onOpen?: () => void): TapStream {
  let req: http.ClientRequest;
  const done = new Promise<void>((resolve, reject) => {
    req = http.get(`http://${sidecar}/tap?${query}`, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        return reject(new Error(`${sidecar}: /tap answered ${res.statusCode}`));
      }
      onOpen?.();
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        buf += d;
        let i: number;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const frame = buf.slice(0, i);
          buf = buf.slice(i + 2);
          for (const line of frame.split('\n')) if (line.startsWith('data: ')) onEvent(JSON.parse(line.slice(6)) as TapEvent);
        }
      });
      res.on('end', () => resolve());
      res.on('close', () => resolve());
    });
    req.on('error', (err) => (req.destroyed && (err as NodeJS.ErrnoException).code === 'ECONNRESET' ? resolve() : reject(err)));
  });
  return { done, close: () => req.destroy() };
}

/** Where a live-view command writes; tests pass their own, the CLI process.stdout/stderr. */
export interface LiveIo {
  out(s: string): void;
  err(s: string): void;
  /** Ends `-w` and `tap` (SIGINT in the CLI). */
  readonly stop?: AbortSignal;
}

export const processIo = (): LiveIo => {
  const ac = new AbortController();
  process.once('SIGINT', () => ac.abort());
  return { out: (s) => void process.stdout.write(s), err: (s) => void process.stderr.write(s), stop: ac.signal };
};
