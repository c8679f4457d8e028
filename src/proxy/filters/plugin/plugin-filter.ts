import type { OutgoingHttpHeaders } from 'node:http2';
import { fromBinary, toBinary, type DescMethod, type Message } from '@bufbuild/protobuf';
import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import { encodeFrame, FLAG_COMPRESSED, FrameReader } from '../../../core/grpc-framing.js';
import { exportOf, type ModuleLoader } from '../../../core/module-loader.js';
import type { Plugin } from '../../../gen/outrigger/filters/plugin/v1/plugin_pb.js';
import type { Downstream } from '../../downstream/downstream.js';
import { encodeGrpcMessage } from '../../http/headers.js';
import type { FilterFactory, FilterVerdict, HttpFilter } from '../filter.js';
import type { MessageHookResult, MessageReply, PluginFilter } from './plugin-api.js';

export const PLUGIN_FILTER_TYPE = 'plugin';

/** The largest request message a unary request hook reads whole (gRPC's default receive limit). */
export const MAX_HOOKED_REQUEST_BYTES = 4 * 1024 * 1024;

const INTERNAL = 13;

export interface PluginFactoryDeps {
  /** Imported the modules before this config version compiles (ListenerManager.apply → preparePlugins). */
  readonly modules: ModuleLoader;
  readonly registry: Registry;
  readonly logger?: Logger | undefined;
}

type Phase = 'compile' | 'onRequestHeaders' | 'onRequestData' | 'onResponseHeaders' | 'onResponseData' | 'onResponseTrailers' | 'onRequestMessage' | 'onResponseMessage';

/**
 * `httpFilters[].plugin {module, config}`: a filter from a module of the
 * user's (docs/plugins.md). The module's `compile(config, name)` builds the
 * same phases a built-in filter has; each is wrapped so that a plugin that
 * throws costs its exchange only: counted (outrigger_plugin_errors_total
 * {plugin, phase}), one log line, and a 500 / INTERNAL where the answer has
 * not started (request phases and hooks, response-message hooks through the
 * trailers), else the chain's cut-off (flag FE). Message hooks are added on
 * routes whose descriptors know the call's method.
 */
export function pluginFactory(deps: PluginFactoryDeps): FilterFactory<Plugin> {
  const errors = new Counter({
    name: 'outrigger_plugin_errors_total',
    help: 'Plugin filters that threw, by filter name and phase (the exchange got 500 / INTERNAL or was cut off)',
    labelNames: ['plugin', 'phase'] as const,
    registers: [deps.registry],
  });
  return {
    name: PLUGIN_FILTER_TYPE,
    compile(config, name, ctx): HttpFilter {
      const loaded = deps.modules.get(config.module);
      if (loaded === undefined) throw new Error(`plugin module "${config.module}" was not loaded`);
      if (!loaded.ok) throw new Error(loaded.error);
      const compile = exportOf(loaded.exports, 'compile');
      if (typeof compile !== 'function') throw new Error(`${config.module} exports no compile(config, name) function`);
      let pf: PluginFilter;
      try {
        pf = compile(config.config ?? {}, name) as PluginFilter;
      } catch (err) {
        throw new Error(`${config.module}: compile threw: ${messageOf(err)}`);
      }
      if (pf === null || typeof pf !== 'object') throw new Error(`${config.module}: compile returned no filter`);
      const failed = (ds: Downstream | undefined, phase: Phase, err: unknown): void => {
        errors.inc({ plugin: name, phase });
        deps.logger?.error({ plugin: name, module: config.module, phase, err: messageOf(err), request_id: ds?.ex.request_id }, 'plugin threw');
      };
      return new PluginHttpFilter(name, pf, ctx?.grpcMethods, failed);
    },
  };
}

/** Per exchange, response side of message hooks: framing state and a status of the plugin's that ends the call. */
interface ResponseState {
  readonly method: DescMethod;
  readonly reader: FrameReader;
  index: number;
  end: MessageReply | undefined;
}

/** Per exchange, a streaming request's framing state. */
interface RequestState {
  readonly method: DescMethod;
  readonly reader: FrameReader;
  index: number;
}

class PluginHttpFilter implements HttpFilter {
  readonly onRequestHeaders?: HttpFilter['onRequestHeaders'];
  readonly onRequestData?: HttpFilter['onRequestData'];
  readonly onResponseHeaders?: HttpFilter['onResponseHeaders'];
  readonly onResponseData?: HttpFilter['onResponseData'];
  readonly onResponseTrailers?: HttpFilter['onResponseTrailers'];
  readonly onDecodedRequest?: HttpFilter['onDecodedRequest'];
  readonly onDecodedResponse?: HttpFilter['onDecodedResponse'];
  readonly encodesResponseBody?: boolean;
  /** Exchanges with message hooks in progress (WeakMaps: nothing to clean up, nothing per exchange without hooks). */
  private readonly responses = new WeakMap<Downstream, ResponseState | null>();
  private readonly requests = new WeakMap<Downstream, RequestState>();

