import http from 'node:http';
import http2, { type Http2Session, type ServerHttp2Session } from 'node:http2';
import net, { type Socket } from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import type { ProxyContext } from '../context.js';
import type { ListenerView, ListenerViewRef } from '../state/listener-view.js';
import type { ListenerSettings } from '../state/proxy-state.js';
import { onH1Request, type H1ConnectionInfo } from '../codec/h1-request.js';
import { onH2Stream, type H2ConnectionInfo } from '../codec/h2-stream.js';
import { onWebSocketUpgrade } from '../codec/websocket.js';
import { proxyTcp } from '../codec/tcp.js';
import { detectProtocol, MAX_DETECT_BYTES } from './detect.js';
import { settingsHandshake } from './settings-handshake.js';
import { goawayAndDestroy, StreamLimiter } from './stream-limit.js';
import { IdleTimeout } from '../http/idle-timeout.js';
import { ORIGINAL_DST, type Destination } from '../upstream/original-dst.js';
import { PeerAuthentication } from '../../gen/outrigger/config/v1/listener_pb.js';
import { checkPeerSvid } from '../../core/spiffe.js';
import type { Svid } from '../../core/svid.js';

const RAPID_RESET_WHY = 'kept resetting streams before their response (rapid reset)';

/** The verified SPIFFE ID of a mesh mTLS peer, set on its TLS socket. */
export const PEER_PRINCIPAL = Symbol('outrigger.peerPrincipal');

type Outcome = 'h2c' | 'http1' | 'tls' | 'opaque' | 'timeout' | 'closed' | 'declared_opaque';

/** An http2 server and the stream limit its connections advertise and enforce. */
interface H2Front {
  readonly server: http2.Http2Server;
  readonly maxStreams: number;
}

/**
 * One listening socket and the protocol servers behind it. Accepted sockets
 * are classified by detectProtocol and handed to an unbound node:http or
 * node:http2 server (whose connection handling we reuse) or spliced as TCP.
 *
 * The view pointer is swapped on config change; connections and requests in
 * flight keep the view they started with, new requests take the new one.
 * Servers are rebuilt only when limits they bake in (header size, streams)
 * change; connections on the old servers finish undisturbed.
 */
export class ProxyListener {
  readonly ref: ListenerViewRef;
  private readonly server: net.Server;
  private h1!: http.Server;
  private h2!: H2Front;
  /** Never listens; accepted sockets detected as TLS are handed to it (see startTls). */
  private tlsServer: tls.Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly sessions = new Set<Http2Session>();
  /** The current h1 server and superseded ones that still have connections (open count). */
  private readonly h1Servers = new Map<http.Server, { open: number }>();
  private draining = false;
  private bakedKey = '';
  /** Mesh mTLS termination (peerAuthentication), made at the first mesh connection; its context follows the SVID. */
  private meshTls: { server: tls.Server; svid: Svid } | undefined;

  constructor(
    private readonly ctx: ProxyContext,
    view: ListenerView,
  ) {
    this.ref = { view };
    this.server = net.createServer({ pauseOnConnect: false, noDelay: true }, (s) => this.onConnection(s));
    this.server.on('error', (err) => ctx.logger.error({ listener: view.settings.name, err: err.message }, 'listener error'));
    this.rebuildServers(view.settings);
  }

  get name(): string {
    return this.ref.view.settings.name;
  }

  async listen(): Promise<{ host: string; port: number }> {
    const a = this.ref.view.settings.config.address;
    await new Promise<void>((resolve, reject) => {
      const onErr = (e: Error): void => reject(e);
      this.server.once('error', onErr);
      this.server.listen({ host: a?.host || '0.0.0.0', port: a?.port ?? 0 }, () => {
        this.server.off('error', onErr);
        resolve();
      });
    });
    return this.address();
  }

  address(): { host: string; port: number } {
    const addr = this.server.address() as net.AddressInfo;
    return { host: addr.address, port: addr.port };
  }

  /** Installs a new view; new requests use it at once. */
  update(view: ListenerView): void {
    this.ref.view = view;
    this.rebuildServers(view.settings);
  }

