import type { JsonObject } from '@bufbuild/protobuf';
import { parseRouteTemplate, type ParsedTemplate } from '../../../src/proxy/router/route-template.js';
import type { RouteRequest } from '../../../src/proxy/router/index.js';

/**
 * A deliberately naive matcher for the property tests: it tries every route of
 * one virtual host with a plain positional comparison, then sorts the
 * candidates by the precedence written in docs/routing.md. Shares nothing with
 * the trie but the template parser (tested on its own).
 */
export interface ReferenceResult {
  name: string;
  params: Record<string, string>;
}

interface Candidate {
  name: string;
  index: number;
  key: number[];
  constraints: number;
  params: Record<string, string>;
}

type HeaderJson = { name: string; exact?: string; prefix?: string; regex?: string; present?: boolean; invert?: boolean };

export function referenceMatch(routes: JsonObject[], req: RouteRequest): ReferenceResult | undefined {
  const candidates: Candidate[] = [];
  const firstRegex = new Map<string, number>();
  routes.forEach((route, index) => {
    const m = route['match'] as JsonObject;
    const name = (route['name'] as string) || `vh/${index}`;
    const grpc = m['grpc'] as { service: string; method?: string } | undefined;
    const constraints = countConstraints(m);
    let key: number[] | undefined;
    let params: Record<string, string> = {};
    if (typeof m['path'] === 'string') key = req.path === m['path'] ? [0] : undefined;
    else if (typeof m['prefix'] === 'string') key = req.path.startsWith(m['prefix']) ? [2, -m['prefix'].length] : undefined;
    else if (typeof m['regex'] === 'string') {
      const src = m['regex'];
      if (!firstRegex.has(src)) firstRegex.set(src, index);
      key = new RegExp(`^(?:${src})$`).test(req.path) ? [3, firstRegex.get(src)!] : undefined;
    } else if (typeof m['template'] === 'string') {
      const t = parseRouteTemplate(m['template']) as ParsedTemplate;
      const p = matchTemplate(t, req.path);
      if (p) {
        params = p;
        key = [1, ...templateKey(t)];
      }
    } else if (grpc) {
      const p = `/${grpc.service}/${grpc.method ?? ''}`;
      key = grpc.method ? (req.path === p ? [0] : undefined) : req.path.startsWith(p) ? [2, -p.length] : undefined;
    }
    if (key && constraintsHold(m, req)) candidates.push({ name, index, key, constraints, params });
  });
  candidates.sort(
    (a, b) => compareKeys(a.key, b.key) || b.constraints - a.constraints || a.index - b.index,
  );
  const best = candidates[0];
  return best && { name: best.name, params: best.params };
}

/** Lower is better, position by position. */
function compareKeys(a: number[], b: number[]): number {
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Literal -3, variable/`*` -2, ended -1.5, `**` -1 (negative so lower is better); verb last. */
function templateKey(t: ParsedTemplate): number[] {
  const key: number[] = [];
  for (let i = 0; i < 70; i++) {
    const s = t.segments[i];
    key.push(s === undefined ? -1.5 : s.kind === 'literal' ? -3 : s.kind === 'single' ? -2 : -1);
  }
  key.push(t.verb === undefined ? 0 : -1);
  return key;
}

function matchTemplate(t: ParsedTemplate, path: string): Record<string, string> | undefined {
  if (!path.startsWith('/')) return undefined;
  const segs = path.slice(1).split('/');
  if (t.verb !== undefined) {
    const last = segs[segs.length - 1]!;
    if (!last.endsWith(`:${t.verb}`)) return undefined;
    segs[segs.length - 1] = last.slice(0, last.length - t.verb.length - 1);
  }
  const n = t.segments.length;
  const endsWithMulti = t.segments[n - 1]!.kind === 'multi';
  if (endsWithMulti ? segs.length < n - 1 : segs.length !== n) return undefined;
  for (let i = 0; i < n; i++) {
    const s = t.segments[i]!;
    if (s.kind === 'literal' && segs[i] !== s.value) return undefined;
    if (s.kind === 'single' && (segs[i] === undefined || segs[i] === '')) return undefined;
  }
  const params: Record<string, string> = {};
  for (const c of t.captures) {
    const raw = segs.slice(c.start, c.end === n && endsWithMulti ? segs.length : c.end).join('/');
    params[c.name] = decode(raw);
  }
  return params;
}

function decode(raw: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}

function countConstraints(m: JsonObject): number {
  const methods = (m['methods'] as string[] | undefined) ?? [];
  const headers = (m['headers'] as unknown[] | undefined) ?? [];
  return (methods.length > 0 ? 1 : 0) + headers.length + (m['grpc'] ? 1 : 0);
}

function constraintsHold(m: JsonObject, req: RouteRequest): boolean {
  const methods = ((m['methods'] as string[] | undefined) ?? []).map((x) => x.toUpperCase());
  if (methods.length > 0 && !methods.includes(req.method.toUpperCase())) return false;
  const grpc = m['grpc'] as { service: string; method?: string } | undefined;
  if (grpc) {
    const parts = /^\/([^/]+)\/([^/]+)$/.exec(req.path);
    if (!req.isGrpc || !parts || parts[1] !== grpc.service || (grpc.method && parts[2] !== grpc.method)) return false;
  }
  for (const h of (m['headers'] as HeaderJson[] | undefined) ?? []) {
    const raw = req.headers[h.name.toLowerCase()];
    const v = Array.isArray(raw) ? raw.join(',') : raw;
    let ok: boolean;
    if (h.present !== undefined) ok = (v !== undefined) === h.present;
    else if (v === undefined) ok = false;
    else if (h.exact !== undefined) ok = v === h.exact;
    else if (h.prefix !== undefined) ok = v.startsWith(h.prefix);
    else if (h.regex !== undefined) ok = new RegExp(`^(?:${h.regex})$`).test(v);
    else ok = true;
    if (ok === Boolean(h.invert)) return false;
  }
  return true;
}
