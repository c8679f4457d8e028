import type { AttributeValue, Attributes } from '@opentelemetry/api';
import type { InstrumentationScope } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';

/** Receives a span's attributes one by one (the OTLP encoder, or a plain object for ReadableSpan). */
export interface AttributeSink {
  attr(key: string, value: AttributeValue): void;
}

/**
 * A finished span as the proxy records it (tracer.ts): ids as hex, times as
 * wall-clock milliseconds, attributes produced on demand. The encoder reads
 * these fields directly; nothing of the OpenTelemetry API's object model
 * (span contexts, HrTime pairs, attribute maps) is built for the wire.
 */
export interface EncodableSpan {
  readonly resource: Resource;
  readonly instrumentationScope: InstrumentationScope;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentId: string | undefined;
  readonly remoteParent: boolean;
  readonly traceState: string | undefined;
  readonly name: string;
  /** OpenTelemetry API SpanKind (INTERNAL 0, SERVER 1, CLIENT 2…); OTLP's is one more. */
  readonly kind: number;
  /** OTLP status code: 0 unset, 2 error. */
  readonly statusCode: number;
  readonly startMs: number;
  readonly endMs: number;
  eachAttribute(sink: AttributeSink): void;
}

/**
 * OTLP `ExportTraceServiceRequest` protobuf for a batch of our spans: the
 * bytes the SDK's OTLP exporters put on the wire (their HTTP and gRPC
 * transports, retries, headers and OTEL_EXPORTER_OTLP_* settings are used
 * unchanged, span-export.ts), written in one pass.
 *
 * Why not the SDK's ProtobufTraceSerializer: it reads spans through the
 * ReadableSpan interface (a span context object per call, HrTime arrays, an
 * attribute map per span), measures every field in a first pass and writes
 * it in a second, and encodes each attribute key anew. Profiled in the
 * sidecar at 100 % sampling it was most of tracing's CPU (bench/tracing.ts);
 * here keys are encoded once per process and each span is a single pass.
 */
export class SpanEncoder implements AttributeSink {
  private buf: Buffer = SCRATCH_EMPTY;
  private pos = 0;
  private lastSize = 0;
  private readonly keys = new Map<string, Buffer>();
  private readonly heads = new Map<Resource, Buffer>();
  private readonly scopes = new Map<InstrumentationScope, Buffer>();

  /** The request for `spans`, in a buffer of its own (the exporter may still hold the last one while sending). */
  encode(spans: readonly EncodableSpan[]): Uint8Array {
    // Group by resource, then scope (one of each in a sidecar; kept general for the control plane and tests).
    const groups = new Map<Resource, Map<InstrumentationScope, EncodableSpan[]>>();
    for (const s of spans) {
      let byScope = groups.get(s.resource);
      if (byScope === undefined) groups.set(s.resource, (byScope = new Map()));
      const list = byScope.get(s.instrumentationScope);
      if (list === undefined) byScope.set(s.instrumentationScope, [s]);
      else list.push(s);
    }
    // Cached parts first (they are built in the scratch buffer), then one output buffer sized from the last batch.
    for (const [resource, byScope] of groups) {
      this.resourceBytes(resource);
      for (const scope of byScope.keys()) this.scopeBytes(scope);
    }
    this.buf = Buffer.allocUnsafe(Math.max(16 * 1024, Math.ceil(this.lastSize * 1.25)));
    this.pos = 0;
    for (const [resource, byScope] of groups) {
      // ResourceSpans (field 1) { resource = 1; scope_spans = 2 … }: its length is known at its end.
      this.tag(1, 2);
      const rsAt = this.reserve5();
      const rsStart = this.pos;
      this.raw(this.resourceBytes(resource));
      for (const [scope, list] of byScope) {
        // ScopeSpans { scope = 1; spans = 2 … }
        this.tag(2, 2);
        const ssAt = this.reserve5();
        const ssStart = this.pos;
        this.raw(this.scopeBytes(scope));
        for (const s of list) this.span(s);
        this.finish5(ssAt, ssStart);
      }
      this.finish5(rsAt, rsStart);
    }
    this.lastSize = this.pos;
    const out = this.buf.subarray(0, this.pos);
    this.buf = SCRATCH_EMPTY;
    return out;
  }

  /** AttributeSink: one KeyValue of the span being written (field 9). */
  attr(key: string, value: AttributeValue): void {
    this.keyValue(9, key, value);
  }

