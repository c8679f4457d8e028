import type { IncomingHttpHeaders } from 'node:http2';
import type { LocalErrorCode } from '../../../core/errors.js';
import type { EndpointAddress } from '../endpoint.js';
import type { Destination } from '../original-dst-addon.js';

/** What a request or connection offers for choosing its endpoint. */
export interface PickInfo {
  /** The connection's original destination (redirected connections only). */
  readonly originalDst?: Destination | undefined;
  /** Host / :authority (HTTP and gRPC only; undefined for opaque TCP). */
  readonly authority?: string | undefined;
  /** `http` or `https`: the default port of an authority without one. */
  readonly scheme?: string | undefined;
  /** Request headers (hash policies, header-based choices); undefined for TCP. */
  readonly headers?: IncomingHttpHeaders | undefined;
  /** The downstream peer's address (source-IP hashing). */
  readonly clientAddress?: string | undefined;
}

export type Picked =
  | { readonly ep: EndpointAddress; readonly code?: undefined; readonly detail?: undefined }
  | { readonly ep?: undefined; readonly code: LocalErrorCode; readonly detail: string };

/**
 * Chooses the endpoint of one request. A picker is built by a policy from one
 * endpoint set and its health, and is never changed afterwards: a new
 * endpoint set or a health change builds a new picker and swaps it in
 * (grpc-js's Picker is the model). The only state a picker may keep is its
 * own rotation (a round-robin cursor), private to it.
 */
export interface Picker {
  pick(info: PickInfo): Picked;
}

export type EndpointHealth = 'healthy' | 'unhealthy' | 'draining';

/** Health by endpoint key; an endpoint not listed is healthy. */
export type HealthView = ReadonlyMap<string, EndpointHealth>;

/** The cluster facts a policy may need beyond its endpoints. */
export interface PickerCluster {
  readonly name: string;
}

/** A load-balancing policy: one file each under lb/, registered in lb/policies.ts. */
export interface LbPolicy {
  readonly name: string;
  build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker;
}

/** The endpoints a picker may choose from: those not marked unhealthy or draining. */
export function healthyOf(endpoints: readonly EndpointAddress[], health: HealthView | undefined): readonly EndpointAddress[] {
  if (health === undefined || health.size === 0) return endpoints;
  return endpoints.filter((e) => (health.get(e.key) ?? 'healthy') === 'healthy');
}

/** The picker of a cluster with nothing to pick from. */
export function emptyPicker(cluster: PickerCluster): Picker {
  const none: Picked = { code: 'no_healthy_upstream', detail: cluster.name };
  return { pick: () => none };
}
