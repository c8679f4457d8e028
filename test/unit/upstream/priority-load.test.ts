import { expect } from 'chai';
import { choosePriority, priorityLoad, type LevelCounts } from '../../../src/proxy/upstream/lb/priority-load.js';

/** A level of 100 endpoints with these percentages healthy and degraded (so counts equal percents). */
const lv = (healthy: number, degraded = 0): LevelCounts => ({ total: 100, healthy, degraded });

/**
 * Healthy loads for levels given as healthy percentages, factor 1.4. The
 * "Priority levels" page leaves panic aside (its tables are the load
 * computation alone), so these run with the panic threshold at 0; panic has
 * its own test below.
 */
const loads = (...healthy: number[]): number[] => [...priorityLoad(healthy.map((h) => lv(h)), 140, 0).healthy];

describe('priority load (Envoy)', () => {
  // Envoy docs, intro/arch_overview/upstream/load_balancing/priority ("Priority levels"),
  // first table: two levels, P=1 100 % healthy.
  it('two levels, P=1 fully healthy: the "Priority levels" table', () => {
    expect(loads(100, 100)).to.deep.equal([100, 0]);
    expect(loads(72, 100)).to.deep.equal([100, 0]);
    expect(loads(71, 100)).to.deep.equal([99, 1]);
    expect(loads(50, 100)).to.deep.equal([70, 30]);
    expect(loads(25, 100)).to.deep.equal([35, 65]);
    expect(loads(0, 100)).to.deep.equal([0, 100]);
  });

  // Same page, second table: normalized total health below 100 scales the scores up.
  it('both levels unhealthy: normalized total health (second table)', () => {
    expect(loads(100, 100)).to.deep.equal([100, 0]);
    expect(loads(72, 72)).to.deep.equal([100, 0]);
    expect(loads(71, 71)).to.deep.equal([99, 1]);
    expect(loads(50, 50)).to.deep.equal([70, 30]);
    expect(loads(25, 25)).to.deep.equal([50, 50]);
  });

  // Same page, third table: three levels.
  it('three levels (third table)', () => {
    expect(loads(100, 100, 100)).to.deep.equal([100, 0, 0]);
    expect(loads(72, 72, 100)).to.deep.equal([100, 0, 0]);
    expect(loads(71, 71, 100)).to.deep.equal([99, 1, 0]);
    expect(loads(50, 50, 100)).to.deep.equal([70, 30, 0]);
    expect(loads(25, 100, 100)).to.deep.equal([35, 65, 0]);
    expect(loads(25, 25, 100)).to.deep.equal([35, 35, 30]);
    // The page rounds 35/98 and 35/98 to 36 % each; Envoy's code (recalculatePerPriorityState)
    // truncates each share (35, 35, 28) and gives the 2 % left over to the first level.
    expect(loads(25, 25, 20)).to.deep.equal([37, 35, 28]);
  });

  // Envoy docs, .../load_balancing/degraded ("Degraded endpoints"): P=0 healthy/degraded/unhealthy.
  it('degraded endpoints take load only when the healthy ones cannot (the "Degraded endpoints" table)', () => {
    const one = (h: number, d: number): [number, number] => {
      const l = priorityLoad([lv(h, d)], 140, 50);
      return [l.healthy[0]!, l.degraded[0]!];
    };
    expect(one(100, 0)).to.deep.equal([100, 0]);
    expect(one(71, 0)).to.deep.equal([100, 0]);
    expect(one(71, 29)).to.deep.equal([99, 1]);
    expect(one(25, 65)).to.deep.equal([35, 65]);
    expect(one(5, 0)).to.deep.equal([100, 0]);
  });

  // Envoy docs, .../load_balancing/panic_threshold ("Panic threshold"), rows that follow the code exactly.
  it('panic: never while the normalized total is 100, per level below it, by endpoint count in total panic', () => {
    let l = priorityLoad([lv(25), lv(100)], 140, 50);
    expect(l.panic).to.deep.equal([false, false]);
    expect(l.healthy).to.deep.equal([35, 65]);
    l = priorityLoad([lv(0), lv(100)], 140, 50);
    expect(l.panic).to.deep.equal([false, false]);
    // 25 % / 25 %: normalized total 70; both levels under the threshold: total panic, load by endpoint count.
    l = priorityLoad([lv(25), lv(25)], 140, 50);
    expect(l.panic).to.deep.equal([true, true]);
    expect(l.healthy).to.deep.equal([50, 50]);
    // 5 % / 65 %: P=0 in panic, P=1 not; loads 7/91 plus the rounding leftover to the first level.
    l = priorityLoad([lv(5), lv(65)], 140, 50);
    expect(l.panic).to.deep.equal([true, false]);
    expect(l.healthy).to.deep.equal([8, 92]);
    // Total panic with unequal levels: 10 and 30 endpoints, none healthy.
    l = priorityLoad([{ total: 10, healthy: 0, degraded: 0 }, { total: 30, healthy: 0, degraded: 0 }], 140, 50);
    expect(l.healthy).to.deep.equal([25, 75]);
    expect(l.panic).to.deep.equal([true, true]);
  });

  it('panic threshold 0: nothing available sends everything to P=0 (no_healthy_upstream), no panic', () => {
    const l = priorityLoad([lv(0), lv(0)], 140, 0);
    expect(l.healthy).to.deep.equal([100, 0]);
    expect(l.panic).to.deep.equal([false, false]);
  });

  it('the overprovisioning factor is configurable (percent)', () => {
    // Factor 1.0: any unhealthy endpoint in P=0 moves its share to P=1.
    expect([...priorityLoad([lv(90), lv(100)], 100, 50).healthy]).to.deep.equal([90, 10]);
    // Factor 2.0: half the endpoints suffice.
    expect([...priorityLoad([lv(50), lv(100)], 200, 50).healthy]).to.deep.equal([100, 0]);
  });

  it('a level with degraded endpoints: healthy of every level first, then degraded (Envoy\'s code comment example)', () => {
    // load_balancer_impl.cc: "3 host sets with 10% / 20% / 10% health and 20% / 10% / 0% degraded
    // ... get 16% / 28% / 14% load to healthy hosts and 28% / 14% / 0% load to degraded hosts".
    const l = priorityLoad([{ total: 140, healthy: 14, degraded: 28 }, { total: 140, healthy: 28, degraded: 14 }, { total: 140, healthy: 14, degraded: 0 }], 100, 0);
    expect(l.health).to.deep.equal([10, 20, 10]);
    expect(l.degradedHealth).to.deep.equal([20, 10, 0]);
    expect(l.healthy).to.deep.equal([16, 28, 14]);
    expect(l.degraded).to.deep.equal([28, 14, 0]);
  });

  it('choosePriority walks the cumulative healthy loads, then the degraded ones', () => {
    const l = priorityLoad([lv(50), lv(100)], 140, 50); // 70 / 30
    const counts = [0, 0];
    for (let d = 0; d < 100; d++) counts[choosePriority(l, d)]!++;
    expect(counts).to.deep.equal([70, 30]);
    const dl = priorityLoad([lv(71, 29)], 140, 50); // 99 healthy, 1 degraded
    expect(choosePriority(dl, 98)).to.equal(0);
    expect(choosePriority(dl, 99)).to.equal(-1);
  });
});
