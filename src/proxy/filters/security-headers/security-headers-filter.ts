import type { OutgoingHttpHeaders } from 'node:http2';
import type { SecurityHeaders } from '../../../gen/outrigger/filters/security_headers/v1/security_headers_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import type { FilterFactory, HttpFilter } from '../filter.js';

/**
 * Defaults after the OWASP Secure Headers Project's recommendations
 * (docs/filters.md#securityheaders says where they differ from the seed's list).
 */
export const SECURITY_HEADER_DEFAULTS = {
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'strict-transport-security': 'max-age=31536000; includeSubDomains',
  'x-xss-protection': '0',
  'content-security-policy': "default-src 'self'; form-action 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'; upgrade-insecure-requests",
  'referrer-policy': 'no-referrer',
  'permissions-policy': 'accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()',
  'cross-origin-opener-policy': 'same-origin',
} as const;

type Name = keyof typeof SECURITY_HEADER_DEFAULTS;

/**
 * `securityHeaders`: a fixed list of (name, value) pairs computed once per
 * config version, written on every response head (upstream answers, transcoded
 * dialects, local replies). Per request: one loop over at most 8 entries.
 */
export function securityHeadersFactory(): FilterFactory<SecurityHeaders> {
  return {
    name: 'securityHeaders',
    compile(c: SecurityHeaders, name: string): HttpFilter {
      const pick = (n: Name, v: string | undefined): readonly [string, string] | undefined => {
        const value = v === undefined ? SECURITY_HEADER_DEFAULTS[n] : v;
        return value === '' ? undefined : [n, value];
      };
      const always = [
        pick('x-content-type-options', c.contentTypeOptions),
        pick('x-frame-options', c.frameOptions),
        pick('x-xss-protection', c.xssProtection),
        pick('content-security-policy', c.contentSecurityPolicy),
        pick('referrer-policy', c.referrerPolicy),
        pick('permissions-policy', c.permissionsPolicy),
        pick('cross-origin-opener-policy', c.crossOriginOpenerPolicy),
      ].filter((x): x is readonly [string, string] => x !== undefined);
      const hsts = pick('strict-transport-security', c.strictTransportSecurity);
      const forceHsts = c.forceHsts;
      const override = c.override;
      const strip = c.removeServerHeaders;
      return {
        name,
        onResponseHeaders(ds: Downstream, _status: number, headers: OutgoingHttpHeaders): void {
          for (const [n, v] of always) if (override || headers[n] === undefined) headers[n] = v;
          // HSTS over plain HTTP is ignored by browsers (RFC 6797 §8.1) and tells a MITM nothing useful: TLS only, unless forced.
          if (hsts !== undefined && (forceHsts || ds.conn.scheme === 'https') && (override || headers[hsts[0]] === undefined)) headers[hsts[0]] = hsts[1];
          if (strip) {
            delete headers['server'];
            delete headers['x-powered-by'];
          }
        },
      };
    },
  };
}
