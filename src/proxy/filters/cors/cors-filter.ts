import type { OutgoingHttpHeaders } from 'node:http2';
import type { Cors } from '../../../gen/outrigger/filters/cors/v1/cors_pb.js';
import { Cors_Preset } from '../../../gen/outrigger/filters/cors/v1/cors_pb.js';
import { durationMs } from '../../../core/duration.js';
import { flagOf } from '../../../core/errors.js';
import type { Downstream } from '../../downstream/downstream.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import { CorsPolicy } from './cors-policy.js';

/** Marks a chain's CORS owner, so a transcoding route's implied rules step aside (state/proxy-state.ts). */
export const CORS_FILTER_TYPE = 'cors';

/**
 * `cors` (docs/filters.md#cors): preflights answered locally (204, or 403
 * for an origin not allowed), allowances on every actual response of an
 * allowed origin, in every dialect (pass-through, REST, gRPC-Web, Connect,
 * local replies), and `Vary: Origin` whenever the answer depends on it.
 */
export function corsFactory(): FilterFactory<Cors> {
  return {
    name: CORS_FILTER_TYPE,
    compile(c: Cors, name: string): HttpFilter {
      const maxAgeMs = c.maxAge ? durationMs(c.maxAge, 0) : 0;
      const policy = new CorsPolicy({
        allowOrigins: c.allowOrigins,
        allowOriginRegexes: c.allowOriginRegexes,
        allowMethods: c.allowMethods,
        allowHeaders: c.allowHeaders,
        exposeHeaders: c.exposeHeaders,
        maxAgeSeconds: maxAgeMs > 0 ? maxAgeMs / 1000 : undefined,
        allowCredentials: c.allowCredentials,
        allowPrivateNetwork: c.allowPrivateNetwork,
        grpcWebConnect: c.preset === Cors_Preset.GRPC_WEB_CONNECT,
      });
      return {
        name,
        onRequestHeaders(ds: Downstream): FilterVerdict {
          if (ds.kind === 'ws' || !CorsPolicy.isPreflight(ds.method, ds.headers)) return undefined;
          const p = policy.preflight(ds.headers);
          return { status: p.status, headers: p.headers, ...(p.status === 403 ? { flag: flagOf('origin_not_allowed') } : {}) };
        },
        onResponseHeaders(ds: Downstream, _status: number, headers: OutgoingHttpHeaders): void {
          // A preflight's own answer was complete; everything else gets the actual-response allowances.
          if (ds.method === 'OPTIONS' && ds.headers['access-control-request-method'] !== undefined) return;
          policy.decorate(ds.headers, headers);
        },
      };
    },
  };
}
