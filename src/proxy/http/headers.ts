/**
 * Hop-by-hop headers (RFC 9110 §7.6.1) plus the HTTP/1-only framing headers
 * that must not cross a proxy. `te` is handled separately: HTTP/2 allows only
 * `te: trailers`, which gRPC requires, so that value is kept.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'proxy-connection',
  'keep-alive',
  'transfer-encoding',
  'upgrade',
  'te',
  'trailer',
  'proxy-authenticate',
  'http2-settings',
  'host',
]);

export const INTERNAL_PREFIX = 'x-outrigger-';

export interface ForwardingInfo {
  clientAddress: string;
  /** "http" or "https": how the client reached us. */
  scheme: string;
  trustedHops: number;
  /** The exchange's request id, decided at the start of the pipeline (request-id.ts). */
  requestId: string;
  /**
   * x-forwarded-client-cert for the upstream (a listener's forwardClientCert
   * with a verified mesh peer). A client's own header never passes (Envoy's
   * SANITIZE): only this value, when set.
   */
  clientCert?: string | undefined;
}

type InHeaders = Record<string, string | string[] | undefined>;
type OutHeaders = Record<string, string | string[]>;

/**
 * Copies end-to-end request headers into `out` (which already holds any
 * pseudo-headers), dropping hop-by-hop ones, names listed in `Connection`,
 * HTTP/2 pseudo-headers and our internal `x-outrigger-*` headers, then sets
 * x-forwarded-for / x-forwarded-proto / x-request-id (the id passed in).
 * Returns the request id.
 */
export function copyRequestHeaders(inH: InHeaders, out: OutHeaders, fwd: ForwardingInfo): string {
  const connection = inH['connection'];
  const listed = typeof connection === 'string' && connection.length > 0 ? connectionTokens(connection) : undefined;
  for (const k in inH) {
    const v = inH[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(k)) {
      if (k === 'te' && typeof v === 'string' && v.toLowerCase().includes('trailers')) out['te'] = 'trailers';
      continue;
    }
    if (k.startsWith(INTERNAL_PREFIX) || k === 'x-forwarded-client-cert') continue;
    if (listed !== undefined && listed.has(k)) continue;
    out[k] = v;
  }
  const trusted = fwd.trustedHops > 0;
  const xff = inH['x-forwarded-for'];
  out['x-forwarded-for'] = trusted && xff ? `${xff}, ${fwd.clientAddress}` : fwd.clientAddress;
  if (!trusted || !inH['x-forwarded-proto']) out['x-forwarded-proto'] = fwd.scheme;
  out['x-request-id'] = fwd.requestId;
  if (fwd.clientCert !== undefined) out['x-forwarded-client-cert'] = fwd.clientCert;
  return fwd.requestId;
}

/** The Connection values nearly every HTTP/1.1 message carries, parsed once (a response relay pays no Set for them). */
const KEEP_ALIVE_TOKENS: ReadonlySet<string> = new Set(['keep-alive']);
const CLOSE_TOKENS: ReadonlySet<string> = new Set(['close']);

function connectionTokens(v: string): ReadonlySet<string> {
  if (v === 'keep-alive' || v === 'Keep-Alive') return KEEP_ALIVE_TOKENS;
  if (v === 'close' || v === 'Close') return CLOSE_TOKENS;
  const s = new Set<string>();
  for (const t of v.split(',')) {
    const n = t.trim().toLowerCase();
    if (n) s.add(n);
  }
  return s;
}

/** Response headers from an upstream, minus hop-by-hop ones, for any downstream. */
export function copyResponseHeaders(inH: InHeaders, out: OutHeaders): OutHeaders {
  const connection = inH['connection'];
  const listed = typeof connection === 'string' && connection.length > 0 ? connectionTokens(connection) : undefined;
  for (const k in inH) {
    const v = inH[k];
    if (v === undefined || k.charCodeAt(0) === 58) continue;
    if (HOP_BY_HOP.has(k) || (listed !== undefined && listed.has(k))) continue;
    out[k] = v;
  }
  return out;
}

/**
 * Headers whose repeats node:http discards (the first one counts): a
 * response with two Content-Length or Location lines means one value to a
 * proxy, as it does to node's own client.
 */
const SINGLE_VALUED: ReadonlySet<string> = new Set([
  'age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since',
  'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent',
]);

/**
 * An HTTP/1.1 header block as the parser delivers it (`[name, value, …]`,
 * undici's raw Buffers) in node:http's `IncomingMessage.headers` form:
 * lower-case names, repeats joined with `, ` (`; ` for Cookie), Set-Cookie an
 * array, single-valued headers' repeats dropped. Values are latin1, byte for
 * byte what came in (node's parser does the same), so they go out unchanged.
 */
export function headersOfRaw(raw: readonly (Buffer | string)[], headerName: (b: Buffer | string) => string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const k = headerName(raw[i]!);
    const r = raw[i + 1]!;
    const v = typeof r === 'string' ? r : r.toString('latin1');
    const cur = out[k];
    if (cur === undefined) out[k] = k === 'set-cookie' ? [v] : v;
    else if (k === 'set-cookie') (cur as string[]).push(v);
    else if (!SINGLE_VALUED.has(k)) out[k] = `${cur as string}${k === 'cookie' ? '; ' : ', '}${v}`;
  }
  return out;
}

/** gRPC requests are HTTP/2 with content-type application/grpc[+proto|+json|;...] (not grpc-web). */
export function isGrpcContentType(ct: string | undefined): boolean {
  return (
    ct !== undefined &&
    ct.startsWith('application/grpc') &&
    (ct.length === 16 || ct.charCodeAt(16) === 43 /* + */ || ct.charCodeAt(16) === 59 /* ; */)
  );
}

/**
 * Percent-encodes a grpc-message value as the gRPC spec (PROTOCOL-HTTP2)
 * asks: the UTF-8 bytes outside 0x20–0x7E, and `%`, become `%XX`; everything
 * else stays as it is. (encodeURIComponent also encodes `:`, `/`, `,`…, which
 * grpc-js's decodeURI leaves encoded, so callers read `%3A`.)
 */
export function encodeGrpcMessage(msg: string): string {
  if (PLAIN_GRPC_MESSAGE.test(msg)) return msg;
  let out = '';
  for (const b of Buffer.from(msg, 'utf8')) out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${HEX[b >> 4]}${HEX[b & 15]}`;
  return out;
}

const PLAIN_GRPC_MESSAGE = /^[\x20-\x24\x26-\x7e]*$/;
const HEX = '0123456789ABCDEF';
