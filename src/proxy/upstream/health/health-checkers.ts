import { equals } from '@bufbuild/protobuf';
import { Cluster_HealthCheckSchema, type Cluster, type Cluster_HealthCheck } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import type { Clock } from '../../../core/clock.js';
import type { Random } from '../../../core/random.js';
import type { ClusterRuntime } from '../cluster.js';
import { ClusterHealthChecker, type CheckListener } from './cluster-health-checker.js';
import { healthCheckSettingsOf } from './health-check-settings.js';

/**
 * The health checkers of every cluster that has a `healthCheck`, across
 * config versions: `sync` after each new state starts checkers for new
 * clusters, re-attaches unchanged ones to the new runtimes (keeping their
 * endpoint state), restarts those whose `healthCheck` changed and stops
 * those whose cluster went away.
 */
export class HealthCheckers {
  private readonly byCluster = new Map<string, { config: Cluster_HealthCheck; checker: ClusterHealthChecker }>();

  constructor(
    private readonly clock: Clock,
    private readonly random: Random,
    private readonly onCheck?: CheckListener,
  ) {}

  sync(configs: ReadonlyMap<string, Cluster>, runtimes: ReadonlyMap<string, ClusterRuntime>): void {
    for (const [name, entry] of this.byCluster) {
      const hc = configs.get(name)?.healthCheck;
      if (hc && runtimes.has(name) && equals(Cluster_HealthCheckSchema, hc, entry.config)) continue;
      entry.checker.stop();
      this.byCluster.delete(name);
    }
    for (const [name, runtime] of runtimes) {
      const hc = configs.get(name)?.healthCheck;
      if (!hc || runtime.originalDst) continue;
      let entry = this.byCluster.get(name);
      if (!entry) {
        const settings = healthCheckSettingsOf(hc);
        if (!settings) continue;
        entry = { config: hc, checker: new ClusterHealthChecker(name, settings, this.clock, this.random, this.onCheck) };
        this.byCluster.set(name, entry);
      }
      entry.checker.attach(runtime);
    }
  }

  get(cluster: string): ClusterHealthChecker | undefined {
    return this.byCluster.get(cluster)?.checker;
  }

  close(): void {
    for (const e of this.byCluster.values()) e.checker.stop();
    this.byCluster.clear();
  }
}
