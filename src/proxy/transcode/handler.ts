import { flagOf } from '../../core/errors.js';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { create, fromBinary, toBinary, type Message } from '@bufbuild/protobuf';
import { parseGrpcTimeout } from '../../core/duration.js';
import { StatusSchema, type Status } from '../../gen/google/rpc/status_pb.js';
import { decideRequestId } from '../http/request-id.js';
import type { DecodedOutcome, Downstream } from '../downstream/downstream.js';
import { noteRetries, retriesOf, type RpcTarget } from './rpc.js';
import { GrpcCall, type CallEnd } from './grpc-call.js';
import type { Binding } from './http-rule.js';
import type { Violation } from './json-shape.js';
import { JsonSeqSplitter } from './json-seq.js';
import { callTimeoutMs, requestMetadata, responseMetadata, timeoutHeader } from './metadata.js';
import { parseQuery, type QueryParam } from './query.js';
import { buildRequest } from './request-builder.js';
import { printResponse, StreamWriter, streamFormatOf, writeError } from './response-writer.js';
import { badRequest, httpStatusOf, statusFrom, statusJson } from './status-body.js';
import type { JsonValue } from './text-value.js';

/** A REST call: what every dialect needs to call the backend, and the downstream to answer on. */
export interface TranscodeTarget extends RpcTarget {
  readonly ds: Downstream;
}

const status = (code: number, message: string): Status => create(StatusSchema, { code, message });

/**
 * One REST request through the transcoder: match a binding, bind path, query
 * and body into the request message (strict: any violation is a 400 before
 * anything is sent upstream), call the backend as gRPC, and write the answer
 * as JSON (unary) or a stream format (server streaming). Client-streaming
 * bodies are split and sent message by message as they arrive.
 */
export function handleTranscode(t: TranscodeTarget): void {
  const { ds, tr, ex } = t;
  const qi = ds.target.indexOf('?');
  const path = qi < 0 ? ds.target : ds.target.slice(0, qi);
  const m = tr.matcher.match(ds.method, path);
  if (m.kind === 'not_found') {
    ex.flags = flagOf('no_route');
    return writeError(ds, ex, tr, 404, status(5, `no REST binding for ${ds.method} ${path}`));
  }
  if (m.kind === 'method_not_allowed') {
    ex.flags = flagOf('method_not_allowed');
    return writeError(ds, ex, tr, 405, status(12, `${ds.method} is not allowed on ${path}`), { allow: m.allow.join(', ') });
  }
  const q = parseQuery(qi < 0 ? '' : ds.target.slice(qi + 1));
  if (!q.ok) return reject(t, [{ field: q.key, description: q.message }]);
  const b = m.binding;
  const kind = b.method.methodKind;
  if (kind === 'unary' || kind === 'server_streaming') {
    readBody(t, (buf) => {
      const body = parseBody(b, buf, ds.headers);
      if ('violation' in body) return reject(t, [body.violation]);
      const msg = buildMessage(t, b, m.segments, q.params, body.json);
      if ('violations' in msg) return reject(t, msg.violations);
      // Filters with decoded-message phases (plugins' onRequestMessage) see it before the upstream does.
      const req = ds.chain !== undefined && ds.chain.hasDecodedHooks ? decodedThroughFilters(t, ds.chain.decodedRequest(ds, b.method, msg)) : msg;
      if (req === undefined) return;
      const call = startCall(t, b, kind === 'unary' ? unaryOut(t, b) : streamOut(t, b));
      if (!call) return;
      call.send(toBinary(b.method.input, req));
      call.halfClose();
    });
  } else {
    streamIn(t, b, m.segments, q.params);
  }
}

/** The message a filter left, or undefined once its reply (or its failure: 500 / INTERNAL) was written. */
function decodedThroughFilters(t: TranscodeTarget, o: DecodedOutcome): Message | undefined {
  if ('message' in o) return o.message;
  if ('reply' in o) {
    writeError(t.ds, t.ex, t.tr, httpStatusOf(o.reply.code, false), status(o.reply.code, o.reply.message ?? ''));
    return undefined;
  }
  t.ex.flags = flagOf('filter_error');
  writeError(t.ds, t.ex, t.tr, 500, status(13, 'filter failed'));
  return undefined;
}

