import http from 'node:http';
import type { ProxyContext } from '../context.js';
import type { WsDownstream } from '../downstream/ws-downstream.js';
import { localReply } from '../downstream/local-reply.js';
import { startAttempt } from '../upstream/attempt.js';
import type { UpstreamTarget } from './upstream-target.js';
import { connectDeadline } from '../../core/connect-deadline.js';

/**
 * WebSocket pass-through (RFC 6455 over HTTP/1.1 Upgrade): replay the upgrade
 * request to the chosen endpoint, relay the upstream's 101 (or its refusal)
 * and then splice the two sockets byte for byte, so frames, pings and close
 * codes pass unchanged in both directions.
 */
export function forwardWebSocket(ctx: ProxyContext, ds: WsDownstream, t: UpstreamTarget, headers: Record<string, string | string[]>): void {
  const ex = ds.ex;
  const socket = ds.socket;
  const head = ds.head;
  // One attempt, from the upgrade request until the spliced sockets close (the seam: upstream/attempt.ts).
  const attempt = startAttempt(ctx.metrics, t.cluster, t.ep, 0, 'first', headers, ex);
  ds.onClose(() => attempt.end({ status: ex.status, flag: ex.flags, grpcStatus: undefined }));
  const up = http.request({
    host: t.ep.host,
    port: t.ep.port,
    method: ds.method,
    path: t.path,
    headers,
    setHost: false,
    agent: false,
  });
  let connected = false;
  const timer = connectDeadline(ctx.clock, t.cluster.connectTimeoutMs, () => connected, () => up.destroy(new Error('connect timeout')));
  up.on('socket', (s) => s.once('connect', () => (connected = true)));
  up.on('error', (err) => {
    timer.cancel();
    if (!socket.destroyed && ex.status === 0) localReply(ds, connected ? 'upstream_reset' : 'upstream_connect_failure', err.message);
  });
  up.on('response', (res) => {
    // The upstream refused the upgrade: relay its answer and close.
    timer.cancel();
    ex.status = res.statusCode ?? 502;
    socket.write(statusLine(ex.status, res.statusMessage) + headerLines(res.rawHeaders, true) + '\r\n');
    res.on('data', (c: Buffer) => {
      ex.bytes_out += c.length;
      socket.write(c);
    });
    res.once('end', () => ds.end());
  });
  up.on('upgrade', (res, upSocket, upHead) => {
    timer.cancel();
    ex.status = 101;
    // From here the two sockets are spliced: the exchange is done from the
    // pipeline's point of view, and its log line is written when they close.
    ds.responseEnded = true;
    upSocket.on('error', noop);
    socket.write(statusLine(101, res.statusMessage) + headerLines(res.rawHeaders, false) + '\r\n');
    if (upHead.length) socket.write(upHead);
    if (head.length) upSocket.write(head);
    socket.setNoDelay(true);
    upSocket.setNoDelay(true);
    socket.on('data', (c: Buffer) => (ex.bytes_in += c.length));
    upSocket.on('data', (c: Buffer) => (ex.bytes_out += c.length));
    socket.pipe(upSocket);
    upSocket.pipe(socket);
    socket.once('close', () => upSocket.destroy());
    upSocket.once('close', () => socket.destroy());
  });
  ds.scope.onAbort(() => {
    timer.cancel();
    if (ex.status !== 101) up.destroy();
  });
  up.end();
}

function statusLine(status: number, message: string | undefined): string {
  return `HTTP/1.1 ${status} ${message || http.STATUS_CODES[status] || ''}\r\n`;
}

/** Header lines from raw [name, value, …] pairs; `close` adds Connection: close for refusals. */
function headerLines(raw: string[], close: boolean): string {
  let s = '';
  for (let i = 0; i < raw.length; i += 2) {
    const n = raw[i]!.toLowerCase();
    if (close && (n === 'connection' || n === 'keep-alive')) continue;
    s += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return close ? s + 'connection: close\r\n' : s;
}

function noop(): void {}
