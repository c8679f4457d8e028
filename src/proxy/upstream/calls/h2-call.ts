import http2, { type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { Timer } from '../../../core/clock.js';
import { isRefused, resetStream } from '../../http/h2-reset.js';
import { releaseClosedStream } from '../../http/release-stream.js';
import type { UpstreamAttempt } from '../attempt.js';
import type { ClusterRuntime } from '../cluster.js';
import type { H2Connection, H2Pool } from '../h2-pool.js';
import type { CallEvents, UpstreamCall } from './upstream-call.js';
import { upstreamPrincipalOf } from '../upstream-tls.js';

const END_STREAM = http2.constants.NGHTTP2_FLAG_END_STREAM;
const CANCEL = http2.constants.NGHTTP2_CANCEL;

/**
 * `request()` options with nghttp2's default priority spelled out (weight 16,
 * no parent, not exclusive, not silent): node:http2 copies the options and
 * fills in whichever of these are missing, so an options object without them
 * grew four properties, out of object, on every request (its
 * `setAndValidatePriorityOptions` was ~3 % of a gRPC pass-through profile).
 * The values are the ones it would fill in; the HEADERS frame is the same.
 * Shared by every call: node:http2 copies options before it reads them.
 */
const ENDED = { endStream: true, weight: 16, parent: 0, exclusive: false, silent: false };
const OPEN = { endStream: false, weight: 16, parent: 0, exclusive: false, silent: false };

/**
 * One attempt as a stream of the endpoint's shared HTTP/2 session.
 *
 * States: open → responded → ended | failed; open → failed (refused,
 * connect failure, reset); any → cancelled. A stream refused without being
 * processed (RST_STREAM REFUSED_STREAM, or above a GOAWAY's last stream id)
 * fails as `refused`, which the runner may replay (RFC 9113 §8.7).
 */
export class H2Call implements UpstreamCall {
  events: CallEvents;
  tryTimer: Timer | undefined = undefined;
  private stream: ClientHttp2Stream | undefined;
  private conn: H2Connection;
  private responded = false;
  private over = false;
  private errorCode: string | undefined;

  constructor(
    pool: H2Pool,
    cluster: ClusterRuntime,
    readonly attempt: UpstreamAttempt,
    headers: OutgoingHttpHeaders,
    endStream: boolean,
    events: CallEvents,
  ) {
    this.events = events;
    const ep = attempt.endpoint;
    let conn = pool.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
    let stream: ClientHttp2Stream;
    try {
      stream = conn.session.request(headers, endStream ? ENDED : OPEN);
    } catch {
      // The session went away between the pool lookup and now (GOAWAY): once more on a new one.
      conn = pool.get(ep, cluster.connectTimeoutMs, cluster.idleTimeoutMs, cluster.upstreamTls);
      try {
        stream = conn.session.request(headers, endStream ? ENDED : OPEN);
      } catch (err) {
        this.conn = conn;
        this.over = true;
        const detail = (err as Error).message;
        queueMicrotask(() => this.events.onFail(this, { kind: 'connect_failure', detail }, false));
        return;
      }
    }
    this.conn = conn;
    this.stream = stream;
    conn.idle.opened();
    if (conn.state === 'connecting') {
      attempt.waitingForConnection();
      conn.whenSettled(() => attempt.connected());
    }
    stream.on('error', (err: NodeJS.ErrnoException) => (this.errorCode = err.code));
    // `on`, not `once`, for the events a stream emits at most once (response, trailers, end, close):
    // `once` makes a bound wrapper per listener and removes it again, per request.
    stream.on('response', (h: IncomingHttpHeaders, flags: number) => {
      if (this.over) return;
      this.responded = true;
      this.events.onHead(this, { status: (h[':status'] as unknown as number) ?? 200, headers: h, endStream: (flags & END_STREAM) !== 0 });
    });
    stream.on('data', (c: Buffer) => {
      if (!this.over) this.events.onData(this, c);
    });
    stream.on('trailers', (t: IncomingHttpHeaders) => {
      if (!this.over) this.events.onTrailers(this, t);
    });
    stream.on('end', () => {
      // Node also ends the readable side of a reset stream (rstCode set), and of
      // a stream cut off before any response: not clean ends ('close' decides).
      if (this.over || !this.responded || (stream.rstCode !== undefined && stream.rstCode !== 0)) return;
      this.over = true;
      this.events.onEnd(this);
    });
    stream.on('close', () => {
      conn.idle.closed();
      this.onClose(stream);
      releaseClosedStream(stream);
    });
    stream.on('drain', () => {
      if (!this.over) this.events.onWritable(this);
    });
  }

  private onClose(stream: ClientHttp2Stream): void {
    if (this.over) return;
    this.over = true;
    if (this.responded) return this.events.onFail(this, { kind: 'reset', detail: `rst ${stream.rstCode}`, rstCode: stream.rstCode }, true);
    if (isRefused(stream, this.errorCode)) return this.events.onFail(this, { kind: 'refused', detail: 'refused stream' }, false);
    const c = this.conn;
    const never = c.state === 'failed' || c.state === 'connecting';
    this.events.onFail(this, never ? { kind: 'connect_failure', detail: c.lastError } : { kind: 'reset', detail: `rst ${stream.rstCode}`, rstCode: stream.rstCode }, false);
  }

  peerPrincipal(): string | undefined {
    const s = this.conn.session;
    return s.destroyed ? undefined : upstreamPrincipalOf(s.socket);
  }

  get closed(): boolean {
    return this.over;
  }

  write(chunk: Buffer): boolean {
    const s = this.stream;
    if (s === undefined || this.over || s.writableEnded) return true;
    return s.write(chunk);
  }

  end(): void {
    const s = this.stream;
    if (s !== undefined && !s.closed && !s.writableEnded) s.end();
  }

  pause(): void {
    this.stream?.pause();
  }

  resume(): void {
    this.stream?.resume();
  }

  cancel(h2Code = CANCEL): void {
    this.over = true;
    const s = this.stream;
    if (s === undefined) return;
    // An answer that arrived whole while the stream was paused (a slow client) leaves a stream closed in
    // nghttp2 whose unread data holds back its 'end' and so its 'close' for good: node:http2 waits for the
    // reader. Nobody will read it now; destroy it, so it is released and leaves its session's stream count
    // (the session's idle timeout, idle-timeout.ts). Open, it is reset as before.
    if (s.closed && !s.destroyed) s.destroy();
    else resetStream(s, h2Code);
  }
}
