import type { RouteActionCompiled, RouteMatchResult } from '../router/index.js';

/** Applies a route's prefix rewrite to the raw :path (query kept). */
export function rewritePath(rawPath: string, match: RouteMatchResult, action: RouteActionCompiled): string {
  if (action.kind !== 'cluster' || !action.prefixRewrite) return rawPath;
  const prefix = match.route.prefix;
  if (prefix === undefined || !rawPath.startsWith(prefix)) return rawPath;
  return action.prefixRewrite + rawPath.slice(prefix.length);
}
