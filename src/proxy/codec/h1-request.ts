import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ProxyContext } from '../context.js';
import type { ConnectionInfo } from '../downstream/downstream.js';
import { H1Downstream } from '../downstream/h1-downstream.js';
import { Exchange } from '../http/exchange.js';
import type { ListenerViewRef } from '../state/listener-view.js';
import { handleExchange } from '../pipeline/handle-exchange.js';

export type H1ConnectionInfo = ConnectionInfo;

/** The HTTP/1.1 codec: one request and its response become a Downstream for the pipeline. */
export function onH1Request(ctx: ProxyContext, ref: ListenerViewRef, conn: ConnectionInfo, req: IncomingMessage, res: ServerResponse): void {
  const view = ref.view;
  const ex = new Exchange(ctx, view.settings, 'http1');
  const ds = new H1Downstream(ex, conn, req, res);
  ex.method = ds.method;
  ex.path = ds.target;
  ex.authority = ds.authority;
  ex.captureHeaders(req.headers);
  res.once('close', () => {
    ds.closedByClient();
    ex.finish();
  });
  req.on('error', noop);
  res.on('error', noop);
  if (ctx.lifecycle.draining) res.shouldKeepAlive = false;
  handleExchange(ctx, view, ds);
}

function noop(): void {}
