import { expect } from 'chai';
import { seededRandom } from '../../../src/core/random.js';
import { endpointKey, type EndpointAddress } from '../../../src/proxy/upstream/endpoint.js';
import { EndpointStatsTable } from '../../../src/proxy/upstream/endpoint-stats.js';
import { leastRequest } from '../../../src/proxy/upstream/lb/least-request.js';
import { maglev } from '../../../src/proxy/upstream/lb/maglev.js';
import { peakEwma } from '../../../src/proxy/upstream/lb/peak-ewma.js';
import { DEFAULT_MIN_RING_SIZE, MAX_RING_SIZE, type HealthView, type LbPolicy, type LbSettings, type PickerCluster } from '../../../src/proxy/upstream/lb/picker.js';
import { randomPolicy } from '../../../src/proxy/upstream/lb/random.js';
import { ringHash } from '../../../src/proxy/upstream/lb/ring-hash.js';
import { roundRobin } from '../../../src/proxy/upstream/lb/round-robin.js';
import { FakeClock } from '../../support/fake-clock.js';
import { WeightedSample } from '../../../src/proxy/upstream/lb/weighted-sample.js';

const ep = (n: number, weight = 1): EndpointAddress => ({ host: `10.0.0.${n}`, port: 8080, weight, key: endpointKey(`10.0.0.${n}`, 8080) });

function clusterOf(lb: Partial<LbSettings> = {}, seed = 7): PickerCluster & { clock: FakeClock } {
  const clock = new FakeClock();
  const settings: LbSettings = {
    clock,
    random: seededRandom(seed),
    healthyPanicThreshold: 50,
    hashBalanceFactor: 0,
    minimumRingSize: DEFAULT_MIN_RING_SIZE,
    maximumRingSize: MAX_RING_SIZE,
    ...lb,
  };
  return { name: 'c', lb: settings, stats: new EndpointStatsTable(clock), clock };
}

function shares(policy: LbPolicy, eps: EndpointAddress[], n: number, c = clusterOf(), hash?: (i: number) => number): Map<string, number> {
  const p = policy.build(eps, undefined, c);
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const got = p.pick(hash ? { hash: hash(i) } : {});
    if (!got.ep) throw new Error(got.code);
    counts.set(got.ep.key, (counts.get(got.ep.key) ?? 0) + 1);
  }
  return counts;
}

/** Keys 0..n-1 spread over the 32-bit range (a multiplicative hash of the index). */
const keyHash = (i: number): number => Math.imul(i + 1, 0x9e3779b1) >>> 0;

