import http, { type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { LOCAL_ERRORS, type LocalErrorCode } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import { Exchange } from '../exchange.js';
import { copyRequestHeaders } from '../headers.js';
import type { ListenerViewRef } from '../listener-view.js';
import type { H1ConnectionInfo } from './h1-request.js';
import { rewritePath } from './rewrite.js';
import { bridgeMethodOf, bridgeWebSocket } from '../transcode/websocket/bridge.js';

/**
 * WebSocket pass-through (RFC 6455 over HTTP/1.1 Upgrade): route the upgrade
 * request, replay it to the chosen endpoint, relay the upstream's 101 (or its
 * refusal) and then splice the two sockets byte for byte, so frames, pings and
 * close codes pass unchanged in both directions.
 */
export function onWebSocketUpgrade(
  ctx: ProxyContext,
  ref: ListenerViewRef,
  conn: H1ConnectionInfo,
  req: IncomingMessage,
  socket: Socket,
  head: Buffer,
): void {
  const view = ref.view;
  const settings = view.settings;
  const ex = new Exchange(ctx, settings, 'websocket');
  const rawPath = req.url ?? '/';
  const authority = req.headers.host ?? '';
  ex.method = req.method ?? 'GET';
  ex.path = rawPath;
  ex.authority = authority;
  ex.captureHeaders(req.headers);
  socket.on('error', noop);
  socket.once('close', () => ex.finish());

  const q = rawPath.indexOf('?');
  const match = settings.routes?.match({
    host: authority,
    method: ex.method,
    path: q < 0 ? rawPath : rawPath.slice(0, q),
    headers: req.headers,
    isGrpc: false,
  });
  if (!match) return rawLocalReply(socket, ex, 'no_route');
  ex.route = match.route.name;
  const action = match.route.action;
  if (action.kind === 'direct') return rawReply(socket, ex, action.status, action.body);
  ex.cluster = action.cluster;
  const cluster = view.state.clusters.get(action.cluster);
  if (!cluster) return rawLocalReply(socket, ex, 'no_cluster');
  const picked = ctx.originalDst.pick(cluster, { originalDst: conn.originalDst, authority, scheme: conn.scheme });
  if (!picked.ep) return rawLocalReply(socket, ex, picked.code, cluster.originalDst ? picked.detail : undefined);
  const ep = picked.ep;
  ex.upstream = ep.key;
  // A transcoding route bridges upgrades to /<pkg.Service>/<Method> to a gRPC call (docs/websocket.md).
  const tr = action.transcode ? view.state.transcoders.get(action.transcode) : undefined;
  const rpc = tr && bridgeMethodOf(tr, rawPath);
  if (tr && rpc) {
    ex.protocol = 'websocket-bridge';
    const target = { ctx, tr, ex, cluster, ep, routeTimeoutMs: action.timeoutMs, authority: action.hostRewrite || authority };
    return bridgeWebSocket({ ...target, clientAddress: conn.clientAddress, trustedHops: settings.trustedHops }, rpc, req, socket, head);
  }

  const headers: Record<string, string | string[]> = {};
  ex.request_id = copyRequestHeaders(req.headers, headers, {
    clientAddress: conn.clientAddress,
    scheme: conn.scheme,
    trustedHops: settings.trustedHops,
  });
  headers['host'] = action.hostRewrite || authority;
  headers['connection'] = 'Upgrade';
  headers['upgrade'] = req.headers.upgrade ?? 'websocket';

  const up = http.request({
    host: ep.host,
    port: ep.port,
    method: ex.method,
    path: rewritePath(rawPath, match, action),
    headers,
    setHost: false,
    agent: false,
  });
  let connected = false;
  const timer = ctx.clock.setTimer(cluster.connectTimeoutMs, () => {
    if (!connected) up.destroy(new Error('connect timeout'));
  });
  up.on('socket', (s) => s.once('connect', () => (connected = true)));
  up.on('error', (err) => {
    timer.cancel();
    if (!socket.destroyed && ex.status === 0)
      rawLocalReply(socket, ex, connected ? 'upstream_reset' : 'upstream_connect_failure', err.message);
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
    res.once('end', () => socket.end());
  });
  up.on('upgrade', (res, upSocket, upHead) => {
    timer.cancel();
    ex.status = 101;
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
  socket.once('close', () => {
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

function rawReply(socket: Socket, ex: Exchange, status: number, body: string): void {
  ex.status = status;
  socket.end(
    `${statusLine(status, undefined)}content-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

function rawLocalReply(socket: Socket, ex: Exchange, code: LocalErrorCode, detail?: string): void {
  const spec = LOCAL_ERRORS[code];
  ex.flags = spec.flag;
  rawReply(socket, ex, spec.httpStatus, `${detail ? `${spec.message}: ${detail}` : spec.message}\n`);
}

function noop(): void {}
