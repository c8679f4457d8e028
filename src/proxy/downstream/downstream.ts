import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { DescMethod, Message } from '@bufbuild/protobuf';
import { Readable, Transform } from 'node:stream';
import { AbortScope } from '../../core/abort-scope.js';
import { LOCAL_ERRORS, type LocalErrorCode } from '../../core/errors.js';
import type { Exchange } from '../http/exchange.js';
import type { Destination } from '../upstream/original-dst-addon.js';

export type DownstreamKind = 'h1' | 'h2' | 'ws';

function toBuffer(chunk: string | Buffer): Buffer {
  return typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
}

function addHeaders(headers: OutgoingHttpHeaders, added: readonly [string, string][]): void {
  for (const [name, value] of added) {
    const cur = headers[name];
    if (cur === undefined) headers[name] = value;
    else headers[name] = [...(Array.isArray(cur) ? cur : [String(cur)]), value];
  }
}

/**
 * The phases of an exchange's filter chain that run while the response is
 * written (filters/filter-chain.ts implements it). Declared here, on the
 * consumer's side, so a downstream does not depend on the filter machinery.
 */
export interface ExchangeFilters {
  readonly isEmpty: boolean;
  readonly hasRequestData: boolean;
  readonly hasResponseHeaders: boolean;
  readonly hasResponseData: boolean;
  readonly hasTrailers: boolean;
  requestData(ds: Downstream, chunk: Buffer): Buffer;
  responseHeaders(ds: Downstream, status: number, headers: OutgoingHttpHeaders): void;
  responseData(ds: Downstream, chunk: Buffer): Buffer;
  trailers(ds: Downstream, trailers: OutgoingHttpHeaders): void;
  /** Some filter has a decoded-message phase (the REST transcoder then calls the two below). */
  readonly hasDecodedHooks: boolean;
  /** A decoded request / response message through the filters: the message to use, a gRPC status to answer with, or a filter that threw. */
  decodedRequest(ds: Downstream, method: DescMethod, msg: Message): DecodedOutcome;
  decodedResponse(ds: Downstream, method: DescMethod, msg: Message): DecodedOutcome;
}

export type DecodedOutcome =
  | { readonly message: Message }
  | { readonly reply: { readonly code: number; readonly message?: string | undefined } }
  | { readonly failed: string };

/** Why an exchange ended early: the client went away, its gRPC deadline, the route timeout. */
export type AbortReason = Extract<LocalErrorCode, 'downstream_reset' | 'deadline_exceeded' | 'upstream_timeout'>;

/**
 * What the authentication filters established about the caller, read by the
 * filters after them (rbac, rate-limit keys) and the audit log.
 */
export interface AuthFacts {
  /** `iss/sub` of a verified JWT, or the name of the matching API key. */
  principal: string | undefined;
  /** The payload of the first verified JWT. */
  claims: Readonly<Record<string, unknown>> | undefined;
  /** The name of the matching API key. */
  apiKey: string | undefined;
}

/** Per-connection facts, captured once per connection by the listener. */
export interface ConnectionInfo {
  readonly clientAddress: string;
  /** `http` or `https`: how the client reached us. */
  readonly scheme: string;
  /** Where the connection was going before iptables redirected it (ORIGINAL_DST clusters). */
  readonly originalDst?: Destination | undefined;
  /** The SPIFFE ID of a peer sidecar, verified by mesh mTLS on this connection (docs/security.md); undefined otherwise. */
  readonly peerPrincipal?: string | undefined;
}

/**
 * The client side of one HTTP exchange, whatever protocol carried it: the
 * one request type the codecs (HTTP/1.1, HTTP/2, WebSocket upgrade) produce
 * and the pipeline, filters, forwarders and transcoder work on. Subclasses
 * hold the protocol objects, which the protocol-specific forwarders reach
 * directly for stream-level relaying.
 *
 * Every response goes out through `respond` / `respondEnd`, which is where the
 * response-header filters of the exchange's chain run, so no writer (forwarder,
 * transcoder dialect, local reply) can skip them.
 */
export abstract class Downstream {
  /** Cancellation of this exchange (client gone ∪ gRPC deadline ∪ route timeout). */
  readonly scope = new AbortScope<AbortReason>();
  /** The filter chain of the matched route, set by the pipeline (undefined: none). */
  chain: ExchangeFilters | undefined = undefined;
  /** Set by authentication filters (undefined: nobody authenticated the caller). */
  auth: AuthFacts | undefined = undefined;
  /** The matched route's cluster (set by the pipeline; `ex.cluster` is set only once an endpoint is picked). */
  routeCluster = '';
  /**
   * A gRPC request's method descriptor, when its route has descriptors (a
   * transcoding route): set by the pipeline before the filters run (the
   * cache reads its idempotency level).
   */
  rpc: DescMethod | undefined = undefined;
  /** Set once our side ended the response (normally or with a local reply). */
  responseEnded = false;
  protected closedFlag = false;

