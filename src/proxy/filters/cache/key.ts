import { createHash } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http2';

/**
 * Cache keys (docs/filters.md#cache documents them, so operators can form
 * purge prefixes):
 * - HTTP (GET/HEAD, Connect GET, REST-transcoded GET):
 *   `<keyPrefix>http:<authority><path?query>`
 * - gRPC unary: `<keyPrefix>grpc:<authority>/<pkg.Service>/<Method>:<sha256 of the request message, base64url>`
 * then `|p:<principal>` when authorized requests are cached, and for a
 * response with `Vary`: `|vary:<sha256 of the varied request headers' values>`
 * (the primary key then holds a marker naming those headers). HEAD shares
 * GET's entry; the authority is lower-cased.
 */
export function httpKey(keyPrefix: string, authority: string, target: string, principal: string | undefined): string {
  const k = `${keyPrefix}http:${authority.toLowerCase()}${target}`;
  return principal === undefined ? k : `${k}|p:${principal}`;
}

export function grpcKey(keyPrefix: string, authority: string, method: string, message: Buffer, principal: string | undefined): string {
  const h = createHash('sha256').update(message).digest('base64url');
  const k = `${keyPrefix}grpc:${authority.toLowerCase()}${method}:${h}`;
  return principal === undefined ? k : `${k}|p:${principal}`;
}

/** The secondary key of one variant: the primary key and the varied request headers' values. */
export function varyKey(primary: string, names: readonly string[], headers: IncomingHttpHeaders): string {
  const h = createHash('sha256');
  for (const n of names) {
    const v = headers[n];
    h.update(n).update('\0').update(v === undefined ? '' : Array.isArray(v) ? v.join(',') : v).update('\0');
  }
  return `${primary}|vary:${h.digest('base64url')}`;
}
