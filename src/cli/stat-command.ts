import { LIVE_DIMENSIONS } from '../observability/live-stats.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';
import { fetchLive, mergeRows, ms, percent, processIo, SIDECAR_FLAG, SIDECAR_USAGE, sidecarsOf, table, type LiveIo } from './sidecar-admin.js';

const USAGE = `usage: outrigger stat [--sidecar HOST:PORT ... | --control-plane HOST:PORT] [--by route|cluster|upstream] [-w] [--json]

Success rate, requests per second and latency p50/p95/p99 over the
sidecar's rolling window (the last 60 s, from its admin /stats/live, not
Prometheus), one row per route (or cluster, or upstream endpoint), busiest
first. Several --sidecar flags merge their rows (counts add up; a
percentile shows the highest of the sidecars').

flags:
${SIDECAR_USAGE}
  --by D               route (default), cluster or upstream
  -w, --watch          refresh every 2 s until interrupted
  --json               the merged rows as JSON`;

const BY = LIVE_DIMENSIONS.filter((d) => d !== 'path');

export async function runStat(args: string[], io: LiveIo): Promise<number> {
  const values = parseFlags(
    args,
    { ...SIDECAR_FLAG, by: { type: 'string', default: 'route' }, watch: { type: 'boolean', short: 'w', default: false }, json: { type: 'boolean', default: false } },
    USAGE,
  )?.values;
  if (!values) return 0;
  const by = values.by!;
  if (!(BY as string[]).includes(by)) throw new UsageError(`--by must be one of ${BY.join(', ')}`, USAGE);
  let sidecars: string[];
  try {
    sidecars = await sidecarsOf(values, io);
  } catch (err) {
    io.err(`outrigger stat: ${(err as Error).message}\n`);
    return 1;
  }
  for (;;) {
    let replies;
    try {
      replies = await Promise.all(sidecars.map((s) => fetchLive(s, by)));
    } catch (err) {
      io.err(`outrigger stat: ${(err as Error).message}\n`);
      return 1;
    }
    const rows = mergeRows(replies);
    if (values.json) io.out(JSON.stringify({ by, window_s: replies[0]?.window_s, rows }) + '\n');
    else io.out(table([by.toUpperCase(), 'SUCCESS', 'RPS', 'REQUESTS', 'LATENCY_P50', 'LATENCY_P95', 'LATENCY_P99'], rows.map((r) => [r.key, percent(r.success_rate), String(r.rps), String(r.requests), ms(r.p50_ms), ms(r.p95_ms), ms(r.p99_ms)])));
    if (!values.watch) return 0;
    if (await stopped(io.stop, 2000)) return 0;
    io.out('\n');
  }
}

/** Waits `ms` (the -w refresh) or until stop fires; true when stopped. */
export function stopped(stop: AbortSignal | undefined, ms: number): Promise<boolean> {
  if (stop?.aborted) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    stop?.addEventListener('abort', () => (clearTimeout(t), resolve(true)), { once: true });
  });
}

export const statCommand: Command = {
  summary: 'live success rate, RPS and latency per route, cluster or upstream',
  run: (args) => runStat(args, processIo()),
};