function reject(t: TranscodeTarget, v: readonly Violation[]): void {
  t.ex.flags = flagOf('invalid_argument');
  writeError(t.ds, t.ex, t.tr, 400, badRequest(v));
}

/** Buffers a unary body up to the route limit (413 past it). */
function readBody(t: TranscodeTarget, done: (buf: Buffer) => void): void {
  const max = t.tr.settings.maxRequestBytes;
  const chunks: Buffer[] = [];
  let size = 0;
  let over = false;
  t.ds.body.on('data', (c: Buffer) => {
    if (over) return;
    size += c.length;
    t.ex.bytes_in += c.length;
    if (size > max) {
      over = true;
      t.ex.flags = flagOf('request_too_large');
      t.ds.noKeepAlive();
      writeError(t.ds, t.ex, t.tr, 413, status(8, `request body larger than ${max} bytes`));
      return;
    }
    chunks.push(c);
  });
  t.ds.body.once('end', () => {
    if (!over) done(Buffer.concat(chunks));
  });
}

type BodyJson = { json: JsonValue | undefined } | { violation: Violation };

function parseBody(b: Binding, buf: Buffer, headers: IncomingHttpHeaders): BodyJson {
  if (b.body === 'none') return buf.length === 0 ? { json: undefined } : { violation: { field: '', description: `${b.label} takes no request body` } };
  const target = b.body === '*' ? b.method.input : b.body.fieldKind === 'message' ? b.body.message : undefined;
  if (target?.typeName === 'google.api.HttpBody') {
    // Raw body: no JSON at all, the content type travels in the message.
    return { json: { content_type: String(headers['content-type'] ?? ''), data: buf.toString('base64') } };
  }
  const text = buf.toString('utf8');
  if (text.trim() === '') return { json: undefined };
  try {
    return { json: JSON.parse(text) as JsonValue };
  } catch (err) {
    return { violation: { field: '', description: `malformed JSON: ${(err as Error).message}` } };
  }
}

function buildMessage(
  t: TranscodeTarget,
  b: Binding,
  segments: readonly string[],
  query: readonly QueryParam[],
  body: JsonValue | undefined,
): Message | { violations: Violation[] } {
  const s = t.tr.settings;
  const d = buildRequest(b, segments, query, body, {
    unescape: s.unescape,
    ignoreUnknownQuery: s.ignoreUnknownQuery,
    ignoreUnknownJson: s.ignoreUnknownJson,
    bodyWins: s.bodyWins,
    registry: t.tr.pool.json,
  });
  return d.ok ? d.message : { violations: d.violations };
}

interface Output {
  onHeaders(h: IncomingHttpHeaders): void;
  onMessage(bytes: Buffer, call: GrpcCall): boolean;
  onEnd(end: CallEnd): void;
}

function startCall(t: TranscodeTarget, b: Binding, out: Output): GrpcCall | undefined {
  const md: OutgoingHttpHeaders = { ':path': `/${b.method.parent.typeName}/${b.method.name}`, ':authority': t.authority };
  requestMetadata(t.ds.headers, { clientAddress: t.clientAddress, trustedHops: t.trustedHops, forward: t.tr.settings.forward }, md);
  // Decided once by handleExchange (request-id.ts); the fallback serves callers outside the pipeline.
  md['x-request-id'] = t.ex.request_id ??= decideRequestId(t.ds.headers, t.trustedHops);
  const timeoutMs = callTimeoutMs(t.ds.headers, t.routeTimeoutMs, parseGrpcTimeout);
  if (timeoutMs > 0) md['grpc-timeout'] = timeoutHeader(timeoutMs);
  let call: GrpcCall | undefined = undefined;
  call = new GrpcCall(t.ctx, t.cluster, t.ep, md, timeoutMs, {
    onHeaders: (h) => out.onHeaders(h),
    onMessage: (bytes) => out.onMessage(bytes, call!),
    onEnd: (e) => {
      if (e.local) t.ex.flags = flagOf('upstream_connect_failure');
      else if (e.code === 4) t.ex.flags = flagOf('upstream_timeout');
      noteRetries(t.ex, e, t.ds);
      out.onEnd(e);
    },
  }, t.scope, retriesOf(t, b.method, t.ds.method));
  return call;
}