  constructor(
    readonly name: string,
    private readonly pf: PluginFilter,
    methods: ReadonlyMap<string, DescMethod> | undefined,
    private readonly failed: (ds: Downstream | undefined, phase: Phase, err: unknown) => void,
  ) {
    const reqHook = methods !== undefined && typeof pf.onRequestMessage === 'function' ? methods : undefined;
    const respHook = methods !== undefined && typeof pf.onResponseMessage === 'function' ? methods : undefined;
    if (pf.encodesResponseBody === true) this.encodesResponseBody = true;
    if (pf.onRequestHeaders || reqHook) this.onRequestHeaders = (ds) => this.requestHeaders(ds, reqHook);
    if (pf.onRequestData || reqHook) this.onRequestData = (ds, chunk) => this.requestData(ds, chunk);
    if (pf.onResponseHeaders) {
      this.onResponseHeaders = (ds, status, headers) => this.guard(ds, 'onResponseHeaders', () => pf.onResponseHeaders!(ds, status, headers));
    }
    if (pf.onResponseData || respHook) this.onResponseData = (ds, chunk) => this.responseData(ds, chunk, respHook);
    if (pf.onResponseTrailers || respHook) this.onResponseTrailers = (ds, trailers) => this.responseTrailers(ds, trailers);
    // The REST transcoder holds decoded messages itself: the hooks run there on every route (it knows the method).
    if (typeof pf.onRequestMessage === 'function') {
      this.onDecodedRequest = (ds, method, msg) => this.guard(ds, 'onRequestMessage', () => pf.onRequestMessage!(msg, { ds, method, index: 0 }));
    }
    if (typeof pf.onResponseMessage === 'function') {
      const index = new WeakMap<Downstream, number>();
      this.onDecodedResponse = (ds, method, msg) => {
        const i = index.get(ds) ?? 0;
        index.set(ds, i + 1);
        return this.guard(ds, 'onResponseMessage', () => pf.onResponseMessage!(msg, { ds, method, index: i }));
      };
    }
  }

  /** Runs a phase that has no answer of its own to give: a throw is counted, logged, and passed to the chain (cut-off, FE). */
  private guard<T>(ds: Downstream, phase: Phase, fn: () => T): T {
    try {
      return fn();
    } catch (err) {
      this.failed(ds, phase, err);
      throw err;
    }
  }

  private fail(ds: Downstream, phase: Phase, err: unknown): FilterVerdict {
    this.failed(ds, phase, err);
    return { code: 'filter_error', detail: `plugin ${this.name} failed in ${phase}` };
  }

  // ---- request side ----

  private requestHeaders(ds: Downstream, methods: ReadonlyMap<string, DescMethod> | undefined): FilterVerdict | Promise<FilterVerdict> {
    const own = this.pf.onRequestHeaders;
    let v: FilterVerdict | Promise<FilterVerdict>;
    try {
      v = own ? own.call(this.pf, ds) : undefined;
    } catch (err) {
      return this.fail(ds, 'onRequestHeaders', err);
    }
    const next = (r: FilterVerdict): FilterVerdict | Promise<FilterVerdict> => {
      if (r !== undefined || methods === undefined || !ds.grpc) return r;
      const method = methods.get(pathOf(ds.target));
      if (method === undefined) return undefined;
      // One request message (unary, server streaming): read it before any upstream contact, so a reply can stop the call.
      if (method.methodKind === 'unary' || method.methodKind === 'server_streaming') return this.hookSingleRequest(ds, method);
      this.requests.set(ds, { method, reader: new FrameReader(MAX_HOOKED_REQUEST_BYTES), index: 0 });
      return undefined;
    };
    if (v !== undefined && typeof (v as Promise<FilterVerdict>).then === 'function') {
      return (v as Promise<FilterVerdict>).then(next, (err: unknown) => this.fail(ds, 'onRequestHeaders', err));
    }
    return next(v as FilterVerdict);
  }

  private hookSingleRequest(ds: Downstream, method: DescMethod): Promise<FilterVerdict> {
    return new Promise<FilterVerdict>((resolve) => {
      const src = ds.requestBody;
      const chunks: Buffer[] = [];
      let n = 0;
      let settled = false;
      const finish = (v: FilterVerdict): void => {
        if (settled) return;
        settled = true;
        src.off('data', onData);
        src.off('end', onEnd);
        resolve(v);
      };
      const onData = (c: Buffer): void => {
        n += c.length;
        if (n > MAX_HOOKED_REQUEST_BYTES + 5) return finish({ code: 'request_too_large' });
        chunks.push(c);
      };
      const onEnd = (): void => {
        const frames = new FrameReader().push(Buffer.concat(chunks, n));
        // Not one plain message (compressed, or a malformed stream): the upstream judges it as sent.
        if (frames.length !== 1 || (frames[0]!.flags & FLAG_COMPRESSED) !== 0) {
          ds.replaceRequestBody(Buffer.concat(chunks, n));
          return finish(undefined);
        }
        let out: Message;
        try {
          const msg = fromBinary(method.input, frames[0]!.data);
          const r = this.pf.onRequestMessage!(msg, { ds, method, index: 0 });
          if (isReply(r)) return finish(grpcReply(r.reply));
          out = r ?? msg;
        } catch (err) {
          return finish(this.fail(ds, 'onRequestMessage', err));
        }
        ds.replaceRequestBody(encodeFrame(0, toBinary(method.input, out)));
        delete ds.headers['content-length'];
        finish(undefined);
      };
      src.on('data', onData);
      src.once('end', onEnd);
      ds.scope.onAbort(() => finish(undefined));
    });
  }

