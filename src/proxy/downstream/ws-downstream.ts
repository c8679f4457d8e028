import http, { type IncomingMessage } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import type { Exchange } from '../http/exchange.js';
import { Downstream, type ConnectionInfo } from './downstream.js';

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

  onClose(fn: () => void): void {
    this.socket.once('close', fn);
  }
}
