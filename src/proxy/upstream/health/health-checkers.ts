import { Cluster_HealthCheckSchema } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import type { Clock } from '../../../core/clock.js';
import type { Random } from '../../../core/random.js';
import type { ModuleLoader } from '../../../core/module-loader.js';
import { ClusterFollowers } from '../cluster-followers.js';
import { ClusterHealthChecker, type CheckListener } from './cluster-health-checker.js';
import { healthCheckSettingsOf } from './health-check-settings.js';

/** The active health checkers of every cluster with a `healthCheck`, across config versions. */
export class HealthCheckers extends ClusterFollowers<typeof Cluster_HealthCheckSchema, ClusterHealthChecker> {
  /** `modules`: where custom checks' modules are imported (ListenerManager.apply prepares them). */
  constructor(clock: Clock, random: Random, onCheck?: CheckListener, modules?: ModuleLoader) {
    super(
      Cluster_HealthCheckSchema,
      (c) => c.healthCheck,
      (name, hc) => {
        const settings = healthCheckSettingsOf(hc, modules);
        return settings && new ClusterHealthChecker(name, settings, clock, random, onCheck);
      },
    );
  }
}
