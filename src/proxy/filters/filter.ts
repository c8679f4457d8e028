import type { OutgoingHttpHeaders } from 'node:http2';
import type { DescMethod, Message } from '@bufbuild/protobuf';
import type { LocalErrorCode } from '../../core/errors.js';
import type { Downstream } from '../downstream/downstream.js';
import type { LocalReplyExtras } from '../downstream/local-reply.js';

/**
 * What a filter's request phase decides: go on (undefined), or stop the
 * exchange with a local reply — one of the error table's codes (status, gRPC
 * status and flag from there), or a complete answer of the filter's own (a
 * CORS preflight's 204, a cached response).
 */
export type FilterVerdict =
  | undefined
  | { readonly code: LocalErrorCode; readonly detail?: string; readonly extras?: LocalReplyExtras }
  | {
      readonly status: number;
      readonly headers: OutgoingHttpHeaders;
      readonly body?: string | Buffer;
      /** HTTP/2 trailers after the body (a cached gRPC response's grpc-status). */
      readonly trailers?: OutgoingHttpHeaders;
      /** Access-log flag for the answer (the error table's flags, or one of the filter's own). */
      readonly flag?: string;
    };

/**
 * One HTTP filter, compiled once per config version from its config (regexes,
 * key sets, JWKS clients are built then, never per request) and shared by
 * every exchange on the routes it applies to. Per-exchange facts live on the
 * Downstream. Every phase is optional; a chain calls only the phases its
 * filters have, so an unused phase costs nothing.
 *
 * Phases, in the order an exchange meets them:
 * 1. `onRequestHeaders`: after routing, before an upstream is picked. May
 *    change `ds.headers`; may stop with a verdict; may be async (a JWKS
 *    fetch, a Redis round trip) — the chain waits, honouring `ds.scope`.
 * 2. `onRequestData`: each request body chunk on its way upstream (return the
 *    chunk, changed or not).
 * 3. `onResponseHeaders`: the response head, whoever wrote it (upstream,
 *    transcoder, local reply); may change `headers`.
 * 4. `onResponseData`: each response body chunk on its way to the client.
 * 5. `onResponseTrailers`: HTTP/2 and gRPC trailers (may change them).
 */
export interface HttpFilter {
  readonly name: string;
  /**
   * The filter may install a response body encoder (`ds.encodeResponse`, e.g.
   * compression) from `onResponseHeaders`: writers then send body bytes
   * through `Downstream.write` even when no filter has `onResponseData`.
   */
  readonly encodesResponseBody?: boolean;
  onRequestHeaders?(ds: Downstream): FilterVerdict | Promise<FilterVerdict>;
  onRequestData?(ds: Downstream, chunk: Buffer): Buffer;
  onResponseHeaders?(ds: Downstream, status: number, headers: OutgoingHttpHeaders): void;
  onResponseData?(ds: Downstream, chunk: Buffer): Buffer;
  onResponseTrailers?(ds: Downstream, trailers: OutgoingHttpHeaders): void;
  /**
   * Decoded gRPC messages where the proxy holds them anyway (the REST
   * transcoder): a request message before it is encoded for the upstream, a
   * response message before it is printed. Return nothing (keep it, changed
   * or not), another message of the type, or a reply with a gRPC status.
   * Native gRPC is bytes to the proxy: filters decode it themselves there.
   */
  onDecodedRequest?(ds: Downstream, method: DescMethod, msg: Message): DecodedVerdict;
  onDecodedResponse?(ds: Downstream, method: DescMethod, msg: Message): DecodedVerdict;
}

/** What a decoded-message phase decides. */
export type DecodedVerdict = void | undefined | Message | { readonly reply: { readonly code: number; readonly message?: string | undefined } };

/**
 * Builds a filter from its config entry. `compile` runs once per config
 * version and throws (with a message naming the field) on config it cannot
 * use, which rejects the version like any other compile error.
 */
export interface FilterFactory<C = unknown> {
  /** The filter's type: the config field naming it in a listener's filter list (`jwtAuthn`). */
  readonly name: string;
  /** `name`: the entry's name (defaults to the type), for logs, metrics and overrides. */
  compile(config: C, name: string, ctx?: FilterCompileContext): HttpFilter;
}

/** What a factory may know of the route a chain is compiled for. */
export interface FilterCompileContext {
  /**
   * gRPC methods by path (`/pkg.Service/Method`) whose descriptors the route
   * has (a transcoding route's descriptor set, file or server reflection):
   * what plugins' message hooks decode with. Undefined: none known.
   */
  readonly grpcMethods?: ReadonlyMap<string, DescMethod> | undefined;
}
