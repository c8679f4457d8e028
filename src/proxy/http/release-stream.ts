/**
 * Releases what a closed node:http2 stream still holds, from its 'close'
 * handler: its listeners, and the header objects node:http2 keeps on it.
 *
 * Why: node:http2 leaves `handle[kOwner]` pointing at the stream after it is
 * destroyed, and the native handle lives until a GC runs its weak callback;
 * V8's scavenger treats a weak handle to a wrapper that JS has modified as a
 * strong root, so only a mark-compact frees it. Until then the stream and
 * all it references are copied by every scavenge and promoted:
 * - through its listeners, the whole exchange (relay, calls, downstream,
 *   record);
 * - the headers it sent (`stream.sentHeaders`, `sentTrailers`): the copy
 *   `request()`/`respond()` made, a dictionary of every header and its
 *   value. Released, the sidecar spent ~5 % less CPU per gRPC request (GC),
 *   and tracing at 0 % +0.8 µs per request instead of +3.7 in the same
 *   paired run: most of what its one extra header (`traceparent`) cost was
 *   this retention (docs/benchmarks.md).
 *
 * Safe: a stream emits nothing after 'close', and the 'close' listeners that
 * have not run yet still run (EventEmitter copies the list before it calls
 * them). An 'error' listener is put back so a late error can never throw.
 * Nothing reads a closed stream's sent headers (Node's own code reads them
 * while the stream is open; ours never).
 *
 * node:http2's own 'removeListener' listener goes first, on its own: while an
 * emitter has one, removeAllListeners() removes every listener one by one
 * and emits 'removeListener' for each (~4 % of a gRPC pass-through's CPU for
 * the two streams of an exchange); without it, the rest is one reset. That
 * listener only counts 'priority' and 'frameError' listeners for the
 * session, which a closed stream no longer has a use for.
 */
export function releaseClosedStream(stream: { removeAllListeners(event?: string): unknown; on(e: 'error', f: () => void): unknown }): void {
  stream.removeAllListeners('removeListener');
  stream.removeAllListeners();
  stream.on('error', noopError);
  const s = stream as unknown as Record<symbol, unknown>;
  if ((sentHeaders === undefined || sentTrailers === undefined) && searchesLeft > 0) findKeys(s);
  if (sentHeaders !== undefined) s[sentHeaders] = undefined;
  if (sentTrailers !== undefined) s[sentTrailers] = undefined;
}

function noopError(): void {}

/**
 * node:http2 keeps the sent headers under module-private symbols
 * (`Symbol('sent-headers')`, `Symbol('sent-trailers')`, the same in Node 20,
 * 22 and 24); they are found by description on the first stream that has
 * them (a stream gets each only once it sent it), looking at no more than
 * SEARCHES streams (a sidecar whose streams never send trailers stops
 * looking). Should a Node version rename them, nothing is released and
 * nothing breaks (test/unit/proxy/release-stream.test.ts would say so).
 */
let sentHeaders: symbol | undefined;
let sentTrailers: symbol | undefined;
const SEARCHES = 256;
let searchesLeft = SEARCHES;

function findKeys(s: object): void {
  searchesLeft--;
  for (const k of Object.getOwnPropertySymbols(s)) {
    if (k.description === 'sent-headers') sentHeaders = k;
    else if (k.description === 'sent-trailers') sentTrailers = k;
  }
}
