import { createRequire } from 'node:module';
import net from 'node:net';
import { isIPv6 } from 'node:net';
import type * as Undici from 'undici';
import type { buildConnector, Client } from 'undici';
import type { EndpointAddress } from './endpoint.js';
import type { SvidSource } from '../../core/svid.js';
import { connectTls, type UpstreamTlsPolicy } from './upstream-tls.js';
import type { Logger } from '../../observability/logger.js';

let undici: typeof Undici | undefined;

/**
 * undici, loaded at the first HTTP/1.1 upstream connection rather than at
 * startup: with its llhttp wasm it is about 15 MB of RSS and 100 ms of
 * loading, which a sidecar without HTTP/1.1 upstream traffic never pays.
 */
export function undiciLib(): typeof Undici {
  return (undici ??= createRequire(import.meta.url)('undici') as typeof Undici);
}

/** Told when the connection it waits for is up (an H1Call whose request was queued on a new connection). */
export interface ConnectWaiter {
  connectedNow(): void;
}

/**
 * One keep-alive HTTP/1.1 connection to an endpoint: an undici `Client`
 * (llhttp parser, one request at a time) over a socket this pool makes, so
 * the cluster's TLS policy, the connect deadline and the pending count stay
 * ours. It serves one request at a time: taken from its endpoint's idle
 * stack by `H1Pool.acquire`, given back by `release()` when the response has
 * ended. undici closes it after `idleTimeoutMs` without a request (or the
 * server's shorter `Keep-Alive: timeout`), or when the server says
 * `Connection: close`.
 */
export class H1Connection {
  readonly client: Client;
  /** Our socket, once the connector made it (the TLS socket for TLS clusters). */
  socket: net.Socket | undefined = undefined;
  /** Connected (TLS: handshake done, peer verified). */
  connected = false;
  closed = false;
  /** The request queued on this connection while it connects. */
  waiter: ConnectWaiter | undefined = undefined;

  constructor(
    private readonly owner: EndpointConnections,
    origin: string,
    idleTimeoutMs: number,
  ) {
    this.client = new (undiciLib().Client)(origin, {
      pipelining: 1,
      keepAliveTimeout: idleTimeoutMs,
      keepAliveMaxTimeout: idleTimeoutMs,
      // No timers of undici's own on a response: the route timeout, per-try timeout and gRPC deadline are the attempt runner's.
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: (_opts, cb) => this.connect(cb),
    });
    // A socket closed under the pool (idle timeout, server's Connection: close, reset): forget the connection.
    this.client.on('disconnect', () => this.close());
  }

  private connect(cb: buildConnector.Callback): void {
    const o = this.owner;
    const ep = o.ep;
    if (this.closed) return cb(new Error('upstream connection closed'), null);
    const s = o.tls === undefined ? net.connect({ host: ep.host, port: ep.port, noDelay: true }) : connectTls(o.tls, ep, o.identity, ['http/1.1']);
    this.socket = s;
    let settled = false;
    // Stays on after the connect: undici adds its own listener only a few ticks later.
    s.on('error', (err: Error) => {
      if (settled) return;
      settled = true;
      // One line per failed handshake (a refused peer identity says why); the request fails as a connect failure.
      if (o.tls !== undefined) o.logger?.warn({ upstream: ep.key, err: err.message }, 'upstream TLS connection failed');
      cb(err, null);
    });
    // TLS upstreams are connected once the handshake is done (and the peer verified).
    s.once(o.tls === undefined ? 'connect' : 'secureConnect', () => {
      if (settled) return;
      settled = true;
      s.setKeepAlive(true, 60_000);
      this.connected = true;
      const w = this.waiter;
      this.waiter = undefined;
      w?.connectedNow();
      cb(null, s);
    });
  }

  /** Free to carry another request: connected (or never tried) and its socket not closed. */
  get usable(): boolean {
    return !this.closed && (this.socket === undefined || !this.socket.destroyed);
  }

  /** The request on it is over and its response read to the end: keep it for the next one. */
  release(): void {
    this.owner.release(this);
  }

  /** Closes the connection now (a request on it fails); idempotent. */
  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.waiter = undefined;
    this.owner.forget(this);
    this.socket?.destroy();
    this.client.destroy(err ?? null).catch(noop);
  }
}

function noop(): void {}

