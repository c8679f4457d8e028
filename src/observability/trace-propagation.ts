import { ROOT_CONTEXT, trace, type Context, type TextMapGetter, type TextMapSetter } from '@opentelemetry/api';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import type { PropagatorName } from './trace-settings.js';

/** A trace context that arrived with a request. */
export interface RemoteParent {
  readonly traceId: string;
  readonly spanId: string;
  readonly sampled: boolean;
  /** W3C tracestate, passed on as it came. */
  readonly traceState: string | undefined;
  /**
   * The `traceparent` that arrived when it already is what an unsampled
   * hop passes on (`00-<trace>-<parent>-00`, nothing around it): sent on as
   * the very same string.
   */
  readonly canonicalUnsampled: string | undefined;
}

/** What injection needs of an unsampled exchange's trace (tracer.ts ExchangeTrace). */
export interface UnsampledTrace {
  readonly traceId: string;
  readonly spanId: string;
  unsampledTraceparent: string | undefined;
}

type Headers = Record<string, unknown>;

/**
 * Reads and writes trace context in request headers, in the configured
 * formats. Extraction takes the first format that yields a valid context;
 * injection writes every configured format.
 *
 * W3C `traceparent` is parsed and written here: it is a fixed 55-character
 * layout, and doing it in place costs no Context objects on the hot path
 * (the OpenTelemetry propagators need one per call). B3 goes through
 * @opentelemetry/propagator-b3 (its many header variants, 64-bit ids, the
 * debug flag), which is only paid for when B3 is configured. `tracestate`
 * and `baggage` pass through untouched: the proxy neither reads nor adds
 * entries, and they are already copied with the other end-to-end headers.
 */
export class Propagation {
  private readonly w3c: boolean;
  private readonly b3: B3Propagator | undefined;
  private readonly b3multi: B3Propagator | undefined;

  constructor(readonly names: readonly PropagatorName[]) {
    this.w3c = names.includes('tracecontext');
    this.b3 = names.includes('b3') ? new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER }) : undefined;
    this.b3multi = names.includes('b3multi') ? new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }) : undefined;
  }

  extract(h: Headers): RemoteParent | undefined {
    if (this.w3c) {
      const tp = h['traceparent'];
      if (typeof tp === 'string') {
        const p = parseTraceparent(tp);
        if (p !== undefined) {
          const ts = h['tracestate'];
          const canonical = !p.sampled && tp.length === 55 && tp.charCodeAt(0) === 48 && tp.charCodeAt(1) === 48 && tp.charCodeAt(53) === 48 && tp.charCodeAt(54) === 48;
          return { traceId: p.traceId, spanId: p.spanId, sampled: p.sampled, traceState: typeof ts === 'string' ? ts : Array.isArray(ts) ? ts.join(',') : undefined, canonicalUnsampled: canonical ? tp : undefined };
        }
      }
    }
    // Either B3 propagator reads both encodings.
    const b3 = this.b3 ?? this.b3multi;
    if (b3 !== undefined && (h['b3'] !== undefined || h['x-b3-traceid'] !== undefined)) {
      const sc = trace.getSpanContext(b3.extract(ROOT_CONTEXT, h, GETTER));
      if (sc !== undefined && trace.isSpanContextValid(sc)) return { traceId: sc.traceId, spanId: sc.spanId, sampled: (sc.traceFlags & 1) === 1, traceState: undefined, canonicalUnsampled: undefined };
    }
    return undefined;
  }

  /** Writes the context of the span `spanId` (the upstream's parent) into an attempt's headers. */
  inject(h: Headers, traceId: string, spanId: string, sampled: boolean): void {
    if (this.w3c) h['traceparent'] = `00-${traceId}-${spanId}-${sampled ? '01' : '00'}`;
    if (this.b3 !== undefined || this.b3multi !== undefined) {
      const ctx = spanContext(traceId, spanId, sampled);
      this.b3?.inject(ctx, h, SETTER);
      this.b3multi?.inject(ctx, h, SETTER);
    }
  }

  /**
   * An unsampled exchange's context, the same for each of its attempts: W3C
   * alone (the default) sets one string built at most once per exchange —
   * none at all when the one that arrived is passed on as it is.
   */
  injectUnsampled(h: Headers, t: UnsampledTrace): void {
    if (this.b3 !== undefined || this.b3multi !== undefined) return this.inject(h, t.traceId, t.spanId, false);
    if (this.w3c) h['traceparent'] = t.unsampledTraceparent ??= `00-${t.traceId}-${t.spanId}-00`;
  }
}

function spanContext(traceId: string, spanId: string, sampled: boolean): Context {
  return trace.setSpanContext(ROOT_CONTEXT, { traceId, spanId, traceFlags: sampled ? 1 : 0, isRemote: false });
}

const GETTER: TextMapGetter<Headers> = {
  keys: (h) => Object.keys(h),
  get: (h, k) => {
    const v = h[k];
    return typeof v === 'string' || Array.isArray(v) ? (v as string | string[]) : undefined;
  },
};

const SETTER: TextMapSetter<Headers> = {
  set: (h, k, v) => {
    h[k] = v;
  },
};

const ZERO_TRACE = '00000000000000000000000000000000';
const ZERO_SPAN = '0000000000000000';

/**
 * W3C Trace Context §3.2: `version-traceid-parentid-flags`, lowercase hex,
 * all-zero ids invalid, version ff invalid; a future version may append
 * fields after the flags (so only the first 55 characters are read then).
 */
export function parseTraceparent(v: string): { traceId: string; spanId: string; sampled: boolean } | undefined {
  const s = v.trim();
  if (s.length < 55 || s.charCodeAt(2) !== 45 || s.charCodeAt(35) !== 45 || s.charCodeAt(52) !== 45) return undefined;
  const version = s.slice(0, 2);
  if (!isHex(version) || version === 'ff' || (version === '00' && s.length !== 55) || (s.length > 55 && s.charCodeAt(55) !== 45)) return undefined;
  const traceId = s.slice(3, 35);
  const spanId = s.slice(36, 52);
  const flags = s.slice(53, 55);
  if (!isHex(traceId) || !isHex(spanId) || !isHex(flags) || traceId === ZERO_TRACE || spanId === ZERO_SPAN) return undefined;
  return { traceId, spanId, sampled: (parseInt(flags, 16) & 1) === 1 };
}

function isHex(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!((c >= 48 && c <= 57) || (c >= 97 && c <= 102))) return false;
  }
  return true;
}
