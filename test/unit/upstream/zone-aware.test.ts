import { expect } from 'chai';
import { chooseLocality, localityPercentages, zoneRouting, type LocalityShare, type ZoneInputs } from '../../../src/proxy/upstream/lb/zone-aware.js';

function inputs(localities: LocalityShare[], extra: Partial<ZoneInputs> = {}): ZoneInputs {
  return {
    localities,
    hasLocalLocality: true,
    localLocalityCount: localities.filter((l) => l.local > 0).length,
    localInOwnLocality: localities[0]!.local,
    minClusterSize: 6,
    ...extra,
  };
}

describe('zone-aware routing (Envoy)', () => {
  // Envoy docs, intro/arch_overview/upstream/load_balancing/zone_aware ("Zone aware routing"),
  // second case: the local zone's share of callers is not above its share of upstream hosts.
  it('all direct while the local zone has at least its callers\' share of healthy endpoints', () => {
    expect(zoneRouting(inputs([{ upstreamHealthy: 3, local: 1 }, { upstreamHealthy: 3, local: 1 }]))).to.deep.equal({ kind: 'direct' });
    expect(zoneRouting(inputs([{ upstreamHealthy: 4, local: 1 }, { upstreamHealthy: 2, local: 1 }]))).to.deep.equal({ kind: 'direct' });
  });

  // Same page, first case, and load_balancer_impl.cc's example: "if local percentage is 20% and
  // upstream is 10% we can route only 50% of requests directly".
  it('residual: upstream% / local% of requests stay local (20 % callers, 10 % upstream → 50 %)', () => {
    const r = zoneRouting(inputs([{ upstreamHealthy: 1, local: 2 }, { upstreamHealthy: 9, local: 8 }]));
    expect(r.kind).to.equal('residual');
    if (r.kind !== 'residual') return;
    expect(r.localPercent).to.equal(5000);
  });

  // load_balancer_impl.cc's residual-capacity example: callers 40 % 40 % 20 %, upstream
  // 25 % 50 % 25 % → residual 0 10 % 5 %, accumulated 0 10 % 15 % (the comment writes them
  // ×10: 40000, 10000, 15000; the code's scale is 10000 = 100 %).
  it('residual capacity: spare share per locality, accumulated (Envoy\'s code-comment example)', () => {
    const r = zoneRouting(inputs([{ upstreamHealthy: 25, local: 40 }, { upstreamHealthy: 50, local: 40 }, { upstreamHealthy: 25, local: 20 }]));
    expect(r).to.deep.equal({ kind: 'residual', localPercent: 6250, residual: [0, 1000, 1500] });
    if (r.kind !== 'residual') return;
    // Cross-zone requests split 10000 : 5000 between the second and third locality.
    const counts = [0, 0, 0];
    for (let i = 0; i < 15000; i++) counts[chooseLocality(r, 0.99, i / 15000)]!++;
    expect(counts).to.deep.equal([0, 10000, 5000]);
    // draw1 below 62.5 % stays local.
    expect(chooseLocality(r, 0.6249, 0.5)).to.equal(0);
    expect(chooseLocality(r, 0.625, 0.0)).to.equal(1);
  });

  it('no healthy endpoint in the local zone: everything crosses, by residual capacity', () => {
    const r = zoneRouting(inputs([{ upstreamHealthy: 0, local: 3 }, { upstreamHealthy: 3, local: 3 }, { upstreamHealthy: 3, local: 3 }]));
    expect(r).to.deep.equal({ kind: 'residual', localPercent: 0, residual: [0, 1667, 3334] });
  });

  it('the upstream has no endpoint in the caller\'s locality: residual over all', () => {
    const r = zoneRouting(inputs([{ upstreamHealthy: 3, local: 1 }, { upstreamHealthy: 3, local: 1 }], { hasLocalLocality: false, localInOwnLocality: 1, localLocalityCount: 3 }));
    expect(r.kind).to.equal('residual');
  });

  it('early exits (Envoy\'s earlyExitNonLocalityRouting)', () => {
    expect(zoneRouting(inputs([{ upstreamHealthy: 6, local: 1 }])).kind).to.equal('none');
    expect(zoneRouting(inputs([{ upstreamHealthy: 3, local: 1 }, { upstreamHealthy: 3, local: 0 }])).kind).to.equal('none');
    expect(zoneRouting(inputs([{ upstreamHealthy: 3, local: 0 }, { upstreamHealthy: 3, local: 1 }], { localLocalityCount: 2 })).kind).to.equal('none');
    // 5 healthy < minClusterSize 6
    expect(zoneRouting(inputs([{ upstreamHealthy: 2, local: 1 }, { upstreamHealthy: 3, local: 1 }]))).to.deep.equal({
      kind: 'none',
      reason: 'fewer than minClusterSize (6) healthy endpoints',
    });
    expect(zoneRouting(inputs([{ upstreamHealthy: 2, local: 1 }, { upstreamHealthy: 3, local: 1 }], { minClusterSize: 5 })).kind).to.equal('residual');
  });

  it('percentages in 1/100 %, truncated', () => {
    expect(localityPercentages([{ upstreamHealthy: 1, local: 1 }, { upstreamHealthy: 2, local: 2 }])).to.deep.equal([
      { local: 3333, upstream: 3333 },
      { local: 6666, upstream: 6666 },
    ]);
  });
});
