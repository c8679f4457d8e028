import type { DescMethod } from '@bufbuild/protobuf';
import type { IncomingMessage } from 'node:http';
import type { OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { GrpcStatus, flagOf } from '../../../core/errors.js';
import { closeCodeOf, closeReasonOf } from '../../downstream/ws-downstream.js';
import { codecFor, type Codec } from '../connect/codec.js';
import type { CallEnd, GrpcCall } from '../grpc-call.js';
import { callMetadata, deadlineMs, passMetadata, startRpc, type RpcTarget } from '../rpc.js';
import { statusFrom, statusJson } from '../status-body.js';
import type { Transcoder } from '../transcoder.js';

/** Subprotocols (docs/websocket.md). */
export const WS_JSON = 'grpc-ws+json';
export const WS_PROTO = 'grpc-ws+proto';

/** Bytes handed to the WebSocket but not yet flushed to the socket before the upstream is paused. */
const HIGH_WATER = 256 * 1024;
const LOW_WATER = 64 * 1024;

/** The method a WebSocket upgrade to `path` bridges to: `/<pkg.Service>/<Method>` of an exposed service. */
export function bridgeMethodOf(tr: Transcoder, target: string): DescMethod | undefined {
  const q = target.indexOf('?');
  return tr.methods.get(q < 0 ? target : target.slice(0, q));
}


interface Offer {
  readonly codec: 'json' | 'proto';
  /** The subprotocol echoed in the 101, if any. */
  readonly selected: string | undefined;
  readonly bearer: string | undefined;
}

/** Reads `Sec-WebSocket-Protocol`: the codec subprotocol and a `bearer, <token>` pair (tmc/grpc-websocket-proxy's form). */
function readOffer(h: string | undefined): Offer {
  const list = (h ?? '').split(',').map((s) => s.trim()).filter((s) => s !== '');
  const bi = list.findIndex((s) => s.toLowerCase() === 'bearer');
  const bearer = bi >= 0 ? list[bi + 1] : undefined;
  if (list.includes(WS_PROTO)) return { codec: 'proto', selected: WS_PROTO, bearer };
  if (list.includes(WS_JSON)) return { codec: 'json', selected: WS_JSON, bearer };
  return { codec: 'json', selected: bi >= 0 ? list[bi] : undefined, bearer };
}

function cookie(h: string | string[] | undefined, name: string): string | undefined {
  for (const line of Array.isArray(h) ? h : h ? [h] : []) {
    for (const part of line.split(';')) {
      const eq = part.indexOf('=');
      if (eq > 0 && part.slice(0, eq).trim() === name) return decodeURIComponent(part.slice(eq + 1).trim());
    }
  }
  return undefined;
}

function refuse(socket: Socket, status: number, text: string, body: string): void {
  socket.end(`HTTP/1.1 ${status} ${text}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`);
}

/**
 * The WebSocket ↔ gRPC bridge (docs/websocket.md): one gRPC call per
 * WebSocket, one frame per message each way, an empty text frame from the
 * client as half-close, a final status frame then a close whose code and
 * reason carry the gRPC status. Upstream messages are paused while more
 * than HIGH_WATER bytes wait for the client's socket (h2 flow control then
 * holds the backend); client frames are paused while the upstream stream
 * does not take more.
 */
export function bridgeWebSocket(t: RpcTarget, method: DescMethod, req: IncomingMessage, socket: Socket, head: Buffer): void {
  const { ex, tr } = t;
  const s = tr.settings;
  const offer = readOffer(req.headers['sec-websocket-protocol']);
  const md: OutgoingHttpHeaders = {};
  passMetadata(req.headers, md);
  delete md['cookie'];
  const token = offer.bearer ?? cookie(req.headers.cookie, s.wsTokenCookie);
  if (req.headers.authorization === undefined && token !== undefined) md['authorization'] = `Bearer ${token}`;
  const codec: Codec = codecFor(offer.codec, tr);

  const wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: s.wsMaxMessageBytes,
    handleProtocols: () => offer.selected ?? false,
  });
  wss.handleUpgrade(req, socket, head, (ws) => {
    ex.status = 101;
    run(t, method, ws, codec, md, req);
  });
}

