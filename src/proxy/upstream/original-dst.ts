import { networkInterfaces } from 'node:os';
import type { Socket } from 'node:net';
import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { ClusterRuntime } from './cluster.js';
import type { OriginalDestinationResolver, OriginalDstCluster } from './lb/original-dst-policy.js';
import type { PickInfo, Picked } from './lb/picker.js';
import { endpointKey, type EndpointAddress } from './endpoint.js';
import type { H1Pool } from './h1-pool.js';
import type { H2Pool } from './h2-pool.js';
import { originalDestinationOf, unmapV4, type AddonStatus, type Destination } from './original-dst-addon.js';

export type { Destination } from './original-dst-addon.js';

/** Upstream pools kept for at most this many original destinations; past it the least recently used goes. */
export const DEFAULT_MAX_ORIGINAL_DESTINATIONS = 1024;
/** How often pools of original destinations idle longer than their cluster's idleTimeout are closed. */
export const DEFAULT_SWEEP_INTERVAL_MS = 5000;
/** Local interface addresses are re-read at most this often (for loop detection). */
const INTERFACES_TTL_MS = 5000;

/**
 * Set on an accepted socket by ProxyListener when it was redirected: where
 * the app was going. Read through the HTTP/2 session's socket proxy as well.
 */
export const ORIGINAL_DST: unique symbol = Symbol('outrigger.originalDst');

/** What a request or connection offers for choosing its endpoint (lb/picker.ts). */
export type PickTarget = PickInfo;
export type { Picked } from './lb/picker.js';

export interface OriginalDestinationsOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly h1: H1Pool;
  readonly h2: H2Pool;
  /** The SO_ORIGINAL_DST addon, as loaded by the composition root (original-dst-addon.ts). */
  readonly addon: AddonStatus;
  readonly maxDestinations?: number;
  readonly sweepIntervalMs?: number;
  /** This host's addresses (loop detection); default: os.networkInterfaces(). */
  readonly localAddresses?: () => readonly string[];
}

/**
 * Everything DISCOVERY_TYPE_ORIGINAL_DST clusters need at run time, shared by
 * all listeners and config versions (it lives in ProxyContext):
 *
 * - `lookup`: the original destination of an accepted socket (SO_ORIGINAL_DST
 *   through the native addon), when it was redirected;
 * - `pick`: the endpoint of a request or connection — the original
 *   destination, else (HTTP/gRPC, unless the cluster's
 *   originalDst.useHostHeader is false) the Host / :authority; never one of
 *   the sidecar's own listeners (a routing loop);
 * - the upstream pools of those destinations: H1Pool and H2Pool key them by
 *   `host:port` like configured endpoints; this keeps at most
 *   `maxDestinations` of them (least recently used out first) and closes the
 *   ones idle longer than their cluster's idleTimeout, gracefully (requests in
 *   flight finish).
 */
export class OriginalDestinations implements OriginalDestinationResolver {
  /** Destination key → last use; Map order is least recently used first. */
  private readonly live = new Map<string, { lastUsedMs: number; idleMs: number }>();
  /** Endpoint keys of configured clusters: their pools are not ours to close. */
  private configured: ReadonlySet<string> = new Set();
  private listeners: readonly { host: string; port: number }[] = [];
  private sweepTimer: Timer | undefined;
  private interfaces: { atMs: number; addresses: ReadonlySet<string> } | undefined;
  private warnedMissingAddon = false;
  private readonly max: number;
  private readonly sweepMs: number;

  constructor(private readonly opts: OriginalDestinationsOptions) {
    this.max = opts.maxDestinations ?? DEFAULT_MAX_ORIGINAL_DESTINATIONS;
    this.sweepMs = opts.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS;
  }

  get addonAvailable(): boolean {
    return this.opts.addon.addon !== undefined;
  }

  /** The original destination of an accepted socket, when iptables redirected it. */
  lookup(socket: Socket): Destination | undefined {
    return originalDestinationOf(socket, this.opts.addon.addon);
  }

  /**
   * The endpoint for one request (authority given) or one opaque connection.
   * Static and EDS clusters pick round robin; ORIGINAL_DST clusters use the
   * target.
   */
  pick(cluster: ClusterRuntime, target: PickTarget): Picked {
    return cluster.originalDst ? this.resolve(cluster, target) : cluster.pick(target);
  }

  /** The ORIGINAL_DST choice (the picker of lb/original-dst-policy.ts calls this). */
  resolve(cluster: OriginalDstCluster, target: PickTarget): Picked {
    let dest: { host: string; port: number } | undefined = target.originalDst;
    // The Host fallback is only for clusters that allow it: on an inbound
    // pass-through cluster the Host is the pod's own service name, and going
    // there would send the request out of the pod again.
    const byHost = target.authority !== undefined && cluster.useHostHeader;
    if (!dest && byHost) dest = parseAuthority(target.authority!, target.scheme);
    if (!dest) {
      let why = byHost
        ? 'the connection was not redirected and has no usable Host / :authority'
        : this.addonAvailable
          ? 'the connection was not redirected (SO_ORIGINAL_DST)'
          : `the SO_ORIGINAL_DST addon is not available (${this.opts.addon.reason ?? 'not loaded'})`;
      if (target.authority !== undefined && !cluster.useHostHeader) why += `; cluster ${cluster.name} does not route by Host / :authority (originalDst.useHostHeader: false)`;
      return { code: 'no_original_destination', detail: why };
    }
    const key = endpointKey(dest.host, dest.port);
    if (this.isSelf(dest.host, dest.port)) return { code: 'routing_loop', detail: `${key} is a listener of this sidecar` };
    if (target.authority !== undefined) this.touch(key, cluster.idleTimeoutMs);
    return { ep: { host: dest.host, port: dest.port, weight: 1, key } };
  }

