import pino, { type Logger } from 'pino';
import type { ExchangeRecord } from './exchange-record.js';

/**
 * The access log's line, written without pino's generic serializer.
 *
 * pino turns the record object into JSON key by key through its generic
 * `asJson` (a property walk, a stringifier lookup and a type switch per
 * field): ~8 % of the sidecar's CPU per request in a gRPC pass-through
 * profile. The access record has a fixed shape, so it is formatted here
 * directly — byte for byte what `logger.info(record, 'access')` writes
 * (test/unit/observability/access-line.test.ts compares the two) — and
 * handed to the logger's own destination (sonic-boom, buffered), so
 * flushing, the file and the worker binding stay pino's.
 *
 * Only loggers made by `createLogger` (no serializers, redaction, mixins or
 * hooks; ISO time; the level as its label) are marked for this path; any
 * other logger (tests inject their own) gets `logger.info` as before.
 */
const FAST = Symbol('outrigger.fastAccessLine');

/** Marks a logger (and, through pino's prototype chain, its children) as formatted like `createLogger`'s. */
export function markFastLines(logger: Logger): Logger {
  (logger as unknown as Record<symbol, boolean>)[FAST] = true;
  return logger;
}

// Characters JSON must escape. (Lone surrogates cannot come off the wire: header values and paths are
// decoded as latin1; pino writes them raw in short strings, and so does this.)
const NEEDS_ESCAPE = /[\u0000-\u001f"\\]/;

/** A JSON string literal: the common case (nothing to escape) without JSON.stringify. */
export function jsonString(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}

/** What the access line shows: the exchange's record, plus the attempts and span id the line has. `undefined` fields are left out, as pino does. */
export interface AccessRecord extends ExchangeRecord {
  readonly attempts: number | undefined;
  readonly span_id: string | undefined;
}

const str = (key: string, v: string | undefined): string => (v === undefined ? '' : `,"${key}":${jsonString(v)}`);
// JSON.stringify(NaN) is null, as pino writes it.
const num = (key: string, v: number | undefined): string => (v === undefined ? '' : `,"${key}":${Number.isFinite(v) ? String(v) : 'null'}`);

function headersJson(h: Record<string, string>): string {
  let out = '';
  for (const k in h) {
    const v = h[k];
    if (v === undefined) continue;
    out += `${out === '' ? '' : ','}${jsonString(k)}:${jsonString(v)}`;
  }
  return `{${out}}`;
}

/** The line pino would write for `logger.info(r, 'access')` on a `createLogger` logger, newline included. */
export function accessLine(listener: string, r: AccessRecord, bindings: string, nowMs: number): string {
  return (
    `{"level":"info","time":"${new Date(nowMs).toISOString()}"${bindings}` +
    str('listener', listener) +
    str('method', r.method) +
    str('authority', r.authority) +
    str('path', r.path) +
    str('protocol', r.protocol) +
    num('status', r.status) +
    str('grpc_status', r.grpc_status) +
    num('duration_ms', r.duration_ms) +
    num('bytes_in', r.bytes_in) +
    num('bytes_out', r.bytes_out) +
    str('upstream', r.upstream) +
    str('route', r.route) +
    str('cluster', r.cluster) +
    str('request_id', r.request_id) +
    str('flags', r.flags) +
    num('attempts', r.attempts) +
    (r.headers === undefined ? '' : `,"headers":${headersJson(r.headers)}`) +
    str('source_principal', r.source_principal) +
    str('upstream_principal', r.upstream_principal) +
    str('trace_id', r.trace_id) +
    str('span_id', r.span_id) +
    ',"msg":"access"}\n'
  );
}

type PinoInternals = Record<symbol, unknown> & { isLevelEnabled(level: string): boolean };

/** Writes an access record: directly when the logger is marked, else through `logger.info`. */
export function writeAccess(logger: Logger, listener: string, r: AccessRecord, toObject: () => object): void {
  const l = logger as unknown as PinoInternals;
  if (l[FAST] !== true) {
    logger.info(toObject(), 'access');
    return;
  }
  if (!l.isLevelEnabled('info')) return;
  const stream = l[pino.symbols.streamSym] as { write(s: string): unknown };
  stream.write(accessLine(listener, r, (l[pino.symbols.chindingsSym] as string | undefined) ?? '', Date.now()));
}
