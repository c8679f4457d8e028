import { SpanKind, SpanStatusCode, type Attributes, type HrTime, type Link, type SpanContext, type SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import type { Clock } from '../core/clock.js';
import type { Random } from '../core/random.js';
import type { ExchangeRecord } from './exchange-record.js';
import type { Propagation } from './trace-propagation.js';
import type { SpanSink } from './span-export.js';
import { attributesOf, type AttributeSink, type EncodableSpan } from './span-encoding.js';
import type { SamplerConfig } from './trace-settings.js';

/** The request header that forces a sampled trace (debugging); read before x-outrigger-* headers are stripped. */
export const FORCE_TRACE_HEADER = 'x-outrigger-force-trace';

type Headers = Record<string, unknown>;

/**
 * The trace an exchange belongs to. Sampled: `spanId` is the server span's,
 * and the span itself is only built when the exchange finishes (from the
 * exchange's record and start time), so a request carries no span object
 * while it runs. Not sampled: no span at all; `spanId` is the parent's that
 * arrived (or a fresh one when this sidecar began the trace), passed on with
 * the sampled flag off so the services behind do not record either.
 */
export class ExchangeTrace {
  /**
   * Not sampled: the `traceparent` every attempt sends, built once on the
   * first attempt — or, when the one that arrived already reads so
   * (`00-<trace>-<parent>-00`), that very string, so nothing is built.
   */
  unsampledTraceparent: string | undefined = undefined;

  constructor(
    readonly tracer: Tracer,
    readonly traceId: string,
    readonly spanId: string,
    /** The remote parent span (undefined: this sidecar began the trace). */
    readonly parentSpanId: string | undefined,
    readonly sampled: boolean,
    readonly traceState: string | undefined,
  ) {}
}

/** One sampled upstream attempt's client span while it runs: its id and start. */
export class AttemptSpan {
  constructor(
    readonly trace: ExchangeTrace,
    readonly spanId: string,
    readonly startMono: number,
    readonly method: string,
    /** The attempt's `:path` (the transcoder's gRPC call has its own), else the exchange's. */
    readonly path: string,
    readonly grpc: boolean,
  ) {}
}

/** A span of internal work (Tracer.startSpan), ended once by `end`. */
export class OpenSpan {
  readonly attributes: Attributes = {};
  private ended = false;

  constructor(
    private readonly tracer: Tracer,
    readonly name: string,
    readonly kind: SpanKind,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentSpanId: string | undefined,
    readonly startWallMs: number,
    readonly startMono: number,
  ) {}

  set(key: string, value: string | number | boolean): this {
    this.attributes[key] = value;
    return this;
  }

  end(error = false): void {
    if (this.ended) return;
    this.ended = true;
    this.tracer.endOpen(this, error);
  }
}

/** What a client span reports of its attempt (upstream/attempt.ts passes these). */
export interface AttemptEnd {
  readonly cluster: string;
  readonly endpointHost: string;
  readonly endpointPort: number;
  readonly index: number;
  readonly kind: string;
  readonly status: number;
  readonly grpcStatus: string | undefined;
  readonly flag: string | undefined;
  readonly result: string;
}

/**
 * Tracing for the proxy: decides and propagates the trace of each exchange
 * and records its spans.
 *
 * What a request pays (bench/tracing.ts measures it):
 * - not sampled: the sampling decision and the context passed on — a parsed
 *   `traceparent` (or two fresh ids) and one string per exchange; no span,
 *   no context object, no attribute map.
 * - sampled: two ids per span and, when a span ends, one small record (a
 *   few references and two times) handed to the export queue.
 * Everything else — span names, attributes, status, the OTLP bytes — is
 * derived from those records by the export batch (span-export.ts,
 * span-encoding.ts), off the request path. The SDK's Tracer would allocate
 * a live Span (attribute map, events, context objects) at the start of
 * every request and need the active context threaded through
 * AsyncLocalStorage; here the trace is passed explicitly (Exchange.trace,
 * UpstreamAttempt.span).
 */
export class Tracer {
  private readonly scope: InstrumentationScope = { name: 'outrigger' };
  /** The last word of the trace id `id(4)` made last: its ratio decision needs no parse. */
  private lastWord = 0;

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
    readonly sampler: SamplerConfig,
    readonly propagation: Propagation,
    private readonly resource: Resource,
    private readonly sink: SpanSink,
  ) {
    this.anchorWallMs = clock.nowMs();
    this.anchorMonoMs = clock.monotonicMs();
  }

  /**
   * Span times are monotonic readings placed on the wall clock through one
   * anchor: mixing Date.now() (whole milliseconds) with monotonic durations
   * could put a child span up to 1 ms outside its parent.
   */
  private readonly anchorWallMs: number;
  private readonly anchorMonoMs: number;
  private wall(mono: number): number {
    return this.anchorWallMs + (mono - this.anchorMonoMs);
  }

  /**
   * The trace of a new exchange, from its request headers (before client
   * x-outrigger-* headers are dropped). `ratio`: the listener's own sampling
   * ratio for new traces (Listener.tracing.sampling), else the sidecar's.
   */
  begin(h: Headers, ratio: number = this.sampler.ratio): ExchangeTrace {
    const parent = this.propagation.extract(h);
    const force = h[FORCE_TRACE_HEADER] !== undefined;
    if (parent === undefined) return this.newTrace(force, ratio);
    const sampled = force || (this.sampler.parentBased ? parent.sampled : ratioSampled(parent.traceId, ratio));
    if (sampled) return new ExchangeTrace(this, parent.traceId, this.id(2), parent.spanId, true, parent.traceState);
    // Not recorded: the parent's own span id goes on, so the trace has no gap where this sidecar was.
    const t = new ExchangeTrace(this, parent.traceId, parent.spanId, parent.spanId, false, parent.traceState);
    t.unsampledTraceparent = parent.canonicalUnsampled;
    return t;
  }

  /** An upstream attempt starts: its client span (when sampled) becomes the parent the upstream sees. */
  attemptStarted(t: ExchangeTrace, headers: Headers, method: string, path: string): AttemptSpan | undefined {
    if (!t.sampled) {
      this.propagation.injectUnsampled(headers, t);
      return undefined;
    }
    const spanId = this.id(2);
    this.propagation.inject(headers, t.traceId, spanId, true);
    const p = headers[':path'];
    const m = headers[':method'];
    const ct = headers['content-type'];
    return new AttemptSpan(
      t,
      spanId,
      this.clock.monotonicMs(),
      typeof m === 'string' ? m : method,
      typeof p === 'string' ? p : path,
      typeof ct === 'string' && ct.startsWith('application/grpc'),
    );
  }

  attemptEnded(s: AttemptSpan, a: AttemptEnd): void {
    this.sink.onEnd(new ClientSpan(this.resource, this.scope, s, a, this.wall(s.startMono), this.wall(this.clock.monotonicMs())));
  }

  /**
   * The exchange finished (its access-log line is being written, `duration_ms` measured): its server span, if sampled.
   * The span runs between the exchange's own monotonic readings, so its attempts' client spans lie within it:
   * an end read here and a start of `end - duration_ms` (rounded to the µs, and later by the time between
   * the two readings) could start the server span after its first client span on a busy machine.
   */
  exchangeEnded(t: ExchangeTrace, ex: ExchangeRecord, startMono: number, endMono: number): void {
    if (!t.sampled) return;
    this.sink.onEnd(new ServerSpan(this.resource, this.scope, t, ex, this.wall(startMono), this.wall(endMono)));
  }

  /**
   * A span of the control plane's own work (an apply, a push, a batch of
   * streams): not on any request's path, so an ordinary open object. A
   * child of `parent` when given (in its trace), else the root of a new
   * trace recorded with the sampling ratio.
   */
  startSpan(name: string, kind: SpanKind, parent?: OpenSpan): OpenSpan | undefined {
    if (parent !== undefined) return new OpenSpan(this, name, kind, parent.traceId, this.id(2), parent.spanId, this.clock.nowMs(), this.clock.monotonicMs());
    const traceId = this.id(4);
    if (!wordSampled(this.lastWord, this.sampler.ratio)) return undefined;
    return new OpenSpan(this, name, kind, traceId, this.id(2), undefined, this.clock.nowMs(), this.clock.monotonicMs());
  }

  /** @internal OpenSpan.end */
  endOpen(s: OpenSpan, error: boolean): void {
    const dur = this.clock.monotonicMs() - s.startMono;
    this.sink.onEnd(new PlainSpan(this.resource, this.scope, s, error, s.startWallMs, s.startWallMs + dur));
  }

  flush(): Promise<void> {
    return this.sink.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.sink.shutdown();
  }

  /** Where `id` writes its hex digits before they become one string. */
  private readonly idBuf = Buffer.allocUnsafe(32);
  /** `00-<trace id>-<span id>-00`: newTrace writes the ids' digits in place. */
  private readonly traceparentBuf = Buffer.from(`00-${'0'.repeat(32)}-${'0'.repeat(16)}-00`, 'latin1');

  /**
   * A trace this sidecar begins: both ids' digits go into one `traceparent`
   * buffer read out as one string, of which the ids are slices; unsampled,
   * that string is what every attempt sends. (Two ids and the header built
   * from them were three strings and a concatenation per request, most of
   * what an unsampled request spent in the tracer.) The random words are
   * drawn in the order `id(4)`, `id(2)` draws them.
   */
  private newTrace(force: boolean, ratio: number): ExchangeTrace {
    const b = this.traceparentBuf;
    const last = this.hexWords(b, 3, 4);
    const sampled = force || wordSampled(last, ratio);
    this.hexWords(b, 36, 2);
    const tp = b.toString('latin1');
    const t = new ExchangeTrace(this, tp.slice(3, 35), tp.slice(36, 52), undefined, sampled, undefined);
    if (!sampled) t.unsampledTraceparent = tp;
    return t;
  }

  /**
   * `words` random 32-bit words as lowercase hex digits into `b` at `at`
   * (never all zero, which W3C reserves as invalid); returns the last word,
   * whose value decides a new trace's sampling.
   */
  private hexWords(b: Buffer, at: number, words: number): number {
    let any = 0;
    let w = 0;
    for (let i = 0; i < words; i++) {
      w = this.random.int(0x100000000) >>> 0;
      any |= w;
      for (let k = 7, o = at + i * 8; k >= 0; k--) b[o + k] = HEX_DIGITS[(w >>> ((7 - k) * 4)) & 15]!;
    }
    if (any === 0) b[at + words * 8 - 1] = 0x31; // '1'
    return w;
  }

  /** `words` random 32-bit words as lowercase hex (never all zero, which W3C reserves as invalid). */
  private id(words: number): string {
    // Digits written into a buffer and read out as one flat string: building it by concatenation
    // made a dozen intermediate strings per id (~1.6 % of what a traced request allocated).
    this.lastWord = this.hexWords(this.idBuf, 0, words);
    return this.idBuf.toString('latin1', 0, words * 8);
  }
}

