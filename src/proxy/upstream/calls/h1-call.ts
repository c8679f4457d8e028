import { PassThrough } from 'node:stream';
import type { Dispatcher } from 'undici';
import type { Clock, Timer } from '../../../core/clock.js';
import type { UpstreamAttempt } from '../attempt.js';
import type { ClusterRuntime } from '../cluster.js';
import { undiciLib, type ConnectWaiter, type H1Connection, type H1Pool } from '../h1-pool.js';
import type { CallEvents, UpstreamCall } from './upstream-call.js';
import { upstreamPrincipalOf } from '../upstream-tls.js';
import { connectDeadline } from '../../../core/connect-deadline.js';
import { headersOfRaw } from '../../http/headers.js';

/**
 * One attempt as an HTTP/1.1 request on one of the endpoint's keep-alive
 * connections (h1-pool.ts), through undici's dispatch API: this object is
 * the request's handler (onConnect … onComplete), so a request allocates no
 * ClientRequest, IncomingMessage or closures. The cluster's connect timeout
 * applies only while a new connection connects (a reused one is already
 * connected), and only then is the attempt pending
 * (circuitBreakers.maxPendingRequests). A failure before the connection was
 * up is a connect failure (UF), after it a reset (UR/UC).
 *
 * Request bodies stream through a PassThrough that undici reads with the
 * socket's backpressure (`write() === false` until 'drain'); requests
 * without a body (`endNow`) have none. Response bodies stream out of
 * `onData`, paused by returning false until `resume()`.
 */
export class H1Call implements UpstreamCall, ConnectWaiter {
  events: CallEvents;
  tryTimer: Timer | undefined = undefined;
  private readonly conn: H1Connection;
  private readonly body: PassThrough | undefined;
  private connectTimer: Timer | undefined = undefined;
  private resumeFn: (() => void) | undefined = undefined;
  private headed = false;
  private over = false;
  private connected: boolean;
  private paused = false;
  /** True while undici's dispatch runs: a failure it reports synchronously is deferred (the runner has no call yet). */
  private dispatching = true;

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
    const conn = (this.conn = pool.acquire(attempt.endpoint, cluster.maxIdleConnections, cluster.idleTimeoutMs, cluster.upstreamTls));
    this.connected = conn.connected;
    if (!conn.connected) {
      attempt.waitingForConnection();
      conn.waiter = this;
      const ms = cluster.connectTimeoutMs;
      this.connectTimer = connectDeadline(clock, ms, () => this.connected, () => this.onError(new Error(`connect timeout after ${ms}ms`)));
    }
    // We answered the client's `Expect: 100-continue` ourselves (node:http does); undici does not send it.
    if (headers['expect'] !== undefined) delete headers['expect'];
    let body: PassThrough | null = null;
    if (!endNow) {
      body = this.body = new PassThrough();
      body.on('drain', () => {
        if (!this.over) this.events.onWritable(this);
      });
      // undici destroys the body of a request that failed; our writes stop at `over`.
      body.on('error', noop);
    }
    // Any token is a method to undici (its type lists the common ones).
    conn.client.dispatch({ method: method as Dispatcher.HttpMethod, path, headers, body }, this);
    this.dispatching = false;
  }

  connectedNow(): void {
    this.connected = true;
    this.attempt.connected();
    this.connectTimer?.cancel();
  }

  // ---- undici's dispatch handler ----

  onConnect(): void {}

  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    // 1xx informational responses (103 Early Hints) are not the answer.
    if (this.over || status < 200) return true;
    this.headed = true;
    this.resumeFn = resume;
    this.events.onHead(this, { status, headers: headersOfRaw(raw, undiciLib().util.headerNameToString), endStream: false, statusMessage: statusText });
    return !this.paused;
  }

  onData(chunk: Buffer): boolean {
    if (this.over) return true;
    this.events.onData(this, chunk);
    return !this.paused;
  }

  onComplete(trailers: (Buffer | string)[] | null): void {
    if (this.over) return;
    this.over = true;
    if (trailers !== null && trailers.length > 0) this.events.onTrailers(this, headersOfRaw(trailers, undiciLib().util.headerNameToString));
    this.events.onEnd(this);
    // Last: undici may still close the socket (Connection: close), which the pool checks before reusing it.
    this.conn.release();
  }

  onError(err: Error): void {
    if (this.over) return;
    this.over = true;
    if (!this.connected) {
      this.connectTimer?.cancel();
      this.attempt.connected();
    }
    this.conn.close(err);
    if (this.dispatching) process.nextTick(() => this.fail(err));
    else this.fail(err);
  }

  private fail(err: Error): void {
    const detail = err.message;
    if (this.headed) return this.events.onFail(this, { kind: 'reset', detail }, true);
    this.events.onFail(this, { kind: this.connected ? 'reset' : 'connect_failure', detail }, false);
  }

  // ---- UpstreamCall ----

  get closed(): boolean {
    return this.over;
  }

  peerPrincipal(): string | undefined {
    return upstreamPrincipalOf(this.conn.socket);
  }

  write(chunk: Buffer): boolean {
    const b = this.body;
    if (this.over || b === undefined || b.writableEnded) return true;
    return b.write(chunk);
  }

  end(): void {
    const b = this.body;
    if (b !== undefined && !b.writableEnded) b.end();
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.resumeFn?.();
  }

  cancel(): void {
    if (this.over) return;
    this.over = true;
    // The socket goes with the request (a half-sent request or unread response cannot be reused).
    this.conn.close();
  }
}

function noop(): void {}
