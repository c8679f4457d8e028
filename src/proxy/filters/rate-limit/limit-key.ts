import type { RateLimitKey } from '../../../gen/outrigger/filters/local_rate_limit/v1/local_rate_limit_pb.js';
import type { Downstream } from '../../downstream/downstream.js';

/** What a limit counts a request under; undefined: the limit does not apply to it. */
export type KeyOf = (ds: Downstream) => string | undefined;

/** Compiles a limit's `key`; `at` is the field path for errors. */
export function compileKey(k: RateLimitKey | undefined, at: string): { keyOf: KeyOf; kind: string } {
  const key = k?.key;
  switch (key?.case) {
    case 'remoteAddress':
      return { kind: 'remoteAddress', keyOf: (ds) => ds.conn.clientAddress };
    case 'header': {
      const name = key.value.name.toLowerCase();
      if (name === '') throw new Error(`${at}.header.name: required`);
      return {
        kind: `header:${name}`,
        keyOf: (ds) => {
          const v = ds.headers[name];
          return Array.isArray(v) ? v[0] : v;
        },
      };
    }
    case 'principal':
      return { kind: 'principal', keyOf: (ds) => ds.auth?.principal ?? '' };
    case 'route':
      return { kind: 'route', keyOf: (ds) => ds.ex.route };
    case 'constant': {
      const v = key.value.value;
      return { kind: 'constant', keyOf: () => v };
    }
    default:
      throw new Error(`${at}: set one of remoteAddress, header, principal, route, constant`);
  }
}