/** The ASCII codes of the hex digits. */
const HEX_DIGITS: readonly number[] = Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * As the SDK's TraceIdRatioBased: the decision is a function of the trace
 * id's last 32 bits, the same in every sidecar (and so across listeners with
 * the same ratio).
 */
function wordSampled(lastWord: number, r: number): boolean {
  if (r >= 1) return true;
  if (r <= 0) return false;
  return lastWord / 0x100000000 < r;
}

function ratioSampled(traceId: string, r: number): boolean {
  return wordSampled(parseInt(traceId.slice(24), 16), r);
}

const NO_EVENTS: TimedEvent[] = [];
const NO_LINKS: Link[] = [];
const UNSET: SpanStatus = { code: SpanStatusCode.UNSET };
const ERROR: SpanStatus = { code: SpanStatusCode.ERROR };

/** gRPC codes a server span counts as errors (semantic conventions: UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS). */
const GRPC_SERVER_ERRORS = new Set(['2', '4', '12', '13', '14', '15']);

function hrTime(ms: number): HrTime {
  const s = Math.floor(ms / 1000);
  return [s, Math.round((ms - s * 1000) * 1e6)];
}

/** `/pkg.Service/Method` → [service, method]; undefined for other paths. */
function rpcOf(path: string): [string, string] | undefined {
  if (path.charCodeAt(0) !== 47) return undefined;
  const slash = path.indexOf('/', 1);
  if (slash < 0 || path.indexOf('/', slash + 1) >= 0) return undefined;
  return [path.slice(1, slash), path.slice(slash + 1)];
}

