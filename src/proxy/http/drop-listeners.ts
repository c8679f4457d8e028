/**
 * Drops a closed node:http2 stream's listeners, from its 'close' handler.
 *
 * Why: node:http2 leaves `handle[kOwner]` pointing at the stream after it is
 * destroyed, and the native handle lives until a GC runs its weak callback;
 * V8's scavenger treats a weak handle to a wrapper that JS has modified as a
 * strong root, so only a mark-compact frees it. Until then the stream and,
 * through its listeners, the whole exchange (relay, calls, downstream,
 * record) were copied by every scavenge and promoted. Without the listeners
 * only Node's own objects are kept.
 *
 * Safe: a stream emits nothing after 'close', and the 'close' listeners that
 * have not run yet still run (EventEmitter copies the list before it calls
 * them). An 'error' listener is put back so a late error can never throw.
 *
 * node:http2's own 'removeListener' listener goes first, on its own: while an
 * emitter has one, removeAllListeners() removes every listener one by one
 * and emits 'removeListener' for each (~4 % of a gRPC pass-through's CPU for
 * the two streams of an exchange); without it, the rest is one reset. That
 * listener only counts 'priority' and 'frameError' listeners for the
 * session, which a closed stream no longer has a use for.
 */
export function dropListeners(stream: { removeAllListeners(event?: string): unknown; on(e: 'error', f: () => void): unknown }): void {
  stream.removeAllListeners('removeListener');
  stream.removeAllListeners();
  stream.on('error', noopError);
}

function noopError(): void {}
