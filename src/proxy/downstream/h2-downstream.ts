import type { IncomingHttpHeaders, OutgoingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import type { Exchange } from '../http/exchange.js';
import { Downstream, type ConnectionInfo } from './downstream.js';

const CANCEL = 0x8;

// respond() options, shared: node:http2 copies them, then sets `endStream` when it is missing (a
// property added to every request's copy), so both fields are spelled out.
const WITH_TRAILERS = { endStream: false, waitForTrailers: true };
const NO_TRAILERS = { endStream: false, waitForTrailers: false };
const ENDED = { endStream: true, waitForTrailers: false };

/** One HTTP/2 stream (gRPC or plain h2). */
export class H2Downstream extends Downstream {
  private trailersPending = false;

  constructor(
    ex: Exchange,
    conn: ConnectionInfo,
    readonly stream: ServerHttp2Stream,
    headers: IncomingHttpHeaders,
    /** The request ended with its headers (END_STREAM on HEADERS): no body. */
    readonly endAtHeaders: boolean,
    grpc: boolean,
  ) {
    super(
      'h2',
      ex,
      conn,
      headers[':method'] ?? 'GET',
      headers[':path'] ?? '/',
      headers[':authority'] ?? headers['host'] ?? '',
      headers,
      grpc,
    );
  }

  get rawBody(): ServerHttp2Stream {
    return this.stream;
  }

  get headersSent(): boolean {
    return this.stream.headersSent;
  }

  override get closed(): boolean {
    return this.closedFlag || this.stream.closed || this.stream.destroyed;
  }

  protected writeHead(status: number, headers: OutgoingHttpHeaders, trailers: boolean): void {
    headers[':status'] = status;
    this.trailersPending = trailers;
    // Without waitForTrailers a response Node ends itself would end with
    // RST_STREAM after END_STREAM on some paths; with it, trailers (possibly
    // empty) always close the stream cleanly.
    this.stream.respond(headers, trailers ? WITH_TRAILERS : NO_TRAILERS);
  }

  protected writeHeadEnd(status: number, headers: OutgoingHttpHeaders): void {
    headers[':status'] = status;
    this.stream.respond(headers, ENDED);
  }

  protected writeData(chunk: string | Buffer): boolean {
    return this.stream.write(chunk);
  }

  protected onSinkDrain(fn: () => void): void {
    this.stream.on('drain', fn);
  }

  protected endData(chunk: string | Buffer | undefined, trailers: OutgoingHttpHeaders | undefined): void {
    if (this.trailersPending) {
      const t = trailers ?? {};
      // Emitted once per stream: `on` spares the wrapper `once` makes.
      this.stream.on('wantTrailers', () => this.stream.sendTrailers(t));
    }
    if (chunk !== undefined) this.stream.end(chunk);
    else this.stream.end();
  }

  destroy(h2Code = CANCEL): void {
    this.stream.close(h2Code);
  }

  onClose(fn: () => void): void {
    this.stream.on('close', fn);
  }
}
