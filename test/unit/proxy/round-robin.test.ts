import { create } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { ClusterSchema, Cluster_DiscoveryType, Cluster_LbPolicy } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { ClusterRuntime, defaultLbSettings } from '../../../src/proxy/upstream/cluster.js';
import { endpointKey, type EndpointAddress } from '../../../src/proxy/upstream/endpoint.js';
import { originalDstPolicy, type OriginalDestinationResolver, type OriginalDstCluster } from '../../../src/proxy/upstream/lb/original-dst-policy.js';
import { healthyOf, type EndpointHealth, type PickInfo, type Picked, type Picker, type PickerCluster } from '../../../src/proxy/upstream/lb/picker.js';
import { EndpointStatsTable } from '../../../src/proxy/upstream/endpoint-stats.js';
import { policyOf } from '../../../src/proxy/upstream/lb/policies.js';
import { roundRobin } from '../../../src/proxy/upstream/lb/round-robin.js';

/** Endpoints named a, b, c… on 10.0.0.1, .2, .3… with the given weights. */
function eps(...weights: number[]): EndpointAddress[] {
  return weights.map((weight, i) => {
    const host = `10.0.0.${i + 1}`;
    return { host, port: 80, weight, key: endpointKey(host, 80) };
  });
}
const letter = (p: Picked): string => (p.ep ? String.fromCharCode(96 + Number(p.ep.host.split('.')[3])) : `!${p.code}`);
const picks = (picker: { pick(info: PickInfo): Picked }, n: number): string => Array.from({ length: n }, () => letter(picker.pick({}))).join('');
const health = (entries: [EndpointAddress, EndpointHealth][]): Map<string, EndpointHealth> => new Map(entries.map(([e, h]) => [e.key, h]));
/**
 * A cluster with panic mode off (healthyPanicThreshold 0), so "only healthy endpoints" is what these
 * tests see; panic mode itself is tested below and in test/unit/upstream/lb-policies.test.ts.
 */
const clusterOf = (name: string, healthyPanicThreshold = 0): PickerCluster => {
  const lb = { ...defaultLbSettings({}), healthyPanicThreshold };
  return { name, lb, stats: new EndpointStatsTable(lb.clock) };
};
const CLUSTER = clusterOf('c');

describe('LB: smooth weighted round robin', () => {
  it('weights 5, 1, 1 pick a a b a c a a, and repeat that pattern', () => {
    const p = roundRobin.build(eps(5, 1, 1), undefined, CLUSTER);
    expect(picks(p, 7)).to.equal('aabacaa');
    expect(picks(p, 14)).to.equal('aabacaa'.repeat(2));
  });

  it('weights 3, 1 pick a a b a, 30/10 over 40 picks, never two b in a row', () => {
    const p = roundRobin.build(eps(3, 1), undefined, CLUSTER);
    const seq = picks(p, 40);
    expect(seq).to.equal('aaba'.repeat(10));
    expect(seq.replace(/b/g, '')).to.have.length(30);
    expect(seq).not.to.include('bb');
  });

  it('weights 1, 3 start with the heavy endpoint; ties go to the first listed', () => {
    expect(picks(roundRobin.build(eps(1, 3), undefined, CLUSTER), 8)).to.equal('babb'.repeat(2));
  });

  it('weights 2, 3, 5 spread each endpoint over the cycle in proportion', () => {
    const seq = picks(roundRobin.build(eps(2, 3, 5), undefined, CLUSTER), 100);
    const count = (ch: string): number => seq.split('').filter((c) => c === ch).length;
    expect([count('a'), count('b'), count('c')]).to.deep.equal([20, 30, 50]);
    // Every 10-pick cycle holds exactly 2, 3, 5 of them.
    for (let i = 0; i < 100; i += 10) {
      const cyc = seq.slice(i, i + 10).split('');
      expect([cyc.filter((c) => c === 'a').length, cyc.filter((c) => c === 'b').length, cyc.filter((c) => c === 'c').length], seq).to.deep.equal([2, 3, 5]);
    }
    expect(seq).not.to.include('ccc');
  });

  it('equal weights rotate in endpoint order, whatever the weight', () => {
    expect(picks(roundRobin.build(eps(1, 1, 1), undefined, CLUSTER), 7)).to.equal('abcabca');
    expect(picks(roundRobin.build(eps(4, 4), undefined, CLUSTER), 5)).to.equal('ababa');
    expect(picks(roundRobin.build(eps(1), undefined, CLUSTER), 3)).to.equal('aaa');
  });

  it('a picker hands out the same result objects: a pick allocates nothing', () => {
    const p = roundRobin.build(eps(1, 1), undefined, CLUSTER);
    const first = p.pick({});
    p.pick({});
    expect(p.pick({})).to.equal(first);
    const w = roundRobin.build(eps(2, 1), undefined, CLUSTER);
    const a = w.pick({});
    expect(letter(w.pick({})) + letter(w.pick({}))).to.equal('ba');
    expect(w.pick({})).to.equal(a);
  });

  it('two pickers of one endpoint set keep their own rotations', () => {
    const e = eps(3, 1);
    const p1 = roundRobin.build(e, undefined, CLUSTER);
    const p2 = roundRobin.build(e, undefined, CLUSTER);
    expect(picks(p1, 3)).to.equal('aab');
    expect(picks(p2, 4)).to.equal('aaba');
    expect(picks(p1, 1)).to.equal('a');
  });
});

