import type { RouteActionCompiled, RouteMatchResult } from '../router/index.js';

/** Applies a route's prefix or regex rewrite to the raw :path (query kept). */
export function rewritePath(rawPath: string, match: RouteMatchResult, action: RouteActionCompiled): string {
  if (action.kind !== 'cluster') return rawPath;
  const rx = action.regexRewrite;
  if (rx !== undefined) {
    // The path alone is rewritten (as Envoy's regex_rewrite); the query is kept as it came.
    const q = rawPath.indexOf('?');
    const path = q < 0 ? rawPath : rawPath.slice(0, q);
    rx.re.lastIndex = 0;
    const out = path.replace(rx.re, rx.replacement);
    return q < 0 ? out : out + rawPath.slice(q);
  }
  if (!action.prefixRewrite) return rawPath;
  const prefix = match.route.prefix;
  if (prefix === undefined || !rawPath.startsWith(prefix)) return rawPath;
  return action.prefixRewrite + rawPath.slice(prefix.length);
}
