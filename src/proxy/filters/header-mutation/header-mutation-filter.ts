import { hostname } from 'node:os';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { parseHeaderTemplate, type TemplatePart } from '../../../core/header-template.js';
import type { HeaderMutation, HeaderOps } from '../../../gen/outrigger/filters/header_mutation/v1/header_mutation_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import type { FilterFactory, HttpFilter } from '../filter.js';

/** A compiled value: a constant, or a function of the exchange (only when the template has variables). */
type Value = string | ((ds: Downstream) => string);

interface Ops {
  readonly remove: readonly string[];
  readonly set: readonly (readonly [string, Value])[];
  readonly add: readonly (readonly [string, Value])[];
}

type Headers = IncomingHttpHeaders | OutgoingHttpHeaders;

/**
 * `headerMutation` (docs/filters.md#headermutation): remove, then set, then
 * add, on the request (before it goes upstream, so later filters and the
 * upstream see the result), on every response head, and on trailers.
 * Templates are compiled once per config version: a constant value costs an
 * assignment, a variable one function call per header.
 */
export function headerMutationFactory(): FilterFactory<HeaderMutation> {
  return {
    name: 'headerMutation',
    compile(c: HeaderMutation, name: string): HttpFilter {
      const host = hostname();
      const req = compileOps(c.request, host);
      const resp = compileOps(c.response, host);
      const tr = compileOps(c.responseTrailers, host);
      return {
        name,
        ...(req ? { onRequestHeaders: (ds: Downstream) => void apply(ds, req, ds.headers) } : {}),
        ...(resp ? { onResponseHeaders: (ds: Downstream, _s: number, h: OutgoingHttpHeaders) => apply(ds, resp, h) } : {}),
        ...(tr ? { onResponseTrailers: (ds: Downstream, t: OutgoingHttpHeaders) => apply(ds, tr, t) } : {}),
      };
    },
  };
}

function compileOps(o: HeaderOps | undefined, host: string): Ops | undefined {
  if (!o || (o.add.length === 0 && o.set.length === 0 && o.remove.length === 0)) return undefined;
  return {
    remove: o.remove.map((n) => n.toLowerCase()),
    set: o.set.map((h) => [h.name.toLowerCase(), compileValue(h.value, host)] as const),
    add: o.add.map((h) => [h.name.toLowerCase(), compileValue(h.value, host)] as const),
  };
}

function apply(ds: Downstream, ops: Ops, h: Headers): void {
  for (const n of ops.remove) delete h[n];
  for (const [n, v] of ops.set) {
    const s = typeof v === 'string' ? v : v(ds);
    if (s !== '') h[n] = s;
  }
  for (const [n, v] of ops.add) {
    const s = typeof v === 'string' ? v : v(ds);
    if (s === '') continue;
    const cur = h[n];
    if (cur === undefined) h[n] = s;
    else if (Array.isArray(cur)) h[n] = [...cur, s];
    else h[n] = [String(cur), s];
  }
}

/** The value of one variable for an exchange (docs/filters.md lists them). */
function variable(p: Exclude<TemplatePart, string>, host: string): (ds: Downstream) => string {
  switch (p.variable) {
    case 'DOWNSTREAM_REMOTE_ADDRESS':
      return (ds) => ds.conn.clientAddress;
    case 'REQ': {
      const n = p.arg!;
      return (ds) => {
        const v = ds.headers[n];
        return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
      };
    }
    case 'ROUTE':
      return (ds) => ds.ex.route;
    case 'CLUSTER':
      return (ds) => ds.ex.cluster || ds.routeCluster;
    case 'START_TIME':
      return (ds) => new Date(Math.round(ds.ex.startWallMs())).toISOString();
    case 'REQUEST_ID':
      return (ds) => ds.ex.request_id ?? '';
    case 'UPSTREAM_HOST':
      return (ds) => ds.ex.upstream ?? '';
    case 'PROTOCOL':
      return (ds) => ds.ex.protocol;
    case 'HOSTNAME':
      return () => host;
  }
}

function compileValue(template: string, host: string): Value {
  const parts = parseHeaderTemplate(template);
  if (parts.every((p) => typeof p === 'string')) return parts.join('');
  const fns = parts.map((p) => (typeof p === 'string' ? p : variable(p, host)));
  if (fns.length === 1) return fns[0] as (ds: Downstream) => string;
  return (ds) => {
    let s = '';
    for (const f of fns) s += typeof f === 'string' ? f : f(ds);
    return s;
  };
}
