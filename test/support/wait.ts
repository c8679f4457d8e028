/** Polls `cond` every 10 ms until it holds or `timeoutMs` passes (then throws with `what`). */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/**
 * Resolves once `read()` has kept the same value for `quietMs` (polled every
 * 10 ms); throws after `timeoutMs`. Only for flow control through real kernel
 * socket buffers, where "the writer stopped" has no event of its own: a writer
 * held by backpressure stays still, one that is not keeps moving.
 */
export async function waitForStill(read: () => number, what: string, quietMs: number, timeoutMs = 5000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = read();
  let since = Date.now();
  for (;;) {
    await new Promise((r) => setTimeout(r, 10));
    const now = read();
    if (now !== last) [last, since] = [now, Date.now()];
    else if (Date.now() - since >= quietMs) return now;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} to stop changing (at ${now})`);
  }
}

/** A promise with its resolve function, for a test to settle from an event handler. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
