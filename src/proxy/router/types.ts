import type { RouteRetries } from '../upstream/retry/retry-policy.js';
import type { FilterOverride } from '../../gen/outrigger/config/v1/filters_pb.js';
import type { Transcode } from '../../gen/outrigger/config/v1/route_pb.js';
import type { HashPart } from './hash-policy.js';
import type { EndpointSubset } from '../upstream/lb/subset.js';

/**
 * The router's public types. A RouteTable is compiled once per config version
 * and shared by every request of that version, so everything reachable from a
 * CompiledRoute or a RouteMatchResult is treated as read-only by callers.
 */

export interface RouteRequest {
  /** :authority or Host; may include :port (ignored); any case. */
  host: string;
  /** Upper case (node gives it so); matched case-insensitively anyway. */
  method: string;
  /** Path only, no query string, raw (still percent-encoded). */
  path: string;
  /** Lower-case names, as node's http/http2 header objects have them. */
  headers: Record<string, string | string[] | undefined>;
  /** content-type starts with application/grpc. */
  isGrpc: boolean;
}

export type RouteActionCompiled =
  | {
      kind: 'cluster';
      cluster: string;
      timeoutMs: number;
      prefixRewrite?: string;
      /** `regexRewrite` of the path (query kept): the compiled pattern (global) and its JS replacement string. */
      regexRewrite?: { readonly re: RegExp; readonly replacement: string };
      hostRewrite?: string;
      /** The route's transcoding config; its compiled Transcoder is ProxyState.transcoders.get(this). */
      transcode?: Transcode;
      /** `hashPolicy[]` (only when the route has one): the request's hash for consistent-hash clusters. */
      hashPolicy?: readonly HashPart[];
      /** `retryPolicy` / `hedgePolicy` (only when the route has one): further attempts (upstream/retry/). */
      retries?: RouteRetries;
      /** `endpointSelector` (only when set): the cluster's endpoints this route may use. */
      subset?: EndpointSubset;
      /** `weightedClusters` (only when set; `cluster` is then ''): the split chosen per request. */
      weighted?: WeightedSplit;
      /** `mirror` (only when set). */
      mirror?: MirrorPlan;
      /** `fault` (only when set). */
      fault?: FaultPlan;
    }
  | { kind: 'direct'; status: number; body: string };

/** One target of a weighted split, compiled. */
export interface WeightedTarget {
  readonly cluster: string;
  readonly subset: EndpointSubset | undefined;
  readonly weight: number;
  /** Sum of the weights up to and including this one: the target of a draw below it. */
  readonly upTo: number;
}

export interface WeightedSplit {
  readonly targets: readonly WeightedTarget[];
  readonly total: number;
}

export interface MirrorPlan {
  readonly cluster: string;
  /** Share mirrored, 0..1. */
  readonly fraction: number;
}

export interface FaultPlan {
  /** `delay` (absent: none). */
  readonly delay?: { readonly ms: number; readonly fraction: number };
  /** `abort`: the status given (one of the two), 0..1 of requests. */
  readonly abort?: { readonly httpStatus: number | undefined; readonly grpcStatus: number | undefined; readonly fraction: number };
}

export type MatchKind = 'path' | 'template' | 'prefix' | 'regex';

export interface CompiledRoute {
  /** The configured name, or `<vhost>/<index>` when the config left it empty. */
  readonly name: string;
  readonly virtualHost: string;
  readonly action: RouteActionCompiled;
  readonly matchKind: MatchKind;
  /** Declaration index in its virtual host. */
  readonly index: number;
  /**
   * The matched string prefix, only for `prefix` routes: what a prefixRewrite
   * replaces (src/proxy/pipeline/rewrite.ts reads it).
   */
  readonly prefix?: string;
  /** Overrides of listener filters by entry name: the virtual host's, then the route's (docs/filters.md). */
  readonly filterOverrides?: ReadonlyMap<string, FilterOverride>;
}

export interface RouteMatchResult {
  route: CompiledRoute;
  /** Template params, percent-decoded; the shared frozen EMPTY_PARAMS when none. */
  params: Record<string, string>;
}

/** Shared by every result without params, so a match without captures allocates nothing. */
export const EMPTY_PARAMS: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** A config problem found while compiling; `path` points into the RouteConfiguration. */
export class RouteCompileError extends Error {
  override readonly name = 'RouteCompileError';
  constructor(
    /** e.g. "virtualHosts[0].routes[2].match.regex" */
    readonly path: string,
    /** The message without the path, for validators that report the path separately. */
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
  }
}
