import type { DescMethod } from '@bufbuild/protobuf';
import { randomUUID } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { ProxyContext } from '../context.js';
import type { Exchange } from '../exchange.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import { GrpcCall, type CallHandlers } from './grpc-call.js';
import { timeoutHeader } from './metadata.js';
import type { Transcoder } from './transcoder.js';

/** What a dialect handler (gRPC-Web, Connect, WebSocket) needs to call the backend. */
export interface RpcTarget {
  readonly ctx: ProxyContext;
  readonly tr: Transcoder;
  readonly ex: Exchange;
  readonly cluster: ClusterRuntime;
  readonly ep: EndpointAddress;
  readonly routeTimeoutMs: number;
  readonly authority: string;
  readonly clientAddress: string;
  readonly trustedHops: number;
}

/**
 * Request headers that describe the client's transport, not the call: never
 * passed on as metadata by the gRPC-Web and Connect dialects (whose other
 * headers are metadata as-is, as in gRPC itself).
 */
const NOT_METADATA = new Set([
  'host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'http2-settings',
  'content-type', 'content-length', 'content-encoding', 'accept', 'accept-encoding', 'x-grpc-web', 'grpc-timeout',
  'grpc-encoding', 'grpc-accept-encoding', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-request-id',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-protocol',
  'access-control-request-method', 'access-control-request-headers',
]);

const ASCII = /^[\x20-\x7e]*$/;

/** Headers → metadata for the gRPC-shaped dialects: everything but transport headers, `connect-*` and `x-outrigger-*`. */
export function passMetadata(h: IncomingHttpHeaders, out: OutgoingHttpHeaders): void {
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':') || NOT_METADATA.has(k) || k.startsWith('connect-') || k.startsWith('x-outrigger-')) continue;
    const vals = (Array.isArray(v) ? v : [v]).filter((x) => k.endsWith('-bin') || ASCII.test(x));
    if (vals.length > 0) out[k] = vals.length === 1 ? vals[0] : vals;
  }
}

/** Response metadata the dialects never echo (they describe the gRPC transport). */
const TRANSPORT = new Set(['content-type', 'content-length', 'grpc-encoding', 'grpc-accept-encoding', 'date', 'grpc-status', 'grpc-message', 'grpc-status-details-bin']);

export function callMetadata(h: IncomingHttpHeaders): [string, string[]][] {
  const out: [string, string[]][] = [];
  for (const [k, v] of Object.entries(h)) {
    if (v === undefined || k.startsWith(':') || TRANSPORT.has(k)) continue;
    out.push([k, Array.isArray(v) ? v : [String(v)]]);
  }
  return out;
}

/** The shorter of the route timeout and the client's (dialect-specific) deadline; negative client values are ignored. */
export function deadlineMs(routeMs: number, clientMs: number): number {
  if (clientMs >= 0 && (routeMs === 0 || clientMs < routeMs)) return clientMs;
  return routeMs;
}

/**
 * Starts one upstream gRPC call for `method`: path, authority, request id,
 * forwarding headers and grpc-timeout are set here; `md` holds the
 * dialect's metadata. A client that goes away cancels it (`onClose`).
 */
export function startRpc(
  t: RpcTarget,
  method: DescMethod,
  md: OutgoingHttpHeaders,
  reqHeaders: IncomingHttpHeaders,
  timeoutMs: number,
  h: CallHandlers,
): GrpcCall {
  md[':path'] = `/${method.parent.typeName}/${method.name}`;
  md[':authority'] = t.authority;
  const rid = reqHeaders['x-request-id'];
  t.ex.request_id = typeof rid === 'string' && rid !== '' && t.trustedHops > 0 ? rid : randomUUID();
  md['x-request-id'] = t.ex.request_id;
  const xff = reqHeaders['x-forwarded-for'];
  md['x-forwarded-for'] = t.trustedHops > 0 && typeof xff === 'string' && xff ? `${xff}, ${t.clientAddress}` : t.clientAddress;
  const host = reqHeaders[':authority'] ?? reqHeaders['host'];
  if (typeof host === 'string') md['x-forwarded-host'] = host;
  if (timeoutMs > 0) md['grpc-timeout'] = timeoutHeader(timeoutMs);
  return new GrpcCall(t.ctx, t.cluster, t.ep, md, timeoutMs, {
    onHeaders: h.onHeaders,
    onMessage: h.onMessage,
    onEnd: (e) => {
      if (e.local) t.ex.flags = 'UF';
      else if (e.code === 4 && t.ex.flags === undefined) t.ex.flags = 'UT';
      t.ex.grpc_status = String(e.code);
      h.onEnd(e);
    },
  });
}

/** Splits a byte stream into 5-byte-prefixed envelopes (gRPC, gRPC-Web, Connect streaming). */
export class EnvelopeReader {
  private buf: Buffer = Buffer.alloc(0);
  constructor(private readonly max: number) {}
  /** Returns complete envelopes; throws when one is larger than the limit. */
  push(c: Buffer): { flags: number; data: Buffer }[] {
    this.buf = this.buf.length === 0 ? c : Buffer.concat([this.buf, c]);
    const out: { flags: number; data: Buffer }[] = [];
    while (this.buf.length >= 5) {
      const len = this.buf.readUInt32BE(1);
      if (len > this.max) throw new Error(`message larger than ${this.max} bytes`);
      if (this.buf.length < 5 + len) break;
      out.push({ flags: this.buf[0]!, data: this.buf.subarray(5, 5 + len) });
      this.buf = this.buf.subarray(5 + len);
    }
    return out;
  }
  get pending(): boolean {
    return this.buf.length > 0;
  }
}

export function envelope(flags: number, data: Uint8Array): Buffer {
  const b = Buffer.allocUnsafe(5 + data.length);
  b[0] = flags;
  b.writeUInt32BE(data.length, 1);
  b.set(data, 5);
  return b;
}