describe('load-balancing policies', () => {
  describe('weights 1:2:3 within 2 % over 60k picks', () => {
    const eps = [ep(1, 1), ep(2, 2), ep(3, 3)];
    for (const policy of [roundRobin, randomPolicy, leastRequest, peakEwma]) {
      it(policy.name, () => {
        const counts = shares(policy, eps, 60_000);
        eps.forEach((e) => {
          const expected = (60_000 * e.weight) / 6;
          expect(Math.abs(counts.get(e.key)! - expected) / expected, e.key).to.be.below(0.02);
        });
      });
    }
    for (const policy of [ringHash, maglev]) {
      it(`${policy.name} (distinct request hashes)`, () => {
        const counts = shares(policy, eps, 60_000, clusterOf(), keyHash);
        eps.forEach((e) => {
          const share = counts.get(e.key)! / 60_000;
          // A consistent-hash structure is only as even as its point placement: Maglev's table is
          // near exact; a 1024-point ring is within a few percent.
          expect(Math.abs(share - e.weight / 6) / (e.weight / 6), e.key).to.be.below(policy === maglev ? 0.02 : 0.1);
        });
      });
    }
  });

  it('least request: an endpoint with more requests in flight is chosen only when drawn twice', () => {
    const c = clusterOf();
    const eps = [ep(1), ep(2), ep(3)];
    for (let i = 0; i < 10; i++) c.stats.begin(eps[0]!.key);
    const counts = shares(leastRequest, eps, 9000, c);
    // P(drawn twice) = 1/9.
    expect(counts.get(eps[0]!.key)! / 9000).to.be.within(0.09, 0.13);
  });

  it('peak EWMA: a slow sample moves traffic away at once, and the estimate decays back while idle', () => {
    const c = clusterOf();
    const eps = [ep(1), ep(2), ep(3)];
    const slow = c.stats.of(eps[0]!.key);
    for (const e of eps) c.stats.of(e.key).observeRtt(2, 0);
    slow.observeRtt(200, 0);
    expect(slow.estimate(0)).to.equal(200);
    // The two candidates are distinct (tower's p2c): the slow one always loses its comparison.
    expect(shares(peakEwma, eps, 9000, c).get(eps[0]!.key) ?? 0).to.equal(0);
    // After 5 decay periods idle, 200 ms has decayed to ~1.3 ms: once the others report their
    // 2 ms again, the once-slow endpoint is the cheapest and is tried again.
    c.clock.advance(50_000);
    const now = c.clock.monotonicMs();
    expect(slow.estimate(now)).to.be.below(2);
    for (const e of eps.slice(1)) c.stats.of(e.key).observeRtt(2, now);
    expect(shares(peakEwma, eps, 9000, c).get(eps[0]!.key)! / 9000).to.be.above(0.5);
    // A faster sample pulls the estimate down by its age's weight, never below the sample.
    const s = c.stats.of(eps[1]!.key);
    s.observeRtt(100, 100_000);
    s.observeRtt(10, 110_000);
    expect(s.rttMs).to.be.within(10, 100);
    expect(s.rttMs).to.be.closeTo(10 + 90 * Math.exp(-1), 1e-9);
  });

  for (const policy of [ringHash, maglev]) {
    describe(policy.name, () => {
      it('sends one hash to one endpoint, whatever else is picked', () => {
        const p = policy.build([ep(1), ep(2), ep(3)], undefined, clusterOf());
        const first = p.pick({ hash: 12345 }).ep!.key;
        for (let i = 0; i < 100; i++) p.pick({ hash: keyHash(i) });
        expect(p.pick({ hash: 12345 }).ep!.key).to.equal(first);
      });

      it('moves at most 1/N + 5 % of keys when an endpoint is added', () => {
        const before = policy.build([ep(1), ep(2), ep(3), ep(4)], undefined, clusterOf());
        const after = policy.build([ep(1), ep(2), ep(3), ep(4), ep(5)], undefined, clusterOf());
        const n = 20_000;
        let moved = 0;
        let toNew = 0;
        for (let i = 0; i < n; i++) {
          const a = before.pick({ hash: keyHash(i) }).ep!.key;
          const b = after.pick({ hash: keyHash(i) }).ep!.key;
          if (a !== b) moved++;
          if (b === ep(5).key) toNew++;
        }
        expect(moved / n).to.be.at.most(1 / 5 + 0.05);
        expect(toNew / n).to.be.above(0.1); // the new endpoint does take its share
      });

      it('bounded load: no endpoint ever exceeds the factor times its share of requests in flight', () => {
        for (const [factor, weights] of [
          [125, [1, 1, 1, 1]],
          [150, [1, 2, 3]],
          [100, [1, 1, 1]],
        ] as const) {
          const c = clusterOf({ hashBalanceFactor: factor });
          const eps = weights.map((w, i) => ep(i + 1, w));
          const total = weights.reduce((a, b) => a + b, 0);
          const p = policy.build(eps, undefined, c);
          const attempts = [];
          for (let i = 0; i < 600; i++) {
            // Hot key for most requests: without the bound all of them would land on one endpoint.
            const got = p.pick({ hash: i % 5 === 0 ? keyHash(i) : 42 }).ep!;
            attempts.push(c.stats.begin(got.key));
            const inFlight = eps.reduce((a, e) => a + c.stats.of(e.key).active, 0);
            for (const e of eps) {
              const bound = Math.ceil(((factor / 100) * e.weight * inFlight) / total);
              expect(c.stats.of(e.key).active, `factor ${factor} ${e.key} after ${inFlight}`).to.be.at.most(bound);
            }
            // Some requests finish, so the walk also sees loads fall.
            if (i % 7 === 6) attempts.shift()!.end({ status: 200, flag: undefined, grpcStatus: undefined });
          }
        }
      });

      it('without a request hash, draws a random point', () => {
        const counts = shares(policy, [ep(1), ep(2), ep(3)], 3000);
        expect(counts.size).to.equal(3);
      });
    });
  }

  describe('healthy panic threshold', () => {
    const eps = [ep(1), ep(2), ep(3), ep(4)];
    const health: HealthView = new Map([
      [eps[0]!.key, 'unhealthy'],
      [eps[1]!.key, 'unhealthy'],
      [eps[2]!.key, 'unhealthy'],
    ]);
    it('below the threshold every endpoint is a candidate (draining ones excepted)', () => {
      const c = clusterOf();
      const p = roundRobin.build(eps, health, c);
      const seen = new Set(Array.from({ length: 8 }, () => p.pick({}).ep!.key));
      expect(seen.size).to.equal(4);
      const drained = roundRobin.build(eps, new Map([...health, [eps[3]!.key, 'draining']]), c);
      const seen2 = new Set(Array.from({ length: 8 }, () => drained.pick({}).ep!.key));
      expect([...seen2].sort()).to.deep.equal([eps[0]!.key, eps[1]!.key, eps[2]!.key]);
    });
    it('at or above it, only the healthy ones; 0 disables panic', () => {
      const half = roundRobin.build(eps, new Map([...health].slice(0, 2)), clusterOf());
      expect(new Set(Array.from({ length: 8 }, () => half.pick({}).ep!.key))).to.deep.equal(new Set([eps[2]!.key, eps[3]!.key]));
      const strict = leastRequest.build(eps, health, clusterOf({ healthyPanicThreshold: 0 }));
      expect(new Set(Array.from({ length: 20 }, () => strict.pick({}).ep!.key))).to.deep.equal(new Set([eps[3]!.key]));
      const none = randomPolicy.build(eps, new Map(eps.map((e) => [e.key, 'unhealthy'])), clusterOf({ healthyPanicThreshold: 0 }));
      expect(none.pick({})).to.deep.equal({ code: 'no_healthy_upstream', detail: 'c' });
    });
  });

  it('the second of two distinct choices is drawn by the weights of the others (one random number)', () => {
    const eps = [ep(1, 1), ep(2, 2), ep(3, 3), ep(4, 4)];
    const sample = new WeightedSample(eps, seededRandom(5));
    for (const a of [0, 1, 2, 3]) {
      const counts = [0, 0, 0, 0];
      for (let i = 0; i < 40_000; i++) counts[sample.nextExcept(a)]!++;
      expect(counts[a]).to.equal(0);
      const rest = 10 - eps[a]!.weight;
      counts.forEach((n, i) => {
        if (i !== a) expect(n / 40_000, `a=${a} i=${i}`).to.be.closeTo(eps[i]!.weight / rest, 0.01);
      });
    }
    const equal = new WeightedSample([ep(1), ep(2), ep(3)], seededRandom(6));
    for (let i = 0; i < 1000; i++) expect(equal.nextExcept(1)).to.not.equal(1);
  });
});
