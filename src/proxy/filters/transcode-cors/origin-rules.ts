import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { TranscodeSettings } from '../../transcode/transcoder.js';

/**
 * Browser origin rules shared by CORS (gRPC-Web, Connect) and the WebSocket
 * bridge: an Origin is allowed when `allowedOrigins` lists it or `*`;
 * with an empty list only same-origin requests (Origin host = Host) are.
 * Requests without Origin are not from a browser page and always pass.
 */
export function originAllowed(s: TranscodeSettings, headers: IncomingHttpHeaders): boolean {
  const origin = headers['origin'];
  if (typeof origin !== 'string' || origin === '') return true;
  if (s.origins.has('*') || s.origins.has(origin)) return true;
  const host = headers[':authority'] ?? headers['host'];
  try {
    return typeof host === 'string' && new URL(origin).host === host;
  } catch {
    return false;
  }
}

/** Response headers the browser needs to read gRPC-Web / Connect answers. */
const EXPOSE = 'grpc-status, grpc-message, grpc-status-details-bin, grpc-metadata-*, content-encoding, connect-content-encoding, *';

/** CORS headers for an actual (non-preflight) response; none unless the origin is explicitly allowed. */
export function corsHeaders(s: TranscodeSettings, headers: IncomingHttpHeaders, out: OutgoingHttpHeaders): void {
  const origin = headers['origin'];
  if (typeof origin !== 'string' || origin === '') return;
  if (!(s.origins.has('*') || s.origins.has(origin))) return;
  out['access-control-allow-origin'] = origin;
  out['access-control-allow-credentials'] = 'true';
  out['access-control-expose-headers'] = EXPOSE;
  out['vary'] = 'Origin';
}

/** The answer to an `OPTIONS` preflight: 204 with the allowances, or 403 for an origin not on the list. */
export function preflight(s: TranscodeSettings, headers: IncomingHttpHeaders): { status: number; headers: OutgoingHttpHeaders } {
  const out: OutgoingHttpHeaders = {};
  corsHeaders(s, headers, out);
  if (out['access-control-allow-origin'] === undefined) return { status: 403, headers: { 'content-length': 0 } };
  delete out['access-control-expose-headers'];
  out['access-control-allow-methods'] = 'POST, GET, OPTIONS';
  const req = headers['access-control-request-headers'];
  out['access-control-allow-headers'] =
    typeof req === 'string' && req !== ''
      ? req
      : 'content-type, x-grpc-web, x-user-agent, grpc-timeout, connect-protocol-version, connect-timeout-ms, authorization';
  out['access-control-max-age'] = '7200';
  out['content-length'] = 0;
  return { status: 204, headers: out };
}
