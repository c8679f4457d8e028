import type { Socket } from 'node:net';
import type { Clock } from '../../core/clock.js';
import { H2_PREFACE } from './detect.js';
import { MAX_RESETS_PER_WINDOW } from './stream-limit.js';

/**
 * The start of every downstream HTTP/2 connection, before node:http2 takes
 * the socket: we send the server preface ourselves, a SETTINGS frame with
 * only SETTINGS_MAX_CONCURRENT_STREAMS = the listener's limit, read the
 * client's bytes until its ACK of that frame, cut the ACK out, and hand the
 * socket (those bytes unread) to the http2 server, whose own SETTINGS then
 * carries no MAX_CONCURRENT_STREAMS.
 *
 * Why: nghttp2 enforces the limit it advertised once the client ACKs it, and
 * a stream past it is a connection error (GOAWAY kills every call on the
 * connection). RFC 9113 §5.1.2 allows refusing just that stream, and the
 * sidecar does (stream-limit.ts), so nghttp2 must not know the limit while
 * the client must see it. Rewriting the value in nghttp2's own SETTINGS
 * would need every byte of the connection to pass through JS (a
 * JSStreamSocket); this costs one client round trip at the start instead,
 * after which the connection runs on the native path as before. The ACK is
 * cut because nghttp2 counts the ACKs of its own SETTINGS frames and treats
 * an extra one as a protocol error.
 */

const FRAME_HEADER = 9;
const TYPE_HEADERS = 0x1;
const TYPE_RST_STREAM = 0x3;
const TYPE_SETTINGS = 0x4;
const TYPE_GOAWAY = 0x7;
const FLAG_ACK = 0x1;
const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;

export const PROTOCOL_ERROR = 0x1;
/** RFC 9113 §6.5.3: a peer that does not ACK in time. */
export const SETTINGS_TIMEOUT = 0x4;
export const ENHANCE_YOUR_CALM = 0xb;
/** How long the client has to ACK our SETTINGS (TLS handshakes get as long). */
export const SETTINGS_ACK_TIMEOUT_MS = 10_000;
/**
 * What a client may send before its ACK. Its DATA is bounded by the initial
 * 64 KiB connection window; this leaves room for HEADERS as well.
 */
export const MAX_BYTES_BEFORE_ACK = 1 << 20;
const GOAWAY_LINGER_MS = 1000;

/** The server preface: SETTINGS with SETTINGS_MAX_CONCURRENT_STREAMS only. */
export function limitSettingsFrame(maxStreams: number): Buffer {
  const f = Buffer.alloc(FRAME_HEADER + 6);
  f.writeUIntBE(6, 0, 3);
  f[3] = TYPE_SETTINGS;
  f.writeUInt16BE(SETTINGS_MAX_CONCURRENT_STREAMS, FRAME_HEADER);
  f.writeUInt32BE(maxStreams >>> 0, FRAME_HEADER + 2);
  return f;
}

/** A GOAWAY (last stream 0: nothing was processed) with `code`. */
export function goawayFrame(code: number): Buffer {
  const f = Buffer.alloc(FRAME_HEADER + 8);
  f.writeUIntBE(8, 0, 3);
  f[3] = TYPE_GOAWAY;
  f.writeUInt32BE(code, FRAME_HEADER + 4);
  return f;
}

export type AckScan =
  /** No complete ACK yet; the next scan may start at `resumeAt` (a frame boundary). */
  | { readonly kind: 'need_more'; readonly resumeAt: number }
  /** The first SETTINGS ACK is bytes [start, end). */
  | { readonly kind: 'ack'; readonly start: number; readonly end: number }
  /** The connection does not start with the client preface (h2 over TLS is not checked before this). */
  | { readonly kind: 'bad_preface' };

/**
 * Finds the client's first SETTINGS ACK in the bytes of a connection (the
 * 24-byte preface first, then whole frames), scanning from `from` (0 or a
 * previous `resumeAt`). Pure. The first ACK is the ACK of our preface: it is
 * the only SETTINGS the server has sent by then.
 */
export function scanForSettingsAck(buf: Buffer, from: number): AckScan {
  if (from < H2_PREFACE.length) {
    const n = Math.min(buf.length, H2_PREFACE.length);
    if (buf.compare(H2_PREFACE, 0, n, 0, n) !== 0) return { kind: 'bad_preface' };
    if (n < H2_PREFACE.length) return { kind: 'need_more', resumeAt: 0 };
  }
  let off = Math.max(from, H2_PREFACE.length);
  while (off + FRAME_HEADER <= buf.length) {
    const end = off + FRAME_HEADER + buf.readUIntBE(off, 3);
    if (end > buf.length) break;
    if (buf[off + 3] === TYPE_SETTINGS && (buf[off + 4]! & FLAG_ACK) !== 0) return { kind: 'ack', start: off, end };
    off = end;
  }
  return { kind: 'need_more', resumeAt: off };
}

