import { MethodOptions_IdempotencyLevel } from '@bufbuild/protobuf/wkt';
import type { DescMethod } from '@bufbuild/protobuf';
import type { OutgoingHttpHeaders } from 'node:http2';
import { gunzipSync, gzipSync } from 'node:zlib';
import { GrpcStatus, flagOf } from '../../../core/errors.js';
import type { TranscodeTarget } from '../handler.js';
import type { CallEnd, GrpcCall } from '../grpc-call.js';
import { callMetadata, deadlineMs, passMetadata, startRpc } from '../rpc.js';
import { encodeFrame, FrameReader } from '../../../core/grpc-framing.js';
import { httpStatusOf } from '../status-body.js';
import { codecFor, streamCodecOf, unaryCodecOf, type Codec } from './codec.js';
import { connectErrorJson } from './errors.js';
import { hookRequestBytes, hookResponseBytes } from '../decoded-hooks.js';

/** Responses at least this large are gzipped when the client accepts it. */
const COMPRESS_MIN_BYTES = 1024;

class ConnectFailure extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly http?: number,
  ) {
    super(message);
  }
}

/** `Connect-Timeout-Ms`: at most 10 digits (protocol.md); -1 when absent. */
function clientTimeoutMs(v: string | string[] | undefined): number {
  if (typeof v !== 'string') return -1;
  if (!/^\d{1,10}$/.test(v)) throw new ConnectFailure(GrpcStatus.INVALID_ARGUMENT, `invalid Connect-Timeout-Ms "${v}"`);
  return Number(v);
}

function gunzip(b: Buffer, max: number): Buffer {
  try {
    return gunzipSync(b, { maxOutputLength: max });
  } catch (err) {
    throw new ConnectFailure(GrpcStatus.INVALID_ARGUMENT, `cannot decompress message: ${(err as Error).message}`);
  }
}

function decodeWith(codec: Codec, method: DescMethod, b: Buffer): Uint8Array {
  try {
    return codec.toUpstream(method, b);
  } catch (err) {
    throw new ConnectFailure(GrpcStatus.INVALID_ARGUMENT, `invalid ${method.input.typeName}: ${(err as Error).message}`);
  }
}

/**
 * Connect unary (POST with a bare body, or GET with the message in the
 * query for NO_SIDE_EFFECTS methods) → gRPC: success is 200 with the bare
 * message (trailers as `trailer-<k>` headers); an error is the mapped HTTP
 * status with the Connect error JSON.
 */