  /** The bound addresses of the proxy's listeners (ListenerManager, after each apply). */
  setListeners(addresses: readonly { host: string; port: number }[]): void {
    this.listeners = addresses.map((a) => ({ host: unmapV4(a.host.toLowerCase()), port: a.port }));
  }

  /** Whether host:port reaches one of this sidecar's listeners (host names other than localhost are not resolved). */
  isSelf(host: string, port: number): boolean {
    const h = unmapV4(host.toLowerCase().replace(/^\[|\]$/g, ''));
    const onPort = this.listeners.filter((l) => l.port === port);
    if (onPort.length === 0) return false;
    const local = isLoopbackOrAny(h) || this.localAddresses().has(h);
    return onPort.some((l) => (isWildcard(l.host) ? local : l.host === h || (isLoopbackOrAny(l.host) && isLoopbackOrAny(h))));
  }

  /**
   * After a config swap: `configured` are the endpoint keys of the new
   * config's clusters, `active` whether it still has an ORIGINAL_DST cluster.
   * Returns the keys whose pools must survive (configured ∪ live destinations).
   */
  retain(configured: ReadonlySet<string>, active: boolean): Set<string> {
    this.configured = configured;
    if (!active) this.clear();
    else if (!this.addonAvailable && !this.warnedMissingAddon) {
      this.warnedMissingAddon = true;
      this.opts.logger.warn(
        { reason: this.opts.addon.reason },
        'SO_ORIGINAL_DST addon not available: ORIGINAL_DST clusters route HTTP and gRPC by Host / :authority (unless originalDst.useHostHeader is false) and refuse opaque TCP',
      );
    }
    return new Set([...configured, ...this.live.keys()]);
  }

  /** Destinations with pools, least recently used first (admin /clusters). */
  destinations(): string[] {
    return [...this.live.keys()];
  }

  close(): void {
    this.clear();
  }

  private touch(key: string, idleMs: number): void {
    const now = this.opts.clock.monotonicMs();
    this.live.delete(key);
    this.live.set(key, { lastUsedMs: now, idleMs });
    while (this.live.size > this.max) this.evict(this.live.keys().next().value!);
    if (!this.sweepTimer) this.sweepTimer = this.opts.clock.setTimer(this.sweepMs, () => this.sweep());
  }

  private sweep(): void {
    this.sweepTimer = undefined;
    const now = this.opts.clock.monotonicMs();
    for (const [key, e] of this.live) if (now - e.lastUsedMs >= e.idleMs) this.evict(key);
    if (this.live.size > 0) this.sweepTimer = this.opts.clock.setTimer(this.sweepMs, () => this.sweep());
  }

  private evict(key: string): void {
    this.live.delete(key);
    if (this.configured.has(key)) return;
    this.opts.h1.evict(key);
    this.opts.h2.evict(key);
  }

  private clear(): void {
    this.sweepTimer?.cancel();
    this.sweepTimer = undefined;
    this.live.clear();
  }

  private localAddresses(): ReadonlySet<string> {
    const now = this.opts.clock.monotonicMs();
    if (!this.interfaces || now - this.interfaces.atMs > INTERFACES_TTL_MS) {
      const list = this.opts.localAddresses
        ? this.opts.localAddresses()
        : Object.values(networkInterfaces()).flatMap((l) => (l ?? []).map((i) => i.address));
      this.interfaces = { atMs: now, addresses: new Set(list.map((a) => unmapV4(a.toLowerCase().replace(/%.*$/, '')))) };
    }
    return this.interfaces.addresses;
  }
}

/**
 * Host / :authority → host and port: `name`, `name:port`, `1.2.3.4:port`,
 * `[v6]:port`; without a port, 80 for http and 443 for https. Undefined when
 * it is empty or malformed.
 */
export function parseAuthority(authority: string, scheme: string | undefined): { host: string; port: number } | undefined {
  const a = authority.trim().toLowerCase();
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]@/\s]+))(?::(\d{1,5}))?$/.exec(a);
  if (!m) return undefined;
  const host = (m[1] ?? m[2]!).replace(/\.$/, '');
  if (host === '') return undefined;
  const port = m[3] !== undefined ? Number(m[3]) : scheme === 'https' ? 443 : 80;
  if (port < 1 || port > 65535) return undefined;
  return { host, port };
}

function isWildcard(host: string): boolean {
  return host === '0.0.0.0' || host === '::' || host === '';
}

function isLoopbackOrAny(host: string): boolean {
  return host === 'localhost' || host.endsWith('.localhost') || host === '::1' || /^127\./.test(host) || isWildcard(host);
}
