import type { Clock, Timer } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { EndpointSetTracker, type DiscoveredEndpoint, type EndpointSet } from '../endpoint-set.js';
import { Backoff, ProviderHealth, type DiscoveryProvider, type ProviderEvents, type ProviderStatus, type ServiceWatch } from '../provider.js';
import type { ConsulConnection } from './consul-connection.js';

export interface ConsulTarget {
  readonly service: string;
  /** Instances must carry every tag. */
  readonly tags: readonly string[];
  /** Empty: the agent's datacenter. */
  readonly datacenter: string;
  /** Only instances whose checks all pass (Consul's `passing`). */
  readonly onlyPassing: boolean;
}

export interface ConsulProviderOptions {
  readonly connection: ConsulConnection;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly events?: ProviderEvents;
  readonly random?: () => number;
  /** A blocking query's `wait` (default 55 s; Consul's cap is 10 min). */
  readonly waitMs?: number;
  /** Retry backoff cap after a failure (default 5 s). */
  readonly maxBackoffMs?: number;
  /** How long past wait + wait/16 an answer may take before the agent counts as hung (default 10 s). */
  readonly timeoutSlackMs?: number;
}

/** One entry of /v1/health/service/:service (the fields read). */
interface HealthEntry {
  Node?: { Node?: string; Address?: string; Datacenter?: string };
  Service?: { ID?: string; Address?: string; Port?: number; Tags?: string[] | null; Meta?: Record<string, string> | null; Weights?: { Passing?: number; Warning?: number } };
  Checks?: { Status?: string }[];
}

/**
 * A Consul service's instances from the health API
 * (`/v1/health/service/:service`) with blocking queries: each request carries
 * the last `X-Consul-Index` and a `wait`, and the agent answers when the
 * service changes or the wait runs out. An index that goes backwards resets to
 * 0, as Consul's docs require. A failure (agent down, timeout, 5xx, a body
 * that does not parse) keeps the last set and retries with backoff.
 *
 * Tags "k=v" become metadata k: v, other tags metadata TAG: ""; service meta
 * is copied; the node's datacenter is the locality's region.
 */
export class ConsulProvider implements DiscoveryProvider<ConsulTarget> {
  readonly kind = 'consul' as const;
  private readonly watches = new Set<ConsulWatch>();
  readonly health: ProviderHealth;

  constructor(readonly opts: ConsulProviderOptions) {
    this.health = new ProviderHealth('consul', opts.connection.url, opts.logger, () => opts.clock.nowMs(), opts.events);
  }

  watch(target: ConsulTarget, emit: (set: EndpointSet) => void): ServiceWatch {
    const w = new ConsulWatch(target, emit, this, () => this.watches.delete(w));
    this.watches.add(w);
    w.start();
    return w;
  }

  status(): ProviderStatus {
    const h = this.health;
    return { kind: 'consul', connected: h.connected, lastEventMs: h.lastEventMs, services: this.watches.size, errors: h.errors, lastError: h.lastError };
  }

  async close(): Promise<void> {
    for (const w of [...this.watches]) w.close();
  }
}

class ConsulWatch implements ServiceWatch {
  private index = 0;
  private readonly tracker: EndpointSetTracker;
  private readonly backoff: Backoff;
  private readonly abort = new AbortController();
  private timer: Timer | undefined;
  private closed = false;

  constructor(
    private readonly t: ConsulTarget,
    emit: (set: EndpointSet) => void,
    private readonly p: ConsulProvider,
    private readonly onClose: () => void,
  ) {
    const tags = t.tags.length > 0 ? `[${t.tags.join(',')}]` : '';
    this.tracker = new EndpointSetTracker(`consul:${t.service}${tags}${t.datacenter ? `@${t.datacenter}` : ''}`, emit, () => p.opts.clock.nowMs());
    this.backoff = new Backoff(250, p.opts.maxBackoffMs ?? 5000, p.opts.random);
  }

  start(): void {
    void this.loop();
  }

  private url(): string {
    const q = new URLSearchParams();
    if (this.t.onlyPassing) q.set('passing', 'true');
    for (const tag of this.t.tags) q.append('tag', tag);
    if (this.t.datacenter) q.set('dc', this.t.datacenter);
    if (this.index > 0) {
      q.set('index', String(this.index));
      q.set('wait', `${Math.ceil((this.p.opts.waitMs ?? 55_000) / 1000)}s`);
    }
    return `${this.p.opts.connection.url}/v1/health/service/${encodeURIComponent(this.t.service)}?${q.toString()}`;
  }

  private async loop(): Promise<void> {
    while (!this.closed) {
      const waitMs = this.p.opts.waitMs ?? 55_000;
      // Consul adds up to wait/16 of jitter to a blocking query; past that (plus slack) the agent is stuck.
      try {
        const timeout = AbortSignal.timeout(Math.ceil((this.index > 0 ? waitMs + waitMs / 16 : 0) + (this.p.opts.timeoutSlackMs ?? 10_000)));
        const headers: Record<string, string> = { accept: 'application/json' };
        if (this.p.opts.connection.token) headers['x-consul-token'] = this.p.opts.connection.token;
        const res = await fetch(this.url(), { headers, signal: AbortSignal.any([this.abort.signal, timeout]) });
        const text = await res.text();
        if (res.status !== 200) throw new Error(`consul ${res.status}: ${text.slice(0, 200)}`);
        const entries = JSON.parse(text) as HealthEntry[];
        if (!Array.isArray(entries)) throw new Error('consul: expected an array');
        const idx = Number(res.headers.get('x-consul-index'));
        // Consul's docs: reset when the index goes backwards; never block on an index of 0.
        this.index = !Number.isFinite(idx) || idx < this.index ? 0 : Math.max(1, idx);
        this.tracker.offer(toEndpoints(entries));
        this.p.health.ok('answer');
        this.backoff.reset();
      } catch (err) {
        if (this.closed) return;
        this.p.health.fail(err);
        this.index = 0;
        await new Promise<void>((r) => (this.timer = this.p.opts.clock.setTimer(this.backoff.next(), r)));
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.timer?.cancel();
    this.abort.abort();
    this.onClose();
  }
}

function toEndpoints(entries: readonly HealthEntry[]): DiscoveredEndpoint[] {
  const out: DiscoveredEndpoint[] = [];
  for (const e of entries) {
    const s = e.Service;
    const address = s?.Address || e.Node?.Address;
    if (!s || !address || !s.Port) continue;
    const statuses = (e.Checks ?? []).map((c) => c.Status);
    const critical = statuses.includes('critical') || statuses.includes('maintenance');
    const warning = statuses.includes('warning');
    const metadata: Record<string, string> = {};
    for (const tag of s.Tags ?? []) {
      const eq = tag.indexOf('=');
      if (eq > 0) metadata[tag.slice(0, eq)] = tag.slice(eq + 1);
      else metadata[tag] = '';
    }
    Object.assign(metadata, s.Meta ?? {});
    const weight = (warning ? s.Weights?.Warning : s.Weights?.Passing) ?? 1;
    out.push({
      address,
      port: s.Port,
      weight: Math.max(1, weight),
      ...(e.Node?.Datacenter ? { locality: { region: e.Node.Datacenter } } : {}),
      healthStatus: critical ? 'UNHEALTHY' : 'HEALTHY',
      metadata,
    });
  }
  return out;
}