/** The connections of one endpoint (and TLS policy): a LIFO stack of idle ones, and all open ones. */
class EndpointConnections {
  private readonly idle: H1Connection[] = [];
  private readonly all = new Set<H1Connection>();
  /** Set by `H1Pool.evict`: busy connections close when their response is done. */
  evicted = false;
  private readonly origin: string;

  constructor(
    readonly ep: EndpointAddress,
    readonly tls: UpstreamTlsPolicy | undefined,
    readonly identity: SvidSource | undefined,
    readonly logger: Logger | undefined,
    private readonly maxIdle: number,
    private readonly idleTimeoutMs: number,
  ) {
    // undici needs an origin; the Host header is always ours and the socket comes from our connector.
    this.origin = `http://${isIPv6(ep.host) ? `[${ep.host}]` : ep.host}:${ep.port}`;
  }

  acquire(): H1Connection {
    const idle = this.idle;
    while (idle.length > 0) {
      const c = idle.pop()!;
      if (c.usable) return c;
      c.close();
    }
    const c = new H1Connection(this, this.origin, this.idleTimeoutMs);
    this.all.add(c);
    return c;
  }

  release(c: H1Connection): void {
    // LIFO: the hottest connections stay busy, idle ones time out and close.
    if (this.evicted || !c.usable || this.idle.length >= this.maxIdle) return c.close();
    this.idle.push(c);
  }

  forget(c: H1Connection): void {
    this.all.delete(c);
    const i = this.idle.lastIndexOf(c);
    if (i >= 0) this.idle.splice(i, 1);
  }

  /** Idle connections close now, busy ones when their response is done. */
  evict(): void {
    this.evicted = true;
    for (const c of this.idle.splice(0)) c.close();
  }

  destroy(): void {
    this.evicted = true;
    for (const c of [...this.all]) c.close();
  }

  get counts(): { openSockets: number; idleSockets: number } {
    return { openSockets: this.all.size - this.idle.length, idleSockets: this.idle.length };
  }
}

/**
 * Keep-alive HTTP/1.1 connections, per upstream endpoint (and TLS policy),
 * shared across config versions. Not node:http's Agent: each connection is
 * an undici `Client` driven through its `dispatch` handler API (calls/h1-call.ts),
 * which costs the proxy less CPU per request than `http.request` through an
 * Agent (docs/benchmarks.md#http11-upstream-client). LIFO reuse keeps the
 * hottest connections busy so idle ones time out and close; at most
 * `maxIdle` stay open idle (Cluster.maxIdleConnections).
 */
export class H1Pool {
  private readonly endpoints = new Map<string, EndpointConnections>();

  /** `identity`: the workload certificate for clusters with `tls: {mode: TLS_MODE_MESH}`; `logger`: failed TLS handshakes. */
  constructor(
    private readonly identity?: SvidSource,
    private readonly logger?: Logger,
  ) {}

  /** A connection for one request to `ep`: an idle one (most recently used first), or a new one that connects when the request is dispatched. */
  acquire(ep: EndpointAddress, maxIdle: number, idleTimeoutMs: number, tls?: UpstreamTlsPolicy): H1Connection {
    const key = tls === undefined ? ep.key : `${ep.key}#${tls.poolKey}`;
    let e = this.endpoints.get(key);
    if (e === undefined) {
      e = new EndpointConnections(ep, tls, this.identity, this.logger, maxIdle, idleTimeoutMs);
      this.endpoints.set(key, e);
    }
    return e.acquire();
  }

  /**
   * Forgets the connections of endpoints not in `keep` (after a config swap)
   * gracefully, like `evict`: a request in flight to an endpoint discovery
   * just removed still gets its answer.
   */
  retain(keep: ReadonlySet<string>): void {
    for (const [key, e] of [...this.endpoints]) {
      if (keep.has(e.ep.key)) continue;
      this.drop(key, e);
    }
  }

  /**
   * Forgets the connections of `key` without cutting requests in flight: idle
   * ones close now, busy ones when their response is done (no keep-alive any
   * more). Used for original destinations (original-dst.ts).
   */
  evict(key: string): void {
    for (const [k, e] of [...this.endpoints]) if (k === key || e.ep.key === key) this.drop(k, e);
  }

  private drop(key: string, e: EndpointConnections): void {
    this.endpoints.delete(key);
    e.evict();
  }

  describe(key: string): { openSockets: number; idleSockets: number } | undefined {
    return this.endpoints.get(key)?.counts;
  }

  closeAll(): void {
    for (const e of this.endpoints.values()) e.destroy();
    this.endpoints.clear();
  }
}