/**
 * A finished span: the compact record the request path leaves (ids, times,
 * references to what the exchange already holds). The OTLP encoder reads its
 * fields directly (EncodableSpan); the ReadableSpan view (span contexts,
 * HrTimes, the attribute map) is derived only when asked — by tests and
 * in-process sinks, never on the export path.
 */
abstract class FinishedSpan implements ReadableSpan, EncodableSpan {
  abstract readonly name: string;
  abstract readonly kind: SpanKind;
  abstract readonly statusCode: number;
  abstract eachAttribute(sink: AttributeSink): void;
  readonly links = NO_LINKS;
  readonly events = NO_EVENTS;
  readonly ended = true;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;
  private attrs: Attributes | undefined;

  constructor(
    readonly resource: Resource,
    readonly instrumentationScope: InstrumentationScope,
    readonly traceId: string,
    readonly spanId: string,
    readonly parentId: string | undefined,
    readonly remoteParent: boolean,
    readonly traceState: string | undefined,
    readonly startMs: number,
    readonly endMs: number,
  ) {}

  get attributes(): Attributes {
    return (this.attrs ??= attributesOf(this));
  }

  get status(): SpanStatus {
    return this.statusCode === SpanStatusCode.ERROR ? ERROR : UNSET;
  }

  spanContext(): SpanContext {
    return { traceId: this.traceId, spanId: this.spanId, traceFlags: 1, isRemote: false, traceState: this.traceState === undefined ? undefined : new RawTraceState(this.traceState) };
  }

