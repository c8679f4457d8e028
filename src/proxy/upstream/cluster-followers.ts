import { equals, type DescMessage, type MessageShape } from '@bufbuild/protobuf';
import type { Cluster } from '../../gen/outrigger/config/v1/cluster_pb.js';
import type { ClusterRuntime } from './cluster.js';

/** Per-cluster state that outlives config versions (health checker, outlier detector). */
export interface ClusterFollower {
  /** The cluster's runtime of a new config version. */
  attach(runtime: ClusterRuntime): void;
  stop(): void;
}

/**
 * One follower per cluster that has a given config section, across config
 * versions: `sync` after each new state starts followers for new clusters,
 * re-attaches unchanged ones to the new runtimes (keeping what they know),
 * restarts those whose section changed and stops those whose cluster or
 * section went away. ORIGINAL_DST clusters have no endpoint set to follow.
 */
export class ClusterFollowers<S extends DescMessage, F extends ClusterFollower> {
  private readonly byCluster = new Map<string, { config: MessageShape<S>; follower: F }>();

  constructor(
    private readonly schema: S,
    private readonly sectionOf: (c: Cluster) => MessageShape<S> | undefined,
    private readonly create: (cluster: string, config: MessageShape<S>) => F | undefined,
  ) {}

  sync(configs: ReadonlyMap<string, Cluster>, runtimes: ReadonlyMap<string, ClusterRuntime>): void {
    for (const [name, entry] of this.byCluster) {
      const c = configs.get(name);
      const section = c && this.sectionOf(c);
      if (section && runtimes.has(name) && equals(this.schema, section, entry.config)) continue;
      entry.follower.stop();
      this.byCluster.delete(name);
    }
    for (const [name, runtime] of runtimes) {
      const c = configs.get(name);
      const section = c && this.sectionOf(c);
      if (!section || runtime.originalDst) continue;
      let entry = this.byCluster.get(name);
      if (!entry) {
        const follower = this.create(name, section);
        if (!follower) continue;
        entry = { config: section, follower };
        this.byCluster.set(name, entry);
      }
      entry.follower.attach(runtime);
    }
  }

  get(cluster: string): F | undefined {
    return this.byCluster.get(cluster)?.follower;
  }

  close(): void {
    for (const e of this.byCluster.values()) e.follower.stop();
    this.byCluster.clear();
  }
}
