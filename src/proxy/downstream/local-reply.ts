import type { OutgoingHttpHeaders } from 'node:http2';
import { LOCAL_ERRORS, type LocalErrorCode } from '../../core/errors.js';
import type { Downstream } from './downstream.js';
import { encodeGrpcMessage } from '../http/headers.js';

/**
 * The one way the sidecar answers a request itself, fed by the error table
 * (core/errors.ts) so HTTP status, gRPC status and access-log flag agree.
 * gRPC callers get a trailers-only response (HTTP 200 + grpc-status) as the
 * gRPC spec requires; everyone else the HTTP status with a one-line text body.
 * Once the response head is out, the only honest answer left is to cut the
 * response off, so the client cannot take it as complete.
 */
export function localReply(ds: Downstream, code: LocalErrorCode, detail?: string): void {
  const spec = LOCAL_ERRORS[code];
  const ex = ds.ex;
  ex.flags = spec.flag;
  if (ds.closed) return;
  if (ds.headersSent) return ds.destroy(ds.grpc ? 0x8 /* CANCEL */ : 0x2 /* INTERNAL_ERROR */);
  const message = detail ? `${spec.message}: ${detail}` : spec.message;
  if (ds.grpc) {
    ex.status = 200;
    ex.grpc_status = String(spec.grpcStatus);
    ds.respondEnd(200, {
      'content-type': 'application/grpc',
      'grpc-status': spec.grpcStatus,
      'grpc-message': encodeGrpcMessage(message),
      'x-outrigger-local-reply': spec.flag,
      ...requestIdHeader(ex.request_id),
    });
    return;
  }
  const body = `${message}\n`;
  sendReply(ds, spec.httpStatus, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), 'x-outrigger-local-reply': spec.flag, ...requestIdHeader(ex.request_id) }, body);
}

/** Local replies return the exchange's request id so a client can quote it (absent before the pipeline decided one). */
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
