import type { Kind } from '../../config/kinds.js';
import type { ResourceDocument } from '../../config/snapshot.js';

/**
 * What the control plane stores. These types live with the stores, not with
 * the server that computes changes, so the stores never import the server.
 */

/**
 * Which sidecars a resource reaches: `metadata.selector` of a document, every
 * given field must match (AND). A resource without a selector reaches all.
 * Matching is the server's (selector.ts); this is only the stored shape.
 *
 *   selector:
 *     nodeId: "web-*"        # glob: * any run, ? one character
 *     nodeCluster: web
 *     labels: { app: web }   # every pair must be among the node's labels
 */
export interface Selector {
  readonly nodeId?: string;
  readonly nodeCluster?: string;
  readonly labels?: Readonly<Record<string, string>>;
}

/** A stored resource: its normalised document (selector included) and the revision that last changed it. */
export interface StoredEntry {
  readonly doc: ResourceDocument & { metadata: { selector?: Selector } };
  readonly version: string;
}

export type Action = 'APPLY' | 'DELETE' | 'ROLLBACK';

export interface HistoryEntry {
  readonly revision: number;
  readonly kind: Kind;
  readonly name: string;
  readonly action: Action;
  readonly who: string;
  readonly atMs: number;
  /** Absent for a deletion. */
  readonly doc?: StoredEntry['doc'];
}

/**
 * Everything the control plane stores, as one immutable value: the store
 * writes it whole (file: one atomic rename; redis: one key in a
 * transaction), so a reader sees a revision entirely or not at all.
 */
export interface StoreState {
  readonly revision: number;
  readonly resources: readonly StoredEntry[];
  readonly history: readonly HistoryEntry[];
  /** Wall-clock time of the last change (push latency starts here). */
  readonly changedAtMs: number;
}

export const EMPTY_STATE: StoreState = { revision: 0, resources: [], history: [], changedAtMs: 0 };