describe('LB: endpoint health', () => {
  it('healthyOf keeps healthy and unlisted endpoints, drops unhealthy and draining ones', () => {
    const [a, b, c, d] = eps(1, 1, 1, 1) as [EndpointAddress, EndpointAddress, EndpointAddress, EndpointAddress];
    const all = [a, b, c, d];
    expect(healthyOf(all, undefined)).to.equal(all);
    expect(healthyOf(all, new Map())).to.equal(all);
    expect(healthyOf(all, health([[a, 'healthy'], [b, 'unhealthy'], [c, 'draining']]))).to.deep.equal([a, d]);
  });

  it('the policy picks among healthy endpoints only, weights kept', () => {
    const e = eps(5, 1, 1);
    expect(picks(roundRobin.build(e, health([[e[1]!, 'unhealthy']]), CLUSTER), 12)).to.equal('aaacaa'.repeat(2));
    // Without the heavy one, b and c have equal weights: plain rotation.
    expect(picks(roundRobin.build(e, health([[e[0]!, 'draining']]), CLUSTER), 4)).to.equal('bcbc');
  });

  it('nothing healthy: every pick is no_healthy_upstream naming the cluster', () => {
    const e = eps(1, 2);
    const p = roundRobin.build(e, health([[e[0]!, 'unhealthy'], [e[1]!, 'draining']]), CLUSTER);
    expect(p.pick({})).to.deep.equal({ code: 'no_healthy_upstream', detail: 'c' });
    expect(p.pick({})).to.deep.equal({ code: 'no_healthy_upstream', detail: 'c' });
    expect(roundRobin.build([], undefined, clusterOf('empty')).pick({})).to.deep.equal({ code: 'no_healthy_upstream', detail: 'empty' });
  });

  it('panic mode (the default threshold, 50 %): with nothing healthy every non-draining endpoint is picked again', () => {
    const e = eps(1, 1, 1);
    const p = roundRobin.build(e, health([[e[0]!, 'unhealthy'], [e[1]!, 'unhealthy'], [e[2]!, 'draining']]), clusterOf('c', 50));
    expect(picks(p, 4)).to.equal('abab');
  });

  it('ClusterRuntime.setHealth swaps in a new picker built from the new health', () => {
    const e = eps(1, 1, 1);
    const cr = new ClusterRuntime('web', e, 'h1', 1000, 64, 60_000, false, true, roundRobin, { ...defaultLbSettings({}), healthyPanicThreshold: 0 });
    expect(cr.policyName).to.equal('round_robin');
    expect(picks(cr, 3)).to.equal('abc');
    cr.setHealth(health([[e[1]!, 'unhealthy']]));
    expect(picks(cr, 4)).to.equal('acac');
    cr.setHealth(health([[e[0]!, 'unhealthy'], [e[1]!, 'unhealthy'], [e[2]!, 'draining']]));
    expect(cr.pick({})).to.deep.equal({ code: 'no_healthy_upstream', detail: 'web' });
    cr.setHealth(new Map());
    // A fresh picker: its rotation starts over.
    expect(picks(cr, 4)).to.equal('abca');
    expect(cr.endpoints).to.equal(e);
  });

  it('weights come from the config, 0 meaning 1', () => {
    const c = create(ClusterSchema, {
      name: 'w',
      type: Cluster_DiscoveryType.STATIC,
      endpoints: [
        { address: { host: '10.0.0.1', port: 80 }, weight: 3 },
        { address: { host: '10.0.0.2', port: 80 } },
      ],
    });
    const cr = ClusterRuntime.build(c, undefined);
    expect(cr.endpoints.map((x) => x.weight)).to.deep.equal([3, 1]);
    expect(picks(cr, 8)).to.equal('aaba'.repeat(2));
  });
});

