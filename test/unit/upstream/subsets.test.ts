import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { seededRandom } from '../../../src/core/random.js';
import { ClusterSchema } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { compileSubset, type EndpointSubset } from '../../../src/proxy/upstream/lb/subset.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('endpoint subsets (route endpointSelector)', () => {
  const build = (lbPolicy = 'LB_POLICY_ROUND_ROBIN'): ClusterRuntime =>
    ClusterRuntime.build(
      fromJson(ClusterSchema, {
        name: 'svc',
        type: 'DISCOVERY_TYPE_STATIC',
        lbPolicy,
        healthyPanicThreshold: 0,
        endpoints: [
          { address: { host: '10.0.0.1', port: 80 }, metadata: { version: 'v1', zone: 'a' } },
          { address: { host: '10.0.0.2', port: 80 }, metadata: { version: 'v1', zone: 'b' } },
          { address: { host: '10.0.0.3', port: 80 }, metadata: { version: 'v2', zone: 'a' } },
          { address: { host: '10.0.0.4', port: 80 }, metadata: { version: 'v2', zone: 'b' }, healthStatus: 'HEALTH_STATUS_UNHEALTHY' },
          { address: { host: '10.0.0.5', port: 80 } },
        ],
      }),
      undefined,
      { clock: new FakeClock(), random: seededRandom(3) },
    );
  const v1 = compileSubset({ version: 'v1' })!;
  const v2 = compileSubset({ version: 'v2' })!;
  const picks = (c: ClusterRuntime, subset: EndpointSubset, n = 20): Set<string> =>
    new Set(Array.from({ length: n }, () => c.pick({ subset }).ep?.key ?? c.pick({ subset }).code!));

  it('compiles selectors canonically (sorted) and treats an empty selector as none', () => {
    expect(compileSubset({ zone: 'a', version: 'v2' })!.key).to.equal('version=v2,zone=a');
    expect(compileSubset({})).to.equal(undefined);
    expect(compileSubset(undefined)).to.equal(undefined);
  });

  for (const policy of ['LB_POLICY_ROUND_ROBIN', 'LB_POLICY_LEAST_REQUEST', 'LB_POLICY_RANDOM', 'LB_POLICY_RING_HASH', 'LB_POLICY_MAGLEV', 'LB_POLICY_PEAK_EWMA']) {
    it(`${policy}: picks only within the subset, honouring health`, () => {
      const c = build(policy);
      expect(picks(c, v1, 40)).to.deep.equal(new Set(['10.0.0.1:80', '10.0.0.2:80']));
      // 10.0.0.4 is UNHEALTHY by discovery: the v2 subset has one candidate.
      expect(picks(c, v2)).to.deep.equal(new Set(['10.0.0.3:80']));
    });
  }

  it('filters once per endpoint set and selector (the same array every time), and rebuilds the subset picker on health changes', () => {
    const c = build();
    const first = c.subsetEndpoints(v1);
    expect(first.map((e) => e.key)).to.deep.equal(['10.0.0.1:80', '10.0.0.2:80']);
    expect(c.subsetEndpoints(compileSubset({ version: 'v1' })!)).to.equal(first);
    // Outlier ejection within the subset.
    c.setEjected(new Set(['10.0.0.1:80']));
    expect(picks(c, v1)).to.deep.equal(new Set(['10.0.0.2:80']));
    c.setEjected(new Set(['10.0.0.1:80', '10.0.0.2:80']));
    expect(c.pick({ subset: v1 }).code).to.equal('no_healthy_upstream');
    c.setEjected(new Set());
    expect(picks(c, v1)).to.deep.equal(new Set(['10.0.0.1:80', '10.0.0.2:80']));
    expect(c.subsetEndpoints(v1)).to.equal(first);
  });

  it('no endpoint in the subset: no_healthy_upstream naming the cluster and the selector', () => {
    const p = build().pick({ subset: compileSubset({ version: 'v9' })! });
    expect(p.code).to.equal('no_healthy_upstream');
    expect(p.detail).to.equal('cluster "svc" has no endpoint in subset version=v9');
  });

  it('without a subset every endpoint stays a candidate', () => {
    const c = build();
    expect(new Set(Array.from({ length: 30 }, () => c.pick({}).ep!.key))).to.deep.equal(new Set(['10.0.0.1:80', '10.0.0.2:80', '10.0.0.3:80', '10.0.0.5:80']));
  });
});