export function handleConnectUnary(t: TranscodeTarget, method: DescMethod): void {
  const { ds, ex } = t;
  const fail = (code: number, message: string, o: { http?: number; details?: Uint8Array; headers?: OutgoingHttpHeaders; protocolError?: boolean } = {}): void => {
    ex.grpc_status = String(code);
    if (ds.closed || ds.headersSent) return;
    const body = JSON.stringify(connectErrorJson(code, message, o.details, t.tr.pool.json));
    ex.status = o.http ?? httpStatusOf(code, o.protocolError ?? false);
    ex.bytes_out += Buffer.byteLength(body);
    ds.respond(ex.status, { ...o.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, false);
    ds.end(body);
  };
  const failWith = (err: unknown): void => {
    ex.flags ??= flagOf('bad_request');
    if (err instanceof ConnectFailure) fail(err.code, err.message, { http: err.http });
    else fail(GrpcStatus.INTERNAL, (err as Error).message);
  };
  if (method.methodKind !== 'unary') {
    ds.body.resume();
    return fail(GrpcStatus.UNIMPLEMENTED, `${method.name} is a streaming method: use application/connect+json or +proto`, { http: 415 });
  }
  const max = t.tr.settings.maxRequestBytes;
  const isGet = ds.method === 'GET';
  const run = (codec: Codec, msg: Buffer): void => {
    let req: Uint8Array, timeoutMs: number;
    try {
      req = decodeWith(codec, method, msg);
      timeoutMs = deadlineMs(t.routeTimeoutMs, clientTimeoutMs(ds.headers['connect-timeout-ms']));
    } catch (err) {
      return failWith(err);
    }
    // Filters with decoded-message phases (plugins) see the request before the upstream does.
    const hooked = hookRequestBytes(ds, method, req);
    if (!('bytes' in hooked)) {
      if (hooked.failed) ex.flags = flagOf('filter_error');
      return fail(hooked.code, hooked.message);
    }
    req = hooked.bytes;
    const md: OutgoingHttpHeaders = {};
    passMetadata(ds.headers, md);
    let reply: Buffer | undefined;
    const call = startRpc(t, method, md, ds.headers, timeoutMs, {
      onHeaders: () => {},
      onMessage(bytes) {
        reply = Buffer.from(bytes);
        return true;
      },
      onEnd(e) {
        const meta: OutgoingHttpHeaders = {};
        for (const [k, v] of callMetadata(e.headers)) meta[k] = v;
        for (const [k, v] of callMetadata(e.trailers)) meta[`trailer-${k}`] = v;
        if (e.code !== 0) return fail(e.code, e.message, { details: e.details, headers: meta, protocolError: e.protocolError });
        if (reply === undefined) return fail(GrpcStatus.INTERNAL, 'upstream sent no response message', { http: 502 });
        let body: Buffer;
        try {
          const out = hookResponseBytes(ds, method, reply);
          if (!('bytes' in out)) {
            if (out.failed) ex.flags = flagOf('filter_error');
            return fail(out.code, out.message);
          }
          body = codec.toClient(method, out.bytes === reply ? reply : Buffer.from(out.bytes.buffer, out.bytes.byteOffset, out.bytes.byteLength));
        } catch (err) {
          return fail(GrpcStatus.INTERNAL, `cannot decode upstream response: ${(err as Error).message}`, { http: 502 });
        }
        const h: OutgoingHttpHeaders = { ...meta, 'content-type': codec.name === 'json' ? 'application/json' : 'application/proto' };
        if (body.length >= COMPRESS_MIN_BYTES && /\bgzip\b/.test(String(ds.headers['accept-encoding'] ?? ''))) {
          body = gzipSync(body);
          h['content-encoding'] = 'gzip';
        }
        h['content-length'] = body.length;
        ex.status = 200;
        ex.bytes_out += body.length;
        if (ds.closed) return;
        ds.respond(200, h, false);
        ds.end(body);
      },
    }, ds.method);
    call.send(req);
    call.halfClose();
  };

  if (isGet) {
    ds.body.resume();
    if (method.idempotency !== MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS) {
      return fail(GrpcStatus.UNIMPLEMENTED, `${method.name} has side effects: use POST`, { http: 405, headers: { allow: 'POST' } });
    }
    try {
      const qi = ds.target.indexOf('?');
      const q = new URLSearchParams(qi < 0 ? '' : ds.target.slice(qi + 1));
      const enc = q.get('encoding');
      if (enc !== 'json' && enc !== 'proto') throw new ConnectFailure(GrpcStatus.UNIMPLEMENTED, `unsupported encoding "${enc ?? ''}"`, 415);
      const v = q.get('connect');
      if (v !== null && v !== 'v1') throw new ConnectFailure(GrpcStatus.INVALID_ARGUMENT, `unsupported connect version "${v}"`);
      const raw = q.get('message') ?? '';
      let msg: Buffer = q.get('base64') === '1' ? Buffer.from(raw, 'base64url') : Buffer.from(raw, 'utf8');
      const comp = q.get('compression');
      if (comp === 'gzip') msg = gunzip(msg, max);
      else if (comp !== null && comp !== 'identity') throw new ConnectFailure(GrpcStatus.UNIMPLEMENTED, `unsupported compression "${comp}"`);
      if (msg.length > max) throw new ConnectFailure(GrpcStatus.RESOURCE_EXHAUSTED, `message larger than ${max} bytes`);
      ex.bytes_in += raw.length;
      return run(codecFor(enc, t.tr), msg);
    } catch (err) {
      return failWith(err);
    }
  }

  const codecName = unaryCodecOf(String(ds.headers['content-type'] ?? ''));
  const pv = ds.headers['connect-protocol-version'];
  const enc = String(ds.headers['content-encoding'] ?? 'identity').toLowerCase();
  let pre: ConnectFailure | undefined;
  if (!codecName) pre = new ConnectFailure(GrpcStatus.UNIMPLEMENTED, 'unsupported content type', 415);
  else if (pv !== undefined && pv !== '1') pre = new ConnectFailure(GrpcStatus.INVALID_ARGUMENT, `unsupported Connect-Protocol-Version "${String(pv)}"`);
  else if (enc !== 'gzip' && enc !== 'identity') pre = new ConnectFailure(GrpcStatus.UNIMPLEMENTED, `unsupported compression "${enc}"`);
  if (pre) {
    ds.noKeepAlive();
    ds.body.resume();
    return failWith(pre);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  ds.body.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    ex.bytes_in += c.length;
    if (size > max) {
      over = true;
      ds.noKeepAlive();
      ex.flags = flagOf('request_too_large');
      return fail(GrpcStatus.RESOURCE_EXHAUSTED, `request body larger than ${max} bytes`);
    }
    chunks.push(c);
  });
  ds.body.once('end', () => {
    if (over) return;
    try {
      const body = Buffer.concat(chunks);
      run(codecFor(codecName!, t.tr), enc === 'gzip' ? gunzip(body, max) : body);
    } catch (err) {
      failWith(err);
    }
  });
}

/**
 * Connect streaming (`application/connect+json|+proto`, any method kind):
 * 5-byte envelopes both ways, flag 0x01 = gzip (`Connect-Content-Encoding`),
 * and a final 0x02 EndStreamResponse `{"error"?,"metadata"}`. The HTTP
 * status is 200 even for errors. Client and bidi streams are relayed message
 * by message with backpressure (bidi needs HTTP/2 on the client side).
 */
