import { Counter, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Downstream } from '../../downstream/downstream.js';

/** What a security filter decided, as the audit log and the metrics see it. */
export type AuditOutcome = 'unauthenticated' | 'denied' | 'rate_limited' | 'logged' | 'service_error';

export interface AuditEvent {
  readonly outcome: AuditOutcome;
  /** Why, in a few words (`expired`, `bad_signature`, `no_policy_matched`…); never a credential. */
  readonly reason?: string;
  /** jwtAuthn: the provider(s) tried. */
  readonly provider?: string;
  /** rbac: the policy that decided. */
  readonly policy?: string;
  /** Rate limits: the limit's name and key kind (never the key's value when it is a header). */
  readonly descriptor?: string;
}

/**
 * Security events of the filters (docs/filters.md#audit-log): one JSON line
 * each, on their own destination (`--audit-log`), with who asked for what
 * and what was decided. Only facts the sidecar established are written —
 * never a token, a key, a header value or the query string.
 * Every event (logged or not) is counted in
 * `outrigger_filter_decisions_total{filter,outcome}`.
 */
export class AuditLog {
  private readonly decisions: Counter<'filter' | 'outcome'>;

  constructor(
    /** undefined: events are counted, not written. */
    private readonly logger: Logger | undefined,
    registry: Registry,
  ) {
    this.decisions = new Counter({
      name: 'outrigger_filter_decisions_total',
      help: 'Security filter decisions by filter (entry name) and outcome',
      labelNames: ['filter', 'outcome'],
      registers: [registry],
    });
  }

  record(ds: Downstream, filter: string, ev: AuditEvent): void {
    this.decisions.inc({ filter, outcome: ev.outcome });
    if (!this.logger) return;
    const h = ds.headers;
    const q = ds.target.indexOf('?');
    this.logger.info({
      filter,
      ...ev,
      // The exchange's decided id (the access log's and the local reply's), never a client's untrusted header.
      request_id: ds.ex.request_id,
      // The exchange's trace (tracing on): the same ids as its access-log line and spans; else what the client sent.
      trace_id: ds.ex.trace_id ?? traceId(one(h['traceparent'])),
      span_id: ds.ex.span_id,
      source: ds.conn.clientAddress,
      principal: ds.auth?.principal,
      peer_principal: ds.conn.peerPrincipal,
      route: ds.ex.route,
      method: ds.method,
      path: q < 0 ? ds.target : ds.target.slice(0, q),
      authority: ds.authority,
    });
  }
}

function one(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}

/** The trace id of a W3C traceparent (`00-<32 hex>-<16 hex>-<flags>`). */
function traceId(tp: string | undefined): string | undefined {
  if (tp === undefined) return undefined;
  const m = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/.exec(tp.trim());
  return m ? m[1] : undefined;
}
