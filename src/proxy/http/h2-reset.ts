import http2, { type Http2Stream } from 'node:http2';

let handleSymbol: symbol | null | undefined;

/**
 * Sends RST_STREAM with `code` without first ending the stream.
 *
 * Node's `stream.close(code)` ends the writable side before resetting, so the
 * peer sees DATA with END_STREAM (a clean, complete-looking response) before
 * the RST_STREAM, which it then ignores on a closed stream. A proxy passing
 * an upstream reset down, or cancelling upstream, must not turn a failure
 * into a truncated success. The native handle's rstStream does exactly the
 * reset; we reach it by Node's internal `kHandle` symbol and fall back to
 * close() when that is not there (other Node versions).
 */
export function resetStream(stream: Http2Stream, code: number): void {
  if (stream.closed || stream.destroyed) return;
  if (handleSymbol === undefined) {
    handleSymbol = Object.getOwnPropertySymbols(stream).find((s) => s.description === 'kHandle') ?? null;
  }
  const handle = handleSymbol ? (stream as unknown as Record<symbol, { rstStream?: (c: number) => void } | undefined>)[handleSymbol] : undefined;
  if (handle && typeof handle.rstStream === 'function' && !stream.pending) {
    handle.rstStream(code);
    return;
  }
  stream.close(code);
}

/**
 * Whether the upstream refused a stream without processing it: RST_STREAM
 * REFUSED_STREAM, or a stream above the last id of a GOAWAY (node destroys
 * those with ERR_HTTP2_GOAWAY_SESSION). Both are safe to retry (RFC 9113 §8.7).
 */
export function isRefused(stream: Http2Stream, errorCode: string | undefined): boolean {
  return stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM || errorCode === 'ERR_HTTP2_GOAWAY_SESSION';
}
