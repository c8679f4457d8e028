/**
 * The long-lived streams a server holds open (WatchShelf, Chat, health
 * Watch). They never end on their own, so a graceful shutdown would wait for
 * them forever; the server ends them itself when it closes.
 *
 * States: open → closed. A stream tracked after close (it raced the shutdown)
 * is ended at once.
 */
export class OpenStreams {
  private readonly closers = new Set<() => void>();
  private closed = false;

  /** Registers how to end a stream; returns the function to call when it ends by itself. */
  track(end: () => void): () => void {
    if (this.closed) {
      end();
      return () => {};
    }
    // A fresh wrapper per stream so the same `end` can be tracked twice.
    const entry = (): void => end();
    this.closers.add(entry);
    return () => {
      this.closers.delete(entry);
    };
  }

  /** Ends every open stream; later `track` calls end theirs immediately. */
  closeAll(): void {
    this.closed = true;
    const all = [...this.closers];
    this.closers.clear();
    for (const end of all) end();
  }

  get size(): number {
    return this.closers.size;
  }
}
