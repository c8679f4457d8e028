import http, { type IncomingMessage } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { WebSocketServer } from 'ws';
import type { Exchange } from '../http/exchange.js';
import { Downstream, type ConnectionInfo } from './downstream.js';

/** WebSocket close code for a final gRPC status: 1000 for OK, 4000 + code otherwise (4000-4999: application codes, RFC 6455 §7.4.2). */
export function closeCodeOf(code: number): number {
  return code === 0 ? 1000 : 4000 + code;
}

/** A close reason must fit in 123 bytes of UTF-8. */
export function closeReasonOf(message: string): string {
  let r = message;
  while (Buffer.byteLength(r) > 123) r = r.slice(0, -1);
  return r;
}

/**
 * A WebSocket upgrade request (HTTP/1.1 `Upgrade: websocket`). Until the
 * exchange is upgraded, a response written here is a plain HTTP/1.1 answer
 * on the raw socket followed by a close (refusals, local replies, direct
 * responses); after it the forwarder or the bridge owns the socket.
 */
export class WsDownstream extends Downstream {
  private headSent = false;

  constructor(
    ex: Exchange,
    conn: ConnectionInfo,
    readonly req: IncomingMessage,
    readonly socket: Socket,
    /** Bytes the client sent after the upgrade request (first frames). */
    readonly head: Buffer,
  ) {
    super('ws', ex, conn, req.method ?? 'GET', req.url ?? '/', req.headers.host ?? '', req.headers, false);
  }

  get rawBody(): IncomingMessage {
    return this.req;
  }

  get headersSent(): boolean {
    return this.headSent;
  }

  override get closed(): boolean {
    return this.closedFlag || this.socket.destroyed;
  }

  protected writeHead(status: number, headers: OutgoingHttpHeaders, _trailers: boolean, statusMessage: string | undefined): void {
    this.headSent = true;
    let s = `HTTP/1.1 ${status} ${statusMessage || http.STATUS_CODES[status] || ''}\r\n`;
    for (const k in headers) {
      const v = headers[k];
      // A value with CR or LF would split the head (response splitting): never written.
      if (v === undefined || k === 'connection' || /[\r\n]/.test(String(v))) continue;
      s += Array.isArray(v) ? v.map((x) => `${k}: ${x}\r\n`).join('') : `${k}: ${v}\r\n`;
    }
    // No keep-alive after a refused upgrade: the client expected a different protocol on this socket.
    this.socket.write(`${s}connection: close\r\n\r\n`);
  }

  protected writeHeadEnd(status: number, headers: OutgoingHttpHeaders): void {
    this.writeHead(status, headers, false, undefined);
    this.socket.end();
  }

  protected writeData(chunk: string | Buffer): boolean {
    return this.socket.write(chunk);
  }

  protected onSinkDrain(fn: () => void): void {
    this.socket.on('drain', fn);
  }

  protected endData(chunk: string | Buffer | undefined): void {
    if (chunk !== undefined) this.socket.end(chunk);
    else this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /**
   * A local reply to a WebSocket-bridge client (docs/websocket.md): the
   * upgrade is accepted (`headers` ride on the 101), then the bridge's final
   * status frame `{code, message, details}` is sent and the socket closed
   * with 4000 + the gRPC code and the message as reason, as a call the
   * backend ended would be — so a browser client, which cannot read a
   * refused upgrade's status, learns why.
   */
  closeWithStatus(code: number, message: string, headers: OutgoingHttpHeaders, statusFrame: string): void {
    this.headSent = true;
    this.responseEnded = true;
    this.ex.status = 101;
    // The subprotocol the bridge would have chosen (docs/websocket.md), never a bearer token.
    const pick = (offered: Set<string>): string | false =>
      ['grpc-ws+proto', 'grpc-ws+json', 'bearer'].find((p) => offered.has(p)) ?? false;
    const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, handleProtocols: pick });
    wss.on('headers', (lines: string[]) => {
      for (const k in headers) {
        const v = headers[k];
        if (v === undefined || /[\r\n]/.test(String(v))) continue;
        for (const x of Array.isArray(v) ? v : [String(v)]) lines.push(`${k}: ${x}`);
      }
    });
    wss.handleUpgrade(this.req, this.socket, this.head, (ws) => {
      ws.send(statusFrame);
      ws.close(closeCodeOf(code), closeReasonOf(message));
    });
  }

  onClose(fn: () => void): void {
    this.socket.once('close', fn);
  }
}
