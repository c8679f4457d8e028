import { Resolver } from 'node:dns/promises';
import { isIP } from 'node:net';
import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { EndpointSetTracker, type DiscoveredEndpoint, type EndpointSet } from '../endpoint-set.js';
import { Backoff, ProviderHealth, type DiscoveryProvider, type ProviderEvents, type ProviderStatus, type ServiceWatch } from '../provider.js';

export type LookupFamily = 'v4_preferred' | 'v4_only' | 'v6_only' | 'all';

export interface DnsTarget {
  readonly name: string;
  /** The endpoints' port (ignored with srv: the records give it). */
  readonly port: number;
  readonly srv: boolean;
  readonly lookupFamily: LookupFamily;
  /** "host:port" DNS servers; empty: the system's. */
  readonly resolvers: readonly string[];
  /** Between resolutions when the TTL is not respected (and the cap of the retry backoff). */
  readonly refreshMs: number;
  /** Re-resolve when the smallest TTL of the answer runs out (at least 1 s). */
  readonly respectTtl: boolean;
}

export const DEFAULT_DNS_REFRESH_MS = 5000;
const MIN_TTL_REFRESH_MS = 1000;
/** One query's timeout and attempts (c-ares), so a dead server fails a round in bounded time. */
const QUERY_TIMEOUT_MS = 1000;
const QUERY_TRIES = 2;

export interface DnsProviderOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events?: ProviderEvents;
  readonly random?: () => number;
}

/**
 * Envoy's STRICT_DNS: every address the name resolves to is an endpoint (A,
 * AAAA per the lookup family, or SRV targets with their ports and weights).
 * Re-resolves every refresh interval or TTL; a failed resolution (a timeout,
 * NXDOMAIN, no records) keeps the last good set, is counted, and is retried
 * with backoff capped at the refresh interval.
 */
export class DnsProvider implements DiscoveryProvider<DnsTarget> {
  readonly kind = 'dns' as const;
  private readonly watches = new Set<DnsWatch>();
  private readonly health: ProviderHealth;

  constructor(private readonly opts: DnsProviderOptions) {
    this.health = new ProviderHealth('dns', 'dns', opts.logger, () => opts.clock.nowMs(), opts.events);
  }

  watch(target: DnsTarget, emit: (set: EndpointSet) => void): ServiceWatch {
    const w = new DnsWatch(target, emit, this.opts, this.health, () => this.watches.delete(w));
    this.watches.add(w);
    w.resolveNow();
    return w;
  }

  status(): ProviderStatus {
    const h = this.health;
    return { kind: 'dns', connected: h.connected, lastEventMs: h.lastEventMs, services: this.watches.size, errors: h.errors, lastError: h.lastError };
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.close();
  }
}

class DnsWatch implements ServiceWatch {
  private readonly resolver: Resolver;
  private readonly tracker: EndpointSetTracker;
  private readonly backoff: Backoff;
  private timer: Timer | undefined;
  private closed = false;
  private readonly health: ProviderHealth;

  constructor(
    private readonly t: DnsTarget,
    emit: (set: EndpointSet) => void,
    private readonly opts: DnsProviderOptions,
    private readonly shared: ProviderHealth,
    private readonly onClose: () => void,
  ) {
    this.resolver = new Resolver({ timeout: QUERY_TIMEOUT_MS, tries: QUERY_TRIES });
    if (t.resolvers.length > 0) this.resolver.setServers([...t.resolvers]);
    this.tracker = new EndpointSetTracker(`dns:${t.name}${t.srv ? '' : `:${t.port}`}`, emit, () => opts.clock.nowMs());
    this.backoff = new Backoff(Math.min(250, t.refreshMs), t.refreshMs, opts.random);
    this.health = new ProviderHealth('dns', t.name, opts.logger, () => opts.clock.nowMs());
  }

  resolveNow(): void {
    void this.round();
  }

  private async round(): Promise<void> {
    let next: number;
    try {
      const { endpoints, ttlMs } = await this.resolve();
      if (this.closed) return;
      if (endpoints.length === 0) throw new Error(`${this.t.name}: no usable records`);
      this.tracker.offer(endpoints);
      this.health.ok('resolve');
      this.shared.ok('resolve');
      this.backoff.reset();
      next = this.t.respectTtl && ttlMs !== undefined ? Math.max(MIN_TTL_REFRESH_MS, ttlMs) : this.t.refreshMs;
    } catch (err) {
      if (this.closed) return;
      this.health.fail(err);
      this.shared.fail(err);
      next = this.backoff.next();
    }
    this.timer = this.opts.clock.setTimer(next, () => void this.round());
  }

  private async resolve(): Promise<{ endpoints: DiscoveredEndpoint[]; ttlMs: number | undefined }> {
    if (isIP(this.t.name)) return { endpoints: [endpoint(this.t.name, this.t.port, 1)], ttlMs: undefined };
    if (!this.t.srv) {
      const { addrs, ttlMs } = await this.addresses(this.t.name);
      return { endpoints: addrs.map((a) => endpoint(a, this.t.port, 1)), ttlMs };
    }
    const records = await this.resolver.resolveSrv(this.t.name);
    // Envoy uses the lowest priority only; the rest are backups we do not model here.
    const best = Math.min(...records.map((r) => r.priority));
    const endpoints: DiscoveredEndpoint[] = [];
    let ttlMs: number | undefined;
    for (const r of records.filter((x) => x.priority === best)) {
      const target = await this.addresses(r.name).catch(() => undefined);
      if (!target) continue; // one target that does not resolve does not sink the others
      if (target.ttlMs !== undefined) ttlMs = ttlMs === undefined ? target.ttlMs : Math.min(ttlMs, target.ttlMs);
      for (const a of target.addrs) endpoints.push(endpoint(a, r.port, Math.max(1, r.weight)));
    }
    return { endpoints, ttlMs };
  }

  /** A and/or AAAA records per the lookup family, with the smallest TTL. */
  private async addresses(name: string): Promise<{ addrs: string[]; ttlMs: number | undefined }> {
    if (isIP(name)) return { addrs: [name], ttlMs: undefined };
    const v4 = () => this.resolver.resolve4(name, { ttl: true });
    const v6 = () => this.resolver.resolve6(name, { ttl: true });
    let recs: { address: string; ttl: number }[];
    switch (this.t.lookupFamily) {
      case 'v4_only':
        recs = await v4();
        break;
      case 'v6_only':
        recs = await v6();
        break;
      case 'all': {
        const [a, b] = await Promise.allSettled([v4(), v6()]);
        if (a.status === 'rejected' && b.status === 'rejected') throw a.reason;
        recs = [...(a.status === 'fulfilled' ? a.value : []), ...(b.status === 'fulfilled' ? b.value : [])];
        break;
      }
      default:
        try {
          recs = await v4();
          if (recs.length === 0) recs = await v6();
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'ENODATA' && code !== 'ENOTFOUND') throw err;
          recs = await v6();
        }
    }
    const ttl = recs.length > 0 ? Math.min(...recs.map((r) => r.ttl)) : undefined;
    return { addrs: recs.map((r) => r.address), ttlMs: ttl === undefined ? undefined : ttl * 1000 };
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.resolver.cancel();
    this.onClose();
  }
}

function endpoint(address: string, port: number, weight: number): DiscoveredEndpoint {
  return { address, port, weight, healthStatus: 'HEALTHY', metadata: {} };
}
