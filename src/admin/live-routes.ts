import type { IncomingMessage, ServerResponse } from 'node:http';
import { LIVE_DIMENSIONS, type LiveDimension } from '../observability/live-stats.js';
import type { LiveSource, TapSource } from './worker-admin.js';

type Reply = (status: number, body: string) => void;

/**
 * `GET /stats/live?by=route|cluster|upstream|path`: the rolling window as
 * JSON (what `outrigger stat` and `outrigger top` print).
 */
export async function serveLiveStats(live: LiveSource | undefined, url: URL, res: ServerResponse, reply: Reply): Promise<void> {
  if (!live) return reply(404, 'live stats are off\n');
  const by = (url.searchParams.get('by') ?? 'route') as LiveDimension;
  if (!LIVE_DIMENSIONS.includes(by)) return reply(400, `by must be one of ${LIVE_DIMENSIONS.join(', ')}\n`);
  const body = JSON.stringify({ by, window_s: live.windowMs / 1000, rows: await live.snapshot(by) }) + '\n';
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-cache' });
  res.end(body);
}

/**
 * `GET /tap?route=R&path_prefix=P&max=N`: server-sent events, one `data:`
 * line of JSON per finished request matching the filter. The subscription
 * lives as long as the response: it ends when the client goes, or after N
 * events. A slow reader's events wait in a bounded buffer (tap.ts), then drop.
 */
export function serveTap(tap: TapSource | undefined, req: IncomingMessage, url: URL, res: ServerResponse, reply: Reply): void {
  if (!tap) return reply(404, 'tap is off\n');
  const q = url.searchParams;
  const maxText = q.get('max');
  const max = maxText === null ? 0 : Number(maxText);
  if (!Number.isInteger(max) || max < 0) return reply(400, 'max must be a non-negative integer\n');
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  // A comment line first, so a client knows the subscription is live before any request arrives.
  res.write(': tap\n\n');
  const sub = tap.subscribe(
    { route: q.get('route') ?? undefined, pathPrefix: q.get('path_prefix') ?? undefined, max },
    {
      write: (e) => res.write(`data: ${JSON.stringify(e)}\n\n`),
      end: () => res.end(),
    },
  );
  res.on('drain', () => sub.drain());
  res.once('close', () => sub.close());
}
