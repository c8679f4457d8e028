import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { ProxyContext } from '../context.js';
import type { ConnectionInfo } from '../downstream/downstream.js';
import { WsDownstream } from '../downstream/ws-downstream.js';
import { Exchange } from '../http/exchange.js';
import type { ListenerViewRef } from '../state/listener-view.js';
import { handleExchange } from '../pipeline/handle-exchange.js';

/**
 * The WebSocket codec: an HTTP/1.1 `Upgrade: websocket` request becomes a
 * Downstream for the pipeline, which routes it to the pass-through forwarder
 * or, on a transcoding route, to the WebSocket ↔ gRPC bridge.
 */
export function onWebSocketUpgrade(ctx: ProxyContext, ref: ListenerViewRef, conn: ConnectionInfo, req: IncomingMessage, socket: Socket, head: Buffer): void {
  const view = ref.view;
  const ex = new Exchange(ctx, view.settings, 'websocket');
  const ds = new WsDownstream(ex, conn, req, socket, head);
  ex.method = ds.method;
  ex.path = ds.target;
  ex.authority = ds.authority;
  ex.captureHeaders(req.headers);
  socket.on('error', noop);
  socket.once('close', () => {
    ds.closedByClient();
    ex.finish();
  });
  handleExchange(ctx, view, ds);
}

function noop(): void {}
