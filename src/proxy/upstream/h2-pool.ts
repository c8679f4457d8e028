import http2, { type ClientHttp2Session } from 'node:http2';
import net from 'node:net';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { EndpointAddress } from './endpoint.js';
import type { SvidSource } from '../../core/svid.js';
import { connectTls, type UpstreamTlsPolicy } from './upstream-tls.js';
import { connectDeadline } from '../../core/connect-deadline.js';
import { IdleTimeout } from '../http/idle-timeout.js';

/**
 * States of one upstream HTTP/2 session:
 *   connecting → ready → (draining after GOAWAY | closed)
 *   connecting → failed (connect error or timeout) → closed
 * A session that is draining or closed is dropped from the pool at once, so
 * the next request opens a fresh one while streams in flight finish.
 */
export type H2State = 'connecting' | 'ready' | 'draining' | 'failed' | 'closed';

export class H2Connection {
  state: H2State = 'connecting';
  lastError: string | undefined;
  private waiting: (() => void)[] | undefined;

  constructor(
    readonly endpoint: EndpointAddress,
    readonly session: ClientHttp2Session,
    /** Counts this session's streams (H2Call: `opened`/`closed`) and closes it after the cluster's idleTimeout without one. */
    readonly idle: IdleTimeout,
  ) {}

  get usable(): boolean {
    return (this.state === 'connecting' || this.state === 'ready') && !this.session.closed && !this.session.destroyed;
  }

  /**
   * Calls `fn` once the session is no longer connecting (connected, failed or
   * closed): attempts waiting for it stop counting as pending
   * (circuitBreakers.maxPendingRequests). One list per session rather than a
   * session listener per attempt, so a burst of requests on a connecting
   * session adds no listeners.
   */
  whenSettled(fn: () => void): void {
    if (this.state !== 'connecting') return fn();
    (this.waiting ??= []).push(fn);
  }

  /** The pool's: the session left the connecting state. */
  settle(): void {
    const w = this.waiting;
    this.waiting = undefined;
    if (w) for (const fn of w) fn();
  }
}

export interface H2PoolOptions {
  clock: Clock;
  logger: Logger;
  /** Per-stream receive window towards upstreams; big messages stream faster with a larger one. */
  initialWindowSize?: number;
  /** The workload certificate for clusters with `tls: {mode: TLS_MODE_MESH}`. */
  identity?: SvidSource;
}

/** Larger windows than HTTP/2's 64 KiB default, so a 16 MiB message is not throttled by round trips. */
const DEFAULT_WINDOW = 1 << 20;
const SESSION_WINDOW = 8 << 20;

/**
 * One multiplexed HTTP/2 session per upstream endpoint, shared by every
 * listener and config version. Sessions are keyed by endpoint, not by
 * cluster, so a config swap that keeps an endpoint keeps its connection.
 */
export class H2Pool {
  private readonly conns = new Map<string, H2Connection>();
  /**
   * Last connect failure per endpoint, kept until a session to it connects.
   * A failed connection is dropped from `conns` at once (so the next request
   * retries), which made describe() — and the admin /clusters view — show a
   * refused or timed-out endpoint as "idle" with no error.
   */
  private readonly failures = new Map<string, string>();

  constructor(private readonly opts: H2PoolOptions) {}

  /**
   * The live session for `ep`, connecting one when there is none. With
   * `tls` the session is TLS (its own pool entry: a plaintext and a TLS
   * session to one endpoint never mix).
   */
  get(ep: EndpointAddress, connectTimeoutMs: number, idleTimeoutMs: number, tls?: UpstreamTlsPolicy): H2Connection {
    const key = tls === undefined ? ep.key : `${ep.key}#${tls.poolKey}`;
    const existing = this.conns.get(key);
    if (existing && existing.usable) return existing;
    const conn = this.connect(ep, key, connectTimeoutMs, idleTimeoutMs, tls);
    this.conns.set(key, conn);
    return conn;
  }

  private connect(ep: EndpointAddress, poolKey: string, connectTimeoutMs: number, idleTimeoutMs: number, tls: UpstreamTlsPolicy | undefined): H2Connection {
    const window = this.opts.initialWindowSize ?? DEFAULT_WINDOW;
    const identity = this.opts.identity;
    const session = http2.connect(`${tls ? 'https' : 'http'}://${ep.key}`, {
      createConnection: () => (tls ? connectTls(tls, ep, identity, ['h2']) : net.connect({ host: ep.host, port: ep.port, noDelay: true })),
      settings: { initialWindowSize: window, enablePush: false },
      maxSessionMemory: 64,
    });
    // Forgets this session in the pool (when it still is the pool's): the next request opens a new one.
    const drop = (): void => {
      if (this.conns.get(poolKey) === conn) this.conns.delete(poolKey);
    };
    const conn: H2Connection = new H2Connection(
      ep,
      session,
      new IdleTimeout(this.opts.clock, idleTimeoutMs, () => {
        // No stream open for idleTimeoutMs: new requests get a new session, this one closes (GOAWAY).
        drop();
        session.close();
      }).bindTo(session),
    );
    const timer = connectDeadline(this.opts.clock, connectTimeoutMs, () => conn.state !== 'connecting', () => {
      conn.state = 'failed';
      conn.lastError = `connect timeout after ${connectTimeoutMs}ms`;
      session.destroy(new Error(conn.lastError));
      conn.settle();
    });
    session.once('connect', () => {
      timer.cancel();
      conn.state = 'ready';
      this.failures.delete(ep.key);
      session.setLocalWindowSize(SESSION_WINDOW);
      conn.settle();
    });
    session.on('goaway', () => {
      // Streams already open finish; new requests must go to a new session.
      if (conn.state !== 'failed') conn.state = 'draining';
      drop();
    });
    session.on('error', (err: Error) => {
      if (conn.state === 'connecting') conn.state = 'failed';
      conn.lastError = err.message;
      if (conn.state === 'failed') this.failures.set(ep.key, err.message);
      this.opts.logger.warn({ upstream: ep.key, err: err.message }, 'upstream h2 session error');
      drop();
      conn.settle();
    });
    session.once('close', () => {
      timer.cancel();
      if (conn.state !== 'failed') conn.state = 'closed';
      drop();
      conn.settle();
    });
    session.unref();
    return conn;
  }

  /** Closes the sessions of endpoints not in `keep` (after a config swap). */
  retain(keep: ReadonlySet<string>): void {
    for (const key of this.failures.keys()) if (!keep.has(key)) this.failures.delete(key);
    for (const [key, conn] of this.conns) {
      if (!keep.has(conn.endpoint.key)) {
        this.conns.delete(key);
        conn.session.close();
      }
    }
  }

  /**
   * Forgets the session of `key` gracefully: streams in flight finish, new
   * requests open a new session. Used for original destinations (original-dst.ts).
   */
  evict(key: string): void {
    this.failures.delete(key);
    const conn = this.conns.get(key);
    if (!conn) return;
    this.conns.delete(key);
    conn.session.close();
  }

  describe(key: string): { state: H2State; lastError?: string } | undefined {
    const c = this.conns.get(key);
    if (c) return { state: c.state, ...(c.lastError ? { lastError: c.lastError } : {}) };
    const failure = this.failures.get(key);
    return failure === undefined ? undefined : { state: 'failed', lastError: failure };
  }

  closeAll(): void {
    for (const conn of this.conns.values()) conn.session.close();
    this.conns.clear();
    this.failures.clear();
  }
}