  private rebuildServers(s: ListenerSettings): void {
    const key = `${s.maxHeaderBytes}|${s.maxConcurrentStreams}|${s.idleTimeoutMs}|${s.requestHeadersTimeoutMs}|${s.config.tls?.certFile}|${s.config.tls?.keyFile}`;
    if (key === this.bakedKey) return;
    this.bakedKey = key;
    const ctx = this.ctx;
    const ref = this.ref;
    // requestTimeout 0 (bodies may stream for as long as they like) would make
    // Node 20 default headersTimeout to 0 as well, so a client trickling
    // header bytes held its connection for ever: headersTimeout is explicit,
    // checked often enough for short configured values. Idle keep-alive
    // connections last the listener's idleTimeout (300 s by default, as
    // documented), not Node's 5 s (Envoy keeps them 1 h, nginx 75 s).
    const h1 = http.createServer({
      maxHeaderSize: s.maxHeaderBytes,
      keepAliveTimeout: s.idleTimeoutMs,
      requestTimeout: 0,
      headersTimeout: s.requestHeadersTimeoutMs,
      connectionsCheckingInterval: Math.max(25, Math.min(1000, Math.floor(s.requestHeadersTimeoutMs / 4))),
    });
    h1.timeout = s.idleTimeoutMs;
    h1.on('request', (req, res) => onH1Request(ctx, ref, infoOf(req.socket), req, res));
    h1.on('upgrade', (req, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
    h1.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onH1ClientError(err, socket));
    // Connection tracking (idle-connection close on drain, header timeouts)
    // starts on 'listening'; this server never listens itself.
    h1.emit('listening');
    // A superseded server lives while connections it took are open, then is
    // closed (its 'listening' started a connection-checking interval).
    const track = { open: 0 };
    h1.on('connection', (sock: Socket) => {
      track.open++;
      sock.once('close', () => {
        if (--track.open === 0 && h1 !== this.h1) this.retire(h1);
      });
    });
    const previous = this.h1Servers.size > 0 ? this.h1 : undefined;
    this.h1Servers.set(h1, track);
    this.h1 = h1;
    if (previous && this.h1Servers.get(previous)?.open === 0) this.retire(previous);
    // No maxConcurrentStreams here: the settings handshake advertises it and
    // StreamLimiter enforces it per stream (settings-handshake.ts says why).
    const server = http2.createServer({ settings: { maxHeaderListSize: s.maxHeaderBytes }, maxSessionMemory: 64 });
    const h2: H2Front = { server, maxStreams: s.maxConcurrentStreams };
    server.on('session', (session: ServerHttp2Session) => this.onSession(session, h2.maxStreams));
    this.h2 = h2;
    const t = s.config.tls;
    this.tlsServer = t?.certFile && t.keyFile ? this.tlsServerFor(readFileSync(t.certFile), readFileSync(t.keyFile), h1, h2) : undefined;
    // Rebuilt on the next mesh connection around the new h1/h2 servers.
    this.meshTls = undefined;
  }

  /**
   * The mesh mTLS server for a new connection: one tls.Server per listener,
   * whose context is swapped (setSecureContext) when the workload
   * certificate rotated: a pointer compare per connection, nothing per
   * request. Handshakes in progress and open connections keep the context
   * they started with. undefined while the sidecar has no certificate.
   */
  private meshServer(): tls.Server | undefined {
    const svid = this.ctx.identity?.current();
    if (!svid) return undefined;
    const m = this.meshTls;
    if (m && m.svid === svid) return m.server;
    const ctxOpts = { cert: svid.certChainPem, key: svid.keyPem, ca: [...svid.bundlePem] };
    if (m) {
      m.server.setSecureContext(ctxOpts);
      this.meshTls = { server: m.server, svid };
      return m.server;
    }
    const server = tls.createServer({ ...ctxOpts, requestCert: true, rejectUnauthorized: true, ALPNProtocols: ['h2', 'http/1.1'], handshakeTimeout: 10_000 });
    const h1 = this.h1;
    const h2 = this.h2;
    server.on('secureConnection', (tlsSocket: tls.TLSSocket) => {
      tlsSocket.on('error', noop);
      const name = this.name;
      // The chain verified against the bundle (rejectUnauthorized); the SVID rules are ours: one SPIFFE ID of our trust domain.
      const td = this.meshTls?.svid.trustDomain ?? svid.trustDomain;
      const v = checkPeerSvid(tlsSocket.getPeerCertificate().subjectaltname, td);
      if (!v.ok) {
        this.ctx.metrics.rejectedConnections.inc({ listener: name, reason: 'mtls_peer_identity' });
        this.ctx.logger.info({ listener: name, reason: v.reason }, 'mesh mTLS peer refused');
        tlsSocket.destroy();
        return;
      }
      (tlsSocket as PeerCarrier)[PEER_PRINCIPAL] = v.id;
      const raw = (tlsSocket as { _parent?: OriginalDstCarrier })._parent;
      if (raw?.[ORIGINAL_DST]) (tlsSocket as OriginalDstCarrier)[ORIGINAL_DST] = raw[ORIGINAL_DST];
      const h2alpn = tlsSocket.alpnProtocol === 'h2';
      this.ctx.metrics.connections.inc({ listener: name, protocol: h2alpn ? 'mtls_h2' : 'mtls_http1' });
      if (h2alpn) this.startH2(tlsSocket, EMPTY, h2);
      else h1.emit('connection', tlsSocket);
    });
    server.on('tlsClientError', (err: Error, tlsSocket: tls.TLSSocket) => {
      this.ctx.metrics.rejectedConnections.inc({ listener: this.name, reason: 'mtls_handshake' });
      this.ctx.logger.info({ listener: this.name, err: err.message }, 'mesh mTLS handshake failed');
      tlsSocket.destroy();
    });
    this.meshTls = { server, svid };
    return server;
  }

  /** Inner HTTP/1 servers alive: the current one and superseded ones with open connections (diagnostics, tests). */
  get http1Servers(): number {
    return this.h1Servers.size;
  }

  private retire(h1: http.Server): void {
    if (!this.h1Servers.delete(h1)) return;
    h1.close();
  }

  /**
   * TLS termination goes through a (never listening) tls.Server rather than a
   * hand-made server-side TLSSocket: only tls.Server clears the socket's
   * `secureConnecting` flag after the handshake, and http2 sessions wait for a
   * 'secureConnect' that a server-side TLSSocket never emits while that flag is
   * set, so h2 over TLS (and gRPC with TLS) hung after the handshake. It also
   * gives the handshake a timeout and reports failed handshakes.
   */
  private tlsServerFor(cert: Buffer, key: Buffer, h1: http.Server, h2: H2Front): tls.Server {
    const server = tls.createServer({ cert, key, ALPNProtocols: ['h2', 'http/1.1'], handshakeTimeout: 10_000 });
    server.on('secureConnection', (tlsSocket: tls.TLSSocket) => {
      tlsSocket.on('error', noop);
      const raw = (tlsSocket as { _parent?: OriginalDstCarrier })._parent;
      if (raw?.[ORIGINAL_DST]) (tlsSocket as OriginalDstCarrier)[ORIGINAL_DST] = raw[ORIGINAL_DST];
      const h2alpn = tlsSocket.alpnProtocol === 'h2';
      this.ctx.metrics.connections.inc({ listener: this.name, protocol: h2alpn ? 'h2' : 'https1' });
      if (h2alpn) this.startH2(tlsSocket, EMPTY, h2);
      else h1.emit('connection', tlsSocket);
    });
    server.on('tlsClientError', (_err: Error, tlsSocket: tls.TLSSocket) => {
      this.ctx.metrics.protocolErrors.inc({ listener: this.name, kind: 'tls_handshake' });
      tlsSocket.destroy();
    });
    return server;
  }

  private onConnection(socket: Socket): void {
    const view = this.ref.view;
    const s = view.settings;
    const m = this.ctx.metrics;
    socket.on('error', noop);
    if (this.draining) {
      m.rejectedConnections.inc({ listener: s.name, reason: 'draining' });
      socket.destroy();
      return;
    }
    if (this.ctx.overload?.overloaded) {
      m.rejectedConnections.inc({ listener: s.name, reason: 'overload' });
      socket.destroy();
      return;
    }
    if (this.sockets.size >= s.maxConnections) {
      m.rejectedConnections.inc({ listener: s.name, reason: 'max_connections' });
      socket.destroy();
      return;
    }
    this.sockets.add(socket);
    m.activeConnections.inc({ listener: s.name });
    socket.once('close', () => {
      this.sockets.delete(socket);
      m.activeConnections.dec({ listener: s.name });
    });
    // Where a redirected connection was going, for ORIGINAL_DST clusters: read
    // now, on the raw socket, before a protocol server takes it over.
    if (view.state.hasOriginalDst) {
      const dst = this.ctx.originalDst.lookup(socket);
      if (dst) (socket as OriginalDstCarrier)[ORIGINAL_DST] = dst;
    }
    if (s.opaque) {
      this.outcome(s, 'declared_opaque');
      proxyTcp(this.ctx, view, socket, undefined);
      return;
    }
    let buf: Buffer = EMPTY;
    let decided = false;
    const decide = (outcome: Outcome): void => {
      decided = true;
      timer.cancel();
      socket.off('data', onData);
      socket.off('end', onEnd);
      this.outcome(s, outcome);
      this.dispatch(outcome, socket, buf, view);
    };
    const onData = (chunk: Buffer): void => {
      buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
      const d = detectProtocol(buf);
      if (d !== 'need_more') decide(d);
      else if (buf.length >= MAX_DETECT_BYTES) decide('opaque');
    };
    const onEnd = (): void => {
      if (!decided) decide(buf.length ? 'opaque' : 'closed');
    };
    // A silent client can only be waited for or dropped. Where opaque
    // forwarding is possible (a default cluster), silence may be a
    // server-speaks-first protocol, so it goes there after the short
    // detection timeout; without one it can only be a client that connected
    // ahead of its first request (pools, browsers), so it gets as long as a
    // request's headers would.
    const waitMs = s.defaultCluster ? s.detectTimeoutMs : Math.max(s.detectTimeoutMs, s.requestHeadersTimeoutMs);
    //
    // The timeout is decided one event-loop turn late (setImmediate runs after
    // the poll phase): when the loop was blocked past the timeout, libuv runs
    // due timers before it reads sockets, and bytes that arrived in time would
    // lose to the timer — an HTTP client on a busy sidecar was then spliced as
    // opaque TCP or, without a default cluster, reset (ECONNRESET under load).
    const timer = this.ctx.clock.setTimer(waitMs, () => {
      if (!decided) setImmediate(() => !decided && decide(buf.length ? 'opaque' : 'timeout'));
    });
    socket.on('data', onData);
    socket.once('end', onEnd);
  }

  private dispatch(outcome: Outcome, socket: Socket, buf: Buffer, view: ListenerView): void {
    const s = view.settings;
    const peerAuth = s.config.peerAuthentication;
    if (peerAuth === PeerAuthentication.PERMISSIVE || peerAuth === PeerAuthentication.STRICT) {
      if (outcome === 'tls') {
        const server = this.meshServer();
        if (!server) {
          this.ctx.metrics.rejectedConnections.inc({ listener: s.name, reason: 'mtls_no_certificate' });
          socket.destroy();
          return;
        }
        socket.pause();
        socket.unshift(buf);
        server.emit('connection', socket);
        return;
      }
      if (peerAuth === PeerAuthentication.STRICT && outcome !== 'closed') {
        // STRICT: only mesh mTLS; plaintext (or silence) is refused and counted.
        this.ctx.metrics.rejectedConnections.inc({ listener: s.name, reason: 'plaintext_in_strict' });
        socket.destroy();
        return;
      }
    }
    switch (outcome) {
      case 'h2c':
        this.ctx.metrics.connections.inc({ listener: s.name, protocol: outcome });
        this.startH2(socket, buf, this.h2);
        return;
      case 'http1':
        socket.pause();
        socket.unshift(buf);
        this.ctx.metrics.connections.inc({ listener: s.name, protocol: outcome });
        // node:http takes over the socket's native handle and the buffered
        // bytes through its 'data' listener, which needs a resume.
        this.h1.emit('connection', socket);
        socket.resume();
        return;
      case 'tls':
        if (this.tlsServer) {
          socket.pause();
          socket.unshift(buf);
          this.startTls(socket);
          return;
        }
        // Not ours to terminate: TLS the app originates (HTTPS to anywhere,
        // captured outbound) is opaque TCP to the default cluster.
        if (!s.defaultCluster) {
          this.ctx.metrics.protocolErrors.inc({ listener: s.name, kind: 'tls_not_configured' });
          socket.destroy();
          return;
        }
        return this.opaque(view, socket, buf);
      case 'closed':
        socket.destroy();
        return;
      default:
        if (!s.defaultCluster && outcome === 'timeout') this.ctx.metrics.protocolErrors.inc({ listener: s.name, kind: 'silent_peer' });
        return this.opaque(view, socket, buf);
    }
  }

  /** TCP to the default cluster; without one proxyTcp refuses it (access-log line, flag NC). */
  private opaque(view: ListenerView, socket: Socket, buf: Buffer): void {
    if (view.settings.defaultCluster) this.ctx.metrics.connections.inc({ listener: view.settings.name, protocol: 'tcp' });
    proxyTcp(this.ctx, view, socket, buf.length ? buf : undefined);
  }

  /**
   * HTTP/2 (h2c or h2 over TLS) starts with the settings handshake, then the
   * http2 server takes over the socket's native handle. It replays what is
   * buffered in JS (the unshifted bytes) itself, so the socket stays paused
   * (JS reads would race its native ones).
   */
  private startH2(socket: Socket, buffered: Buffer, h2: H2Front): void {
    settingsHandshake(socket, buffered, {
      maxStreams: h2.maxStreams,
      clock: this.ctx.clock,
      handOver: (sock) => h2.server.emit('connection', sock),
      onFailure: (why, resets) => {
        if (why === 'closed') return;
        this.ctx.metrics.protocolErrors.inc({ listener: this.name, kind: `h2_${why}` });
        if (why !== 'rapid_reset') return;
        // The same signals as StreamLimiter's flood, caught before nghttp2 saw the streams.
        this.ctx.metrics.earlyResets.inc({ listener: this.name, stage: 'before_dispatch' }, resets ?? 0);
        this.ctx.floodGc?.noteFlood();
        this.ctx.logger.info({ listener: this.name }, `downstream h2 client ${RAPID_RESET_WHY}: GOAWAY`);
      },
    });
  }

  private startTls(socket: Socket): void {
    // The tls.Server wraps the socket and reads the unshifted ClientHello from
    // its JS buffer itself. The socket must stay paused: resuming it (as this
    // did) flowed that buffer out as 'data' with no listener, so the
    // ClientHello was lost and every TLS handshake stalled.
    this.tlsServer!.emit('connection', socket);
  }

  private onSession(session: ServerHttp2Session, maxStreams: number): void {
    const ctx = this.ctx;
    const ref = this.ref;
    // Closes the connection after idleTimeout with no open stream (Envoy's idle_timeout).
    const idle = new IdleTimeout(ctx.clock, ref.view.settings.idleTimeoutMs, () => session.close()).bindTo(session);
    const limiter = new StreamLimiter(session, maxStreams, ctx.clock, {
      onRefused: () => ctx.metrics.refusedStreams.inc({ listener: ref.view.settings.name }),
      onReset: (stage) => ctx.metrics.earlyResets.inc({ listener: ref.view.settings.name, stage }),
      onFlood: (kind) => {
        ctx.metrics.protocolErrors.inc({ listener: ref.view.settings.name, kind: kind === 'refused' ? 'h2_refused_flood' : 'h2_rapid_reset' });
        ctx.floodGc?.noteFlood();
        const why = kind === 'refused' ? 'kept opening streams over the limit' : RAPID_RESET_WHY;
        ctx.logger.info({ listener: ref.view.settings.name }, `downstream h2 client ${why}: GOAWAY`);
      },
    }, idle);
    const info: H2ConnectionInfo = infoOf(session.socket as unknown as Socket);
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: NodeJS.ErrnoException) => {
      ctx.metrics.protocolErrors.inc({ listener: ref.view.settings.name, kind: 'h2_session' });
      ctx.logger.info({ listener: ref.view.settings.name, err: err.code ?? err.message }, 'downstream h2 session error');
    });
    session.on('frameError', () => ctx.metrics.protocolErrors.inc({ listener: ref.view.settings.name, kind: 'h2_frame' }));
    session.on('stream', (stream, headers, flags) => {
      limiter.admit(stream, () => onH2Stream(ctx, ref, info, stream, headers, flags));
    });
    // Opt-in for HTTP/2 (an explicit limits.requestHeadersTimeout): by default a
    // client that connects ahead of its first call (gRPC channels, browsers)
    // keeps its connection for the idle timeout, as with Envoy and Linkerd.
    if (this.ref.view.settings.requestHeadersTimeoutExplicit) this.firstHeadersDeadline(session);
    if (this.draining) session.close();
  }

  /**
   * nghttp2 delivers a stream only once its headers are complete, so a stream
   * has no "headers in progress" time to bound; what a slow client can stall
   * is the first request of a connection (a HEADERS frame whose CONTINUATION
   * frames never finish, or nothing at all). A connection that has not
   * completed one request's headers within requestHeadersTimeout gets
   * GOAWAY(NO_ERROR, last stream 0: nothing processed, safe to retry) and is
   * closed.
   */
  private firstHeadersDeadline(session: ServerHttp2Session): void {
    const s = this.ref.view.settings;
    const timer = this.ctx.clock.setTimer(s.requestHeadersTimeoutMs, () => {
      if (session.destroyed) return;
      this.ctx.metrics.protocolErrors.inc({ listener: s.name, kind: 'h2_headers_timeout' });
      goawayAndDestroy(session, http2.constants.NGHTTP2_NO_ERROR);
    });
    session.once('stream', () => timer.cancel());
    session.once('close', () => timer.cancel());
  }

  private onUpgrade(req: http.IncomingMessage, socket: Socket, head: Buffer): void {
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') {
      onWebSocketUpgrade(this.ctx, this.ref, infoOf(socket), req, socket, head);
      return;
    }
    // Any other upgrade (h2c included) is ignored, as RFC 9110 §7.8 allows: the
    // request is served as plain HTTP/1.1 and the connection closes after it.
    const res = new http.ServerResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket);
    res.once('finish', () => socket.end());
    if (head.length) req.push(head);
    req.push(null);
    onH1Request(this.ctx, this.ref, infoOf(socket), req, res);
  }

  private onH1ClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const s = this.ref.view.settings;
    const code = err.code ?? 'UNKNOWN';
    if (code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      // limits.requestHeadersTimeout: the request's headers did not arrive in time.
      this.ctx.metrics.protocolErrors.inc({ listener: s.name, kind: 'h1_headers_timeout' });
      if (!socket.writable) return void socket.destroy();
      const body = 'request headers timeout\n';
      socket.end(`HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
      return;
    }
    this.ctx.metrics.protocolErrors.inc({ listener: s.name, kind: code === 'HPE_HEADER_OVERFLOW' ? 'h1_headers_too_large' : 'h1_malformed' });
    this.ctx.logger.info({ listener: s.name, err: code, reason: err.message }, 'malformed HTTP/1.1 request');
    if (!socket.writable || (err as { bytesParsed?: number }).bytesParsed === undefined) return void socket.destroy();
    const status = code === 'HPE_HEADER_OVERFLOW' ? '431 Request Header Fields Too Large' : '400 Bad Request';
    const body = code === 'HPE_HEADER_OVERFLOW' ? 'request headers too large\n' : `bad request: ${code}\n`;
    socket.end(
      `HTTP/1.1 ${status}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
    );
  }

  private outcome(s: ListenerSettings, outcome: Outcome): void {
    this.ctx.metrics.detections.inc({ listener: s.name, outcome });
  }

  /** Graceful drain: stop accepting, GOAWAY to h2 clients, close idle h1 keep-alives. */
  drain(): void {
    if (this.draining) return;
    this.draining = true;
    this.server.close();
    for (const s of this.sessions) s.close();
    for (const h1 of this.h1Servers.keys()) h1.closeIdleConnections();
  }

  /** Resolves when no connection is left (or never, if the caller does not wait). */
  async waitIdle(pollMs = 25): Promise<void> {
    while (this.sockets.size > 0) {
      for (const h1 of this.h1Servers.keys()) h1.closeIdleConnections();
      await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  get connectionCount(): number {
    return this.sockets.size;
  }

  /** Hard close: every connection is destroyed. */
  close(): void {
    this.draining = true;
    this.server.close();
    for (const s of this.sessions) s.destroy();
    for (const s of this.sockets) s.destroy();
    for (const h1 of this.h1Servers.keys()) h1.close();
  }
}

const EMPTY = Buffer.alloc(0);

type OriginalDstCarrier = { [ORIGINAL_DST]?: Destination };
type PeerCarrier = { [PEER_PRINCIPAL]?: string };

const CONNECTION_INFO = Symbol('outrigger.connectionInfo');

/**
 * The connection's facts, made once per socket: every request of a
 * keep-alive connection shares one object (per-connection state such as a
 * hash policy's generated cookie value is keyed by it).
 */
function infoOf(socket: Socket): H1ConnectionInfo {
  const carrier = socket as { [CONNECTION_INFO]?: H1ConnectionInfo };
  return (carrier[CONNECTION_INFO] ??= {
    clientAddress: socket.remoteAddress ?? '',
    scheme: (socket as { encrypted?: boolean }).encrypted ? 'https' : 'http',
    originalDst: (socket as OriginalDstCarrier)[ORIGINAL_DST],
    peerPrincipal: (socket as PeerCarrier)[PEER_PRINCIPAL],
  });
}

function noop(): void {}
