import { SpanKind, SpanStatusCode, type Attributes, type HrTime, type Link, type SpanContext, type SpanStatus } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import type { ReadableSpan, TimedEvent } from '@opentelemetry/sdk-trace-base';
import type { Clock } from '../core/clock.js';
import type { Random } from '../core/random.js';
import type { ExchangeRecord } from './exchange-record.js';
import type { Propagation, RemoteParent } from './trace-propagation.js';
import type { SpanSink } from './span-export.js';
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
 * and builds its spans. Spans are created at their END, with explicit start
 * times, as plain ReadableSpans handed to the export side (span-export.ts):
 * the SDK's Tracer would allocate a live Span (attributes map, events, a
 * `performance.now()`-anchored clock, context objects) at the start of every
 * request and need the active context threaded through AsyncLocalStorage;
 * here the request path holds two strings and a flag, and passes the trace
 * explicitly (Exchange.trace, UpstreamAttempt.span).
 */
export class Tracer {
  private readonly scope: InstrumentationScope = { name: 'outrigger' };

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

  /** The trace of a new exchange, from its request headers (before client x-outrigger-* headers are dropped). */
  begin(h: Headers): ExchangeTrace {
    const parent = this.propagation.extract(h);
    const force = h[FORCE_TRACE_HEADER] !== undefined;
    if (parent === undefined) {
      const traceId = this.id(4);
      return new ExchangeTrace(this, traceId, this.id(2), undefined, force || this.ratioSampled(traceId), undefined);
    }
    const sampled = force || (this.sampler.parentBased ? parent.sampled : this.ratioSampled(parent.traceId));
    // Not recorded: the parent's own span id goes on, so the trace has no gap where this sidecar was.
    return new ExchangeTrace(this, parent.traceId, sampled ? this.id(2) : parent.spanId, parent.spanId, sampled, parent.traceState);
  }

  /** An upstream attempt starts: its client span (when sampled) becomes the parent the upstream sees. */
  attemptStarted(t: ExchangeTrace, headers: Headers, method: string, path: string): AttemptSpan | undefined {
    if (!t.sampled) {
      this.propagation.inject(headers, t.traceId, t.spanId, false);
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

  /** The exchange finished (its access-log line is being written, `duration_ms` measured): its server span, if sampled. */
  exchangeEnded(t: ExchangeTrace, ex: ExchangeRecord): void {
    if (!t.sampled) return;
    const end = this.wall(this.clock.monotonicMs());
    this.sink.onEnd(new ServerSpan(this.resource, this.scope, t, ex, end - ex.duration_ms, end));
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
    if (!this.ratioSampled(traceId)) return undefined;
    return new OpenSpan(this, name, kind, traceId, this.id(2), undefined, this.clock.nowMs(), this.clock.monotonicMs());
  }

  /** @internal OpenSpan.end */
  endOpen(s: OpenSpan, error: boolean): void {
    const dur = this.clock.monotonicMs() - s.startMono;
    const t = new ExchangeTrace(this, s.traceId, s.spanId, s.parentSpanId, true, undefined);
    this.sink.onEnd(new PlainSpan(this.resource, this.scope, t, s, error, s.startWallMs, s.startWallMs + dur));
  }

  flush(): Promise<void> {
    return this.sink.forceFlush();
  }

  shutdown(): Promise<void> {
    return this.sink.shutdown();
  }

  private ratioSampled(traceId: string): boolean {
    const r = this.sampler.ratio;
    if (r >= 1) return true;
    if (r <= 0) return false;
    // As the SDK's TraceIdRatioBased: the decision is a function of the trace id, the same in every sidecar.
    return parseInt(traceId.slice(24), 16) / 0x100000000 < r;
  }

  /** `words` random 32-bit words as lowercase hex (never all zero, which W3C reserves as invalid). */
  private id(words: number): string {
    let s = '';
    let any = 0;
    for (let i = 0; i < words; i++) {
      // A byte table, not Number#toString(16) (which is ~10x slower on the doubles Random returns).
      const w = this.random.int(0x100000000) >>> 0;
      any |= w;
      s += HEX[w >>> 24]! + HEX[(w >>> 16) & 255]! + HEX[(w >>> 8) & 255]! + HEX[w & 255]!;
    }
    return any === 0 ? s.slice(0, -1) + '1' : s;
  }
}

const HEX: readonly string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));

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
 * A finished span, as the exporter reads it. Everything but the ids and
 * times is derived when the exporter asks (the batch, off the request path):
 * the span context objects and the attribute map included.
 */
abstract class FinishedSpan implements ReadableSpan {
  abstract readonly name: string;
  abstract readonly kind: SpanKind;
  abstract readonly attributes: Attributes;
  abstract readonly status: SpanStatus;
  readonly links = NO_LINKS;
  readonly events = NO_EVENTS;
  readonly ended = true;
  readonly droppedAttributesCount = 0;
  readonly droppedEventsCount = 0;
  readonly droppedLinksCount = 0;

  constructor(
    readonly resource: Resource,
    readonly instrumentationScope: InstrumentationScope,
    protected readonly trace: ExchangeTrace,
    private readonly id: string,
    private readonly parentId: string | undefined,
    private readonly remoteParent: boolean,
    private readonly startMs: number,
    private readonly endMs: number,
  ) {}

