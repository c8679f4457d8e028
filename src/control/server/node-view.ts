import type { Kind } from '../../config/kinds.js';
import { buildSnapshot } from '../../config/loader.js';
import type { ConfigError } from '../../config/snapshot.js';
import type { ValidateOptions } from '../../config/validate.js';
import { TYPE_ORDER, toWire, versionOfSet, type WireResource } from '../protocol.js';
import { plainDocs, type StoreState } from './resource-state.js';
import { selects, type NodeIdentity } from './selector.js';

/**
 * What one sidecar sees: the resources whose selectors match it, checked for
 * consistency as a whole (the same buildSnapshot the sidecar runs), per type.
 * Immutable; streams compare versions to decide whether to push.
 */
export interface NodeView {
  readonly revision: number;
  readonly changedAtMs: number;
  readonly byKind: ReadonlyMap<Kind, ReadonlyMap<string, WireResource>>;
  readonly versions: ReadonlyMap<Kind, string>;
}

export function nodeKey(n: NodeIdentity): string {
  const labels = Object.entries(n.labels).sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify([n.id, n.cluster, labels]);
}

/** Builds a node's view, or returns the errors that keep it from being published. */
export function buildNodeView(state: StoreState, node: NodeIdentity, opts: ValidateOptions): { view?: NodeView; errors: ConfigError[] } {
  const entries = state.resources.filter((e) => selects(e.doc.metadata.selector, node));
  const check = buildSnapshot(plainDocs(entries), opts);
  if (!check.ok) return { errors: check.errors };
  const byKind = new Map<Kind, Map<string, WireResource>>(TYPE_ORDER.map((k) => [k, new Map()]));
  for (const doc of check.value.documents) byKind.get(doc.kind)!.set(doc.metadata.name, toWire(doc));
  const versions = new Map<Kind, string>();
  for (const [k, m] of byKind) versions.set(k, versionOfSet(m.values()));
  return { view: { revision: state.revision, changedAtMs: state.changedAtMs, byKind, versions }, errors: [] };
}

/**
 * Caches views by node identity and state revision, so 1,000 sidecars of
 * one service cost one build per change.
 */
export class NodeViewCache {
  private revision = -1;
  private readonly views = new Map<string, NodeView>();

  constructor(
    private readonly opts: ValidateOptions,
    private readonly onError: (node: NodeIdentity, errors: ConfigError[]) => void,
  ) {}

  /** The node's view for `state`; on a consistency error, the previous view of that node (or undefined). */
  get(state: StoreState, node: NodeIdentity): NodeView | undefined {
    const key = nodeKey(node);
    const cached = this.views.get(key);
    if (cached && cached.revision === state.revision) return cached;
    if (state.revision !== this.revision) this.revision = state.revision;
    const built = buildNodeView(state, node, this.opts);
    if (!built.view) {
      this.onError(node, built.errors);
      return cached;
    }
    this.views.set(key, built.view);
    return built.view;
  }
}
