import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Readable } from 'node:stream';

/**
 * The client side of a transcoded request, the same for HTTP/1.1 and
 * HTTP/2, so the transcoder is written once. `end(trailers)` sends HTTP
 * trailers only when `respond(…, true)` announced them.
 */
export interface Downstream {
  readonly method: string;
  /** Raw request target: path and query, still percent-encoded. */
  readonly target: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: Readable;
  readonly headersSent: boolean;
  readonly closed: boolean;
  respond(status: number, headers: OutgoingHttpHeaders, trailers: boolean): void;
  write(chunk: string | Buffer): boolean;
  onDrain(fn: () => void): void;
  end(chunk?: string | Buffer, trailers?: OutgoingHttpHeaders): void;
  destroy(): void;
  onClose(fn: () => void): void;
  /** The request body will not be read to its end: do not reuse the connection (HTTP/1.1). */
  noKeepAlive(): void;
}

export function h1Downstream(req: IncomingMessage, res: ServerResponse): Downstream {
  let closed = false;
  res.once('close', () => (closed = true));
  return {
    method: req.method ?? 'GET',
    target: req.url ?? '/',
    headers: req.headers as IncomingHttpHeaders,
    body: req,
    get headersSent() {
      return res.headersSent;
    },
    get closed() {
      return closed;
    },
    respond(status, headers, trailers) {
      const h = { ...headers } as Record<string, string | string[] | number>;
      if (trailers) h['trailer'] = 'grpc-status, grpc-message';
      res.writeHead(status, h as Record<string, string>);
    },
    write: (c) => res.write(c),
    onDrain: (fn) => void res.on('drain', fn),
    end(chunk, trailers) {
      if (trailers && res.chunkedEncoding) res.addTrailers(trailers as Record<string, string>);
      if (chunk !== undefined) res.end(chunk);
      else res.end();
    },
    destroy: () => res.destroy(),
    onClose: (fn) => void res.once('close', fn),
    noKeepAlive: () => void (res.shouldKeepAlive = false),
  };
}

export function h2Downstream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Downstream {
  let wantTrailers = false;
  return {
    method: headers[':method'] ?? 'GET',
    target: headers[':path'] ?? '/',
    headers,
    body: stream,
    get headersSent() {
      return stream.headersSent;
    },
    get closed() {
      return stream.closed || stream.destroyed;
    },
    respond(status, h, trailers) {
      wantTrailers = trailers;
      stream.respond({ ...h, ':status': status }, { waitForTrailers: trailers });
    },
    write: (c) => stream.write(c),
    onDrain: (fn) => void stream.on('drain', fn),
    end(chunk, trailers) {
      if (wantTrailers) stream.once('wantTrailers', () => stream.sendTrailers(trailers ?? {}));
      if (chunk !== undefined) stream.end(chunk);
      else stream.end();
    },
    destroy: () => stream.close(0x8),
    onClose: (fn) => void stream.once('close', fn),
    noKeepAlive: () => {},
  };
}
