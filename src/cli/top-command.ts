import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';
import { fetchLive, mergeRows, ms, percent, processIo, SIDECAR_FLAG, SIDECAR_USAGE, sidecarsOf, table, type LiveIo } from './sidecar-admin.js';
import { stopped } from './stat-command.js';

const USAGE = `usage: outrigger top [--sidecar HOST:PORT ... | --control-plane HOST:PORT] [--max N] [-w] [--json]

The busiest request paths over the sidecar's rolling window (the last 60 s,
from its admin /stats/live?by=path), with their success rate and latency.
Paths past the sidecar's key bound are counted under "other".

flags:
${SIDECAR_USAGE}
  --max N              rows to show (default 20)
  -w, --watch          refresh every 2 s until interrupted
  --json               the rows as JSON`;

export async function runTop(args: string[], io: LiveIo): Promise<number> {
  const values = parseFlags(
    args,
    { ...SIDECAR_FLAG, max: { type: 'string', default: '20' }, watch: { type: 'boolean', short: 'w', default: false }, json: { type: 'boolean', default: false } },
    USAGE,
  )?.values;
  if (!values) return 0;
  const max = Number(values.max);
  if (!Number.isInteger(max) || max < 1) throw new UsageError('--max must be a positive integer', USAGE);
  let sidecars: string[];
  try {
    sidecars = await sidecarsOf(values, io);
  } catch (err) {
    io.err(`outrigger top: ${(err as Error).message}\n`);
    return 1;
  }
  for (;;) {
    let rows;
    try {
      rows = mergeRows(await Promise.all(sidecars.map((s) => fetchLive(s, 'path')))).slice(0, max);
    } catch (err) {
      io.err(`outrigger top: ${(err as Error).message}\n`);
      return 1;
    }
    if (values.json) io.out(JSON.stringify({ rows }) + '\n');
    else io.out(table(['PATH', 'REQUESTS', 'RPS', 'SUCCESS', 'LATENCY_P50', 'LATENCY_P99'], rows.map((r) => [r.key, String(r.requests), String(r.rps), percent(r.success_rate), ms(r.p50_ms), ms(r.p99_ms)])));
    if (!values.watch || (await stopped(io.stop, 2000))) return 0;
    io.out('\n');
  }
}

export const topCommand: Command = {
  summary: 'the busiest request paths of one or more sidecars',
  run: (args) => runTop(args, processIo()),
};
