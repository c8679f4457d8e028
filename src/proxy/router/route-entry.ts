import type { Route } from '../../gen/outrigger/config/v1/route_pb.js';
import type { FilterOverride } from '../../gen/outrigger/config/v1/filters_pb.js';
import { durationMs } from '../../core/duration.js';
import { compileAnchoredRegex, compileConstraints, type RouteConstraints } from './route-constraints.js';
import { parseRouteTemplate, type ParsedTemplate } from './route-template.js';
import { EMPTY_PARAMS, RouteCompileError, type CompiledRoute, type RouteActionCompiled, type RouteMatchResult } from './types.js';
import { compileHashPolicy } from './hash-policy.js';
import { compileRouteRetries } from '../upstream/retry/retry-policy.js';
import { compileTraffic } from './traffic.js';

/** How a route's path is matched, after gRPC-only routes were turned into path/prefix specs. */
export type PathSpec =
  | { readonly kind: 'path'; readonly path: string; readonly impliedByGrpc: boolean }
  | { readonly kind: 'prefix'; readonly prefix: string; readonly impliedByGrpc: boolean }
  | { readonly kind: 'template'; readonly template: ParsedTemplate }
  /** `rank`: declaration index of the first route with the same source (equal regexes are equally specific). */
  | { readonly kind: 'regex'; readonly source: string; readonly re: RegExp; rank: number };

/** One route, compiled: everything the matcher needs, built once per config version. */
export interface RouteEntry {
  readonly route: CompiledRoute;
  readonly spec: PathSpec;
  readonly constraints: RouteConstraints;
  /** Returned as is when the route has no params, so such matches allocate nothing. Frozen. */
  readonly result: RouteMatchResult;
}

export function compileRoute(r: Route, vhost: string, index: number, at: string, vhostFilters: Record<string, FilterOverride> = {}): RouteEntry {
  const onError = (rel: string, message: string): never => {
    throw new RouteCompileError(rel === '' ? at : `${at}.${rel}`, message);
  };
  const constraints = compileConstraints(r.match, (rel, msg) => onError(`match.${rel}`, msg));
  const spec = compilePathSpec(r, onError);
  const action = compileAction(r, spec, onError);
  const route: CompiledRoute = Object.freeze({
    name: r.name !== '' ? r.name : `${vhost}/${index}`,
    virtualHost: vhost,
    action,
    matchKind: spec.kind,
    index,
    ...(spec.kind === 'prefix' && !spec.impliedByGrpc ? { prefix: spec.prefix } : {}),
    ...filterOverridesOf(vhostFilters, r.filters),
  });
  return { route, spec, constraints, result: Object.freeze({ route, params: EMPTY_PARAMS }) };
}

function compilePathSpec(r: Route, onError: (rel: string, message: string) => never): PathSpec {
  const m = r.match;
  const ps = m?.pathSpecifier;
  switch (ps?.case) {
    case 'path':
      if (ps.value === '') onError('match.path', 'empty path');
      if (ps.value.includes('?')) onError('match.path', 'paths are matched without the query string');
      return { kind: 'path', path: ps.value, impliedByGrpc: false };
    case 'prefix':
      if (ps.value.includes('?')) onError('match.prefix', 'paths are matched without the query string');
      return { kind: 'prefix', prefix: ps.value, impliedByGrpc: false };
    case 'template': {
      const t = parseRouteTemplate(ps.value);
      if (typeof t === 'string') onError('match.template', t);
      return { kind: 'template', template: t as ParsedTemplate };
    }
    case 'regex':
      return { kind: 'regex', source: ps.value, re: compileAnchoredRegex(ps.value, 'match.regex', onError), rank: -1 };
  }
  const g = m?.grpc;
  if (!g) return onError(m ? 'match' : '', 'a route needs match.path, prefix, template, regex or grpc');
  // A gRPC-only route ranks like the path it stands for (see docs/routing.md).
  return g.method !== ''
    ? { kind: 'path', path: `/${g.service}/${g.method}`, impliedByGrpc: true }
    : { kind: 'prefix', prefix: `/${g.service}/`, impliedByGrpc: true };
}

