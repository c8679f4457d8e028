import http2, { type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { ConnectionInfo } from '../downstream/downstream.js';
import { releaseClosedStream } from '../http/release-stream.js';
import { H2Downstream } from '../downstream/h2-downstream.js';
import { Exchange } from '../http/exchange.js';
import { isGrpcContentType } from '../http/headers.js';
import type { ListenerViewRef } from '../state/listener-view.js';
import { handleExchange } from '../pipeline/handle-exchange.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;

export type H2ConnectionInfo = ConnectionInfo;

/** The HTTP/2 codec: one downstream stream (gRPC or plain h2) becomes a Downstream for the pipeline. */
export function onH2Stream(
  ctx: ProxyContext,
  ref: ListenerViewRef,
  conn: ConnectionInfo,
  stream: ServerHttp2Stream,
  headers: IncomingHttpHeaders,
  flags: number,
): void {
  const view = ref.view;
  const grpc = isGrpcContentType(headers['content-type']);
  const ex = new Exchange(ctx, view.settings, grpc ? 'grpc' : 'h2');
  const ds = new H2Downstream(ex, conn, stream, headers, (flags & END_STREAM) !== 0, grpc);
  ex.method = ds.method;
  ex.path = ds.target;
  ex.authority = ds.authority;
  ex.captureHeaders(headers);
  // 'close' comes once: `on` spares the per-request wrapper `once` makes.
  stream.on('close', () => {
    ds.closedByClient();
    ex.finish();
    releaseClosedStream(stream);
  });
  // Errors on a stream (client reset, protocol error) end in 'close'; the StreamLimiter that serves every
  // stream (admit) already listens for them, so none throws and no second listener is added per request.
  handleExchange(ctx, view, ds);
}
