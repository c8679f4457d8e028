import type { OutgoingHttpHeaders } from 'node:http2';
import type { DescMethod, Message } from '@bufbuild/protobuf';
import type { AbortReason, DecodedOutcome, Downstream, ExchangeFilters } from '../downstream/downstream.js';
import type { DecodedVerdict, FilterCompileContext, FilterFactory, FilterVerdict, HttpFilter } from './filter.js';
import type { Listener } from '../../gen/outrigger/config/v1/listener_pb.js';
import type { CompiledRoute } from '../router/types.js';

/** One entry of a listener's filter list: its name, a registered filter type (default: the name) and its config. */
export interface FilterEntry {
  readonly name: string;
  readonly type?: string;
  readonly config: unknown;
}

/**
 * A route's override of one listener filter: another config, or `disabled`
 * (the route skips the filter), as Envoy's typed_per_filter_config does.
 */
export type FilterOverride = { readonly config: unknown; readonly type?: string } | { readonly disabled: true };

/**
 * The compiled filters of one route on one listener, in order. Request phases
 * run first-to-last, response phases last-to-first, so the first filter
 * listed is the outermost (it sees the request first and the response last),
 * as in Envoy's HTTP connection manager.
 *
 * Built once per config version; per-phase arrays and flags are computed
 * here so that an exchange checks one boolean for a phase nobody uses.
 */
export class FilterChain implements ExchangeFilters {
  static readonly EMPTY = new FilterChain([]);

  readonly hasRequestHeaders: boolean;
  readonly hasRequestData: boolean;
  readonly hasResponseHeaders: boolean;
  readonly hasResponseData: boolean;
  readonly hasTrailers: boolean;
  readonly hasDecodedHooks: boolean;
  private readonly reqHeaders: HttpFilter[];
  private readonly decReq: HttpFilter[];
  private readonly decResp: HttpFilter[];
  private readonly reqData: HttpFilter[];
  private readonly respHeaders: HttpFilter[];
  private readonly respData: HttpFilter[];
  private readonly respTrailers: HttpFilter[];

  constructor(readonly filters: readonly HttpFilter[]) {
    this.reqHeaders = filters.filter((f) => f.onRequestHeaders);
    this.reqData = filters.filter((f) => f.onRequestData);
    this.respHeaders = filters.filter((f) => f.onResponseHeaders).reverse();
    this.respData = filters.filter((f) => f.onResponseData).reverse();
    this.respTrailers = filters.filter((f) => f.onResponseTrailers).reverse();
    this.decReq = filters.filter((f) => f.onDecodedRequest);
    this.decResp = filters.filter((f) => f.onDecodedResponse).reverse();
    this.hasDecodedHooks = this.decReq.length > 0 || this.decResp.length > 0;
    this.hasRequestHeaders = this.reqHeaders.length > 0;
    this.hasRequestData = this.reqData.length > 0;
    this.hasResponseHeaders = this.respHeaders.length > 0;
    this.hasResponseData = this.respData.length > 0 || filters.some((f) => f.encodesResponseBody === true);
    this.hasTrailers = this.respTrailers.length > 0;
  }

  get isEmpty(): boolean {
    return this.filters.length === 0;
  }

  /**
   * Runs the request-header phase and calls `done` with the first stopping
   * verdict (or undefined). Synchronous filters run without a promise or a
   * microtask; an async one suspends the chain, which resumes only if the
   * exchange is still open (a client gone or a deadline passed meanwhile ends
   * it without calling `done`; `onAbort` hears of it, since nobody else is
   * answering the client while the chain waits).
   */
  runRequestHeaders(ds: Downstream, done: (v: FilterVerdict) => void, from = 0, onAbort?: (ds: Downstream, reason: AbortReason) => void): void {
    const fs = this.reqHeaders;
    for (let i = from; i < fs.length; i++) {
      let v: FilterVerdict | Promise<FilterVerdict>;
      try {
        v = fs[i]!.onRequestHeaders!(ds);
      } catch (err) {
        return done(filterFailed(fs[i]!, err));
      }
      if (v === undefined) continue;
      if (isPromise(v)) {
        let waiting = true;
        if (onAbort) ds.scope.onAbort((reason) => waiting && onAbort(ds, reason));
        v.then(
          (r) => {
            waiting = false;
            if (!ds.scope.open) return;
            if (r !== undefined) done(r);
            else this.runRequestHeaders(ds, done, i + 1, onAbort);
          },
          (err: unknown) => {
            waiting = false;
            if (ds.scope.open) done(filterFailed(fs[i]!, err));
          },
        );
        return;
      }
      return done(v);
    }
    done(undefined);
  }

  // The phases below run inside event handlers of the forwarders and the
  // transcoder: a filter that throws there cuts that exchange off (flag FE,
  // Downstream.filterFailed) instead of escaping into the event loop.

