import net, { type Socket } from 'node:net';
import { LOCAL_ERRORS, type LocalErrorCode } from '../../core/errors.js';
import type { ProxyContext } from '../context.js';
import type { ListenerView } from '../state/listener-view.js';
import { ORIGINAL_DST, type Destination } from '../upstream/original-dst.js';
import { connectDeadline } from '../../core/connect-deadline.js';

/**
 * Opaque TCP: splice the downstream socket to an endpoint of the listener's
 * default cluster, replaying any bytes read during detection. Half-closes pass
 * through (allowHalfOpen on both sides); either side closing hard closes the
 * other. One access-log line per connection.
 *
 * An ORIGINAL_DST default cluster sends the connection where the app was
 * going (its SO_ORIGINAL_DST); one that was not redirected, or a destination
 * that is this sidecar, is refused (closed, with the flag in the log line).
 */
export function proxyTcp(ctx: ProxyContext, view: ListenerView, socket: Socket, initial: Buffer | undefined): void {
  const settings = view.settings;
  const startMs = ctx.clock.monotonicMs();
  const cluster = settings.defaultCluster ? view.state.clusters.get(settings.defaultCluster) : undefined;
  let bytesIn = initial?.length ?? 0;
  let bytesOut = 0;
  let flags: string | undefined;
  let detail: string | undefined;
  let upstream: string | undefined;
  socket.on('error', noop);
  // Observability: Istio's TCP metrics (opened now, bytes and close when the log line is written).
  const istio = ctx.telemetry?.istio?.tcpOpen(settings.name, cluster?.name ?? '');
  const log = (): void => {
    istio?.close(bytesIn, bytesOut, flags);
    if (!settings.accessLog) return;
    ctx.accessLog.info(
      {
        listener: settings.name,
        protocol: 'tcp',
        duration_ms: Math.round(ctx.clock.monotonicMs() - startMs),
        bytes_in: bytesIn,
        bytes_out: bytesOut,
        upstream,
        cluster: cluster?.name,
        flags,
        detail,
      },
      'access',
    );
  };
  const refuse = (code: LocalErrorCode, why: string): void => {
    const spec = LOCAL_ERRORS[code];
    flags = spec.flag;
    detail = `${spec.message}: ${why}`;
    ctx.metrics.localReplies.inc({ listener: settings.name, flag: flags });
    socket.destroy();
    log();
  };
  if (!cluster) {
    return refuse('no_cluster', settings.defaultCluster ? `"${settings.defaultCluster}"` : 'the listener has no defaultCluster for TCP');
  }
  const picked = ctx.originalDst.pick(cluster, { originalDst: (socket as { [ORIGINAL_DST]?: Destination })[ORIGINAL_DST] });
  if (!picked.ep) return refuse(picked.code, picked.detail);
  const ep = picked.ep;
  upstream = ep.key;
  const up = net.connect({ host: ep.host, port: ep.port, allowHalfOpen: true, noDelay: true });
  up.on('error', noop);
  const timer = connectDeadline(ctx.clock, cluster.connectTimeoutMs, () => !up.connecting, () => up.destroy(new Error('connect timeout')));
  up.once('connect', () => {
    timer.cancel();
    if (initial?.length) up.write(initial);
    socket.pipe(up);
    up.pipe(socket);
  });
  socket.on('data', (c: Buffer) => (bytesIn += c.length));
  up.on('data', (c: Buffer) => (bytesOut += c.length));
  up.once('close', (hadError) => {
    timer.cancel();
    if (hadError && bytesOut === 0) flags = LOCAL_ERRORS.upstream_connect_failure.flag;
    // A clean close already ended the downstream through pipe(); end() lets
    // queued bytes flush. Only an error cuts the client off.
    if (hadError) socket.destroy();
    else socket.end();
  });
  socket.once('close', () => {
    up.destroy();
    log();
  });
}

function noop(): void {}