describe('LB: policy resolution', () => {
  /** Records what the ORIGINAL_DST resolver was asked and answers with a fixed destination. */
  function recordingResolver(): OriginalDestinationResolver & { asked: { cluster: OriginalDstCluster; info: PickInfo }[] } {
    const asked: { cluster: OriginalDstCluster; info: PickInfo }[] = [];
    const ep: EndpointAddress = { host: '10.9.9.9', port: 8080, weight: 1, key: '10.9.9.9:8080' };
    return {
      asked,
      resolve(cluster, info) {
        asked.push({ cluster, info });
        return { ep };
      },
    };
  }

  it('round robin for unspecified and ROUND_ROBIN clusters', () => {
    expect(policyOf(create(ClusterSchema, { name: 'x' }), {})).to.equal(roundRobin);
    expect(policyOf(create(ClusterSchema, { name: 'x', lbPolicy: Cluster_LbPolicy.ROUND_ROBIN }), {})).to.equal(roundRobin);
  });

  it('ORIGINAL_DST clusters delegate every pick to the resolver, with the cluster and the request facts', () => {
    const r = recordingResolver();
    const c = create(ClusterSchema, { name: 'passthrough', type: Cluster_DiscoveryType.ORIGINAL_DST, lbPolicy: Cluster_LbPolicy.ROUND_ROBIN });
    expect(policyOf(c, { originalDst: r }).name).to.equal('original_dst');
    const cr = ClusterRuntime.build(c, undefined, { originalDst: r });
    expect(cr.policyName).to.equal('original_dst');
    const info: PickInfo = { authority: 'api.example:81', scheme: 'http', originalDst: { host: '10.1.1.1', port: 81, family: 4 } };
    expect(cr.pick(info).ep?.key).to.equal('10.9.9.9:8080');
    expect(r.asked).to.have.length(1);
    expect(r.asked[0]!.cluster).to.equal(cr);
    expect(r.asked[0]!.info).to.equal(info);
    // Health changes do not stop delegation (the policy has no endpoint set).
    cr.setHealth(new Map([['10.9.9.9:8080', 'unhealthy']]));
    cr.pick({});
    expect(r.asked).to.have.length(2);
  });

  it('originalDstPolicy builds a picker that hands the cluster it was built for to the resolver', () => {
    const r = recordingResolver();
    const cluster: OriginalDstCluster = { ...clusterOf('od'), useHostHeader: false, idleTimeoutMs: 5 };
    const p: Picker = originalDstPolicy(r).build([], undefined, cluster);
    p.pick({ authority: 'h' });
    expect(r.asked).to.deep.equal([{ cluster, info: { authority: 'h' } }]);
  });

  it('ORIGINAL_DST without a resolver in the process refuses with no_original_destination', () => {
    const c = create(ClusterSchema, { name: 'passthrough', type: Cluster_DiscoveryType.ORIGINAL_DST });
    const picked = ClusterRuntime.build(c, undefined, {}).pick({ authority: 'x' });
    expect(picked.code).to.equal('no_original_destination');
    expect(picked.ep).to.equal(undefined);
  });
});
