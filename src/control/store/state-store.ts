import type { StoreState } from './store-state.js';

/**
 * Durable home of the control plane's state. The state is written whole, so
 * every reader sees one revision entirely or not at all.
 */
/** Why the store reports a change: another writer published one, or the connection came back (anything may have been missed). */
export type ChangeReason = 'change' | 'reconnect';

/**
 * Where replicas sharing a store publish what only they know — the sidecar
 * streams they hold, for Status. One entry per replica, expiring unless
 * written again (a killed replica's entry disappears after its TTL).
 */
export interface ReplicaStatusStore {
  /** Writes (replaces) this replica's entry; it expires after ttlMs unless written again. */
  putReplicaStatus(replica: string, text: string, ttlMs: number): Promise<void>;
  /** Every live replica's entry, by replica id (expired ones are gone). */
  replicaStatuses(): Promise<Map<string, string>>;
  /** Removes this replica's entry at once (clean shutdown). */
  removeReplicaStatus(replica: string): Promise<void>;
}

/**
 * Where the control plane's self-generated CA (a JSON text: certificate and
 * key PEM) is kept, so every replica sharing the store signs with the same
 * root. Written once, first writer wins; never part of the config state
 * (not in history, never served).
 */
export interface CaStore {
  /** The stored CA, or undefined when none was stored yet. */
  loadCa(): Promise<string | undefined>;
  /** Stores `candidate` unless a CA is already stored; resolves to the stored one (ours or the first writer's). */
  initCa(candidate: string): Promise<string>;
  /**
   * Replaces the stored CA with `next` if it is still `expected` (a root
   * rotation step); false when another replica changed it first.
   */
  replaceCa(expected: string, next: string): Promise<boolean>;
}

export interface StateStore {
  /** Reads the latest state (EMPTY_STATE when nothing was ever stored). */
  load(): Promise<StoreState>;
  /**
   * Writes `next` if the stored revision is still `expectedRevision`;
   * resolves false (writing nothing) when another writer got there first.
   * Resolves only once the write is durable.
   */
  commit(next: StoreState, expectedRevision: number): Promise<boolean>;
  /** Called when another writer (a replica) changed the state, and after a reconnect (full resync). */
  onExternalChange(cb: (reason: ChangeReason) => void): void;
  close(): Promise<void>;
  /** For logs: `file:/dir` or `redis://host:port`. */
  readonly description: string;
  /** Shared replica status, for stores several replicas share (redis); absent for a single-replica store. */
  readonly replicaStatus?: ReplicaStatusStore;
  /** The self-generated CA's home (both stores have one). */
  readonly ca?: CaStore;
}
