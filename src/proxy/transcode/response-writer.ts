import type { OutgoingHttpHeaders } from 'node:http2';
import { toJson, toJsonString, type DescMessage, type Message } from '@bufbuild/protobuf';
import type { Status } from '../../gen/google/rpc/status_pb.js';
import type { Exchange } from '../http/exchange.js';
import type { Downstream } from '../downstream/downstream.js';
import type { Binding } from './http-rule.js';
import { statusJson } from './status-body.js';
import type { Transcoder, StreamFormatName } from './transcoder.js';

const JSON_CT = 'application/json';

/** Prints a response message with the route's print options, honouring response_body and HttpBody. */
export function printResponse(tr: Transcoder, b: Binding, msg: Message): { contentType: string; body: string | Buffer } {
  const s = tr.settings;
  const opts = {
    alwaysEmitImplicit: s.emitDefaults,
    useProtoFieldName: s.protoNames,
    enumAsInteger: s.enumsAsInts,
    registry: tr.pool.json,
  };
  let schema: DescMessage = b.method.output;
  let value: unknown = msg;
  if (b.responseBody) {
    const f = b.responseBody;
    value = (msg as unknown as Record<string, unknown>)[f.localName];
    if (f.fieldKind === 'message') {
      schema = f.message;
      value ??= undefined;
    } else {
      const all = toJson(schema, msg, { ...opts, alwaysEmitImplicit: true }) as Record<string, unknown>;
      return { contentType: JSON_CT, body: JSON.stringify(all[s.protoNames ? f.name : f.jsonName] ?? null, null, s.indent || undefined) };
    }
  }
  if (schema.typeName === 'google.api.HttpBody') {
    const hb = value as { contentType?: string; data?: Uint8Array } | undefined;
    return { contentType: hb?.contentType || 'application/octet-stream', body: Buffer.from(hb?.data ?? new Uint8Array()) };
  }
  if (value === undefined) return { contentType: JSON_CT, body: '{}' };
  return { contentType: JSON_CT, body: toJsonString(schema, value as Message, { ...opts, prettySpaces: s.indent }) };
}

/** An error before any response byte: the mapped HTTP status and the Status JSON. */
export function writeError(
  ds: Downstream,
  ex: Exchange,
  tr: Transcoder,
  httpStatus: number,
  status: Status,
  headers: OutgoingHttpHeaders = {},
): void {
  if (ds.closed) return;
  if (ds.headersSent) return ds.destroy();
  const body = statusJson(status, tr.pool.json);
  ex.status = httpStatus;
  ex.grpc_status = String(status.code);
  const h: OutgoingHttpHeaders = { ...headers, 'content-type': JSON_CT, 'content-length': Buffer.byteLength(body) };
  if (status.code === 16) h['www-authenticate'] = status.message || 'unauthenticated';
  ds.respond(httpStatus, h, false);
  ex.bytes_out += Buffer.byteLength(body);
  ds.end(body);
}

/** Picks the server-streaming format from Accept, else the route's default. */
export function streamFormatOf(accept: string | undefined, dflt: StreamFormatName): StreamFormatName {
  if (!accept) return dflt;
  if (accept.includes('application/x-ndjson')) return 'ndjson';
  if (accept.includes('text/event-stream')) return 'sse';
  if (accept.includes('application/json')) return 'json';
  return dflt;
}

const STREAM_CT: Readonly<Record<StreamFormatName, string>> = {
  json: JSON_CT,
  ndjson: 'application/x-ndjson',
  sse: 'text/event-stream',
};

/**
 * Server-streaming output. States: idle (nothing sent) → open (headers and
 * at least the opening sent) → closed. An error while idle is an ordinary
 * error reply; once open it becomes the terminal error frame (`{"error":
 * Status}` as last array element or NDJSON line, `event: error` for SSE) and,
 * when the client sent `TE: trailers`, grpc-status trailers, so a failed
 * stream never looks like a clean 200.
 */
export class StreamWriter {
  private state: 'idle' | 'open' | 'closed' = 'idle';
  private count = 0;

  constructor(
    private readonly ds: Downstream,
    private readonly ex: Exchange,
    private readonly format: StreamFormatName,
    private readonly trailers: boolean,
    private readonly headers: OutgoingHttpHeaders,
  ) {}

  private open(): void {
    if (this.state !== 'idle') return;
    this.state = 'open';
    this.ex.status = 200;
    const h: OutgoingHttpHeaders = { ...this.headers, 'content-type': STREAM_CT[this.format] };
    if (this.format === 'sse') h['cache-control'] = 'no-cache';
    this.ds.respond(200, h, this.trailers);
    if (this.format === 'json') this.write('[');
  }

  private write(s: string | Buffer): boolean {
    this.ex.bytes_out += typeof s === 'string' ? Buffer.byteLength(s) : s.length;
    return this.ds.write(s);
  }

  /** Writes one message (already printed); false means the client is slow: pause upstream. */
  message(text: string): boolean {
    this.open();
    const n = this.count++;
    switch (this.format) {
      case 'json':
        return this.write(n === 0 ? text : `,${text}`);
      case 'ndjson':
        return this.write(`${text}\n`);
      case 'sse':
        return this.write(`id: ${n + 1}\ndata: ${text}\n\n`);
    }
  }

  /** True when the error can still be an ordinary reply. */
  get idle(): boolean {
    return this.state === 'idle';
  }

  finishOk(trailers: OutgoingHttpHeaders): void {
    this.open();
    this.state = 'closed';
    this.ex.grpc_status = '0';
    this.ds.end(this.format === 'json' ? ']' : '', { ...trailers, 'grpc-status': '0' });
  }

  /** Only when not idle (see `idle`). */
  finishError(status: Status, statusText: string, trailers: OutgoingHttpHeaders): void {
    this.state = 'closed';
    this.ex.grpc_status = String(status.code);
    const frame = `{"error":${statusText}}`;
    const tail =
      this.format === 'json' ? `${this.count > 0 ? ',' : ''}${frame}]` : this.format === 'ndjson' ? `${frame}\n` : `event: error\ndata: ${statusText}\n\n`;
    this.ex.bytes_out += Buffer.byteLength(tail);
    this.ds.end(tail, { ...trailers, 'grpc-status': String(status.code), 'grpc-message': encodeURIComponent(status.message) });
  }
}
