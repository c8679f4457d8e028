import { randomBytes } from 'node:crypto';
import { durationMs } from '../../core/duration.js';
import { combineHash, hash32 } from '../../core/hash.js';
import type { HashPolicy } from '../../gen/outrigger/config/v1/route_pb.js';

/** One compiled `hashPolicy[]` entry. */
export type HashPart =
  | { readonly kind: 'header'; readonly name: string; readonly terminal: boolean }
  | {
      readonly kind: 'cookie';
      readonly name: string;
      /** `ttl`: when set, a request without the cookie gets one generated (0: a session cookie); undefined: never. */
      readonly ttlMs: number | undefined;
      readonly path: string;
      readonly terminal: boolean;
    }
  | { readonly kind: 'sourceIp'; readonly terminal: boolean }
  | { readonly kind: 'queryParameter'; readonly name: string; readonly terminal: boolean };

/** What a request offers its route's hash policy. */
export interface HashInput {
  readonly headers: Record<string, string | string[] | undefined>;
  /** Raw request target (path and query). */
  readonly target: string;
  readonly clientAddress?: string | undefined;
  /**
   * Cookie policies with a `ttl`: the downstream connection (the generated
   * value is the same for every request on one connection, as Envoy's, so
   * racing requests stick together) and where the Set-Cookie goes.
   */
  readonly connection?: object | undefined;
  readonly setCookie?: ((value: string) => void) | undefined;
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
          return { kind: 'cookie', name: s.value.name, ttlMs: s.value.ttl === undefined ? undefined : durationMs(s.value.ttl, 0), path: s.value.path, terminal };
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
    case 'cookie': {
      const v = cookieValue(req.headers['cookie'], p.name);
      if (v !== undefined || p.ttlMs === undefined || req.setCookie === undefined) return v;
      // Envoy's cookie with a ttl: generate a value, hash on it, and have the client keep it.
      const made = generatedValue(req.connection);
      req.setCookie(setCookieValue(p.name, made, p.ttlMs, p.path));
      return made;
    }
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
      if (eq > 0 && pair.slice(0, eq).trim() === name) {
        const v = pair.slice(eq + 1).trim();
        // RFC 6265 allows a DQUOTE-wrapped value (Envoy's generated cookies are quoted): the same key either way.
        return v.length >= 2 && v.startsWith('"') && v.endsWith('"') ? v.slice(1, -1) : v;
      }
    }
  }
  return undefined;
}

/** One generated value per downstream connection (random: nothing about the client is exposed). */
const generated = new WeakMap<object, string>();

function generatedValue(connection: object | undefined): string {
  if (connection === undefined) return randomBytes(8).toString('hex');
  let v = generated.get(connection);
  if (v === undefined) {
    v = randomBytes(8).toString('hex');
    generated.set(connection, v);
  }
  return v;
}

/** Envoy's makeSetCookieValue: `name=value; Max-Age=N; Path=P; HttpOnly` (no Max-Age for a 0 ttl: a session cookie). */
export function setCookieValue(name: string, value: string, ttlMs: number, path: string): string {
  let c = `${name}=${value}`;
  const maxAge = Math.floor(ttlMs / 1000);
  if (maxAge > 0) c += `; Max-Age=${maxAge}`;
  if (path !== '') c += `; Path=${path}`;
  return c + '; HttpOnly';
}