function run(t: RpcTarget, method: DescMethod, ws: WebSocket, codec: Codec, md: OutgoingHttpHeaders, req: IncomingMessage): void {
  const { ex, tr, ctx } = t;
  let inflight = 0;
  let paused = false;
  let halfClosed = false;
  let finished = false;
  let call: GrpcCall | undefined = undefined;

  const finish = (code: number, message: string, details: Uint8Array | undefined, meta: [string, string[]][]): void => {
    if (finished) return;
    finished = true;
    ping.cancel();
    ex.grpc_status = String(code);
    if (ws.readyState !== ws.OPEN) return;
    const st = JSON.parse(statusJson(statusFrom(code, message, details), tr.pool.json)) as Record<string, unknown>;
    const frame: Record<string, unknown> = { code, message, details: st['details'] ?? [] };
    if (meta.length > 0) frame['metadata'] = Object.fromEntries(meta);
    const text = JSON.stringify(frame);
    ex.bytes_out += text.length;
    ws.send(text);
    ws.close(closeCodeOf(code), closeReasonOf(message));
  };
  const reject = (message: string): void => {
    if (finished) return;
    ex.flags = flagOf('bad_request');
    // The client hears why first; the cancel's own CANCELLED end is then ignored.
    finish(GrpcStatus.INVALID_ARGUMENT, message, undefined, []);
    call?.cancel(message);
    ex.grpc_status = String(GrpcStatus.INVALID_ARGUMENT);
  };

  call = startRpc(t, method, md, req.headers, deadlineMs(t.routeTimeoutMs, -1), {
    onHeaders: () => {},
    onMessage(bytes) {
      if (finished || ws.readyState !== ws.OPEN) return true;
      let out: Buffer | string;
      try {
        out = codec.name === 'json' ? `{"result":${codec.toClient(method, bytes).toString('utf8')}}` : Buffer.from(bytes);
      } catch (err) {
        finish(GrpcStatus.INTERNAL, `cannot decode upstream message: ${(err as Error).message}`, undefined, []);
        call!.cancel('undecodable upstream message');
        ex.grpc_status = String(GrpcStatus.INTERNAL);
        return true;
      }
      const n = typeof out === 'string' ? Buffer.byteLength(out) : out.length;
      inflight += n;
      ex.bytes_out += n;
      ws.send(out, { binary: typeof out !== 'string' }, () => {
        inflight -= n;
        if (paused && inflight <= LOW_WATER) {
          paused = false;
          call?.resume();
        }
      });
      if (inflight > HIGH_WATER) paused = true;
      return !paused;
    },
    onEnd(e: CallEnd) {
      finish(e.code, e.message, e.details, [...callMetadata(e.headers), ...callMetadata(e.trailers)]);
    },
  });
  call.onDrain(() => ws.resume());

  ws.on('message', (data: RawData, isBinary: boolean) => {
    if (finished) return;
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    ex.bytes_in += buf.length;
    if (!isBinary && buf.length === 0) {
      if (!halfClosed) call!.halfClose();
      halfClosed = true;
      return;
    }
    if (halfClosed) return reject('message after half-close');
    if (isBinary !== (codec.name === 'proto')) {
      return reject(codec.name === 'proto' ? `${WS_PROTO} messages are binary frames` : `${WS_JSON} messages are text frames`);
    }
    let msg: Uint8Array;
    try {
      msg = codec.toUpstream(method, buf);
    } catch (err) {
      return reject(`invalid ${method.input.typeName}: ${(err as Error).message}`);
    }
    if (!call!.send(msg)) ws.pause();
  });
  ws.on('close', () => {
    ping.cancel();
    if (!finished) {
      finished = true;
      call!.cancel('client went away');
    }
  });
  ws.on('error', () => {});

  // Keep-alive: a client that has not answered the previous ping is dropped.
  let alive = true;
  ws.on('pong', () => (alive = true));
  const ping = {
    timer: undefined as { cancel(): void } | undefined,
    arm(): void {
      this.timer = ctx.clock.setTimer(tr.settings.wsPingMs, () => {
        if (ws.readyState !== ws.OPEN) return;
        if (!alive) {
          ex.flags = flagOf('ping_timeout');
          finished = true;
          call?.cancel('client did not answer ping');
          ws.terminate();
          return;
        }
        alive = false;
        ws.ping();
        this.arm();
      });
    },
    cancel(): void {
      this.timer?.cancel();
    },
  };
  ping.arm();
}