  get parentSpanContext(): SpanContext | undefined {
    const p = this.parentId;
    return p === undefined ? undefined : { traceId: this.traceId, spanId: p, traceFlags: 1, isRemote: this.remoteParent };
  }

  get startTime(): HrTime {
    return hrTime(this.startMs);
  }

  get endTime(): HrTime {
    return hrTime(this.endMs);
  }

  get duration(): HrTime {
    return hrTime(this.endMs - this.startMs);
  }
}

/** tracestate as it arrived; the exporter only serializes it. */
class RawTraceState {
  constructor(private readonly raw: string) {}
  set(): RawTraceState {
    return this;
  }
  unset(): RawTraceState {
    return this;
  }
  get(): string | undefined {
    return undefined;
  }
  serialize(): string {
    return this.raw;
  }
}

/**
 * The server span: the exchange's fields that it reports, copied by
 * reference when the exchange finishes, so the exchange itself is not kept
 * alive until the batch is exported.
 */
class ServerSpan extends FinishedSpan {
  readonly kind = SpanKind.SERVER;
  private readonly method: string;
  private readonly path: string;
  private readonly authority: string;
  private readonly protocol: string;
  private readonly httpStatus: number;
  private readonly grpcStatus: string | undefined;
  private readonly route: string;
  private readonly cluster: string;
  private readonly requestId: string | undefined;
  private readonly upstream: string | undefined;
  private readonly flags: string | undefined;

  constructor(resource: Resource, scope: InstrumentationScope, t: ExchangeTrace, ex: ExchangeRecord, startMs: number, endMs: number) {
    super(resource, scope, t.traceId, t.spanId, t.parentSpanId, true, t.traceState, startMs, endMs);
    this.method = ex.method;
    this.path = ex.path;
    this.authority = ex.authority;
    this.protocol = ex.protocol;
    this.httpStatus = ex.status;
    this.grpcStatus = ex.grpc_status;
    this.route = ex.route;
    this.cluster = ex.cluster;
    this.requestId = ex.request_id;
    this.upstream = ex.upstream;
    this.flags = ex.flags;
  }

  get name(): string {
    if (this.protocol === 'grpc' && rpcOf(this.path) !== undefined) return this.path.slice(1);
    return this.route === '' ? this.method : `${this.method} ${this.route}`;
  }

