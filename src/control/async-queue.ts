/** An unbounded push queue read as an async iterable; close() ends the iteration after what is queued. */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | undefined;
  private closed = false;
  private failure: Error | undefined;

  push(item: T): void {
    if (this.closed) return;
    this.items.push(item);
    this.wake();
  }

  /** Ends the iteration; the first close wins (a later plain close() does not erase an error). */
  close(err?: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = err;
    this.wake();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /**
   * A hand-written iterator rather than an async generator: a stream of the
   * control plane passes every response through here, and a generator adds
   * several promise turns per item (this resolves a queued item at once).
   * Single consumer; return() ends this iteration (not the queue).
   */
  [Symbol.asyncIterator](): AsyncIterator<T> {
    let finished = false;
    const done = (): IteratorResult<T> => ({ done: true, value: undefined });
    const next = (): Promise<IteratorResult<T>> => {
      if (finished) return Promise.resolve(done());
      if (this.items.length > 0) return Promise.resolve({ done: false, value: this.items.shift()! });
      if (this.closed) {
        finished = true;
        return this.failure ? Promise.reject(this.failure) : Promise.resolve(done());
      }
      return new Promise<void>((r) => (this.waiter = r)).then(next);
    };
    return {
      next,
      return: (): Promise<IteratorResult<T>> => {
        finished = true;
        return Promise.resolve(done());
      },
      // As a generator would: `yield*` delegation (connect's pipelines) needs throw().
      throw: (err?: unknown): Promise<IteratorResult<T>> => {
        finished = true;
        return Promise.reject(err);
      },
    };
  }
}