  constructor(
    readonly kind: DownstreamKind,
    /** The access-log record of this exchange. */
    readonly ex: Exchange,
    readonly conn: ConnectionInfo,
    readonly method: string,
    /** Raw request target: path and query, still percent-encoded. */
    readonly target: string,
    readonly authority: string,
    readonly headers: IncomingHttpHeaders,
    /** `application/grpc*` over HTTP/2: local replies are gRPC trailers-only answers. */
    readonly grpc: boolean,
  ) {
    if (conn.peerPrincipal !== undefined) ex.source_principal = conn.peerPrincipal;
  }

  /** The request body as the protocol delivers it (forwarders read it and run data filters themselves). */
  abstract readonly rawBody: Readable;
  abstract get headersSent(): boolean;
  private filteredBody: Readable | undefined;
  /** Set when a filter threw in a response or data phase: the response was cut off (flag FE). */
  private filterFailure = false;
  /** The response body's encoder (compression), installed by a response-header filter; see `encodeResponse`. */
  private encoder: Transform | undefined;
  /** Drain listeners of writers (kept only on chains that may install an encoder, which must hear of its drains too). */
  private drainFns: (() => void)[] | undefined;
  /** True while the response-header filters run for a head that ends the response (no body can follow). */
  headOnly = false;
  /** Headers the proxy adds to the response whoever writes it (a generated hash-policy cookie). */
  private added: [string, string][] | undefined = undefined;

  /**
   * Adds a header to the response head, before the response filters see it
   * (values of a header the response already has are appended: Set-Cookie).
   */
  addResponseHeader(name: string, value: string): void {
    (this.added ??= []).push([name, value]);
  }

  /**
   * The request body for consumers that read it as a stream (the transcoder's
   * dialects): through the chain's request-data filters when it has any.
   */
  get body(): Readable {
    const chain = this.chain;
    if (chain === undefined || !chain.hasRequestData) return this.requestBody;
    return (this.filteredBody ??= this.requestBody.pipe(
      new Transform({ transform: (c: Buffer, _enc, cb) => cb(null, chain.requestData(this, c)) }),
    ));
  }

  private replacedBody: Readable | undefined;

  /** The request body forwarders relay: the protocol's, or what a filter replaced it with (`replaceRequestBody`). */
  get requestBody(): Readable {
    return this.replacedBody ?? this.rawBody;
  }

  /**
   * A request-header filter that read the whole body (request decompression)
   * hands on what the upstream should get instead; it set the headers to match.
   */
  replaceRequestBody(b: Buffer | Readable): void {
    this.replacedBody = Buffer.isBuffer(b) ? Readable.from([b], { objectMode: false }) : b;
  }

  /** A response of a filter's own that replaces the one being written (`substituteResponse`). */
  private substitute: { readonly status: number; readonly body: Buffer | undefined; readonly trailers: OutgoingHttpHeaders | undefined } | undefined;

  /**
   * Called by a response-header filter that answers instead of the writer
   * (the cache: a stored response after the upstream's 304, or a stale one
   * after its 5xx): it has rewritten `headers` in place; the head goes out
   * with `status`, then `body` (and `trailers`, gRPC), and whatever the
   * writer sends after its head is dropped.
   */
  substituteResponse(status: number, body: Buffer | undefined, trailers?: OutgoingHttpHeaders): void {
    this.substitute = { status, body, trailers };
  }

  private writeSubstitute(headers: OutgoingHttpHeaders): void {
    const sub = this.substitute!;
    this.ex.status = sub.status;
    this.responseEnded = true;
    const body = this.method === 'HEAD' ? undefined : sub.body;
    if (body === undefined && sub.trailers === undefined) return this.writeHeadEnd(sub.status, headers);
    this.writeHead(sub.status, headers, sub.trailers !== undefined, undefined);
    this.endData(body, sub.trailers);
  }

  /** The client is gone or the exchange is over. */
  get closed(): boolean {
    return this.closedFlag;
  }

  /**
   * Sends the response head. `trailers`: trailers will follow (`end(…, trailers)`).
   * `headers` may be modified (response filters, framing headers).
   */
  respond(status: number, headers: OutgoingHttpHeaders, trailers = false, statusMessage?: string): void {
    if (this.added !== undefined) addHeaders(headers, this.added);
    if (this.chain !== undefined && this.chain.hasResponseHeaders) this.chain.responseHeaders(this, status, headers);
    if (this.filterFailure) return;
    if (this.substitute !== undefined) return this.writeSubstitute(headers);
    this.writeHead(status, headers, trailers, statusMessage);
  }

  /** A response that is its head alone (HTTP/2: HEADERS with END_STREAM, e.g. gRPC trailers-only). */
  respondEnd(status: number, headers: OutgoingHttpHeaders): void {
    this.headOnly = true;
    if (this.added !== undefined) addHeaders(headers, this.added);
    if (this.chain !== undefined && this.chain.hasResponseHeaders) this.chain.responseHeaders(this, status, headers);
    if (this.filterFailure) return;
    if (this.substitute !== undefined) return this.writeSubstitute(headers);
    this.responseEnded = true;
    this.writeHeadEnd(status, headers);
  }

