import type { VirtualHost } from '../../gen/outrigger/config/v1/route_pb.js';
import { constraintsHold, describeConstraints } from './route-constraints.js';
import { comparePrecedence, compileRoute, type RouteEntry } from './route-entry.js';
import type { ParsedTemplate } from './route-template.js';
import { PrefixNode } from './prefix-tree.js';
import { PathScan, SegmentNode, firstHolding, insertTemplate, walkTemplates } from './segment-trie.js';
import { decodeParam } from './decode-param.js';
import type { RouteMatchResult, RouteRequest } from './types.js';

/**
 * The routes of one virtual host, indexed by kind. A lookup tries the kinds in
 * precedence order (exact path, template, prefix, regex) and each index yields
 * its own most specific route first, so the first hit is the winner:
 * - exact paths: a Map from path to its routes (sorted by constraints), the
 *   one-level special case of the trie;
 * - templates: a segment trie, plus one trie per custom verb because a verb
 *   changes where the last segment ends; a path that fits both a plain and a
 *   verb template compares the two walk winners;
 * - prefixes: a radix tree, longest prefix first;
 * - regexes: a list in precedence order.
 */
export class VirtualHostRoutes {
  private readonly exact = new Map<string, RouteEntry[]>();
  private readonly plain: SegmentNode | undefined;
  private readonly verbs: ReadonlyArray<{ readonly verb: string; readonly root: SegmentNode }>;
  private readonly prefixes: PrefixNode | undefined;
  private readonly regexes: readonly RouteEntry[];
  /** All routes in precedence order, for describe(). */
  readonly ordered: readonly RouteEntry[];
  /** The deepest trie node, which sizes the shared PathScan. */
  readonly maxDepth: number;

  constructor(
    readonly name: string,
    readonly domains: readonly string[],
    entries: readonly RouteEntry[],
  ) {
    let plain: SegmentNode | undefined;
    const verbs = new Map<string, SegmentNode>();
    let prefixes: PrefixNode | undefined;
    const regexes: RouteEntry[] = [];
    const firstRegex = new Map<string, number>();
    let maxDepth = 0;
    for (const e of entries) {
      const s = e.spec;
      if (s.kind === 'path') {
        const list = this.exact.get(s.path);
        if (list) list.push(e);
        else this.exact.set(s.path, [e]);
      } else if (s.kind === 'prefix') {
        (prefixes ??= new PrefixNode('')).insert(s.prefix, e);
      } else if (s.kind === 'regex') {
        // Equal sources are equally specific; distinct ones rank by first declaration.
        if (!firstRegex.has(s.source)) firstRegex.set(s.source, e.route.index);
        s.rank = firstRegex.get(s.source)!;
        regexes.push(e);
      } else {
        const v = s.template.verb;
        let root: SegmentNode;
        if (v === undefined) root = plain ??= new SegmentNode();
        else if (verbs.has(v)) root = verbs.get(v)!;
        else verbs.set(v, (root = new SegmentNode()));
        maxDepth = Math.max(maxDepth, insertTemplate(root, s.template.segments, e));
      }
    }
    for (const list of this.exact.values()) list.sort(comparePrecedence);
    plain?.seal(comparePrecedence);
    for (const root of verbs.values()) root.seal(comparePrecedence);
    prefixes?.seal(comparePrecedence);
    regexes.sort(comparePrecedence);
    this.plain = plain;
    this.verbs = [...verbs].map(([verb, root]) => ({ verb, root }));
    this.prefixes = prefixes;
    this.regexes = regexes;
    this.maxDepth = maxDepth;
    this.ordered = [...entries].sort(comparePrecedence);
  }

  static compile(vh: VirtualHost, name: string, at: string): VirtualHostRoutes {
    const entries = vh.routes.map((r, i) => compileRoute(r, name, i, `${at}.routes[${i}]`, vh.filters));
    return new VirtualHostRoutes(name, vh.domains, entries);
  }

  /** `scan` is the table's scratch buffer, at least `maxDepth` deep. */
  match(req: RouteRequest, scan: PathScan): RouteMatchResult | undefined {
    const path = req.path;
    const exact = this.exact.get(path);
    if (exact !== undefined) {
      const e = firstHolding(exact, req);
      if (e !== undefined) return e.result;
    }
    if ((this.plain !== undefined || this.verbs.length > 0) && path.charCodeAt(0) === 47 /* / */) {
      const r = this.matchTemplate(req, path, scan);
      if (r !== undefined) return r;
    }
    if (this.prefixes !== undefined) {
      const e = this.prefixes.lookup(path, 0, req);
      if (e !== undefined) return e.result;
    }
    const rx = this.regexes;
    for (let i = 0; i < rx.length; i++) {
      const e = rx[i]!;
      if ((e.spec as { re: RegExp }).re.test(path) && constraintsHold(e.constraints, req)) return e.result;
    }
    return undefined;
  }

  private matchTemplate(req: RouteRequest, path: string, scan: PathScan): RouteMatchResult | undefined {
    scan.scan(path);
    let best = this.plain && walkTemplates(this.plain, 0, path, scan, path.length, req);
    let bestTail = path.length;
    if (this.verbs.length > 0) {
      // The verb is what follows the last ":" of the last segment (google.api.http).
      const colon = path.lastIndexOf(':');
      if (colon > 0 && colon > path.lastIndexOf('/')) {
        for (const { verb, root } of this.verbs) {
          if (path.length - verb.length - 1 !== colon || !path.endsWith(verb)) continue;
          const v = walkTemplates(root, 0, path, scan, colon, req);
          if (v !== undefined && (best === undefined || comparePrecedence(v, best) < 0)) {
            best = v;
            bestTail = colon;
          }
          break;
        }
      }
    }
    if (best === undefined) return undefined;
    const t = (best.spec as { template: ParsedTemplate }).template;
    return t.captures.length === 0 ? best.result : { route: best.route, params: extractParams(t, path, scan, bestTail) };
  }

  describe(): object {
    return {
      name: this.name,
      domains: this.domains,
      routes: this.ordered.map((e) => {
        const s = e.spec;
        const match =
          s.kind === 'template'
            ? { template: s.template.source }
            : s.kind === 'regex'
              ? { regex: s.source }
              : s.kind === 'path'
                ? { path: s.path, ...(s.impliedByGrpc ? { impliedByGrpc: true } : {}) }
                : { prefix: s.prefix, ...(s.impliedByGrpc ? { impliedByGrpc: true } : {}) };
        return {
          name: e.route.name,
          index: e.route.index,
          matchKind: e.route.matchKind,
          match: { ...match, ...describeConstraints(e.constraints) },
          action: e.route.action,
        };
      }),
    };
  }
}

/**
 * Template params from the segment boundaries of the walk: a variable spans
 * whole consecutive segments, so its value is one substring of the raw path
 * (multi-segment captures come out joined by "/"), then percent-decoded.
 */
function extractParams(t: ParsedTemplate, path: string, s: PathScan, tailEnd: number): Record<string, string> {
  const params: Record<string, string> = {};
  const last = t.segments.length - 1;
  for (const c of t.captures) {
    // `**` may have matched zero segments, leaving nothing at its index.
    if (c.start >= s.n) {
      params[c.name] = '';
      continue;
    }
    const to = c.end - 1 === last && t.segments[last]!.kind === 'multi' ? tailEnd : c.end - 1 === s.n - 1 ? tailEnd : s.ends[c.end - 1]!;
    params[c.name] = decodeParam(path.slice(s.starts[c.start]!, to));
  }
  return params;
}
