import http from 'node:http';
import http2 from 'node:http2';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';

/** One request a RecordingBackend saw. */
export interface Seen {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/**
 * An HTTP/1.1 backend for the traffic-filter tests (cors, headerMutation,
 * securityHeaders, compression): it records every request and answers by
 * path, so a test can say what the upstream saw (a preflight never reaching
 * it) and what it sent (headers to override, bodies to compress).
 * - `/big`: 64 KiB of JSON; `/small`: 100 bytes; `/stream`: 3 chunks written
 *   on demand (`release()`), to prove compression streams;
 * - `/pre-encoded`: `content-encoding: gzip` already set; `/no-transform`;
 * - `/headers`: sets `x-frame-options: SAMEORIGIN`, `server`, `x-powered-by`;
 * - anything else: JSON echo of the request.
 */
export class RecordingBackend {
  readonly seen: Seen[] = [];
  private streamWaiters: (() => void)[] = [];
  server!: http.Server;
  port = 0;

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        this.answer(req, res, body);
      });
    });
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  /** Lets `/stream` write its next chunk. */
  release(): void {
    this.streamWaiters.shift()?.();
  }

  private answer(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer): void {
    const path = (req.url ?? '/').split('?')[0];
    switch (path) {
      case '/big': {
        const b = Buffer.from(bigJson());
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': b.length, etag: '"v1"' });
        return void res.end(b);
      }
      case '/small':
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': 100 });
        return void res.end('x'.repeat(100));
      case '/image': {
        const b = Buffer.alloc(8192, 7);
        res.writeHead(200, { 'content-type': 'image/png', 'content-length': b.length });
        return void res.end(b);
      }
      case '/pre-encoded':
        res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip' });
        return void res.end(Buffer.alloc(4096));
      case '/no-transform':
        res.writeHead(200, { 'content-type': 'text/plain', 'cache-control': 'public, no-transform', 'content-length': 4096 });
        return void res.end('n'.repeat(4096));
      case '/range':
        res.writeHead(206, { 'content-type': 'text/plain', 'content-range': 'bytes 0-4095/8192', 'content-length': 4096 });
        return void res.end('r'.repeat(4096));
      case '/stream': {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.flushHeaders();
        let n = 0;
        const next = (): void => {
          n++;
          res.write(`data: event ${n} ${'e'.repeat(200)}\n\n`);
          if (n === 3) res.end();
          else this.streamWaiters.push(next);
        };
        this.streamWaiters.push(next);
        return;
      }
      case '/headers':
        res.writeHead(200, { 'content-type': 'text/plain', 'x-frame-options': 'SAMEORIGIN', server: 'Apache/2.4', 'x-powered-by': 'PHP/8' });
        return void res.end('ok');
    }
    const out = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes: body.length });
    res.writeHead(200, { 'content-type': 'application/json', 'x-backend': 'rec' });
    res.end(out);
  }

  count(method: string): number {
    return this.seen.filter((s) => s.method === method).length;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise((r) => this.server.close(r));
  }
}

/** ~64 KiB of compressible JSON, the same every time. */
export function bigJson(): string {
  const items = [];
  for (let i = 0; i < 800; i++) items.push({ id: i, title: `book number ${i}`, author: 'Someone Else', tags: ['a', 'b', 'c'] });
  return JSON.stringify({ items });
}

export interface H2Result {
  status: number;
  headers: http2.IncomingHttpHeaders;
  body: Buffer;
}

/** One plain HTTP/2 (h2c) request with Node's own client. */
export async function h2Request(port: number, headers: http2.OutgoingHttpHeaders, body?: Buffer | string): Promise<H2Result> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  try {
    const s = session.request(headers, { endStream: body === undefined });
    if (body !== undefined) s.end(body);
    const [h] = (await once(s, 'response')) as [http2.IncomingHttpHeaders];
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    await once(s, 'end');
    return { status: Number(h[':status']), headers: h, body: Buffer.concat(chunks) };
  } finally {
    session.close();
  }
}
