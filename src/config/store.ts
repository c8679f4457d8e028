import type { ConfigSnapshot } from './snapshot.js';

export type SnapshotListener = (next: ConfigSnapshot, prev: ConfigSnapshot | undefined) => void;

/**
 * The only mutable cell of configuration. Readers take `current()` once per
 * request and keep that snapshot to the end; writers replace it with `swap`.
 * Listeners run synchronously in registration order, so by the time `swap`
 * returns every subsystem has rebuilt what changed.
 */
export class ConfigStore {
  private snapshot: ConfigSnapshot | undefined;
  private readonly listeners: SnapshotListener[] = [];

  current(): ConfigSnapshot | undefined {
    return this.snapshot;
  }

  /** Installs `next`; returns false (and does nothing) when its version is already current. */
  swap(next: ConfigSnapshot): boolean {
    const prev = this.snapshot;
    if (prev && prev.version === next.version) return false;
    this.snapshot = next;
    for (const l of this.listeners) l(next, prev);
    return true;
  }

  subscribe(l: SnapshotListener): () => void {
    this.listeners.push(l);
    return () => {
      const i = this.listeners.indexOf(l);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }
}