  /** Writes response body bytes, through the chain's response-data filters. */
  write(chunk: string | Buffer): boolean {
    const chain = this.chain;
    if (this.substitute !== undefined) return true;
    if (chain !== undefined && chain.hasResponseData) chunk = chain.responseData(this, toBuffer(chunk));
    if (this.filterFailure) return true;
    if (this.encoder !== undefined) return this.encoder.write(chunk);
    return this.writeData(chunk);
  }

  /**
   * Sends the response body through `t` (a streaming encoder such as a zlib
   * compressor): called by a response-header filter, before any body byte.
   * What `t` emits is written as it comes (never buffered whole), with
   * backpressure both ways: a full client pauses `t`, a full `t` makes
   * `write()` return false and its drain reaches `onDrain` listeners. `end()`
   * waits for `t` to flush before ending the response (and sending trailers).
   */
  encodeResponse(t: Transform): void {
    this.encoder = t;
    t.on('data', (c: Buffer) => {
      if (!this.writeData(c)) t.pause();
    });
    this.onSinkDrain(() => t.resume());
    for (const fn of this.drainFns ?? []) t.on('drain', fn);
    t.on('error', () => this.filterFailed());
  }

  /**
   * Calls `fn` whenever a writer blocked by `write() === false` may write
   * again: the client side drained (or the response encoder, when one is
   * installed).
   */
  onDrain(fn: () => void): void {
    this.onSinkDrain(fn);
    if (this.encoder !== undefined) this.encoder.on('drain', fn);
    else if (this.chain !== undefined && this.chain.hasResponseData) (this.drainFns ??= []).push(fn);
  }

  /** Ends the response (through the data filters); `trailers` only when `respond(…, true)` announced them. */
  end(chunk?: string | Buffer, trailers?: OutgoingHttpHeaders): void {
    if (this.substitute !== undefined) return;
    const chain = this.chain;
    if (chunk !== undefined && chain !== undefined && chain.hasResponseData) chunk = chain.responseData(this, toBuffer(chunk));
    if (trailers !== undefined && chain !== undefined && chain.hasTrailers) chain.trailers(this, trailers);
    if (this.filterFailure) return;
    this.responseEnded = true;
    const enc = this.encoder;
    if (enc !== undefined) {
      enc.once('end', () => {
        if (!this.filterFailure) this.endData(undefined, trailers);
      });
      if (chunk !== undefined) enc.end(chunk);
      else enc.end();
      return;
    }
    this.endData(chunk, trailers);
  }

  /**
   * A filter threw in a phase that runs while the response is written (the
   * request-header phase fails closed with a local reply instead): the
   * exchange is flagged FE and the response cut off, so the client never takes
   * a half-filtered answer as complete. One broken filter costs one exchange,
   * never the process.
   */
  filterFailed(): void {
    if (this.filterFailure) return;
    this.filterFailure = true;
    this.ex.flags = LOCAL_ERRORS.filter_error.flag;
    this.cutOff();
  }

  /**
   * Ends a response whose head is already out without letting it look
   * complete: gRPC callers get RST_STREAM CANCEL, others INTERNAL_ERROR
   * (HTTP/1.1 and WebSocket: the connection is destroyed).
   */
  cutOff(): void {
    this.destroy(this.grpc ? 0x8 /* CANCEL */ : 0x2 /* INTERNAL_ERROR */);
  }

  protected abstract writeHead(status: number, headers: OutgoingHttpHeaders, trailers: boolean, statusMessage: string | undefined): void;
  protected abstract writeHeadEnd(status: number, headers: OutgoingHttpHeaders): void;

  protected abstract writeData(chunk: string | Buffer): boolean;
  protected abstract endData(chunk: string | Buffer | undefined, trailers: OutgoingHttpHeaders | undefined): void;
  /** `fn` on each drain of the client side's writable (the protocol object's own 'drain'). */
  protected abstract onSinkDrain(fn: () => void): void;
  /**
   * Cuts the response off (after its head was sent: the client must not take
   * it as complete). `h2Code`: the RST_STREAM code on HTTP/2 (default CANCEL).
   */
  abstract destroy(h2Code?: number): void;
  abstract onClose(fn: () => void): void;
  /** The request body will not be read to its end: do not reuse the connection (HTTP/1.1). */
  noKeepAlive(): void {}

  /**
   * Called by the codec when the client side closed: a response we had not
   * ended aborts the exchange (forwarders and calls listening on `scope`
   * cancel upstream); otherwise the scope is disposed (its deadline dropped).
   */
  closedByClient(): void {
    this.closedFlag = true;
    if (this.responseEnded) this.scope.dispose();
    else this.scope.abort('downstream_reset');
  }
}
