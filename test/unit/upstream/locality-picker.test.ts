import { fromJson } from '@bufbuild/protobuf';
import { expect } from 'chai';
import { parseLocality } from '../../../src/core/locality.js';
import { seededRandom } from '../../../src/core/random.js';
import { ClusterSchema, type Cluster } from '../../../src/gen/outrigger/config/v1/cluster_pb.js';
import { ClusterRuntime } from '../../../src/proxy/upstream/cluster.js';
import { FakeClock } from '../../support/fake-clock.js';

const POLICIES = ['LB_POLICY_ROUND_ROBIN', 'LB_POLICY_LEAST_REQUEST', 'LB_POLICY_RANDOM', 'LB_POLICY_PEAK_EWMA', 'LB_POLICY_RING_HASH', 'LB_POLICY_MAGLEV'];

interface Ep {
  n: number;
  zone?: string;
  priority?: number;
  healthStatus?: string;
}

function clusterOf(eps: Ep[], extra: Record<string, unknown> = {}): Cluster {
  return fromJson(ClusterSchema, {
    name: 'c',
    type: 'DISCOVERY_TYPE_STATIC',
    endpoints: eps.map((e) => ({
      address: { host: `10.0.0.${e.n}`, port: 80 },
      ...(e.zone ? { locality: { region: 'r', zone: e.zone } } : {}),
      ...(e.priority ? { priority: e.priority } : {}),
      ...(e.healthStatus ? { healthStatus: e.healthStatus } : {}),
    })),
    ...extra,
  } as never);
}

function runtime(c: Cluster, own = 'r/a', seed = 1): ClusterRuntime {
  return ClusterRuntime.build(c, undefined, { clock: new FakeClock(), random: seededRandom(seed), locality: own === '' ? undefined : parseLocality(own) });
}

/** Picks per endpoint number over `n` picks (a distinct request hash per pick for the hash policies). */
function tally(rt: ClusterRuntime, n: number): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i < n; i++) {
    const p = rt.pick({ hash: Math.imul(i + 1, 0x9e3779b1) >>> 0 });
    if (!p.ep) throw new Error(p.code);
    const k = Number(p.ep.host.split('.')[3]);
    m.set(k, (m.get(k) ?? 0) + 1);
  }
  return m;
}

const sumOf = (m: Map<number, number>, ns: number[]): number => ns.reduce((a, n) => a + (m.get(n) ?? 0), 0);
const key = (n: number): string => `10.0.0.${n}:80`;

/** Zones a (1-3), b (4-6), c (7-9). */
const threeZones: Ep[] = [1, 2, 3, 4, 5, 6, 7, 8, 9].map((n) => ({ n, zone: n <= 3 ? 'a' : n <= 6 ? 'b' : 'c' }));

