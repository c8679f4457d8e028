import type { TapEvent } from '../observability/tap.js';
import { parseFlags, UsageError } from './flags.js';
import type { Command } from './command.js';
import { openTap, processIo, SIDECAR_FLAG, SIDECAR_USAGE, sidecarsOf, type LiveIo, type TapStream } from './sidecar-admin.js';

const USAGE = `usage: outrigger tap [--sidecar HOST:PORT ... | --control-plane HOST:PORT] [--route R] [--path-prefix P] [--max N] [--json]

A live stream of finished requests from the sidecar's admin /tap (server-sent
events): method, path, status, grpc status, latency, upstream, response
flags, request id, and the access log's headers (redacted as there). Runs
until interrupted, or until N requests were shown.

flags:
${SIDECAR_USAGE}
  --route R            only requests of route R
  --path-prefix P      only paths starting with P
  --max N              stop after N requests (across all sidecars)
  --json               one JSON object per line`;

export function formatTapEvent(e: TapEvent): string {
  const f = (v: unknown): string => (v === undefined || v === null || v === '' ? '-' : String(v));
  const h = e.headers ? ' ' + Object.entries(e.headers).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ') : '';
  return `${e.method} ${e.authority}${e.path} status=${e.status} grpc=${f(e.grpc_status)} latency=${e.duration_ms}ms route=${f(e.route)} upstream=${f(e.upstream)} flags=${f(e.flags)} id=${f(e.request_id)} trace=${f(e.trace_id)}${h}\n`;
}

/** `onOpen` fires once every sidecar's subscription is live (tests send traffic then). */
export async function runTap(args: string[], io: LiveIo, onOpen?: () => void): Promise<number> {
  const values = parseFlags(
    args,
    { ...SIDECAR_FLAG, route: { type: 'string' }, 'path-prefix': { type: 'string' }, max: { type: 'string' }, json: { type: 'boolean', default: false } },
    USAGE,
  )?.values;
  if (!values) return 0;
  const max = values.max === undefined ? 0 : Number(values.max);
  if (!Number.isInteger(max) || max < 0) throw new UsageError('--max must be a non-negative integer', USAGE);
  const q = new URLSearchParams();
  if (values.route !== undefined) q.set('route', values.route);
  if (values['path-prefix'] !== undefined) q.set('path_prefix', values['path-prefix']);
  // Each sidecar stops at N itself; the total across them is enforced here.
  if (max > 0) q.set('max', String(max));
  let sidecars: string[];
  try {
    sidecars = await sidecarsOf(values, io);
  } catch (err) {
    io.err(`outrigger tap: ${(err as Error).message}\n`);
    return 1;
  }
  let shown = 0;
  let open = 0;
  const streams: TapStream[] = [];
  const closeAll = (): void => streams.forEach((s) => s.close());
  const onEvent = (e: TapEvent): void => {
    if (max > 0 && shown >= max) return;
    shown++;
    io.out(values.json ? JSON.stringify(e) + '\n' : formatTapEvent(e));
    if (max > 0 && shown >= max) closeAll();
  };
  for (const s of sidecars) streams.push(openTap(s, q, onEvent, () => ++open === sidecars.length && onOpen?.()));
  io.stop?.addEventListener('abort', closeAll, { once: true });
  try {
    await Promise.all(streams.map((s) => s.done));
  } catch (err) {
    closeAll();
    io.err(`outrigger tap: ${(err as Error).message}\n`);
    return 1;
  }
  return 0;
}

export const tapCommand: Command = {
  summary: 'stream live requests from one or more sidecars',
  run: (args) => runTap(args, processIo()),
};
