import type { IncomingMessage, ServerResponse } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { Exchange } from '../http/exchange.js';
import { Downstream, type ConnectionInfo } from './downstream.js';

/** An HTTP/1.1 request and its response. */
export class H1Downstream extends Downstream {
  constructor(
    ex: Exchange,
    conn: ConnectionInfo,
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
  ) {
    super('h1', ex, conn, req.method ?? 'GET', req.url ?? '/', req.headers.host ?? '', req.headers, false);
  }

  get rawBody(): IncomingMessage {
    return this.req;
  }

  get headersSent(): boolean {
    return this.res.headersSent;
  }

  protected writeHead(status: number, headers: OutgoingHttpHeaders, trailers: boolean, statusMessage: string | undefined): void {
    // HTTP/1.1 trailers need chunked encoding and a declaration up front.
    if (trailers) headers['trailer'] = 'grpc-status, grpc-message';
    if (statusMessage !== undefined) this.res.writeHead(status, statusMessage, headers as Record<string, string>);
    else this.res.writeHead(status, headers as Record<string, string>);
  }

  protected writeHeadEnd(status: number, headers: OutgoingHttpHeaders): void {
    this.res.writeHead(status, headers as Record<string, string>);
    this.res.end();
  }

  protected writeData(chunk: string | Buffer): boolean {
    return this.res.write(chunk);
  }

  protected onSinkDrain(fn: () => void): void {
    this.res.on('drain', fn);
  }

  protected endData(chunk: string | Buffer | undefined, trailers: OutgoingHttpHeaders | undefined): void {
    if (trailers && this.res.chunkedEncoding) this.res.addTrailers(trailers as Record<string, string>);
    if (chunk !== undefined) this.res.end(chunk);
    else this.res.end();
  }

  destroy(): void {
    this.res.destroy();
  }

  onClose(fn: () => void): void {
    this.res.once('close', fn);
  }

  override noKeepAlive(): void {
    this.res.shouldKeepAlive = false;
  }
}
