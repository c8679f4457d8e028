import type { DescMethod } from '@bufbuild/protobuf';
import type { OutgoingHttpHeaders } from 'node:http2';
import { parseGrpcTimeout } from '../../../core/duration.js';
import { GrpcStatus, flagOf } from '../../../core/errors.js';
import { encodeGrpcMessage } from '../../http/headers.js';
import type { TranscodeTarget } from '../handler.js';
import type { CallEnd, GrpcCall } from '../grpc-call.js';
import { callMetadata, deadlineMs, passMetadata, startRpc } from '../rpc.js';
import { encodeFrame, FrameReader } from '../../../core/grpc-framing.js';
import { Base64ChunkDecoder } from './base64.js';
import { hookRequestBytes, hookResponseBytes } from '../decoded-hooks.js';

/**
 * gRPC-Web (PROTOCOLS.md b4, grpc/grpc doc/PROTOCOL-WEB.md) → gRPC: the
 * request frames are gRPC frames (base64 in `-text` mode, decoded chunk by
 * chunk since padding may appear at any flush); the answer is the messages as
 * frames, then the trailers as one 0x80 frame (an HTTP/1-style header block).
 * An error before any message is a trailers-only answer: the status in the
 * response headers and no body. Works over HTTP/1.1 and HTTP/2; frames move
 * with backpressure both ways.
 */
export function handleGrpcWeb(t: TranscodeTarget, method: DescMethod | undefined): void {
  const { ds, ex } = t;
  const ct = String(ds.headers['content-type'] ?? '').toLowerCase();
  const text = ct.startsWith('application/grpc-web-text');
  const respCt = text ? 'application/grpc-web-text+proto' : 'application/grpc-web+proto';
  const base: OutgoingHttpHeaders = { 'content-type': respCt };
  const encode = (b: Buffer): Buffer | string => (text ? b.toString('base64') : b);
  ex.status = 200;

  const trailersOnly = (code: number, message: string, extra: OutgoingHttpHeaders = {}): void => {
    ex.grpc_status = String(code);
    if (ds.closed || ds.headersSent) return;
    ds.respond(200, { ...base, ...extra, 'grpc-status': String(code), 'grpc-message': encodeGrpcMessage(message), 'content-length': 0 }, false);
    ds.end();
  };
  if (!method) {
    ex.flags = flagOf('no_route');
    ds.body.resume();
    return trailersOnly(GrpcStatus.UNIMPLEMENTED, `unknown method ${ds.target}`);
  }
  if (ds.method !== 'POST') {
    ds.body.resume();
    return trailersOnly(GrpcStatus.UNIMPLEMENTED, 'gRPC-Web requests are POST');
  }
  const md: OutgoingHttpHeaders = {};
  passMetadata(ds.headers, md);
  const gt = ds.headers['grpc-timeout'];
  const timeoutMs = deadlineMs(t.routeTimeoutMs, typeof gt === 'string' ? parseGrpcTimeout(gt) : -1);

  let upHeaders: OutgoingHttpHeaders = {};
  let started = false;
  const start = (): void => {
    if (started) return;
    started = true;
    ds.respond(200, { ...base, ...upHeaders }, false);
  };
  let call: GrpcCall | undefined = undefined;
  ds.onDrain(() => call?.resume());
  call = startRpc(t, method, md, ds.headers, timeoutMs, {
    onHeaders(h) {
      for (const [k, v] of callMetadata(h)) upHeaders[k] = v;
    },
    onMessage(bytes) {
      if (ds.closed || failed) return true;
      // Filters with decoded-message phases (plugins): a reply or a failure ends the call with its status.
      const out = hookResponseBytes(ds, method, bytes);
      if (!('bytes' in out)) {
        if (out.failed) ex.flags = flagOf('filter_error');
        failed = true;
        call?.cancel('ended by a filter');
        if (!started) trailersOnly(out.code, out.message);
        else endWithStatus(out.code, out.message);
        return true;
      }
      start();
      const f = encodeFrame(0, out.bytes);
      ex.bytes_out += f.length;
      return ds.write(encode(f));
    },
    onEnd(e) {
      if (ds.closed || failed) return;
      if (!started) {
        upHeaders = {};
        for (const [k, v] of callMetadata(e.headers)) upHeaders[k] = v;
        for (const [k, v] of callMetadata(e.trailers)) upHeaders[k] = v;
        const extra: OutgoingHttpHeaders = { ...upHeaders };
        if (e.details) extra['grpc-status-details-bin'] = Buffer.from(e.details).toString('base64');
        if (e.code === 0) {
          // A successful call with no messages: headers, then the trailer frame.
          start();
          return endWithTrailers(e);
        }
        return trailersOnly(e.code, e.message, extra);
      }
      endWithTrailers(e);
    },
  });

  function endWithStatus(code: number, message: string): void {
    ex.grpc_status = String(code);
    const f = encodeFrame(0x80, Buffer.from(`grpc-status: ${code}\r\ngrpc-message: ${encodeGrpcMessage(message)}\r\n`, 'latin1'));
    ex.bytes_out += f.length;
    ds.end(encode(f));
  }

  function endWithTrailers(e: CallEnd): void {
    let block = `grpc-status: ${e.code}\r\ngrpc-message: ${encodeGrpcMessage(e.message)}\r\n`;
    if (e.details) block += `grpc-status-details-bin: ${Buffer.from(e.details).toString('base64')}\r\n`;
    for (const [k, vs] of callMetadata(e.trailers)) for (const v of vs) block += `${k}: ${v}\r\n`;
    const f = encodeFrame(0x80, Buffer.from(block, 'latin1'));
    ex.bytes_out += f.length;
    ds.end(encode(f));
  }

  const reader = new FrameReader(t.tr.settings.maxRequestBytes);
  const b64 = text ? new Base64ChunkDecoder() : undefined;
  let failed = false;
  const fail = (code: number, message: string): void => {
    if (failed) return;
    failed = true;
    ds.noKeepAlive();
    call!.cancel(message);
    ex.flags = flagOf('bad_request');
    trailersOnly(code, message);
  };
  call.onDrain(() => ds.body.resume());
  ds.body.on('data', (c: Buffer) => {
    if (failed) return;
    ex.bytes_in += c.length;
    let frames;
    try {
      frames = reader.push(b64 ? b64.push(c) : c);
    } catch (err) {
      return fail(GrpcStatus.RESOURCE_EXHAUSTED, (err as Error).message);
    }
    for (const f of frames) {
      if (f.flags & 0x80) continue; // client trailers carry nothing for the call
      if (f.flags & 0x01) return fail(GrpcStatus.UNIMPLEMENTED, 'compressed gRPC-Web request frames are not supported');
      const hooked = hookRequestBytes(ds, method, f.data);
      if (!('bytes' in hooked)) {
        fail(hooked.code, hooked.message);
        if (hooked.failed) ex.flags = flagOf('filter_error');
        else ex.flags = undefined;
        return;
      }
      if (!call!.send(hooked.bytes)) ds.body.pause();
    }
  });
  ds.body.once('end', () => {
    if (failed) return;
    if (reader.pending || b64?.pending) return fail(GrpcStatus.INTERNAL, 'truncated gRPC-Web request frame');
    call!.halfClose();
  });
}
