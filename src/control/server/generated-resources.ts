import type { ResourceDocument } from '../../config/snapshot.js';
import type { Selector } from '../store/store-state.js';

/** A resource a provider generated: a normal document, with an optional `metadata.selector` like a stored one. */
export type GeneratedResource = ResourceDocument & { readonly metadata: { readonly selector?: Selector } };

/**
 * Resources the control plane serves without storing them: what a discovery
 * provider derives from elsewhere (e.g. ClusterLoadAssignments from a
 * service registry). They change often and are not the operator's intent,
 * so a change writes no store revision, no history and no audit line; it
 * only recomputes the nodes' views and pushes (the same debounce as a stored
 * change).
 *
 * How they meet the stored resources, per node (as Istio lets explicit
 * config override what it discovers):
 * - a generated resource reaches the nodes its selector selects (all without one);
 * - an apply may not write a resource of a generated one's kind and name
 *   (cluster-overrides.ts: an operator changes a generated Cluster's
 *   settings with an override naming it, and overrides that select the
 *   node are merged into the generated Cluster of its view);
 * - an operator's resource of the same kind and name stored before the
 *   generated one appeared wins: the generated one is left out of that
 *   node's view (and is back once the operator's is deleted or stops
 *   selecting the node);
 * - a generated ClusterLoadAssignment reaches a node only when the node's
 *   view has a Cluster of its name (endpoints of clusters a node does not
 *   know would only make its view inconsistent).
 * The provider keeps kind+name unique within its set; a set that makes a
 * node's view inconsistent is handled like a bad store change (the node
 * keeps its last good view, and the errors are logged).
 */
export interface GeneratedResources {
  /** The whole current set (an immutable array: the control plane keeps it until the next change). */
  current(): readonly GeneratedResource[];
  /** Calls `fn` after each change of the set; returns the unsubscribe. */
  subscribe(fn: () => void): () => void;
  /** Wall-clock ms of the source change the current set reflects (the provider's event); default: when the control plane took it. */
  changedAtMs?(): number;
}

/** The generated set as the views are computed from it: `epoch` moves with every change. */
export interface GeneratedSet {
  readonly epoch: number;
  readonly resources: readonly GeneratedResource[];
  /** Wall-clock time of the change (push latency starts here). */
  readonly changedAtMs: number;
}

export const NO_GENERATED: GeneratedSet = { epoch: 0, resources: [], changedAtMs: 0 };

/** A GeneratedResources a provider fills: `replace` swaps the whole set and tells the subscribers. */
export class GeneratedResourceSet implements GeneratedResources {
  private resources: readonly GeneratedResource[];
  private readonly subscribers = new Set<() => void>();

  constructor(initial: readonly GeneratedResource[] = []) {
    this.resources = [...initial];
  }

  current(): readonly GeneratedResource[] {
    return this.resources;
  }

  replace(resources: readonly GeneratedResource[]): void {
    this.resources = [...resources];
    for (const fn of this.subscribers) fn();
  }

  subscribe(fn: () => void): () => void {
    this.subscribers.add(fn);
    return () => void this.subscribers.delete(fn);
  }
}
