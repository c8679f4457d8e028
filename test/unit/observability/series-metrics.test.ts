import { expect } from 'chai';
import { Counter, Histogram, Registry } from 'prom-client';
import { SeriesCounter, SeriesHistogram } from '../../../src/observability/series-metrics.js';

/** The exposition of a registry, one line per sample, without HELP/TYPE (compared across implementations). */
async function lines(r: Registry): Promise<string[]> {
  return (await r.metrics()).split('\n').filter((l) => l && !l.startsWith('#'));
}

describe('series metrics: the same exposition as prom-client, resolved once per label set', () => {
  const buckets = [0.5, 1, 5, 10, 25];
  const obs: [string, string, number][] = [
    ['a', '200', 0.2],
    ['a', '200', 0.5],
    ['a', '200', 3],
    ['a', '503', 30],
    ['b', '200', 10],
    ['b', '200', 10.0001],
  ];

  it('a histogram scrapes exactly as prom-client Histogram for the same observations', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h = new SeriesHistogram('x_ms', 'help', ['svc', 'code'], buckets, ours);
    const p = new Histogram({ name: 'x_ms', help: 'help', labelNames: ['svc', 'code'], buckets, registers: [theirs] });
    for (const [svc, code, v] of obs) {
      h.series([svc, code]).observe(v);
      p.observe({ svc, code }, v);
    }
    expect(await lines(ours)).to.deep.equal(await lines(theirs));
    expect(await lines(ours)).to.include('x_ms_bucket{le="0.5",svc="a",code="200"} 2');
    expect(await lines(ours)).to.include('x_ms_bucket{le="+Inf",svc="a",code="503"} 1');
  });

  it('a counter scrapes exactly as prom-client Counter; handles stay live across resetMetrics', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const c = new SeriesCounter('y_total', 'help', ['svc'], ours);
    const p = new Counter({ name: 'y_total', help: 'help', labelNames: ['svc'], registers: [theirs] });
    const a = c.series(['a']);
    a.inc();
    a.inc(4);
    c.series(['b']).inc();
    p.inc({ svc: 'a' }, 5);
    p.inc({ svc: 'b' });
    expect(await lines(ours)).to.deep.equal(await lines(theirs));
    ours.resetMetrics();
    a.inc(2);
    expect(await lines(ours)).to.deep.equal(['y_total{svc="a"} 2', 'y_total{svc="b"} 0']);
    expect(ours.getSingleMetric('y_total')).to.equal(c);
  });

  it('refuses a label tuple of the wrong length', () => {
    const c = new SeriesCounter('z_total', 'help', ['a', 'b'], new Registry());
    expect(() => c.series(['only-one'])).to.throw(/expected 2 label values, got 1/);
  });
});