function errorOf(t: TranscodeTarget, e: CallEnd): { http: number; st: Status; headers: OutgoingHttpHeaders } {
  const headers: OutgoingHttpHeaders = {};
  responseMetadata(e.headers, 'grpc-metadata-', headers);
  responseMetadata(e.trailers, 'grpc-trailer-', headers);
  return { http: httpStatusOf(e.code, e.protocolError), st: statusFrom(e.code, e.message, e.details), headers };
}

function wantsTrailers(h: IncomingHttpHeaders): boolean {
  const te = h['te'];
  return typeof te === 'string' && te.toLowerCase().includes('trailers');
}

function unaryOut(t: TranscodeTarget, b: Binding): Output {
  let reply: Buffer | undefined;
  let size = 0;
  let tooLarge = false;
  return {
    onHeaders: () => {},
    onMessage(bytes, call) {
      size += bytes.length;
      if (size > t.tr.settings.maxResponseBytes) {
        tooLarge = true;
        call.cancel('response too large');
        return true;
      }
      reply = Buffer.from(bytes);
      return true;
    },
    onEnd(e) {
      if (tooLarge) {
        t.ex.flags = flagOf('response_too_large');
        return writeError(t.ds, t.ex, t.tr, 500, status(13, `response larger than ${t.tr.settings.maxResponseBytes} bytes`));
      }
      if (e.code !== 0 || reply === undefined) {
        const err = e.code !== 0 ? errorOf(t, e) : { http: 502, st: status(13, 'upstream sent no response message'), headers: {} };
        return writeError(t.ds, t.ex, t.tr, err.http, err.st, err.headers);
      }
      let printed;
      try {
        let msg: Message | undefined = fromBinary(b.method.output, reply);
        const chain = t.ds.chain;
        if (chain !== undefined && chain.hasDecodedHooks) msg = decodedThroughFilters(t, chain.decodedResponse(t.ds, b.method, msg));
        if (msg === undefined) return;
        printed = printResponse(t.tr, b, msg);
      } catch (err) {
        return writeError(t.ds, t.ex, t.tr, 502, status(13, `cannot decode upstream response: ${(err as Error).message}`));
      }
      const headers: OutgoingHttpHeaders = { 'content-type': printed.contentType };
      responseMetadata(e.headers, 'grpc-metadata-', headers);
      const te = wantsTrailers(t.ds.headers);
      const trailers: OutgoingHttpHeaders = {};
      responseMetadata(e.trailers, 'grpc-trailer-', te ? trailers : headers);
      if (!te) headers['content-length'] = Buffer.byteLength(printed.body);
      t.ex.status = 200;
      t.ex.grpc_status = '0';
      t.ex.bytes_out += Buffer.byteLength(printed.body);
      if (t.ds.closed) return;
      t.ds.respond(200, headers, te);
      t.ds.end(printed.body, te ? { ...trailers, 'grpc-status': '0' } : undefined);
    },
  };
}

