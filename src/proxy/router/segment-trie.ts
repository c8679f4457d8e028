import { constraintsHold } from './route-constraints.js';
import type { RouteEntry } from './route-entry.js';
import type { TemplateSegment } from './route-template.js';
import type { RouteRequest } from './types.js';

/**
 * A trie over path segments for template routes. Every route sharing a node
 * has the same sequence of segment kinds, so the routes stored at a node are
 * equally specific by path and are sorted by constraints, then declaration.
 *
 * The walk is a depth-first search that tries, at each depth, the literal
 * child, then the single-segment child (`*`, `{x}`), then `**` routes, and at
 * the end of the path routes that end there before `**` (matching zero
 * segments). That is exactly the documented template order, so the first route
 * whose constraints hold is the winner. A node sits at one depth and is
 * visited at most once per walk, so a walk is linear in the trie size at worst.
 */
export class SegmentNode {
  /** Few literal children are compared in place (no substring); many go through `litMap`. */
  litKeys: string[] = [];
  litNodes: SegmentNode[] = [];
  litMap: Map<string, SegmentNode> | undefined;
  single: SegmentNode | undefined;
  /** Routes whose next template segment is `**`. */
  multi: RouteEntry[] = [];
  /** Routes whose template ends at this node. */
  end: RouteEntry[] = [];

  child(seg: TemplateSegment): SegmentNode {
    if (seg.kind === 'single') return (this.single ??= new SegmentNode());
    if (seg.kind !== 'literal') throw new Error('unreachable: "**" has no child node');
    const i = this.litKeys.indexOf(seg.value);
    if (i >= 0) return this.litNodes[i]!;
    const n = new SegmentNode();
    this.litKeys.push(seg.value);
    this.litNodes.push(n);
    return n;
  }

  /** Called once after all inserts: sorts route lists and indexes wide literal fan-outs. */
  seal(compare: (a: RouteEntry, b: RouteEntry) => number): void {
    this.multi.sort(compare);
    this.end.sort(compare);
    if (this.litKeys.length > LINEAR_LITERALS) this.litMap = new Map(this.litKeys.map((k, i) => [k, this.litNodes[i]!]));
    for (const n of this.litNodes) n.seal(compare);
    this.single?.seal(compare);
  }
}

/** Up to this many literal children, comparing in place beats hashing a fresh substring. */
const LINEAR_LITERALS = 8;

/** Returns the depth of the node the route was stored at (its segment count without `**`). */
export function insertTemplate(root: SegmentNode, segments: readonly TemplateSegment[], entry: RouteEntry): number {
  let node = root;
  let depth = 0;
  for (const seg of segments) {
    if (seg.kind === 'multi') {
      node.multi.push(entry);
      return depth;
    }
    node = node.child(seg);
    depth++;
  }
  node.end.push(entry);
  return depth;
}

/**
 * Segment boundaries of one path, reused across requests (a RouteTable owns
 * one; `match` is synchronous, so no two requests share it at once). Only the
 * first `cap` segments are recorded: the trie is never deeper than that.
 */
export class PathScan {
  starts: Int32Array;
  ends: Int32Array;
  /** Number of segments, or cap + 1 when the path has more than cap. */
  n = 0;

  /** `maxDepth`: the deepest trie node; the walk reads segments 0..maxDepth. */
  constructor(maxDepth: number) {
    this.cap = maxDepth + 1;
    this.starts = new Int32Array(this.cap);
    this.ends = new Int32Array(this.cap);
  }

  private readonly cap: number;

  /** `path` starts with "/"; "/" is one empty segment, "/a/" is "a" and "". */
  scan(path: string): void {
    const cap = this.cap;
    let start = 1;
    let n = 0;
    for (;;) {
      if (n === cap) {
        this.n = cap + 1;
        return;
      }
      const slash = path.indexOf('/', start);
      const end = slash < 0 ? path.length : slash;
      this.starts[n] = start;
      this.ends[n] = end;
      n++;
      if (slash < 0) break;
      start = slash + 1;
    }
    this.n = n;
  }
}

/**
 * Finds the most specific matching template route below `node` at depth `d`.
 * `tailEnd` is where the last segment ends: path.length, or the ":" of a
 * custom verb when walking a verb's trie.
 */
export function walkTemplates(
  node: SegmentNode,
  d: number,
  path: string,
  s: PathScan,
  tailEnd: number,
  req: RouteRequest,
): RouteEntry | undefined {
  // A template that ends exactly here beats `**` matching zero segments.
  if (d === s.n) return firstHolding(node.end, req) ?? firstHolding(node.multi, req);
  const start = s.starts[d]!;
  const end = d === s.n - 1 ? tailEnd : s.ends[d]!;
  const lit = findLiteral(node, path, start, end);
  if (lit !== undefined) {
    const r = walkTemplates(lit, d + 1, path, s, tailEnd, req);
    if (r !== undefined) return r;
  }
  // A variable or `*` needs a non-empty segment: "/a//b" has an empty one that only `**` takes.
  if (node.single !== undefined && end > start) {
    const r = walkTemplates(node.single, d + 1, path, s, tailEnd, req);
    if (r !== undefined) return r;
  }
  return firstHolding(node.multi, req);
}

function findLiteral(node: SegmentNode, path: string, start: number, end: number): SegmentNode | undefined {
  if (node.litMap !== undefined) return node.litMap.get(path.slice(start, end));
  const keys = node.litKeys;
  const len = end - start;
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    if (k.length === len && path.startsWith(k, start)) return node.litNodes[i];
  }
  return undefined;
}

export function firstHolding(list: readonly RouteEntry[], req: RouteRequest): RouteEntry | undefined {
  for (let i = 0; i < list.length; i++) {
    const e = list[i]!;
    if (constraintsHold(e.constraints, req)) return e;
  }
  return undefined;
}
