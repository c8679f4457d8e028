import type { IncomingHttpHeaders } from 'node:http2';
import type { Clock } from '../../../core/clock.js';
import type { LocalErrorCode } from '../../../core/errors.js';
import type { Random } from '../../../core/random.js';
import type { EndpointAddress } from '../endpoint.js';
import type { EndpointStatsTable } from '../endpoint-stats.js';
import type { Destination } from '../original-dst-addon.js';
import type { LocalityName } from '../../../core/locality.js';
import type { EndpointSubset } from './subset.js';

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
  /**
   * The request's consistent-hash key from its route's `hashPolicy[]`
   * (computed once per request, only when the route has one; a 32-bit
   * unsigned integer). Hash policies without it pick a random point.
   */
  readonly hash?: number | undefined;
  /**
   * The route's endpoint subset (`endpointSelector`): only endpoints whose
   * labels match are candidates. Retries and hedges pick with the same info,
   * so they stay in the subset.
   */
  readonly subset?: EndpointSubset | undefined;
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
  /** What the picker decided when built (priority loads, zone routing), for /clusters. */
  describe?(): unknown;
}

/**
 * `degraded`: serving, but used only when the healthy endpoints cannot take
 * the load (Envoy's DEGRADED; lb/locality-picker.ts).
 */
export type EndpointHealth = 'healthy' | 'unhealthy' | 'draining' | 'degraded';

/** Health by endpoint key; an endpoint not listed is healthy. */
export type HealthView = ReadonlyMap<string, EndpointHealth>;

/** The cluster facts a policy may need beyond its endpoints. */
export interface PickerCluster {
  readonly name: string;
  /** The cluster's balancing settings and injected randomness and time. */
  readonly lb: LbSettings;
  /** Live per-endpoint counters (active requests, latency), which outlive pickers. */
  readonly stats: EndpointStatsTable;
}

/** A cluster's balancing settings, resolved from its config with defaults. */
export interface LbSettings {
  readonly random: Random;
  readonly clock: Clock;
  /** Percent (0..100): fewer healthy endpoints than this and every endpoint is a candidate. 0: never. */
  readonly healthyPanicThreshold: number;
  /** Bounded-load factor in percent (≥ 100); 0: unbounded. */
  readonly hashBalanceFactor: number;
  readonly minimumRingSize: number;
  readonly maximumRingSize: number;
  /** Priorities and zone-aware routing (lb/locality-picker.ts); absent: the defaults, and no own locality. */
  readonly locality?: LocalityLbSettings | undefined;
}

/** A cluster's priority and zone-aware routing settings, resolved with defaults. */
export interface LocalityLbSettings {
  /** This sidecar's locality (--locality); undefined: unknown, so no zone-aware routing. */
  readonly own: LocalityName | undefined;
  /** `zoneAwareRouting.enabled` (default true). */
  readonly zoneAware: boolean;
  /** `zoneAwareRouting.minClusterSize` (default 6). */
  readonly minClusterSize: number;
  /**
   * Callers per locality key: the endpoints of `zoneAwareRouting.localCluster`.
   * Undefined: callers spread like this cluster's priority-0 endpoints.
   */
  readonly callers: ReadonlyMap<string, number> | undefined;
  /** Whether the local cluster is in panic (too few of its endpoints healthy): no zone-aware routing then, as Envoy. */
  readonly callersInPanic: boolean;
  /** Percent (140: Envoy's 1.4). */
  readonly overprovisioningFactor: number;
}

export const DEFAULT_OVERPROVISIONING_FACTOR = 140;
export const DEFAULT_MIN_CLUSTER_SIZE = 6;

export const DEFAULT_HEALTHY_PANIC_THRESHOLD = 50;
export const DEFAULT_MIN_RING_SIZE = 1024;
export const MAX_RING_SIZE = 8_388_608;

/** A load-balancing policy: one file each under lb/, registered in lb/policies.ts. */
export interface LbPolicy {
  readonly name: string;
  /**
   * Consistent-hash policies (ring hash, Maglev): the priority and locality a
   * request goes to are then drawn from its hash too, so a key keeps its
   * endpoint while the health that decided them stays the same.
   */
  readonly consistentHash?: boolean;
  build(endpoints: readonly EndpointAddress[], health: HealthView | undefined, cluster: PickerCluster): Picker;
}

/** The endpoints a picker may choose from: those not marked unhealthy or draining. */
export function healthyOf(endpoints: readonly EndpointAddress[], health: HealthView | undefined): readonly EndpointAddress[] {
  if (health === undefined || health.size === 0) return endpoints;
  return endpoints.filter((e) => (health.get(e.key) ?? 'healthy') === 'healthy');
}

/**
 * The endpoints a picker balances over: the healthy ones, or, when fewer than
 * `healthyPanicThreshold` percent of them are healthy, all of them (Envoy's
 * panic mode: spreading over everything beats piling onto the survivors).
 * Draining endpoints are left out even in panic.
 */
export function candidatesOf(endpoints: readonly EndpointAddress[], health: HealthView | undefined, lb: LbSettings): readonly EndpointAddress[] {
  const healthy = healthyOf(endpoints, health);
  if (healthy.length === endpoints.length || endpoints.length === 0) return healthy;
  if (healthy.length * 100 >= lb.healthyPanicThreshold * endpoints.length || lb.healthyPanicThreshold === 0) return healthy;
  return endpoints.filter((e) => health?.get(e.key) !== 'draining');
}

/** The picker of a cluster with nothing to pick from. */
export function emptyPicker(cluster: PickerCluster): Picker {
  const none: Picked = { code: 'no_healthy_upstream', detail: cluster.name };
  return { pick: () => none };
}