  spanContext(): SpanContext {
    return { traceId: this.trace.traceId, spanId: this.id, traceFlags: 1, isRemote: false, traceState: this.trace.traceState === undefined ? undefined : new RawTraceState(this.trace.traceState) };
  }

  get parentSpanContext(): SpanContext | undefined {
    const p = this.parentId;
    return p === undefined ? undefined : { traceId: this.trace.traceId, spanId: p, traceFlags: 1, isRemote: this.remoteParent };
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

class ServerSpan extends FinishedSpan {
  readonly kind = SpanKind.SERVER;
  private attrs: Attributes | undefined;

  constructor(resource: Resource, scope: InstrumentationScope, t: ExchangeTrace, private readonly ex: ExchangeRecord, startMs: number, endMs: number) {
    super(resource, scope, t, t.spanId, t.parentSpanId, true, startMs, endMs);
  }

  get name(): string {
    const ex = this.ex;
    if (ex.protocol === 'grpc' && rpcOf(ex.path) !== undefined) return ex.path.slice(1);
    return ex.route === '' ? ex.method : `${ex.method} ${ex.route}`;
  }

  get status(): SpanStatus {
    const ex = this.ex;
    return ex.status >= 500 || (ex.grpc_status !== undefined && GRPC_SERVER_ERRORS.has(ex.grpc_status)) ? ERROR : UNSET;
  }

  get attributes(): Attributes {
    if (this.attrs !== undefined) return this.attrs;
    const ex = this.ex;
    const a: Attributes = {
      'http.request.method': ex.method,
      'url.path': ex.path,
      'server.address': ex.authority,
      'http.response.status_code': ex.status,
      'network.protocol.name': ex.protocol,
      'outrigger.route': ex.route,
      'outrigger.cluster': ex.cluster,
    };
    if (ex.request_id !== undefined) a['outrigger.request_id'] = ex.request_id;
    if (ex.upstream !== undefined) a['outrigger.upstream'] = ex.upstream;
    if (ex.flags !== undefined) a['outrigger.response_flags'] = ex.flags;
    const rpc = ex.protocol === 'grpc' || ex.grpc_status !== undefined ? rpcOf(ex.path) : undefined;
    if (rpc !== undefined) {
      a['rpc.system'] = 'grpc';
      a['rpc.service'] = rpc[0];
      a['rpc.method'] = rpc[1];
    }
    if (ex.grpc_status !== undefined) a['rpc.grpc.status_code'] = Number(ex.grpc_status);
    return (this.attrs = a);
  }
}

class ClientSpan extends FinishedSpan {
  readonly kind = SpanKind.CLIENT;
  private attrs: Attributes | undefined;

  constructor(resource: Resource, scope: InstrumentationScope, private readonly s: AttemptSpan, private readonly a: AttemptEnd, startMs: number, endMs: number) {
    super(resource, scope, s.trace, s.spanId, s.trace.spanId, false, startMs, endMs);
  }

  get name(): string {
    const p = this.s.path;
    return this.s.grpc && rpcOf(p) !== undefined ? p.slice(1) : this.s.method;
  }

  get status(): SpanStatus {
    const a = this.a;
    if (a.flag !== undefined || a.status >= 400 || a.status === 0) return a.result === 'cancelled' ? UNSET : ERROR;
    return a.grpcStatus !== undefined && a.grpcStatus !== '0' ? ERROR : UNSET;
  }

  get attributes(): Attributes {
    if (this.attrs !== undefined) return this.attrs;
    const x = this.a;
    const a: Attributes = {
      'server.address': x.endpointHost,
      'server.port': x.endpointPort,
      'outrigger.cluster': x.cluster,
      'outrigger.attempt': x.kind,
      'outrigger.attempt_index': x.index,
      'outrigger.attempt_result': x.result,
    };
    if (x.status !== 0) a['http.response.status_code'] = x.status;
    if (x.flag !== undefined) a['outrigger.response_flags'] = x.flag;
    const p = this.s.path;
    a['http.request.method'] = this.s.method;
    a['url.path'] = p;
    const rpc = this.s.grpc ? rpcOf(p) : undefined;
    if (rpc !== undefined) {
      a['rpc.system'] = 'grpc';
      a['rpc.service'] = rpc[0];
      a['rpc.method'] = rpc[1];
    }
    if (x.grpcStatus !== undefined) a['rpc.grpc.status_code'] = Number(x.grpcStatus);
    return (this.attrs = a);
  }
}

class PlainSpan extends FinishedSpan {
  readonly name: string;
  readonly kind: SpanKind;
  readonly attributes: Attributes;
  readonly status: SpanStatus;

  constructor(resource: Resource, scope: InstrumentationScope, t: ExchangeTrace, s: OpenSpan, error: boolean, startMs: number, endMs: number) {
    super(resource, scope, t, s.spanId, s.parentSpanId, false, startMs, endMs);
    this.name = s.name;
    this.kind = s.kind;
    this.attributes = s.attributes;
    this.status = error ? ERROR : UNSET;
  }
}
