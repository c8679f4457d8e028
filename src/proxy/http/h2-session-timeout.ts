import type { Http2Session } from 'node:http2';

let timeoutSymbol: symbol | null | undefined;

/**
 * `session.setTimeout(ms, onIdle)` whose timer is also cleared when the
 * session closes, however it closed.
 *
 * Node (20 to at least 24) clears a session's timer in closeSession() with
 * `session.setTimeout(0)`, after marking the session destroyed, and
 * setTimeout() returns early on a destroyed session: the timer stays armed
 * until it fires. Until then it holds the session (its bound `_onTimeout`),
 * the socket and everything their listeners reach, such as the stream
 * limiter: with the default 300 s idle timeout every closed HTTP/2
 * connection stayed in the heap for five minutes (the 1,109 connections of
 * the rapid-reset benchmark: +8 MiB of V8 heap). Calling setTimeout(0)
 * before each destroy would not cover the paths Node takes itself (socket
 * closed, session error), so the timer is cleared on 'close' through Node's
 * own `kTimeout` symbol (description 'timeout'); where it is not found
 * (another Node version) this is only the plain setTimeout.
 */
export function sessionIdleTimeout(session: Http2Session, ms: number, onIdle: () => void): void {
  session.setTimeout(ms, onIdle);
  if (timeoutSymbol === undefined) timeoutSymbol = Object.getOwnPropertySymbols(session).find((s) => s.description === 'timeout') ?? null;
  const sym = timeoutSymbol;
  if (sym) session.once('close', () => clearTimeout((session as unknown as Record<symbol, NodeJS.Timeout | undefined>)[sym]));
}