  private requestData(ds: Downstream, chunk: Buffer): Buffer {
    if (this.pf.onRequestData) chunk = this.guard(ds, 'onRequestData', () => this.pf.onRequestData!(ds, chunk));
    const st = this.requests.get(ds);
    if (st === undefined) return chunk;
    // Client and bidi streaming: each complete message through the hook, re-framed; a reply here cannot stop what went upstream.
    const out: Buffer[] = [];
    st.reader.each(chunk, (f) => {
      if ((f.flags & FLAG_COMPRESSED) !== 0) {
        out.push(encodeFrame(f.flags, f.data));
        return true;
      }
      const msg = fromBinary(st.method.input, f.data);
      const r = this.guard(ds, 'onRequestMessage', () => this.pf.onRequestMessage!(msg, { ds, method: st.method, index: st.index++ }));
      if (isReply(r)) {
        this.failed(ds, 'onRequestMessage', new Error('a reply from onRequestMessage of a client-streaming call is not supported'));
        throw new Error('reply from a streaming request hook');
      }
      out.push(encodeFrame(0, toBinary(st.method.input, r ?? msg)));
      return true;
    });
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  // ---- response side ----

  private responseState(ds: Downstream, methods: ReadonlyMap<string, DescMethod> | undefined): ResponseState | null {
    let st = this.responses.get(ds);
    if (st === undefined) {
      const method = methods !== undefined && ds.grpc ? methods.get(pathOf(ds.target)) : undefined;
      st = method === undefined ? null : { method, reader: new FrameReader(), index: 0, end: undefined };
      this.responses.set(ds, st);
    }
    return st;
  }

  private responseData(ds: Downstream, chunk: Buffer, methods: ReadonlyMap<string, DescMethod> | undefined): Buffer {
    if (this.pf.onResponseData) chunk = this.guard(ds, 'onResponseData', () => this.pf.onResponseData!(ds, chunk));
    if (methods === undefined || !ds.grpc) return chunk;
    const st = this.responseState(ds, methods);
    if (st === null) return chunk;
    const out: Buffer[] = [];
    st.reader.each(chunk, (f) => {
      // After a status of the plugin's (or its failure), the rest of the stream is dropped; the trailers carry the status.
      if (st.end !== undefined) return true;
      if ((f.flags & FLAG_COMPRESSED) !== 0) {
        out.push(encodeFrame(f.flags, f.data));
        return true;
      }
      let r: MessageHookResult;
      let msg: Message;
      try {
        msg = fromBinary(st.method.output, f.data);
        r = this.pf.onResponseMessage!(msg, { ds, method: st.method, index: st.index++ });
      } catch (err) {
        this.failed(ds, 'onResponseMessage', err);
        st.end = { code: INTERNAL, message: `plugin ${this.name} failed in onResponseMessage` };
        return true;
      }
      if (isReply(r)) st.end = r.reply;
      else out.push(encodeFrame(0, toBinary(st.method.output, r ?? msg)));
      return true;
    });
    return out.length === 1 ? out[0]! : Buffer.concat(out);
  }

  private responseTrailers(ds: Downstream, trailers: OutgoingHttpHeaders): void {
    const st = this.responses.get(ds);
    if (st?.end !== undefined) {
      trailers['grpc-status'] = String(st.end.code);
      trailers['grpc-message'] = encodeGrpcMessage(st.end.message ?? '');
      delete trailers['grpc-status-details-bin'];
      ds.ex.grpc_status = String(st.end.code);
    }
    if (this.pf.onResponseTrailers) this.guard(ds, 'onResponseTrailers', () => this.pf.onResponseTrailers!(ds, trailers));
  }
}

function grpcReply(r: MessageReply): FilterVerdict {
  return {
    status: 200,
    headers: { 'content-type': 'application/grpc', 'grpc-status': String(r.code), 'grpc-message': encodeGrpcMessage(r.message ?? '') },
  };
}

function isReply(r: MessageHookResult): r is { readonly reply: MessageReply } {
  return r !== undefined && r !== null && typeof r === 'object' && 'reply' in r && !('$typeName' in r);
}

function pathOf(target: string): string {
  const q = target.indexOf('?');
  return q < 0 ? target : target.slice(0, q);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
