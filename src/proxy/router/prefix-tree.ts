import type { RouteEntry } from './route-entry.js';
import { firstHolding } from './segment-trie.js';
import type { RouteRequest } from './types.js';

/**
 * A radix tree (compressed character trie) over string prefixes. Prefixes are
 * not segment-aligned ("/api" matches "/apix"), so the tree branches on
 * characters. The lookup descends as far as the path allows and tries routes
 * on the way back up, so the longest prefix whose constraints hold wins
 * without collecting candidates.
 */
export class PrefixNode {
  /** Routes whose prefix ends exactly at this node; all equally specific. */
  routes: RouteEntry[] = [];
  /** First character of the child's label → child. */
  readonly children = new Map<number, PrefixNode>();

  constructor(public label: string) {}

  insert(key: string, entry: RouteEntry): void {
    let node: PrefixNode = this;
    let pos = 0;
    for (;;) {
      if (pos === key.length) {
        node.routes.push(entry);
        return;
      }
      const c = key.charCodeAt(pos);
      const child = node.children.get(c);
      if (child === undefined) {
        const leaf = new PrefixNode(key.slice(pos));
        leaf.routes.push(entry);
        node.children.set(c, leaf);
        return;
      }
      const l = commonLength(child.label, key, pos);
      if (l < child.label.length) {
        // Split the edge so the shared part becomes its own node.
        const mid = new PrefixNode(child.label.slice(0, l));
        child.label = child.label.slice(l);
        mid.children.set(child.label.charCodeAt(0), child);
        node.children.set(c, mid);
        node = mid;
      } else {
        node = child;
      }
      pos += l;
    }
  }

  seal(compare: (a: RouteEntry, b: RouteEntry) => number): void {
    this.routes.sort(compare);
    for (const c of this.children.values()) c.seal(compare);
  }

  /** The route of the longest matching prefix whose constraints hold; this node's label already matched. */
  lookup(path: string, pos: number, req: RouteRequest): RouteEntry | undefined {
    if (pos < path.length) {
      const child = this.children.get(path.charCodeAt(pos));
      if (child !== undefined && path.startsWith(child.label, pos)) {
        const r = child.lookup(path, pos + child.label.length, req);
        if (r !== undefined) return r;
      }
    }
    return firstHolding(this.routes, req);
  }
}

function commonLength(label: string, key: string, pos: number): number {
  const max = Math.min(label.length, key.length - pos);
  let i = 0;
  while (i < max && label.charCodeAt(i) === key.charCodeAt(pos + i)) i++;
  return i;
}