function compileAction(r: Route, spec: PathSpec, onError: (rel: string, message: string) => never): RouteActionCompiled {
  const a = r.action;
  if (a.case === 'route') {
    const v = a.value;
    if (v.cluster === '' && v.weightedClusters.length === 0) onError('route.cluster', 'cluster or weightedClusters is required');
    if (v.cluster !== '' && v.weightedClusters.length > 0) onError('route.weightedClusters', 'set cluster or weightedClusters, not both');
    const timeoutMs = durationMs(v.timeout, 0);
    if (!(timeoutMs >= 0)) onError('route.timeout', 'timeout must not be negative');
    if (v.prefixRewrite !== '' && (spec.kind !== 'prefix' || spec.impliedByGrpc)) {
      onError('route.prefixRewrite', 'prefixRewrite needs a match.prefix route');
    }
    let regexRewrite: { re: RegExp; replacement: string } | undefined;
    if (v.regexRewrite !== undefined) {
      if (v.prefixRewrite !== '') onError('route.regexRewrite', 'set prefixRewrite or regexRewrite, not both');
      try {
        regexRewrite = { re: new RegExp(v.regexRewrite.pattern, 'g'), replacement: jsReplacement(v.regexRewrite.substitution) };
      } catch (err) {
        onError('route.regexRewrite.pattern', (err as Error).message);
      }
    }
    return Object.freeze({
      kind: 'cluster',
      cluster: v.cluster,
      timeoutMs,
      ...(v.prefixRewrite !== '' ? { prefixRewrite: v.prefixRewrite } : {}),
      ...(regexRewrite ? { regexRewrite } : {}),
      ...(v.hostRewrite !== '' ? { hostRewrite: v.hostRewrite } : {}),
      ...(v.transcode ? { transcode: v.transcode } : {}),
      ...(v.hashPolicy.length > 0 ? { hashPolicy: compileHashPolicy(v.hashPolicy, onError) } : {}),
      ...(v.retryPolicy || v.hedgePolicy ? { retries: compileRouteRetries(v)! } : {}),
      ...compileTraffic(v, (rel, msg) => onError(`route.${rel}`, msg)),
    });
  }
  if (a.case === 'directResponse') {
    const { status, body } = a.value;
    if (status < 100 || status > 599) onError('directResponse.status', `status ${status} is not in 100..599`);
    return Object.freeze({ kind: 'direct', status, body });
  }
  return onError('', 'a route needs an action: route or directResponse');
}

/**
 * Envoy writes capture groups in a substitution as `\1`; JavaScript's
 * replace() as `$1`. Both are accepted: `\N` becomes `$N` (`\\` is a backslash).
 */
export function jsReplacement(sub: string): string {
  return sub.replace(/\\(\\|\d{1,2})/g, (_m, g: string) => (g === '\\' ? '\\' : `$${g}`));
}

const CATEGORY: Readonly<Record<PathSpec['kind'], number>> = { path: 0, template: 1, prefix: 2, regex: 3 };
const SEGMENT_RANK = { literal: 3, single: 2, multi: 1 } as const;
const ENDED_RANK = 1.5;

/**
 * The documented precedence as a total order (negative: `a` wins). Path
 * specificity first, then more constraints, then declaration order. Routes
 * that can never match the same path are still ordered, for describe().
 */
export function comparePrecedence(a: RouteEntry, b: RouteEntry): number {
  const sa = a.spec;
  const sb = b.spec;
  const byPath =
    sa.kind !== sb.kind
      ? CATEGORY[sa.kind] - CATEGORY[sb.kind]
      : sa.kind === 'template'
        ? compareTemplates(sa.template, (sb as typeof sa).template)
        : sa.kind === 'prefix'
          ? (sb as typeof sa).prefix.length - sa.prefix.length
          : sa.kind === 'regex'
            ? sa.rank - (sb as typeof sa).rank
            : 0;
  if (byPath !== 0) return byPath;
  return b.constraints.count - a.constraints.count || a.route.index - b.route.index;
}

/**
 * Segment by segment: literal > variable or `*` > template ended > `**`. Two
 * templates matching the same path can only differ at an ended position by
 * `**` matching zero segments, and the template that names the path exactly
 * is the more specific; then a custom verb beats none.
 */
export function compareTemplates(a: ParsedTemplate, b: ParsedTemplate): number {
  const n = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const ka = a.segments[i];
    const kb = b.segments[i];
    const d = (kb ? SEGMENT_RANK[kb.kind] : ENDED_RANK) - (ka ? SEGMENT_RANK[ka.kind] : ENDED_RANK);
    if (d !== 0) return d;
  }
  return (b.verb !== undefined ? 1 : 0) - (a.verb !== undefined ? 1 : 0);
}

/** The virtual host's filter overrides, then the route's (same name: the route's wins). */
function filterOverridesOf(vhost: Record<string, FilterOverride>, route: Record<string, FilterOverride>): { filterOverrides?: ReadonlyMap<string, FilterOverride> } {
  const m = new Map<string, FilterOverride>([...Object.entries(vhost), ...Object.entries(route)]);
  return m.size === 0 ? {} : { filterOverrides: m };
}
