import http, { type ClientRequest, type IncomingMessage } from 'node:http';
import type { Clock, Timer } from '../../../core/clock.js';
import type { UpstreamAttempt } from '../attempt.js';
import type { ClusterRuntime } from '../cluster.js';
import type { H1Pool } from '../h1-pool.js';
import type { CallEvents, UpstreamCall } from './upstream-call.js';
import { upstreamPrincipalOf } from '../upstream-tls.js';
import { connectDeadline } from '../../../core/connect-deadline.js';

/**
 * One attempt as an HTTP/1.1 request through the endpoint's keep-alive
 * agent. The cluster's connect timeout applies only while a new socket
 * connects (a reused keep-alive socket is already connected), and only then
 * is the attempt pending (circuitBreakers.maxPendingRequests).
 */
export class H1Call implements UpstreamCall {
  events: CallEvents;
  tryTimer: Timer | undefined = undefined;
  private readonly req: ClientRequest;
  private res: IncomingMessage | undefined;
  private over = false;
  private connected = false;

  constructor(
    pool: H1Pool,
    clock: Clock,
    cluster: ClusterRuntime,
    readonly attempt: UpstreamAttempt,
    method: string,
    path: string,
    headers: Record<string, string | string[]>,
    endNow: boolean,
    events: CallEvents,
  ) {
    this.events = events;
    const ep = attempt.endpoint;
    const agent = pool.agent(ep, cluster.maxIdleConnections, cluster.idleTimeoutMs, cluster.upstreamTls);
    const req = (this.req = http.request({ agent, host: ep.host, port: ep.port, method, path, headers, setHost: false }));
    req.on('socket', (socket) => {
      if (!socket.connecting) {
        this.connected = true;
        return;
      }
      attempt.waitingForConnection();
      const timer = connectDeadline(clock, cluster.connectTimeoutMs, () => this.connected, () => req.destroy(new Error(`connect timeout after ${cluster.connectTimeoutMs}ms`)));
      // TLS upstreams (cluster `tls`) are connected once the handshake is done (and the peer verified).
      socket.once(cluster.upstreamTls !== undefined ? 'secureConnect' : 'connect', () => {
        this.connected = true;
        attempt.connected();
        timer.cancel();
      });
      socket.once('close', () => {
        attempt.connected();
        timer.cancel();
      });
    });
    req.on('response', (res) => this.onResponse(res));
    req.on('error', (err) => {
      if (this.over) return;
      this.over = true;
      if (this.res !== undefined) return this.events.onFail(this, { kind: 'reset', detail: err.message }, true);
      this.events.onFail(this, { kind: this.connected ? 'reset' : 'connect_failure', detail: err.message }, false);
    });
    req.on('drain', () => {
      if (!this.over) this.events.onWritable(this);
    });
    if (endNow) req.end();
  }

  private onResponse(res: IncomingMessage): void {
    if (this.over) return void res.destroy();
    this.res = res;
    this.events.onHead(this, { status: res.statusCode ?? 502, headers: res.headers, endStream: false, statusMessage: res.statusMessage });
    if (this.over) return;
    res.on('data', (c: Buffer) => {
      if (!this.over) this.events.onData(this, c);
    });
    res.once('end', () => {
      if (this.over) return;
      this.over = true;
      for (const _ in res.trailers) {
        this.events.onTrailers(this, res.trailers);
        break;
      }
      this.events.onEnd(this);
    });
    res.once('aborted', () => {
      if (this.over) return;
      this.over = true;
      this.events.onFail(this, { kind: 'reset', detail: 'upstream response aborted' }, true);
    });
  }

  get closed(): boolean {
    return this.over;
  }

  peerPrincipal(): string | undefined {
    return upstreamPrincipalOf(this.req.socket);
  }

  write(chunk: Buffer): boolean {
    if (this.over || this.req.writableEnded) return true;
    return this.req.write(chunk);
  }

  end(): void {
    if (!this.req.writableEnded) this.req.end();
  }

  pause(): void {
    this.res?.pause();
  }

  resume(): void {
    this.res?.resume();
  }

  cancel(): void {
    this.over = true;
    this.req.destroy();
  }
}
