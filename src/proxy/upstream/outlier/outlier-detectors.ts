import { Cluster_OutlierDetectionSchema } from '../../../gen/outrigger/config/v1/cluster_pb.js';
import type { Clock } from '../../../core/clock.js';
import { ClusterFollowers } from '../cluster-followers.js';
import { OutlierDetector, type EjectionListener } from './outlier-detector.js';
import { outlierSettingsOf } from './outlier-settings.js';

/** The outlier detectors of every cluster with an `outlierDetection`, across config versions. */
export class OutlierDetectors extends ClusterFollowers<typeof Cluster_OutlierDetectionSchema, OutlierDetector> {
  constructor(clock: Clock, onEject?: EjectionListener) {
    super(
      Cluster_OutlierDetectionSchema,
      (c) => c.outlierDetection,
      (name, od) => new OutlierDetector(name, outlierSettingsOf(od), clock, onEject),
    );
  }
}