  get statusCode(): number {
    return this.httpStatus >= 500 || (this.grpcStatus !== undefined && GRPC_SERVER_ERRORS.has(this.grpcStatus)) ? SpanStatusCode.ERROR : SpanStatusCode.UNSET;
  }

  eachAttribute(a: AttributeSink): void {
    a.attr('http.request.method', this.method);
    a.attr('url.path', this.path);
    a.attr('server.address', this.authority);
    a.attr('http.response.status_code', this.httpStatus);
    a.attr('network.protocol.name', this.protocol);
    a.attr('outrigger.route', this.route);
    a.attr('outrigger.cluster', this.cluster);
    if (this.requestId !== undefined) a.attr('outrigger.request_id', this.requestId);
    if (this.upstream !== undefined) a.attr('outrigger.upstream', this.upstream);
    if (this.flags !== undefined) a.attr('outrigger.response_flags', this.flags);
    rpcAttributes(a, this.protocol === 'grpc' || this.grpcStatus !== undefined, this.path, this.grpcStatus);
  }
}

/** The RPC semantic-convention attributes, shared by server and client spans. */
function rpcAttributes(a: AttributeSink, grpc: boolean, path: string, grpcStatus: string | undefined): void {
  const rpc = grpc ? rpcOf(path) : undefined;
  if (rpc !== undefined) {
    a.attr('rpc.system', 'grpc');
    a.attr('rpc.service', rpc[0]);
    a.attr('rpc.method', rpc[1]);
  }
  if (grpcStatus !== undefined) a.attr('rpc.grpc.status_code', Number(grpcStatus));
}

class ClientSpan extends FinishedSpan {
  readonly kind = SpanKind.CLIENT;

  constructor(resource: Resource, scope: InstrumentationScope, private readonly s: AttemptSpan, private readonly a: AttemptEnd, startMs: number, endMs: number) {
    super(resource, scope, s.trace.traceId, s.spanId, s.trace.spanId, false, s.trace.traceState, startMs, endMs);
  }

  get name(): string {
    const p = this.s.path;
    return this.s.grpc && rpcOf(p) !== undefined ? p.slice(1) : this.s.method;
  }

  get statusCode(): number {
    const a = this.a;
    if (a.flag !== undefined || a.status >= 400 || a.status === 0) return a.result === 'cancelled' ? SpanStatusCode.UNSET : SpanStatusCode.ERROR;
    return a.grpcStatus !== undefined && a.grpcStatus !== '0' ? SpanStatusCode.ERROR : SpanStatusCode.UNSET;
  }

  eachAttribute(a: AttributeSink): void {
    const x = this.a;
    a.attr('server.address', x.endpointHost);
    a.attr('server.port', x.endpointPort);
    a.attr('outrigger.cluster', x.cluster);
    a.attr('outrigger.attempt', x.kind);
    a.attr('outrigger.attempt_index', x.index);
    a.attr('outrigger.attempt_result', x.result);
    if (x.status !== 0) a.attr('http.response.status_code', x.status);
    if (x.flag !== undefined) a.attr('outrigger.response_flags', x.flag);
    const p = this.s.path;
    a.attr('http.request.method', this.s.method);
    a.attr('url.path', p);
    rpcAttributes(a, this.s.grpc, p, x.grpcStatus);
  }
}

class PlainSpan extends FinishedSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly statusCode: number;
  private readonly own: Attributes;

  constructor(resource: Resource, scope: InstrumentationScope, s: OpenSpan, error: boolean, startMs: number, endMs: number) {
    super(resource, scope, s.traceId, s.spanId, s.parentSpanId, false, undefined, startMs, endMs);
    this.name = s.name;
    this.kind = s.kind;
    this.own = s.attributes;
    this.statusCode = error ? SpanStatusCode.ERROR : SpanStatusCode.UNSET;
  }

  eachAttribute(a: AttributeSink): void {
    const own = this.own;
    for (const k in own) {
      const v = own[k];
      if (v !== undefined) a.attr(k, v);
    }
  }
}
