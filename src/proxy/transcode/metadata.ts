import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { formatGrpcTimeout } from '../../core/duration.js';

/**
 * HTTP headers → gRPC metadata, grpc-gateway's rule (PROTOCOLS.md b3.9):
 * - `Grpc-Metadata-X: v` → `x: v` (prefix stripped);
 * - IANA permanent headers (Accept, User-Agent, …) → `grpcgateway-<name>`;
 * - `Authorization` also as `authorization`;
 * - names configured in `forwardHeaders` under their own name;
 * - `-bin` values must be base64 (padded or not) and non-ASCII values are
 *   dropped, since neither can be valid metadata;
 * - `x-forwarded-for` gets the client address, `x-forwarded-host` the Host.
 * Everything else stays at the HTTP layer.
 */
const PERMANENT = new Set([
  'accept', 'accept-charset', 'accept-language', 'accept-ranges', 'authorization', 'cache-control', 'content-type',
  'cookie', 'date', 'expect', 'from', 'host', 'if-match', 'if-modified-since', 'if-none-match', 'if-schedule-tag-match',
  'if-unmodified-since', 'max-forwards', 'origin', 'pragma', 'referer', 'user-agent', 'via', 'warning',
]);

/** Response metadata never echoed as Grpc-Metadata-* (they describe the gRPC transport, not the call). */
const TRANSPORT = new Set(['content-type', 'grpc-encoding', 'grpc-accept-encoding', 'date', 'content-length', 'grpc-status', 'grpc-message', 'grpc-status-details-bin']);

const ASCII = /^[\x20-\x7e]*$/;
const B64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

export interface ForwardFacts {
  readonly clientAddress: string;
  readonly trustedHops: number;
  readonly forward: ReadonlySet<string>;
}

export function requestMetadata(h: IncomingHttpHeaders, f: ForwardFacts, out: OutgoingHttpHeaders): void {
  // for…in and no closure: this runs for every transcoded request (Object.entries made an array per header).
  for (const name in h) {
    const value = h[name];
    if (value === undefined || name.charCodeAt(0) === 58 /* ':' */) continue;
    let key: string | undefined;
    if (name.startsWith('grpc-metadata-')) key = name.slice('grpc-metadata-'.length);
    else if (PERMANENT.has(name)) key = `grpcgateway-${name}`;
    else if (f.forward.has(name)) key = name;
    if (key !== undefined && (key === '' || key.startsWith('grpc-') || key.startsWith(':'))) key = undefined;
    const auth = name === 'authorization';
    if (key === undefined && !auth) continue;
    if (Array.isArray(value)) {
      for (const v of value) {
        if (key !== undefined) addMetadata(out, key, v);
        if (auth) addMetadata(out, 'authorization', v);
      }
    } else {
      if (key !== undefined) addMetadata(out, key, value);
      if (auth) addMetadata(out, 'authorization', value);
    }
  }
  const xff = h['x-forwarded-for'];
  out['x-forwarded-for'] = f.trustedHops > 0 && typeof xff === 'string' && xff ? `${xff}, ${f.clientAddress}` : f.clientAddress;
  const host = h[':authority'] ?? h['host'];
  if (typeof host === 'string') out['x-forwarded-host'] = host;
}

/** One metadata value: `-bin` values must be base64, others printable ASCII; a repeated key becomes a list. */
function addMetadata(out: OutgoingHttpHeaders, k: string, v: string): void {
  if (k.endsWith('-bin') ? !B64.test(v) : !ASCII.test(v)) return;
  const cur = out[k];
  out[k] = cur === undefined ? v : Array.isArray(cur) ? [...cur, v] : [String(cur), v];
}

/** The deadline for the call: the shorter of the route timeout and the client's Grpc-Timeout. */
export function callTimeoutMs(h: IncomingHttpHeaders, routeTimeoutMs: number, parse: (v: string) => number): number {
  const gt = h['grpc-timeout'];
  const ms = typeof gt === 'string' ? parse(gt) : -1;
  if (ms >= 0 && (routeTimeoutMs === 0 || ms < routeTimeoutMs)) return ms;
  return routeTimeoutMs;
}

export function timeoutHeader(ms: number): string {
  return formatGrpcTimeout(ms);
}

/** Upstream response headers → `grpc-metadata-<k>` response headers. */
export function responseMetadata(h: IncomingHttpHeaders, prefix: 'grpc-metadata-' | 'grpc-trailer-', out: OutgoingHttpHeaders): void {
  for (const k in h) {
    const v = h[k];
    if (v === undefined || k.charCodeAt(0) === 58 /* ':' */ || TRANSPORT.has(k)) continue;
    out[`${prefix}${k}`] = v;
  }
}