  private span(s: EncodableSpan): void {
    // Span { … } behind tag 2 of ScopeSpans. Its length goes in front: written after the body, moved if it needs >2 bytes.
    this.tag(2, 2);
    const lenAt = this.reserve2();
    const start = this.pos;
    this.tag(1, 2);
    this.hexBytes(s.traceId);
    this.tag(2, 2);
    this.hexBytes(s.spanId);
    if (s.traceState !== undefined && s.traceState !== '') this.stringField(3, s.traceState);
    if (s.parentId !== undefined) {
      this.tag(4, 2);
      this.hexBytes(s.parentId);
    }
    this.stringField(5, s.name);
    this.tag(6, 0);
    this.varint(s.kind + 1);
    this.tag(7, 1);
    this.nanos(s.startMs);
    this.tag(8, 1);
    this.nanos(s.endMs);
    s.eachAttribute(this);
    // Status { code = 3 }, written even when UNSET, as the SDK does.
    this.tag(15, 2);
    this.varint(2);
    this.tag(3, 0);
    this.varint(s.statusCode);
    // flags (16, fixed32): sampled, and whether the parent is remote (as the SDK writes it).
    this.tag(16, 5);
    this.fixed32(0x101 | (s.parentId !== undefined && s.remoteParent ? 0x200 : 0));
    this.finish2(lenAt, start);
  }

  private resourceBytes(r: Resource): Buffer {
    let b = this.heads.get(r);
    if (b !== undefined) return b;
    this.buf = Buffer.allocUnsafe(4096);
    this.pos = 0;
    const attrs = r.attributes;
    for (const k in attrs) {
      const v = attrs[k];
      if (v !== undefined) this.keyValue(1, k, v);
    }
    const body = this.take();
    this.pos = 0;
    this.tag(1, 2);
    this.varint(body.length);
    this.raw(body);
    b = this.take();
    this.heads.set(r, b);
    return b;
  }

  private scopeBytes(s: InstrumentationScope): Buffer {
    let b = this.scopes.get(s);
    if (b !== undefined) return b;
    this.buf = Buffer.allocUnsafe(1024);
    this.pos = 0;
    this.stringField(1, s.name);
    if (s.version !== undefined && s.version !== '') this.stringField(2, s.version);
    const body = this.take();
    this.pos = 0;
    this.tag(1, 2);
    this.varint(body.length);
    this.raw(body);
    b = this.take();
    this.scopes.set(s, b);
    return b;
  }

  /** KeyValue { key = 1; value = 2 (AnyValue) } as repeated field `field`. The key's bytes are encoded once. */
  private keyValue(field: number, key: string, value: AttributeValue): void {
    let k = this.keys.get(key);
    if (k === undefined) {
      const kb = Buffer.from(key, 'utf8');
      k = Buffer.concat([Buffer.from([0x0a]), varintBytes(kb.length), kb]);
      if (this.keys.size < 1024) this.keys.set(key, k);
    }
    // The common case, a short ASCII string: every length is one byte and known up front.
    if (typeof value === 'string' && k.length + value.length < 124 && field < 16) {
      const n = value.length;
      this.ensure(k.length + n + 6);
      const buf = this.buf;
      const at = this.pos;
      let p = at;
      buf[p++] = (field << 3) | 2;
      buf[p++] = k.length + 4 + n; // KeyValue: key, then value (tag, length, AnyValue: tag, length, bytes)
      buf.set(k, p);
      p += k.length;
      buf[p++] = 0x12;
      buf[p++] = 2 + n;
      buf[p++] = 0x0a;
      buf[p++] = n;
      for (let i = 0; i < n; i++) {
        const c = value.charCodeAt(i);
        if (c > 127) {
          p = -1;
          break;
        }
        buf[p++] = c;
      }
      if (p >= 0) {
        this.pos = p;
        return;
      }
      this.pos = at; // not ASCII: the general path below
    }
    this.tag(field, 2);
    const lenAt = this.reserve2();
    const start = this.pos;
    this.raw(k);
    this.tag(2, 2);
    const vAt = this.reserve2();
    const vStart = this.pos;
    this.anyValue(value);
    this.finish2(vAt, vStart);
    this.finish2(lenAt, start);
  }

  private anyValue(v: AttributeValue): void {
    if (typeof v === 'string') this.stringField(1, v);
    else if (typeof v === 'boolean') {
      this.tag(2, 0);
      this.varint(v ? 1 : 0);
    } else if (typeof v === 'number') {
      if (Number.isSafeInteger(v)) {
        this.tag(3, 0);
        if (v >= 0) this.varint(v);
        else this.varint64(v >>> 0, Math.floor(v / 4294967296) >>> 0); // int64 two's complement, ten bytes
      } else {
        this.tag(4, 1);
        this.ensure(8);
        this.buf.writeDoubleLE(v, this.pos);
        this.pos += 8;
      }
    } else if (Array.isArray(v)) {
      // ArrayValue { values = 1 (AnyValue) }
      this.tag(5, 2);
      const at = this.reserve2();
      const start = this.pos;
      for (const item of v) {
        if (item === null || item === undefined) continue;
        this.tag(1, 2);
        const iAt = this.reserve2();
        const iStart = this.pos;
        this.anyValue(item);
        this.finish2(iAt, iStart);
      }
      this.finish2(at, start);
    }
  }

