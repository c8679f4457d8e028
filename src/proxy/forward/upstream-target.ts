import type { ListenerSettings } from '../state/proxy-state.js';
import type { ClusterRuntime } from '../upstream/cluster.js';
import type { EndpointAddress } from '../upstream/endpoint.js';

/** Where the pipeline sends one exchange: the picked endpoint and the request line after the route's rewrites. */
export interface UpstreamTarget {
  readonly cluster: ClusterRuntime;
  readonly ep: EndpointAddress;
  /** `:path` / request target after prefixRewrite (query kept). */
  readonly path: string;
  /** `:authority` / Host after hostRewrite. */
  readonly authority: string;
  /** The listener's settings (body limit, trusted hops). */
  readonly settings: ListenerSettings;
}
