import { compareTemplates } from '../router/route-entry.js';
import type { Binding } from './http-rule.js';

export type RestMatch =
  | { readonly kind: 'match'; readonly binding: Binding; readonly segments: readonly string[] }
  | { readonly kind: 'not_found' }
  | { readonly kind: 'method_not_allowed'; readonly allow: readonly string[] };

/**
 * The REST side of a transcoder: bindings ordered by the router's
 * specificity rule (literal > variable > `**`, then a verb beats none), so
 * `/v1/shelves/{id}` and `/v1/shelves/{id}:archive` or a literal segment and a
 * variable never depend on declaration order. Built once per config version.
 *
 * A path matched by some binding but not for this method answers 405 with
 * the methods that would match (`Allow`), not 404.
 */
export class RestMatcher {
  private readonly bindings: readonly Binding[];

  constructor(bindings: readonly Binding[]) {
    this.bindings = [...bindings].sort((a, b) => compareTemplates(a.template, b.template));
  }

  get all(): readonly Binding[] {
    return this.bindings;
  }

  /** `path` is raw (percent-encoded, no query). */
  match(method: string, path: string): RestMatch {
    if (!path.startsWith('/')) return { kind: 'not_found' };
    const m = method.toUpperCase();
    const allow = new Set<string>();
    const parts = path === '/' ? [] : path.slice(1).split('/');
    for (const b of this.bindings) {
      const segs = splitVerb(parts, b.template.verb);
      if (!segs || !matchSegments(b, segs)) continue;
      if (b.httpMethod === '*' || b.httpMethod === m) {
        return { kind: 'match', binding: b, segments: segs };
      }
      allow.add(b.httpMethod);
    }
    return allow.size > 0 ? { kind: 'method_not_allowed', allow: [...allow].sort() } : { kind: 'not_found' };
  }
}

/** With a verb the last segment must end in ":verb" (which is cut off); without one the path is used as is. */
function splitVerb(parts: readonly string[], verb: string | undefined): readonly string[] | undefined {
  if (verb === undefined) return parts;
  const last = parts[parts.length - 1];
  const suffix = `:${verb}`;
  if (last === undefined || !last.endsWith(suffix)) return undefined;
  const out = parts.slice(0, -1);
  const head = last.slice(0, -suffix.length);
  out.push(head);
  return out;
}

function matchSegments(b: Binding, parts: readonly string[]): boolean {
  const segs = b.template.segments;
  for (let i = 0; i < segs.length; i++) {
    const s = segs[i]!;
    if (s.kind === 'multi') return true; // `**` is always last and takes zero or more
    const p = parts[i];
    if (p === undefined) return false;
    if (s.kind === 'literal' ? p !== s.value : p === '') return false;
  }
  return parts.length === segs.length;
}
