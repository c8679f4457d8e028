import type { ConfigSnapshot } from './snapshot.js';

export type SnapshotListener = (next: ConfigSnapshot, prev: ConfigSnapshot | undefined) => void;

/** The published config as its readers see it: read `current()`, or subscribe to every swap. */
export interface PublishedConfig {
  current(): ConfigSnapshot | undefined;
  subscribe(l: SnapshotListener): () => void;
}

/**
 * The only mutable cell of configuration: the one published snapshot.
 * Readers take `current()` once per request and keep that snapshot to the
 * end. Its one writer is ConfigPipeline (`swap`, after the data path took
 * the snapshot); everyone else holds it as a PublishedConfig. Listeners run
 * synchronously in registration order, so by the time `swap` returns every
 * subsystem has rebuilt what changed.
 */
export class ConfigStore implements PublishedConfig {
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