  requestData(ds: Downstream, chunk: Buffer): Buffer {
    try {
      for (const f of this.reqData) chunk = f.onRequestData!(ds, chunk);
    } catch {
      ds.filterFailed();
    }
    return chunk;
  }

  responseHeaders(ds: Downstream, status: number, headers: OutgoingHttpHeaders): void {
    try {
      for (const f of this.respHeaders) f.onResponseHeaders!(ds, status, headers);
    } catch {
      ds.filterFailed();
    }
  }

  responseData(ds: Downstream, chunk: Buffer): Buffer {
    try {
      for (const f of this.respData) chunk = f.onResponseData!(ds, chunk);
    } catch {
      ds.filterFailed();
    }
    return chunk;
  }

  decodedRequest(ds: Downstream, method: DescMethod, msg: Message): DecodedOutcome {
    return runDecoded(this.decReq, (f, m) => f.onDecodedRequest!(ds, method, m), msg);
  }

  decodedResponse(ds: Downstream, method: DescMethod, msg: Message): DecodedOutcome {
    return runDecoded(this.decResp, (f, m) => f.onDecodedResponse!(ds, method, m), msg);
  }

  trailers(ds: Downstream, trailers: OutgoingHttpHeaders): void {
    try {
      for (const f of this.respTrailers) f.onResponseTrailers!(ds, trailers);
    } catch {
      ds.filterFailed();
    }
  }
}

/**
 * Where a config version's filter entries come from. Listeners and routes
 * have no filter fields in the config yet (the security and traffic filter
 * issues add them, and then the default source reads them); the composition
 * root, tests and embedders can supply entries now.
 */
export interface FilterConfigSource {
  /** A listener's filter entries, in order (first is outermost). */
  entriesOf(listener: Listener): readonly FilterEntry[];
  /** A route's overrides by filter name (undefined: none). */
  overridesOf(route: CompiledRoute): ReadonlyMap<string, FilterOverride> | undefined;
}

export const NO_FILTER_CONFIG: FilterConfigSource = { entriesOf: () => [], overridesOf: () => undefined };

/** Filter factories by name, built once by the composition root. */
export class FilterRegistry {
  private readonly factories = new Map<string, FilterFactory>();

  constructor(factories: readonly FilterFactory[] = []) {
    for (const f of factories) this.register(f);
  }

  register(f: FilterFactory): void {
    if (this.factories.has(f.name)) throw new Error(`filter "${f.name}" is registered twice`);
    this.factories.set(f.name, f);
  }

  /**
   * Compiles a listener's entries with one route's overrides, then appends
   * the route's own filters (those its action implies, such as the
   * transcoder's CORS rules). Unknown names and bad configs throw.
   */
  compile(
    entries: readonly FilterEntry[],
    overrides: ReadonlyMap<string, FilterOverride> | undefined,
    routeFilters: readonly HttpFilter[] = [],
    ctx?: FilterCompileContext,
  ): FilterChain {
    if (entries.length === 0 && routeFilters.length === 0) return FilterChain.EMPTY;
    const out: HttpFilter[] = [];
    for (const e of entries) {
      const type = e.type ?? e.name;
      const factory = this.factories.get(type);
      if (!factory) throw new Error(`unknown filter "${type}"`);
      const o = overrides?.get(e.name);
      if (o && 'disabled' in o) continue;
      if (o?.type !== undefined && o.type !== type) throw new Error(`the override of "${e.name}" is a ${o.type} config; the filter is ${type}`);
      out.push(factory.compile(o ? o.config : e.config, e.name, ctx));
    }
    out.push(...routeFilters);
    return out.length === 0 ? FilterChain.EMPTY : new FilterChain(out);
  }
}

/** A filter that throws fails closed: the request is refused, never let through unchecked. */
function filterFailed(f: HttpFilter, err: unknown): FilterVerdict {
  return { code: 'filter_error', detail: `${f.name}: ${err instanceof Error ? err.message : String(err)}` };
}

/** Each filter in turn on the message the one before left; the first reply stops; a throw is the filter's failure. */
function runDecoded(fs: readonly HttpFilter[], call: (f: HttpFilter, m: Message) => DecodedVerdict, msg: Message): DecodedOutcome {
  for (const f of fs) {
    let r: DecodedVerdict;
    try {
      r = call(f, msg);
    } catch (err) {
      return { failed: `${f.name}: ${err instanceof Error ? err.message : String(err)}` };
    }
    if (r === undefined || r === null) continue;
    if ('reply' in r && !('$typeName' in r)) return { reply: r.reply };
    msg = r as Message;
  }
  return { message: msg };
}

function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof (v as { then?: unknown }).then === 'function';
}
