import type { HeaderMatcher, RouteMatch } from '../../gen/outrigger/config/v1/route_pb.js';
import type { RouteRequest } from './types.js';

/**
 * The non-path conditions of a route (methods, headers, gRPC service/method),
 * compiled once: names lower-cased, methods upper-cased, regexes built and
 * anchored. `constraintsHold` runs per candidate route on the hot path and
 * allocates only to join a multi-value header.
 */

type HeaderTest =
  | { readonly kind: 'exact'; readonly value: string }
  | { readonly kind: 'prefix'; readonly value: string }
  | { readonly kind: 'regex'; readonly re: RegExp; readonly source: string }
  | { readonly kind: 'present'; readonly present: boolean };

interface HeaderCondition {
  readonly name: string;
  readonly test: HeaderTest;
  readonly invert: boolean;
}

export interface RouteConstraints {
  /** Upper-case methods; empty = any. */
  readonly methods: readonly string[];
  readonly headers: readonly HeaderCondition[];
  readonly grpcService: string | undefined;
  /** Empty = every method of the service. */
  readonly grpcMethod: string;
  /** Precedence tie-breaker: 1 for a method list, 1 per header matcher, 1 for a gRPC match. */
  readonly count: number;
}

/** Problems are reported as [path relative to the route's `match`, message]. */
export type ConstraintError = (relPath: string, message: string) => never;

export function compileConstraints(m: RouteMatch | undefined, onError: ConstraintError): RouteConstraints {
  const methods = (m?.methods ?? []).map((x, i) => {
    const t = x.trim().toUpperCase();
    if (t === '') onError(`methods[${i}]`, 'empty method');
    return t;
  });
  const headers = (m?.headers ?? []).map((h, i) => compileHeader(h, `headers[${i}]`, onError));
  const grpc = m?.grpc;
  let grpcService: string | undefined;
  if (grpc) {
    if (grpc.service === '' || grpc.service.includes('/')) onError('grpc.service', 'a fully qualified service name is required');
    if (grpc.method.includes('/')) onError('grpc.method', 'method must not contain "/"');
    grpcService = grpc.service;
  }
  const count = (methods.length > 0 ? 1 : 0) + headers.length + (grpc ? 1 : 0);
  return { methods, headers, grpcService, grpcMethod: grpc?.method ?? '', count };
}

function compileHeader(h: HeaderMatcher, at: string, onError: ConstraintError): HeaderCondition {
  const name = h.name.trim().toLowerCase();
  if (name === '') onError(`${at}.name`, 'header name is required');
  let test: HeaderTest;
  switch (h.match.case) {
    case 'exact':
      test = { kind: 'exact', value: h.match.value };
      break;
    case 'prefix':
      test = { kind: 'prefix', value: h.match.value };
      break;
    case 'regex':
      test = { kind: 'regex', re: compileAnchoredRegex(h.match.value, `${at}.regex`, onError), source: h.match.value };
      break;
    case 'present':
      test = { kind: 'present', present: h.match.value };
      break;
    default:
      // A matcher with only a name asks whether the header is there (as in Envoy).
      test = { kind: 'present', present: true };
  }
  return { name, test, invert: h.invert };
}

/**
 * Anchors an ECMAScript regex to the whole input. The source is compiled alone
 * first: only a valid (hence balanced) source can be wrapped in `^(?:…)$`
 * without changing its meaning.
 */
export function compileAnchoredRegex(source: string, at: string, onError: ConstraintError): RegExp {
  try {
    new RegExp(source);
    return new RegExp(`^(?:${source})$`);
  } catch (e) {
    return onError(at, `invalid regex: ${(e as Error).message}`);
  }
}

export function constraintsHold(c: RouteConstraints, req: RouteRequest): boolean {
  if (c.methods.length > 0 && !methodAllowed(c.methods, req.method)) return false;
  if (c.grpcService !== undefined && !grpcMatches(c, req)) return false;
  const hs = c.headers;
  for (let i = 0; i < hs.length; i++) {
    const h = hs[i]!;
    if (headerMatches(h.test, req.headers[h.name]) === h.invert) return false;
  }
  return true;
}

function methodAllowed(methods: readonly string[], method: string): boolean {
  if (methods.includes(method)) return true;
  // Callers pass upper case; only a lower-case method pays for the conversion.
  const up = method.toUpperCase();
  return up !== method && methods.includes(up);
}

/** `isGrpc` and the path is exactly `/<service>/<method>`. */
function grpcMatches(c: RouteConstraints, req: RouteRequest): boolean {
  if (!req.isGrpc) return false;
  const p = req.path;
  const svc = c.grpcService!;
  const slash = svc.length + 1;
  if (p.charCodeAt(0) !== 47 || !p.startsWith(svc, 1) || p.charCodeAt(slash) !== 47) return false;
  if (c.grpcMethod !== '') return p.length === slash + 1 + c.grpcMethod.length && p.endsWith(c.grpcMethod);
  return p.length > slash + 1 && p.indexOf('/', slash + 1) < 0;
}

function headerMatches(t: HeaderTest, raw: unknown): boolean {
  // Anything but a string or an array (e.g. an inherited "constructor" of a
  // plain-object header map) counts as absent, so matching never throws.
  const v = typeof raw === 'string' ? raw : Array.isArray(raw) ? raw.join(',') : undefined;
  if (t.kind === 'present') return (v !== undefined) === t.present;
  if (v === undefined) return false;
  switch (t.kind) {
    case 'exact':
      return v === t.value;
    case 'prefix':
      return v.startsWith(t.value);
    case 'regex':
      return t.re.test(v);
  }
}

/** For describe(): the constraint in config terms. */
export function describeConstraints(c: RouteConstraints): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (c.methods.length > 0) out['methods'] = c.methods;
  if (c.headers.length > 0) {
    out['headers'] = c.headers.map((h) => {
      const t = h.test;
      const m = t.kind === 'regex' ? t.source : t.kind === 'present' ? t.present : t.value;
      return { name: h.name, [t.kind]: m, ...(h.invert ? { invert: true } : {}) };
    });
  }
  if (c.grpcService !== undefined) out['grpc'] = { service: c.grpcService, method: c.grpcMethod };
  return out;
}
