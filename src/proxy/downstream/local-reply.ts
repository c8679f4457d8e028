import type { OutgoingHttpHeaders } from 'node:http2';
import { create, toBinary } from '@bufbuild/protobuf';
import type { Any } from '@bufbuild/protobuf/wkt';
import { LOCAL_ERRORS, connectCode, type LocalErrorCode } from '../../core/errors.js';
import { StatusSchema } from '../../gen/google/rpc/status_pb.js';
import type { Downstream } from './downstream.js';
import { encodeGrpcMessage } from '../http/headers.js';
import { encodeFrame } from '../../core/grpc-framing.js';

/** What a local reply may carry beyond its code (filters' 401 / 429 answers). */
export interface LocalReplyExtras {
  /** Response headers added in every dialect (`www-authenticate`, `retry-after`, …). */
  readonly headers?: OutgoingHttpHeaders;
  /** google.rpc.Status details (e.g. RetryInfo): `grpc-status-details-bin`, or the JSON error's `details`. */
  readonly details?: readonly Any[];
  /** Statuses that replace the code's own (a route's fault.abort): HTTP for HTTP dialects, gRPC for gRPC ones. */
  readonly status?: { readonly http: number; readonly grpc: number };
}

/**
 * The one way the sidecar answers a request itself, fed by the error table
 * (core/errors.ts) so HTTP status, gRPC status and access-log flag agree, and
 * written in the caller's dialect (`ex.protocol`, set by the pipeline before
 * the filters run):
 * - gRPC: trailers-only (HTTP 200 + grpc-status, and `grpc-status-details-bin`
 *   when there are details), as the gRPC spec requires;
 * - gRPC-Web: the same trailers-only answer with a gRPC-Web content type;
 * - Connect: the HTTP status with the Connect error JSON (unary), or HTTP 200
 *   with an end-of-stream message holding the error (streaming);
 * - REST transcoding: the HTTP status with a google.rpc.Status JSON body;
 * - everyone else (HTTP pass-through, a refused WebSocket upgrade) the HTTP
 *   status with a one-line text body.
 * Once the response head is out, the only honest answer left is to cut the
 * response off, so the client cannot take it as complete.
 */
export function localReply(ds: Downstream, code: LocalErrorCode, detail?: string, extras?: LocalReplyExtras): void {
  const st = extras?.status;
  const spec = st === undefined ? LOCAL_ERRORS[code] : { ...LOCAL_ERRORS[code], httpStatus: st.http, grpcStatus: st.grpc };
  const ex = ds.ex;
  ex.flags = spec.flag;
  if (ds.closed) return;
  if (ds.headersSent) return ds.cutOff();
  const message = detail ? `${spec.message}: ${detail}` : spec.message;
  // Headers of the code itself (`x-outrigger-overloaded` for UO), then the caller's.
  const extra = spec.headers !== undefined || extras?.headers !== undefined ? { ...spec.headers, ...extras?.headers } : undefined;
  const details = extras?.details ?? [];
  // Every local reply returns the exchange's request id, so a client can quote it.
  const flagHeader: OutgoingHttpHeaders = { 'x-outrigger-local-reply': spec.flag, ...requestIdHeader(ex.request_id) };
  const dialect = ds.grpc ? 'grpc' : ex.protocol;
  switch (dialect) {
    case 'grpc':
    case 'grpc-web': {
      ex.status = 200;
      ex.grpc_status = String(spec.grpcStatus);
      const h: OutgoingHttpHeaders = {
        ...extra,
        'content-type': dialect === 'grpc' ? 'application/grpc' : grpcWebType(ds),
        'grpc-status': spec.grpcStatus,
        'grpc-message': encodeGrpcMessage(message),
        ...flagHeader,
      };
      if (details.length > 0) h['grpc-status-details-bin'] = statusBin(spec.grpcStatus, message, details);
      if (dialect === 'grpc') return ds.respondEnd(200, h);
      h['content-length'] = 0;
      return sendReply(ds, 200, h);
    }
    case 'connect': {
      ds.body.resume();
      const err = JSON.stringify(connectError(spec.grpcStatus, message, details));
      if (String(ds.headers['content-type'] ?? '').toLowerCase().startsWith('application/connect+')) {
        // Connect streaming: errors travel in the end-of-stream message, under HTTP 200.
        const frame = encodeFrame(0x02, Buffer.from(`{"error":${err}}`));
        const ct = String(ds.headers['content-type']).split(';')[0]!.trim().toLowerCase();
        return sendReply(ds, 200, { ...extra, 'content-type': ct, 'content-length': frame.length, ...flagHeader }, frame);
      }
      return sendReply(ds, spec.httpStatus, { ...extra, 'content-type': 'application/json', 'content-length': Buffer.byteLength(err), ...flagHeader }, err);
    }
    case 'rest': {
      ds.body.resume();
      const body = JSON.stringify(statusJson(spec.grpcStatus, message, details));
      return sendReply(ds, spec.httpStatus, { ...extra, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...flagHeader }, body);
    }
  }
  const body = `${message}\n`;
  sendReply(ds, spec.httpStatus, { ...extra, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...flagHeader }, body);
}

/** The request id header (absent before the pipeline decided one). */
function requestIdHeader(id: string | undefined): OutgoingHttpHeaders {
  return id === undefined ? {} : { 'x-request-id': id };
}

/** A complete answer of our own (direct responses, filter replies such as a CORS preflight). */
export function sendReply(ds: Downstream, status: number, headers: OutgoingHttpHeaders, body?: string | Buffer): void {
  ds.ex.status = status;
  if (ds.closed) return;
  if (body !== undefined && headers['content-length'] === undefined) headers['content-length'] = Buffer.byteLength(body);
  ds.respond(status, headers);
  if (body === undefined || ds.method === 'HEAD') ds.end();
  else ds.end(body);
}

function grpcWebType(ds: Downstream): string {
  const ct = String(ds.headers['content-type'] ?? '').toLowerCase();
  return ct.startsWith('application/grpc-web-text') ? 'application/grpc-web-text+proto' : 'application/grpc-web+proto';
}

function statusBin(code: number, message: string, details: readonly Any[]): string {
  return Buffer.from(toBinary(StatusSchema, create(StatusSchema, { code, message, details: [...details] }))).toString('base64');
}

const b64 = (u: Uint8Array): string => Buffer.from(u).toString('base64');

/**
 * google.rpc.Status JSON. Details are written without a type registry, as
 * `{"@type", "value": base64}` (the form proto3 JSON uses for unknown Any
 * types), so a local reply never depends on the route's descriptors.
 */
function statusJson(code: number, message: string, details: readonly Any[]): Record<string, unknown> {
  const out: Record<string, unknown> = { code, message };
  if (details.length > 0) out['details'] = details.map((d) => ({ '@type': d.typeUrl, value: b64(d.value) }));
  return out;
}

/** Connect's error JSON (connectrpc protocol.md): snake_case code, details as `{type, value}` with unpadded base64. */
function connectError(code: number, message: string, details: readonly Any[]): Record<string, unknown> {
  const out: Record<string, unknown> = { code: connectCode(code), message };
  if (details.length > 0) {
    out['details'] = details.map((d) => ({ type: d.typeUrl.slice(d.typeUrl.lastIndexOf('/') + 1), value: b64(d.value).replace(/=+$/, '') }));
  }
  return out;
}