describe('locality and priority picker', () => {
  describe('zone-aware routing composes with every policy', () => {
    for (const policy of POLICIES) {
      it(`${policy}: all traffic stays in the caller's zone while it is healthy; spills when it is not`, () => {
        const rt = runtime(clusterOf(threeZones, { lbPolicy: policy }));
        const t = tally(rt, 3000);
        expect(sumOf(t, [1, 2, 3]), JSON.stringify([...t])).to.equal(3000);
        // Within the zone the policy still spreads (every zone-a endpoint is used).
        for (const n of [1, 2, 3]) expect(t.get(n) ?? 0, `endpoint ${n}`).to.be.above(500);
        // Zone a down to one healthy endpoint of 7: 1/7 = 14.28 % of upstream vs 33.33 % of callers → 42.84 % local.
        rt.setFailedActiveHealth(new Set([key(1), key(2)]));
        const s = tally(rt, 20_000);
        expect(sumOf(s, [1, 2])).to.equal(0);
        expect(sumOf(s, [3]) / 20_000).to.be.closeTo(0.4284, 0.02);
        // The rest split by residual capacity: b and c have the same spare share.
        expect(sumOf(s, [4, 5, 6]) / sumOf(s, [7, 8, 9])).to.be.closeTo(1, 0.1);
      });
    }
  });

  it('the layer stays out of the way: one priority, no degraded endpoint, no locality → the policy\'s own picker', () => {
    const plain = runtime(clusterOf(threeZones), '');
    expect(plain.describeRouting()).to.equal(undefined);
    const zoned = runtime(clusterOf(threeZones));
    expect(zoned.describeRouting()).to.deep.include({ overprovisioningFactor: 140 });
  });

  it('a hash policy keeps a key in its locality and endpoint (draws from the request hash)', () => {
    const rt = runtime(clusterOf(threeZones, { lbPolicy: 'LB_POLICY_MAGLEV', zoneAwareRouting: { minClusterSize: 1 } }));
    rt.setFailedActiveHealth(new Set([key(1), key(2)]));
    for (let k = 0; k < 200; k++) {
      const hash = Math.imul(k + 7, 0x85ebca6b) >>> 0;
      const first = rt.pick({ hash }).ep!.key;
      for (let i = 0; i < 3; i++) expect(rt.pick({ hash }).ep!.key).to.equal(first);
    }
  });

  it('zone routing off below minClusterSize, or when disabled; the sidecar\'s locality decides what is local', () => {
    const small = runtime(clusterOf(threeZones.slice(0, 5)));
    expect((small.describeRouting() as { zoneAware: { state: string } }).zoneAware.state).to.equal('none');
    const t = tally(small, 5000);
    expect(sumOf(t, [4, 5])).to.be.above(1500); // plain round robin over the five
    const off = runtime(clusterOf(threeZones, { zoneAwareRouting: { enabled: false } }));
    expect(sumOf(tally(off, 900), [1, 2, 3])).to.equal(300);
    const inB = runtime(clusterOf(threeZones), 'r/b');
    expect(sumOf(tally(inB, 900), [4, 5, 6])).to.equal(900);
  });

  it('localCluster: the callers\' spread decides how much stays local', () => {
    // Callers: 3 in zone a, 1 in b, 0 in c (75 % / 25 %); upstream a, b, c equal (33 % each):
    // a keeps 33.33/75 = 44.44 %, the rest goes to the spare capacity of b (8.33 %) and c (33.33 %).
    const callers: Cluster = fromJson(ClusterSchema, {
      name: 'me',
      type: 'DISCOVERY_TYPE_STATIC',
      endpoints: [1, 2, 3, 4].map((n) => ({ address: { host: `10.1.0.${n}`, port: 80 }, locality: { region: 'r', zone: n <= 3 ? 'a' : 'b' } })),
    } as never);
    const c = clusterOf(threeZones, { zoneAwareRouting: { localCluster: 'me' } });
    const rt = ClusterRuntime.build(c, undefined, {
      clock: new FakeClock(),
      random: seededRandom(3),
      locality: parseLocality('r/a'),
      endpointsOf: (name) => (name === 'me' ? callers.endpoints : undefined),
    });
    const t = tally(rt, 30_000);
    expect(sumOf(t, [1, 2, 3]) / 30_000).to.be.closeTo(0.4444, 0.015);
    expect(sumOf(t, [4, 5, 6]) / 30_000).to.be.closeTo(0.5556 * (833 / (833 + 3333)), 0.015);
    expect(sumOf(t, [7, 8, 9]) / 30_000).to.be.closeTo(0.5556 * (3333 / (833 + 3333)), 0.015);
  });

  describe('priorities with the overprovisioning factor', () => {
    /** Priority 0: endpoints 1-10; priority 1: 11-20. */
    const twoLevels: Ep[] = Array.from({ length: 20 }, (_, i) => ({ n: i + 1, priority: i < 10 ? 0 : 1 }));
    const p0 = Array.from({ length: 10 }, (_, i) => i + 1);
    const p1 = p0.map((n) => n + 10);

    for (const [failed, share] of [
      [2, 1.0], // 80 % × 1.4 = 112 → 100 % stays
      [3, 0.98], // 70 % × 1.4 = 98
      [5, 0.7], // 50 % × 1.4 = 70
      [8, 0.28], // 20 % × 1.4 = 28; no panic: P=1 brings the total to 100
      [10, 0],
    ] as const) {
      it(`${failed} of 10 priority-0 endpoints failed → ${Math.round(share * 100)} % stays on priority 0`, () => {
        const rt = runtime(clusterOf(twoLevels), '');
        rt.setFailedActiveHealth(new Set(p0.slice(0, failed).map(key)));
        const t = tally(rt, 20_000);
        expect(sumOf(t, p0.slice(0, failed)), 'failed endpoints get nothing').to.equal(0);
        expect(sumOf(t, p0) / 20_000).to.be.closeTo(share, 0.012);
        expect(sumOf(t, p1) / 20_000).to.be.closeTo(1 - share, 0.012);
      });
    }

    it('overprovisioningFactor 100: every failed priority-0 endpoint moves its share', () => {
      const rt = runtime(clusterOf(twoLevels, { overprovisioningFactor: 100 }), '');
      rt.setFailedActiveHealth(new Set([key(1)]));
      expect(sumOf(tally(rt, 20_000), p1) / 20_000).to.be.closeTo(0.1, 0.01);
    });

    it('both levels mostly down: panic per level, total panic spreads by endpoint count', () => {
      const rt = runtime(clusterOf(twoLevels), '');
      rt.setFailedActiveHealth(new Set([...p0.slice(0, 8), ...p1.slice(0, 8)].map(key))); // 20 % + 20 %: health 28 + 28
      const d = rt.describeRouting() as { priorities: { panic: boolean; healthyLoad: number }[] };
      expect(d.priorities.map((p) => p.panic)).to.deep.equal([true, true]);
      const t = tally(rt, 20_000);
      // In panic every endpoint of the level is a candidate, failed ones included.
      expect(sumOf(t, [1, 2, 3, 4, 5, 6, 7, 8])).to.be.above(5000);
    });

    it('degraded endpoints (discovery) get traffic only when the healthy ones fall short', () => {
      // One level: 5 healthy, 5 degraded → health 70, degraded 70 → 70 % healthy, 30 % degraded.
      const eps: Ep[] = Array.from({ length: 10 }, (_, i) => ({ n: i + 1, ...(i >= 5 ? { healthStatus: 'HEALTH_STATUS_DEGRADED' } : {}) }));
      const rt = runtime(clusterOf(eps), '');
      expect(rt.healthLabelOf(key(6))).to.equal('degraded');
      const t = tally(rt, 20_000);
      expect(sumOf(t, [6, 7, 8, 9, 10]) / 20_000).to.be.closeTo(0.3, 0.012);
      // 8 healthy: 112 → no degraded traffic.
      const eps8: Ep[] = Array.from({ length: 10 }, (_, i) => ({ n: i + 1, ...(i >= 8 ? { healthStatus: 'HEALTH_STATUS_DEGRADED' } : {}) }));
      expect(sumOf(tally(runtime(clusterOf(eps8), ''), 5000), [9, 10])).to.equal(0);
    });

    it('zone-aware routing applies to priority 0 only; priority 1 is balanced as a whole', () => {
      const eps: Ep[] = [...threeZones, ...[11, 12, 13, 14, 15, 16].map((n) => ({ n, zone: n <= 13 ? 'a' : 'b', priority: 1 }))];
      const rt = runtime(clusterOf(eps));
      rt.setFailedActiveHealth(new Set([1, 2, 3, 4, 5, 6, 7].map(key))); // P=0: 2/9 healthy → health 31
      const t = tally(rt, 20_000);
      const lower = sumOf(t, [11, 12, 13, 14, 15, 16]);
      expect(lower / 20_000).to.be.closeTo(0.69, 0.015);
      expect(sumOf(t, [14, 15, 16]) / lower).to.be.closeTo(0.5, 0.05);
    });
  });
});
