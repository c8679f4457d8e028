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
 */
export function dropListeners(stream: { removeAllListeners(): unknown; on(e: 'error', f: () => void): unknown }): void {
  stream.removeAllListeners();
  stream.on('error', noopError);
}

function noopError(): void {}
