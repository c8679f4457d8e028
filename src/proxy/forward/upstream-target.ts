import type { ListenerSettings } from '../state/proxy-state.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';
import type { PickInfo } from '../upstream/lb/picker.js';
import type { RunnerPlan } from '../upstream/retry/attempt-runner.js';

/** Where the pipeline sends one exchange: the picked endpoint and the request line after the route's rewrites. */
export interface UpstreamTarget {
  readonly cluster: ClusterRuntime;
  /** The endpoint of the first attempt. */
  readonly ep: EndpointAddress;
  /** `:path` / request target after prefixRewrite (query kept). */
  readonly path: string;
  /** `:authority` / Host after hostRewrite. */
  readonly authority: string;
  /** The listener's settings (body limit, trusted hops). */
  readonly settings: ListenerSettings;
  /** What the first pick saw: further attempts (retries, hedges) pick with it. */
  readonly pickInfo?: PickInfo | undefined;
  /** The route's retry or hedge plan for this request; undefined: one attempt (refused streams replayed). */
  readonly plan?: RunnerPlan | undefined;
  /** The route's mirror for this request (drawn and picked), if it gets one. */
  readonly mirror?: MirrorTarget | undefined;
}

/** Where a mirrored copy goes (docs/routing.md#mirroring). */
export interface MirrorTarget {
  readonly cluster: ClusterRuntime;
  readonly ep: EndpointAddress;
  readonly pickInfo: PickInfo;
  /** The copy's own bound (the route timeout, or a default): never the caller's deadline. */
  readonly timeoutMs: number;
}