export function handleConnectStream(t: TranscodeTarget, method: DescMethod): void {
  const { ds, ex } = t;
  const codecName = streamCodecOf(String(ds.headers['content-type'] ?? ''));
  if (!codecName) {
    ds.body.resume();
    ex.status = 415;
    ds.respond(415, { 'content-length': 0 }, false);
    return ds.end();
  }
  const codec = codecFor(codecName, t.tr);
  const ct = `application/connect+${codecName}`;
  const accept = /\bgzip\b/.test(String(ds.headers['connect-accept-encoding'] ?? ''));
  const reqEnc = String(ds.headers['connect-content-encoding'] ?? 'identity').toLowerCase();
  const max = t.tr.settings.maxRequestBytes;
  let upHeaders: OutgoingHttpHeaders = {};
  let started = false;
  let done = false;
  const start = (): void => {
    if (started) return;
    started = true;
    ex.status = 200;
    ds.respond(200, { ...upHeaders, 'content-type': ct, ...(accept ? { 'connect-content-encoding': 'gzip' } : {}) }, false);
  };
  const endStream = (code: number, message: string, details: Uint8Array | undefined, trailers: [string, string[]][]): void => {
    if (done) return;
    done = true;
    ex.grpc_status = String(code);
    if (ds.closed) return;
    start();
    const end: Record<string, unknown> = {};
    if (code !== 0) end['error'] = connectErrorJson(code, message, details, t.tr.pool.json);
    if (trailers.length > 0) end['metadata'] = Object.fromEntries(trailers);
    const f = encodeFrame(0x02, Buffer.from(JSON.stringify(end)));
    ex.bytes_out += f.length;
    ds.end(f);
  };

  let timeoutMs: number;
  try {
    if (reqEnc !== 'gzip' && reqEnc !== 'identity') throw new ConnectFailure(GrpcStatus.UNIMPLEMENTED, `unsupported compression "${reqEnc}"`);
    timeoutMs = deadlineMs(t.routeTimeoutMs, clientTimeoutMs(ds.headers['connect-timeout-ms']));
  } catch (err) {
    ds.body.resume();
    ex.flags = flagOf('bad_request');
    const f = err as ConnectFailure;
    return endStream(f.code, f.message, undefined, []);
  }
  const md: OutgoingHttpHeaders = {};
  passMetadata(ds.headers, md);
  let call: GrpcCall | undefined = undefined;
  ds.onDrain(() => call?.resume());
  call = startRpc(t, method, md, ds.headers, timeoutMs, {
    onHeaders(h) {
      upHeaders = {};
      for (const [k, v] of callMetadata(h)) upHeaders[k] = v;
    },
    onMessage(bytes) {
      if (ds.closed || done) return true;
      let out: Buffer;
      try {
        out = codec.toClient(method, bytes);
      } catch (err) {
        failed = true;
        call!.cancel('undecodable upstream message');
        endStream(GrpcStatus.INTERNAL, `cannot decode upstream message: ${(err as Error).message}`, undefined, []);
        return true;
      }
      start();
      let flags = 0;
      if (accept && out.length >= COMPRESS_MIN_BYTES) {
        out = gzipSync(out);
        flags = 0x01;
      }
      const f = encodeFrame(flags, out);
      ex.bytes_out += f.length;
      return ds.write(f);
    },
    onEnd(e: CallEnd) {
      if (failed) return;
      if (!started) {
        upHeaders = {};
        for (const [k, v] of callMetadata(e.headers)) upHeaders[k] = v;
      }
      endStream(e.code, e.message, e.details, callMetadata(e.trailers));
    },
  });

  const reader = new FrameReader(max);
  let failed = false;
  const fail = (f: ConnectFailure): void => {
    if (failed) return;
    failed = true;
    ds.noKeepAlive();
    ex.flags = flagOf('bad_request');
    call!.cancel(f.message);
    endStream(f.code, f.message, undefined, []);
  };
  call.onDrain(() => ds.body.resume());
  ds.body.on('data', (c: Buffer) => {
    if (failed) return;
    ex.bytes_in += c.length;
    try {
      for (const f of reader.push(c)) {
        if (f.flags & 0x02) continue; // an end-stream frame from a client means nothing here
        let data = f.data;
        if (f.flags & 0x01) {
          if (reqEnc !== 'gzip') throw new ConnectFailure(GrpcStatus.INTERNAL, 'compressed message without Connect-Content-Encoding');
          data = gunzip(data, max);
        }
        if (!call!.send(decodeWith(codec, method, data))) ds.body.pause();
      }
    } catch (err) {
      fail(err instanceof ConnectFailure ? err : new ConnectFailure(GrpcStatus.RESOURCE_EXHAUSTED, (err as Error).message));
    }
  });
  ds.body.once('end', () => {
    if (failed) return;
    if (reader.pending) return fail(new ConnectFailure(GrpcStatus.INVALID_ARGUMENT, 'truncated envelope'));
    call!.halfClose();
  });
}