/**
 * How many streams the whole frames of `buf` from `from` (a frame boundary)
 * open with HEADERS and then reset with RST_STREAM: a RST_STREAM on a stream
 * id not above the highest HEADERS id so far (client stream ids only grow).
 * Pure. Used on the bytes of a connection none of which was processed yet,
 * so every such stream was reset before anything could answer it.
 */
export function countResetStreams(buf: Buffer, from: number): number {
  let maxOpened = 0;
  let resets = 0;
  let off = from;
  while (off + FRAME_HEADER <= buf.length) {
    const end = off + FRAME_HEADER + buf.readUIntBE(off, 3);
    if (end > buf.length) break;
    const type = buf[off + 3];
    const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
    if (type === TYPE_HEADERS && id > maxOpened) maxOpened = id;
    else if (type === TYPE_RST_STREAM && id !== 0 && id <= maxOpened) resets++;
    off = end;
  }
  return resets;
}

export type HandshakeFailure = 'bad_preface' | 'settings_timeout' | 'too_much_before_ack' | 'rapid_reset' | 'closed';

export interface HandshakeOptions {
  readonly maxStreams: number;
  readonly clock: Clock;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
  /** More streams reset in the bytes read by the ACK than this end the connection (default MAX_RESETS_PER_WINDOW). */
  readonly maxResets?: number;
  /** Called with the socket, paused, its unread bytes unshifted (the ACK cut out). */
  readonly handOver: (socket: Socket) => void;
  /** `resets`: for 'rapid_reset', the streams reset in those bytes. */
  readonly onFailure: (why: HandshakeFailure, resets?: number) => void;
}

/**
 * Runs the handshake above on a socket whose first bytes (at least the
 * client preface) were already read into `buffered`. The socket must not
 * have other 'data' listeners.
 */
export function settingsHandshake(socket: Socket, buffered: Buffer, o: HandshakeOptions): void {
  let buf = buffered;
  let resumeAt = 0;
  let done = false;
  const finish = (): void => {
    done = true;
    timer.cancel();
    socket.off('data', onData);
    socket.off('close', onClose);
  };
  const fail = (why: HandshakeFailure, code?: number, resets?: number): void => {
    finish();
    o.onFailure(why, resets);
    if (code === undefined || !socket.writable) return void socket.destroy();
    // The GOAWAY is flushed, then the socket goes, even if the peer never reads.
    socket.end(goawayFrame(code), () => socket.destroy());
    o.clock.setTimer(GOAWAY_LINGER_MS, () => socket.destroy());
  };
  const scan = (): void => {
    const r = scanForSettingsAck(buf, resumeAt);
    if (r.kind === 'bad_preface') return fail('bad_preface', PROTOCOL_ERROR);
    if (r.kind === 'need_more') {
      resumeAt = r.resumeAt;
      if (buf.length > (o.maxBytes ?? MAX_BYTES_BEFORE_ACK)) fail('too_much_before_ack', ENHANCE_YOUR_CALM);
      return;
    }
    // Everything read so far reaches nghttp2 in one call, which opens every
    // stream in it before JS sees the first: a rapid-reset burst sent with
    // (or before) the ACK, up to MAX_BYTES_BEFORE_ACK of it, would make a
    // native stream, its headers and a JS stream object for each of its
    // HEADERS, memory freed only by a later full GC (docs/benchmarks.md,
    // HTTP/2 rapid reset). The stream limiter's budget, applied here first.
    const resets = countResetStreams(buf, H2_PREFACE.length);
    if (resets > (o.maxResets ?? MAX_RESETS_PER_WINDOW)) return fail('rapid_reset', ENHANCE_YOUR_CALM, resets);
    finish();
    socket.pause();
    const rest = r.end === buf.length ? buf.subarray(0, r.start) : Buffer.concat([buf.subarray(0, r.start), buf.subarray(r.end)]);
    socket.unshift(rest);
    o.handOver(socket);
  };
  const onData = (chunk: Buffer): void => {
    buf = buf.length === 0 ? chunk : Buffer.concat([buf, chunk]);
    scan();
  };
  const onClose = (): void => {
    if (!done) fail('closed');
  };
  const timer = o.clock.setTimer(o.timeoutMs ?? SETTINGS_ACK_TIMEOUT_MS, () => {
    if (!done) fail('settings_timeout', SETTINGS_TIMEOUT);
  });
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.write(limitSettingsFrame(o.maxStreams));
  scan();
  if (!done) socket.resume();
}
