import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom } from '../../../src/core/random.js';
import { ClusterSchema } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('cluster health from discovery, checks and ejections', () => {
  const build = (): ClusterRuntime =>
    ClusterRuntime.build(
      fromJson(ClusterSchema, {
        name: 'c',
        type: 'DISCOVERY_TYPE_STATIC',
        endpoints: [
          { address: { host: '10.0.0.1', port: 80 } },
          { address: { host: '10.0.0.2', port: 80 }, healthStatus: 'HEALTH_STATUS_UNHEALTHY' },
          { address: { host: '10.0.0.3', port: 80 }, healthStatus: 'HEALTH_STATUS_DRAINING' },
          { address: { host: '10.0.0.4', port: 80 }, healthStatus: 'HEALTH_STATUS_HEALTHY' },
        ],
      }),
      undefined,
      { clock: new FakeClock(), random: seededRandom(5) },
    );
  const picks = (c: ClusterRuntime): Set<string> => new Set(Array.from({ length: 12 }, () => c.pick({}).ep?.key ?? c.pick({}).code!));

  it("respects discovery's UNHEALTHY and DRAINING from the start and after health changes", () => {
    const c = build();
    expect(picks(c)).to.deep.equal(new Set(['10.0.0.1:80', '10.0.0.4:80']));
    expect(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80'].map((k) => c.healthLabelOf(k))).to.deep.equal(['healthy', 'failed_eds_health', 'draining']);
    c.setFailedActiveHealth(new Set());
    expect(picks(c)).to.deep.equal(new Set(['10.0.0.1:80', '10.0.0.4:80']));
    c.setEjected(new Set(['10.0.0.1:80']));
    expect(c.healthLabelOf('10.0.0.1:80')).to.equal('outlier_ejected');
    // 1 of 4 healthy is below the 50 % panic threshold: all but the draining one.
    expect(picks(c)).to.deep.equal(new Set(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.4:80']));
    c.setEjected(new Set());
    c.setFailedActiveHealth(new Set(['10.0.0.4:80']));
    expect(c.healthLabelOf('10.0.0.4:80')).to.equal('failed_active_hc');
  });
});
