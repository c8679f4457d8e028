import { KINDS, type Kind } from '../../config/kinds.js';
import { checkDocuments } from '../../config/loader.js';
import type { ConfigError, ResourceDocument } from '../../config/snapshot.js';
import type { ValidateOptions } from '../../config/validate.js';
import { TYPE_ORDER, versionOfSet, type WireResource } from '../protocol.js';
import type { StoreState, StoredEntry } from '../store/store-state.js';
import { DocumentForms } from './document-forms.js';
import { selects, type NodeIdentity } from './selector.js';
import { applyOverrides, isOverride } from './cluster-overrides.js';
import { NO_GENERATED, type GeneratedSet } from './generated-resources.js';

/**
 * What one sidecar sees: the resources whose selectors match it (stored, and
 * generated ones by the rules of generated-resources.ts), checked for
 * consistency as a whole (the same buildSnapshot the sidecar runs), per type.
 * Immutable; streams compare versions to decide whether to push.
 */
export interface NodeView {
  readonly revision: number;
  /** The GeneratedSet epoch it was built from. */
  readonly generation: number;
  readonly changedAtMs: number;
  readonly byKind: ReadonlyMap<Kind, ReadonlyMap<string, WireResource>>;
  readonly versions: ReadonlyMap<Kind, string>;
}

export function nodeKey(n: NodeIdentity): string {
  const labels = Object.entries(n.labels).sort(([a], [b]) => (a < b ? -1 : 1));
  return JSON.stringify([n.id, n.cluster, labels]);
}

/**
 * Builds a node's view, or returns the errors that keep it from being
 * published. `forms` keeps the decoded and wire forms of documents across
 * builds (NodeViewCache passes its own): a build after one generated
 * document changed decodes and packs only that one; the set is still
 * validated as a whole (references between documents).
 */
export function buildNodeView(
  state: StoreState,
  node: NodeIdentity,
  opts: ValidateOptions,
  generated: GeneratedSet = NO_GENERATED,
  forms: DocumentForms = new DocumentForms(),
): { view?: NodeView; errors: ConfigError[] } {
  const selected = state.resources.filter((e) => selects(e.doc.metadata.selector, node));
  // Overrides are served only through the generated clusters they name (cluster-overrides.ts).
  const entries = selected.filter((e) => !isOverride(e));
  const overrides = selected.filter(isOverride);
  const docs: ResourceDocument[] = [...entries.map((e) => e.doc), ...generatedFor(node, entries, overrides, generated)];
  const check = checkDocuments(docs, opts, (doc, i) => forms.decode(doc, i));
  if (!check.ok) return { errors: check.errors };
  // The order of buildSnapshot's documents (kind, then name): a response lists its resources in it.
  const order = check.value.map((d) => ({ d, doc: docs[d.source.index!]! }));
  order.sort((a, b) => KINDS.indexOf(a.d.kind) - KINDS.indexOf(b.d.kind) || (a.d.name < b.d.name ? -1 : a.d.name > b.d.name ? 1 : 0));
  const byKind = new Map<Kind, Map<string, WireResource>>(TYPE_ORDER.map((k) => [k, new Map()]));
  for (const { d, doc } of order) byKind.get(d.kind)!.set(d.name, forms.wire(doc, d));
  const versions = new Map<Kind, string>();
  for (const [k, m] of byKind) versions.set(k, versionOfSet(m.values()));
  const changedAtMs = Math.max(state.changedAtMs, generated.changedAtMs);
  return { view: { revision: state.revision, generation: generated.epoch, changedAtMs, byKind, versions }, errors: [] };
}

/** The generated resources that join a node's view beside its `stored` (selected) ones; see generated-resources.ts. */
function generatedFor(node: NodeIdentity, stored: readonly StoredEntry[], overrides: readonly StoredEntry[], generated: GeneratedSet): ResourceDocument[] {
  if (generated.resources.length === 0) return [];
  const key = (kind: string, name: string): string => `${kind}/${name}`;
  const operators = new Set(stored.map((e) => key(e.doc.kind, e.doc.metadata.name)));
  const joining = generated.resources.filter((r) => selects(r.metadata.selector, node) && !operators.has(key(r.kind, r.metadata.name)));
  const clusters = new Set([...stored.map((e) => e.doc), ...joining].filter((d) => d.kind === 'Cluster').map((d) => d.metadata.name));
  const served = joining.filter((r) => r.kind !== 'ClusterLoadAssignment' || clusters.has(r.metadata.name));
  return applyOverrides(served, overrides);
}