  private stringField(field: number, s: string): void {
    this.tag(field, 2);
    const n = s.length;
    if (n >= 24 && n < 43) {
      // At most 126 UTF-8 bytes: a one-byte length for sure, and Buffer#write copies faster than a loop here.
      this.ensure(n * 3 + 1);
      const w = this.buf.write(s, this.pos + 1, 'utf8');
      this.buf[this.pos] = w;
      this.pos += w + 1;
      return;
    }
    // ASCII (every header-derived value we record is): one byte per character, in one pass; the
    // length goes first (one byte below 128 characters); a non-ASCII character rewinds to UTF-8.
    const at = this.pos;
    this.varint(n);
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c > 127) {
        const b = Buffer.from(s, 'utf8');
        this.pos = at;
        this.varint(b.length);
        this.raw(b);
        return;
      }
      buf[p++] = c;
    }
    this.pos = p;
  }

  /** Lowercase hex id → bytes, length-prefixed. */
  private hexBytes(hex: string): void {
    const n = hex.length >>> 1;
    this.varint(n);
    this.ensure(n);
    const buf = this.buf;
    let p = this.pos;
    for (let i = 0; i < 2 * n; i += 2) buf[p++] = (HEX_VALUE[hex.charCodeAt(i) & 127]! << 4) | HEX_VALUE[hex.charCodeAt(i + 1) & 127]!;
    this.pos = p;
  }

  /** Wall-clock ms (fractional) → fixed64 nanoseconds since the epoch, exactly, without BigInt. */
  private nanos(ms: number): void {
    let s = Math.floor(ms / 1000);
    let ns = Math.round((ms - s * 1000) * 1e6);
    if (ns >= 1e9) {
      s += 1;
      ns -= 1e9;
    }
    // s * 1e9 + ns with s = sh * 2^16 + sl: every partial product stays below 2^53.
    const sh = Math.floor(s / 65536);
    const a = (s - sh * 65536) * 1e9 + ns;
    const b = sh * 1e9;
    const lo0 = (b % 65536) * 65536 + (a % 4294967296);
    const hi = Math.floor(b / 65536) + Math.floor(a / 4294967296) + Math.floor(lo0 / 4294967296);
    this.fixed32(lo0 % 4294967296);
    this.fixed32(hi);
  }

  private fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  private tag(field: number, wire: number): void {
    this.varint((field << 3) | wire);
  }

  private varint(v: number): void {
    this.ensure(10);
    const buf = this.buf;
    while (v > 127) {
      buf[this.pos++] = (v % 128) | 0x80;
      v = Math.floor(v / 128);
    }
    buf[this.pos++] = v;
  }

  private varint64(lo: number, hi: number): void {
    this.ensure(10);
    const buf = this.buf;
    while (hi > 0 || lo > 127) {
      buf[this.pos++] = (lo & 127) | 0x80;
      lo = ((lo >>> 7) | (hi << 25)) >>> 0;
      hi >>>= 7;
    }
    buf[this.pos++] = lo;
  }

  /** Five bytes for an outer length (up to 2^35); finish5 moves the body down over what the varint did not need. */
  private reserve5(): number {
    this.ensure(5);
    const at = this.pos;
    this.pos += 5;
    return at;
  }

  private finish5(at: number, start: number): void {
    const len = this.pos - start;
    const v = varintBytes(len);
    v.copy(this.buf, at);
    const gap = 5 - v.length;
    if (gap > 0) {
      this.buf.copy(this.buf, at + v.length, start, this.pos);
      this.pos -= gap;
    }
  }

  /** Two bytes for a length not known yet (a span or attribute is almost always < 16 KiB). */
  private reserve2(): number {
    this.ensure(2);
    const at = this.pos;
    this.pos += 2;
    return at;
  }

  private finish2(at: number, start: number): void {
    const len = this.pos - start;
    if (len < 16384) {
      this.buf[at] = (len & 127) | 0x80;
      this.buf[at + 1] = len >>> 7;
      return;
    }
    // Longer: the varint needs more than the two reserved bytes; move the body up.
    const v = varintBytes(len);
    this.ensure(v.length - 2);
    this.buf.copy(this.buf, at + v.length, start, this.pos);
    v.copy(this.buf, at);
    this.pos += v.length - 2;
  }

  private raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  private take(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }
}

/** A plain attribute object from a span's attributes (ReadableSpan.attributes). */
export function attributesOf(s: Pick<EncodableSpan, 'eachAttribute'>): Attributes {
  const a: Attributes = {};
  s.eachAttribute({ attr: (k, v) => void (a[k] = v) });
  return a;
}

const SCRATCH_EMPTY = Buffer.alloc(0);

/** '0'–'9', 'a'–'f' (and 'A'–'F') → their value; ids are validated lowercase hex before they get here. */
const HEX_VALUE = (() => {
  const t = new Uint8Array(128);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) t[97 + i] = t[65 + i] = 10 + i;
  return t;
})();

function varintBytes(v: number): Buffer {
  const out: number[] = [];
  while (v > 127) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
