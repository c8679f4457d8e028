import { durationMs } from '../../core/duration.js';
import { combineHash, hash32 } from '../../core/hash.js';
import type { HashPolicy } from '../../gen/outrigger/config/v1/route_pb.js';

/** One compiled `hashPolicy[]` entry. */
export type HashPart =
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | { readonly kind: 'cookie'; readonly name: string; readonly ttlMs: number; readonly path: string; readonly terminal: boolean }
  | { readonly kind: 'sourceIp'; readonly terminal: boolean }
  | { readonly kind: 'queryParameter'; readonly name: string; readonly terminal: boolean };

/** What a request offers its route's hash policy. */
export interface HashInput {
  readonly headers: Record<string, string | string[] | undefined>;
  /** Raw request target (path and query). */
  readonly target: string;
  readonly clientAddress?: string | undefined;
}

/** Compiles `route.hashPolicy[]`; `onError` gets the path relative to the route action. */
export function compileHashPolicy(list: readonly HashPolicy[], onError: (rel: string, message: string) => never): readonly HashPart[] {
  return Object.freeze(
    list.map((p, i): HashPart => {
      const at = `route.hashPolicy[${i}]`;
      const s = p.policySpecifier;
      const terminal = p.terminal;
      switch (s.case) {
        case 'header':
          if (s.value.name === '') onError(`${at}.header.name`, 'required');
          return { kind: 'header', name: s.value.name.toLowerCase(), terminal };
        case 'cookie':
          if (s.value.name === '') onError(`${at}.cookie.name`, 'required');
          return { kind: 'cookie', name: s.value.name, ttlMs: durationMs(s.value.ttl, 0), path: s.value.path, terminal };
        case 'sourceIp':
          return { kind: 'sourceIp', terminal };
        case 'queryParameter':
          if (s.value.name === '') onError(`${at}.queryParameter.name`, 'required');
          return { kind: 'queryParameter', name: s.value.name, terminal };
        default:
          return onError(at, 'set one of header, cookie, sourceIp, queryParameter');
      }
    }),
  );
}

/**
 * The request's consistent-hash key: each part that finds its value adds it
 * (Envoy's rotate-and-xor combination); a terminal part that found one ends
 * the list. Undefined when no part applies (the picker then draws at random).
 */
export function requestHash(parts: readonly HashPart[], req: HashInput): number | undefined {
  let acc: number | undefined;
  for (const p of parts) {
    const v = valueOf(p, req);
    if (v === undefined) continue;
    const h = hash32(v);
    acc = acc === undefined ? h : combineHash(acc, h);
    if (p.terminal) break;
  }
  return acc;
}

function valueOf(p: HashPart, req: HashInput): string | undefined {
  switch (p.kind) {
    case 'header': {
      const v = req.headers[p.name];
      return Array.isArray(v) ? v.join(',') : v;
    }
    case 'cookie':
      return cookieValue(req.headers['cookie'], p.name);
    case 'sourceIp':
      return req.clientAddress;
    case 'queryParameter': {
      const q = req.target.indexOf('?');
      if (q < 0) return undefined;
      return new URLSearchParams(req.target.slice(q + 1)).get(p.name) ?? undefined;
    }
  }
}

function cookieValue(header: string | string[] | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const line of Array.isArray(header) ? header : [header]) {
    for (const pair of line.split(';')) {
      const eq = pair.indexOf('=');
      if (eq > 0 && pair.slice(0, eq).trim() === name) return pair.slice(eq + 1).trim();
    }
  }
  return undefined;
}