/**
 * Caches views by state revision and generated epoch, and by which stored
 * and generated resources a node selects (not by node identity): 1,000
 * sidecars of one service select the same resources and share one build per
 * change. The last good view of each node is kept for the fallback on a
 * consistency error.
 */
export class NodeViewCache {
  private revision = -1;
  private generation = -1;
  /** Selection key (indexes of the selected entries) → view, for the current revision. */
  private readonly bySelection = new Map<string, NodeView>();
  private readonly failed = new Map<string, ConfigError[]>();
  /** Node → its last published view (any revision); only for nodes with an open stream. */
  private readonly lastGood = new Map<string, NodeView>();
  /** Node → how many open streams it has (an entry of lastGood lives while this is > 0). */
  private readonly streams = new Map<string, number>();
  /** nodeKey per identity object (identities are immutable; streams ask on every push and ACK). */
  private readonly keys = new WeakMap<NodeIdentity, string>();
  /** Indexes of the generated resources (current epoch) that carry a selector: the others reach every node. */
  private selective: readonly number[] = [];
  /** Decoded and wire forms of documents, kept across revisions and epochs (per document object). */
  private readonly forms = new DocumentForms();

  constructor(
    private readonly opts: ValidateOptions,
    private readonly onError: (node: NodeIdentity, errors: ConfigError[]) => void,
  ) {}

  /** The node's view for `state` (and `generated`); on a consistency error, the previous view of that node (or undefined). */
  get(state: StoreState, node: NodeIdentity, generated: GeneratedSet = NO_GENERATED): NodeView | undefined {
    const key = this.keyOf(node);
    const prev = this.lastGood.get(key);
    if (prev && prev.revision === state.revision && prev.generation === generated.epoch) return prev;
    if (state.revision !== this.revision || generated.epoch !== this.generation) {
      this.revision = state.revision;
      this.generation = generated.epoch;
      this.bySelection.clear();
      this.failed.clear();
      this.selective = generated.resources.flatMap((r, i) => (r.metadata.selector ? [i] : []));
    }
    const selected: string[] = [];
    state.resources.forEach((e, i) => {
      if (selects(e.doc.metadata.selector, node)) selected.push(String(i));
    });
    // Which generated resources join follows from the selection (shadowing and CLAs depend only on it);
    // those without a selector join every view, so only the others tell selections apart.
    for (const i of this.selective) if (selects(generated.resources[i]!.metadata.selector, node)) selected.push(`g${i}`);
    const sel = selected.join(',');
    let view = this.bySelection.get(sel);
    if (!view) {
      const errors = this.failed.get(sel);
      if (errors) {
        this.onError(node, errors);
        return prev;
      }
      const built = buildNodeView(state, node, this.opts, generated, this.forms);
      if (!built.view) {
        this.failed.set(sel, built.errors);
        this.onError(node, built.errors);
        return prev;
      }
      view = built.view;
      this.bySelection.set(sel, view);
    }
    if (this.streams.has(key)) this.lastGood.set(key, view);
    return view;
  }

  /** A stream of this node opened: keep its last good view while it (or another stream of the node) is open. */
  retain(node: NodeIdentity): void {
    const key = this.keyOf(node);
    this.streams.set(key, (this.streams.get(key) ?? 0) + 1);
  }

  /** A stream of this node closed: when it was the node's last, forget its last good view. */
  release(node: NodeIdentity): void {
    const key = this.keyOf(node);
    const n = (this.streams.get(key) ?? 0) - 1;
    if (n > 0) {
      this.streams.set(key, n);
      return;
    }
    this.streams.delete(key);
    this.lastGood.delete(key);
  }

  /** Forgets a node's last good view (whatever streams it has). */
  forget(node: NodeIdentity): void {
    this.lastGood.delete(this.keyOf(node));
  }

  /** Nodes with a last good view (for tests and metrics). */
  get size(): number {
    return this.lastGood.size;
  }

  private keyOf(node: NodeIdentity): string {
    let key = this.keys.get(node);
    if (key === undefined) this.keys.set(node, (key = nodeKey(node)));
    return key;
  }
}
