import type { ServerHttp2Stream } from 'node:http2';
import type { ServerResponse } from 'node:http';
import { LOCAL_ERRORS, type LocalErrorCode } from '../core/errors.js';
import { encodeGrpcMessage } from './headers.js';
import type { Exchange } from './exchange.js';

/**
 * Local replies: answers the sidecar makes itself. gRPC callers get a
 * trailers-only response (HTTP 200 + grpc-status) as the gRPC spec requires;
 * everyone else the HTTP status with a one-line text body.
 */
export function h2LocalReply(
  stream: ServerHttp2Stream,
  ex: Exchange,
  code: LocalErrorCode,
  grpc: boolean,
  detail?: string,
): void {
  const spec = LOCAL_ERRORS[code];
  const message = detail ? `${spec.message}: ${detail}` : spec.message;
  ex.flags = spec.flag;
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close(grpc ? 0x8 /* CANCEL */ : 0x2 /* INTERNAL_ERROR */);
    return;
  }
  if (grpc) {
    ex.status = 200;
    ex.grpc_status = String(spec.grpcStatus);
    stream.respond(
      {
        ':status': 200,
        'content-type': 'application/grpc',
        'grpc-status': spec.grpcStatus,
        'grpc-message': encodeGrpcMessage(message),
        'x-outrigger-local-reply': spec.flag,
      },
      { endStream: true },
    );
  } else {
    ex.status = spec.httpStatus;
    stream.respond({
      ':status': spec.httpStatus,
      'content-type': 'text/plain; charset=utf-8',
      'x-outrigger-local-reply': spec.flag,
    });
    stream.end(`${message}\n`);
  }
}

export function h1LocalReply(res: ServerResponse, ex: Exchange, code: LocalErrorCode, detail?: string): void {
  const spec = LOCAL_ERRORS[code];
  const message = detail ? `${spec.message}: ${detail}` : spec.message;
  ex.flags = spec.flag;
  if (res.headersSent) {
    res.destroy();
    return;
  }
  ex.status = spec.httpStatus;
  const body = `${message}\n`;
  res.writeHead(spec.httpStatus, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'x-outrigger-local-reply': spec.flag,
  });
  res.end(body);
}