function streamOut(t: TranscodeTarget, b: Binding): Output {
  const format = streamFormatOf(t.ds.headers['accept'] as string | undefined, t.tr.settings.defaultStream);
  const respHeaders: OutgoingHttpHeaders = {};
  const w = new StreamWriter(t.ds, t.ex, format, wantsTrailers(t.ds.headers), respHeaders);
  const httpBody = b.method.output.typeName === 'google.api.HttpBody' && !b.responseBody;
  let rawStarted = false;
  t.ds.onDrain(() => current?.resume());
  let current: GrpcCall | undefined;
  /** A filter's status that ended the stream (decoded-message phases). */
  let stop: Status | undefined;
  return {
    onHeaders: (h) => responseMetadata(h, 'grpc-metadata-', respHeaders),
    onMessage(bytes, call) {
      current = call;
      if (stop !== undefined) return true;
      let msg = fromBinary(b.method.output, bytes);
      const chain = t.ds.chain;
      if (chain !== undefined && chain.hasDecodedHooks) {
        // A filter's reply (or failure) ends the stream with its status; the upstream call is cancelled.
        const o = chain.decodedResponse(t.ds, b.method, msg);
        if (!('message' in o)) {
          stop = 'reply' in o ? status(o.reply.code, o.reply.message ?? '') : status(13, 'filter failed');
          if ('failed' in o) t.ex.flags = flagOf('filter_error');
          call.cancel('ended by a filter');
          return true;
        }
        msg = o.message;
      }
      const printed = printResponse(t.tr, b, msg);
      if (httpBody) {
        // HttpBody streams are one body: the chunks concatenated, typed by the first.
        if (!rawStarted) {
          rawStarted = true;
          t.ex.status = 200;
          t.ds.respond(200, { ...respHeaders, 'content-type': printed.contentType }, false);
        }
        t.ex.bytes_out += printed.body.length;
        return t.ds.write(printed.body);
      }
      return w.message(printed.body as string);
    },
    onEnd(e) {
      if (t.ds.closed) return;
      if (httpBody && rawStarted) return e.code === 0 ? t.ds.end() : t.ds.destroy();
      const trailers: OutgoingHttpHeaders = {};
      responseMetadata(e.trailers, 'grpc-trailer-', trailers);
      if (e.code === 0 && stop === undefined) return w.finishOk(trailers);
      const err = stop !== undefined ? { http: httpStatusOf(stop.code, false), st: stop, headers: {} } : errorOf(t, e);
      if (w.idle) return writeError(t.ds, t.ex, t.tr, err.http, err.st, err.headers);
      w.finishError(err.st, statusJson(err.st, t.tr.pool.json), trailers);
    },
  };
}

/** Client (and bidi) streaming: a JSON array or NDJSON body, sent message by message as it arrives. */
function streamIn(t: TranscodeTarget, b: Binding, segments: readonly string[], query: readonly QueryParam[]): void {
  const out = b.method.methodKind === 'bidi_streaming' ? streamOut(t, b) : unaryOut(t, b);
  let failed = false;
  const wrapped: Output = { ...out, onEnd: (e) => (failed ? undefined : out.onEnd(e)) };
  const call = startCall(t, b, wrapped);
  if (!call) return;
  const fail = (v: Violation[]): void => {
    if (failed) return;
    failed = true;
    call.cancel('invalid request message');
    t.ds.noKeepAlive();
    reject(t, v);
  };
  let index = 0;
  const ct = String(t.ds.headers['content-type'] ?? '');
  const splitter = new JsonSeqSplitter(
    (text) => {
      const i = index++;
      let json: JsonValue;
      try {
        json = JSON.parse(text) as JsonValue;
      } catch (err) {
        return fail([{ field: `[${i}]`, description: `malformed JSON: ${(err as Error).message}` }]);
      }
      const msg = buildMessage(t, b, segments, query, json);
      if ('violations' in msg) return fail(msg.violations.map((v) => ({ field: `[${i}]${v.field ? `.${v.field}` : ''}`, description: v.description })));
      if (!call.send(toBinary(b.method.input, msg))) t.ds.body.pause();
    },
    t.tr.settings.maxRequestBytes,
    ct.includes('ndjson'),
  );
  call.onDrain(() => t.ds.body.resume());
  t.ds.body.setEncoding('utf8');
  t.ds.body.on('data', (c: string) => {
    if (failed) return;
    t.ex.bytes_in += Buffer.byteLength(c);
    splitter.push(c);
    if (splitter.failed) fail([{ field: '', description: splitter.failed }]);
  });
  t.ds.body.once('end', () => {
    if (failed) return;
    splitter.end();
    if (splitter.failed) return fail([{ field: '', description: splitter.failed }]);
    call.halfClose();
  });
}
