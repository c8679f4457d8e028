import type { Cluster } from '../../gen/outrigger/config/v1/cluster_pb.js';
import type { ResourceDocument } from '../../config/snapshot.js';
import type { Clock } from '../../core/clock.js';
import type { Logger } from '../../observability/logger.js';
import { GENERATED_LABEL, toLoadAssignment, type EndpointSet } from '../endpoint-set.js';
import type { ProviderStatus, ServiceWatch } from '../provider.js';
import { targetOf, type ClusterTarget } from './cluster-targets.js';
import type { DiscoveryMetrics } from './discovery-metrics.js';
import { Providers, type DiscoveryConnections } from './providers.js';

export interface ClusterDiscoveryOptions {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly random: () => number;
  readonly metrics: DiscoveryMetrics;
  readonly connections: DiscoveryConnections;
  /** Called when some cluster's endpoint set changed (the config must be re-derived). */
  readonly onChange: () => void;
}

interface Running {
  readonly key: string;
  readonly kind: ClusterTarget['kind'];
  watch: ServiceWatch | undefined;
  set: EndpointSet | undefined;
}

/** Labels of the ClusterLoadAssignments discovery generates (so they read as generated wherever shown). */
export { GENERATED_LABEL };

/**
 * Discovery in a standalone sidecar: for each DISCOVERY_TYPE_DNS /
 * _KUBERNETES / _CONSUL / _NATS cluster of the running config, a watch on
 * its provider; each new endpoint set becomes the cluster's
 * ClusterLoadAssignment through `derive` (ConfigPipeline's hook), so the
 * data path, /config_dump and /clusters see discovered endpoints exactly like
 * EDS ones. A watch lives as long as its cluster's discovery settings are
 * unchanged; a cluster's set is dropped with its watch.
 */
export class ClusterDiscovery {
  private readonly running = new Map<string, Running>();
  private readonly providers: Providers;
  /** Wall-clock ms of the oldest set not yet in an applied config, per provider kind. */
  private readonly pending = new Map<string, number>();

  constructor(private readonly opts: ClusterDiscoveryOptions) {
    this.providers = new Providers({ clock: opts.clock, logger: opts.logger, random: opts.random, events: opts.metrics, connections: opts.connections });
  }

  /** Follows the running config's clusters: starts, restarts and stops watches. */
  sync(clusters: ReadonlyMap<string, Cluster>): void {
    const seen = new Set<string>();
    for (const [name, c] of clusters) {
      const t = targetOf(c);
      if (!t) continue;
      seen.add(name);
      const r = this.running.get(name);
      if (r?.key === t.key) continue;
      r?.watch?.close();
      // In the map before the watch starts: a provider may emit synchronously (its cache is warm).
      const entry: Running = { key: t.key, kind: t.kind, watch: undefined, set: undefined };
      this.running.set(name, entry);
      entry.watch = this.start(name, t, entry);
    }
    for (const [name, r] of this.running) {
      if (seen.has(name)) continue;
      r.watch?.close();
      this.running.delete(name);
    }
  }

  private start(name: string, t: ClusterTarget, entry: Running): ServiceWatch | undefined {
    const emit = (set: EndpointSet) => {
      // A set of a watch already replaced (its emit raced the close) is dropped.
      if (this.running.get(name) !== entry) return;
      entry.set = set;
      this.opts.metrics.sets.inc({ provider: t.kind });
      if (!this.pending.has(t.kind)) this.pending.set(t.kind, set.changedAtMs);
      this.opts.logger.info({ cluster: name, source: set.source, version: set.version, endpoints: set.endpoints.length }, 'discovered endpoints changed');
      this.opts.onChange();
    };
    switch (t.kind) {
      case 'dns':
        return this.providers.getDns().watch(t.target, emit);
      case 'kubernetes':
        return this.providers.getKubernetes().watch(t.target, emit);
      case 'consul':
        return this.providers.getConsul().watch(t.target, emit);
      case 'nats':
        return this.providers.getNats().watch(t.target, emit);
    }
  }

  /**
   * ConfigPipeline's derive hook: the ClusterLoadAssignment of every
   * discovered cluster in `merged` that has a set (one a source wrote by hand
   * for such a cluster is replaced: discovery owns those endpoints).
   */
  derive(merged: readonly ResourceDocument[]): ResourceDocument[] {
    const out: ResourceDocument[] = [];
    for (const d of merged) {
      if (d.kind !== 'Cluster') continue;
      const r = this.running.get(d.metadata.name);
      if (!r?.set) continue;
      out.push(toLoadAssignment(d.metadata.name, r.set, { [GENERATED_LABEL]: r.kind }));
    }
    return out;
  }

  /** A config with the pending sets was applied: observes their latency. */
  applied(): void {
    const now = this.opts.clock.nowMs();
    for (const [kind, since] of this.pending) this.opts.metrics.pushSeconds.observe({ provider: kind }, Math.max(0, now - since) / 1000);
    this.pending.clear();
  }

  /** The endpoint set of one cluster now (admin). */
  setOf(cluster: string): EndpointSet | undefined {
    return this.running.get(cluster)?.set;
  }

  status(): ProviderStatus[] {
    return this.providers.status();
  }

  async close(): Promise<void> {
    for (const r of this.running.values()) r.watch?.close();
    this.running.clear();
    await this.providers.close();
  }
}
