/**
 * Protocol detection from a connection's first bytes, as an explicit outcome.
 * Pure: the caller accumulates bytes and asks again on 'need_more', up to
 * MAX_DETECT_BYTES or the listener's detection timeout.
 *
 *   h2c   – the 24-byte HTTP/2 client preface (prior knowledge)
 *   http1 – a request line `TOKEN SP target SP HTTP/1.x`
 *   tls   – a TLS handshake record (0x16 0x03 0x0?)
 *   opaque – anything else
 */
export type Detection = 'h2c' | 'http1' | 'tls' | 'opaque' | 'need_more';

export const MAX_DETECT_BYTES = 1024;

/** The HTTP/2 client connection preface (RFC 9113 §3.4). */
export const H2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const MAX_METHOD = 24;

export function detectProtocol(buf: Buffer): Detection {
  const n = buf.length;
  if (n === 0) return 'need_more';
  if (buf[0] === 0x16) {
    if (n < 3) return 'need_more';
    return buf[1] === 0x03 && buf[2]! <= 0x04 ? 'tls' : 'opaque';
  }
  const m = n < H2_PREFACE.length ? n : H2_PREFACE.length;
  if (buf.compare(H2_PREFACE, 0, m, 0, m) === 0) return n >= H2_PREFACE.length ? 'h2c' : 'need_more';
  return detectHttp1(buf);
}

function isTokenChar(c: number): boolean {
  // RFC 9110 tchar, restricted to what methods use in practice.
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a) || c === 0x2d || c === 0x5f;
}

function detectHttp1(buf: Buffer): Detection {
  const n = Math.min(buf.length, MAX_DETECT_BYTES);
  let i = 0;
  while (i < n && isTokenChar(buf[i]!)) i++;
  if (i === n) return i < MAX_METHOD && n < MAX_DETECT_BYTES ? 'need_more' : 'opaque';
  if (i === 0 || i > MAX_METHOD || buf[i] !== 0x20) return 'opaque';
  const lf = buf.indexOf(0x0a, i);
  if (lf < 0 || lf >= n) return n < MAX_DETECT_BYTES ? 'need_more' : 'opaque';
  const end = lf > 0 && buf[lf - 1] === 0x0d ? lf - 1 : lf;
  // " HTTP/1.x" closes the line.
  if (end - i < 10) return 'opaque';
  const tail = buf.toString('latin1', end - 9, end);
  return tail === ' HTTP/1.1' || tail === ' HTTP/1.0' ? 'http1' : 'opaque';
}
