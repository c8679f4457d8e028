import { expect } from 'chai';
import { LiveStats, OTHER_KEY } from '../../../src/observability/live-stats.js';
import { TapHub, type TapEvent } from '../../../src/observability/tap.js';
import { FakeClock } from '../../support/fake-clock.js';

const sample = (route: string, status: number, ms: number, grpc?: string) => ({ route, cluster: 'c', upstream: '127.0.0.1:1', path: `/${route}`, status, grpc_status: grpc, duration_ms: ms });

describe('live window', () => {
  it('reports success rate, RPS and percentiles over the last window, and forgets buckets as they roll out', () => {
    const clock = new FakeClock();
    const live = new LiveStats(clock, { windowMs: 60_000, bucketMs: 10_000 });
    for (let i = 0; i < 90; i++) live.record(sample('a', 200, 2));
    for (let i = 0; i < 9; i++) live.record(sample('a', 503, 100));
    live.record(sample('a', 200, 1000, '14'));
    let [a] = live.snapshot('route');
    expect(a!.key).to.equal('a');
    expect(a!.requests).to.equal(100);
    expect(a!.success_rate).to.equal(0.9);
    expect(a!.rps).to.be.closeTo(100 / 60, 0.001);
    expect(a!.p50_ms).to.be.within(2, 2.5); // within the 25 % bucket resolution
    expect(a!.p95_ms).to.be.within(100, 125);
    expect(a!.p99_ms).to.be.within(100, 125);
    clock.advance(30_000);
    live.record(sample('a', 200, 5));
    expect(live.snapshot('route')[0]!.requests).to.equal(101);
    clock.advance(30_000); // the first bucket is now 60 s old: out of the window
    [a] = live.snapshot('route');
    expect(a!.requests).to.equal(1);
    expect(a!.p99_ms).to.be.within(5, 6.25);
    clock.advance(60_000);
    expect(live.snapshot('route')).to.deep.equal([]);
  });

  it('keeps at most maxKeys per dimension, folding the rest into "other"', () => {
    const live = new LiveStats(new FakeClock(), { maxKeys: 2 });
    for (const r of ['a', 'b', 'c', 'd', 'a']) live.record(sample(r, 200, 1));
    live.record({ ...sample('a', 200, 1), path: '/a?x=1' });
    expect(live.snapshot('path')[0]).to.include({ key: '/a', requests: 3 });
    expect(live.snapshot('route').map((x) => [x.key, x.requests])).to.deep.equal([
      ['a', 3],
      [OTHER_KEY, 2],
      ['b', 1],
    ]);
  });
});

describe('tap hub', () => {
  const ev = (route: string, path: string) => ({ route, path }) as TapEvent;

  it('is inactive with no subscriber and builds no event', () => {
    const hub = new TapHub();
    expect(hub.active).to.equal(false);
    let built = 0;
    const s = hub.subscribe({ route: 'r' }, { write: () => true, end: () => {} });
    expect(hub.active).to.equal(true);
    hub.publish('other', '/x', () => (built++, ev('other', '/x')));
    expect(built, 'no subscriber matches: no event built').to.equal(0);
    s.close();
    expect(hub.active).to.equal(false);
  });

  it('filters by route and path prefix, stops after max, and bounds a slow subscriber', () => {
    const hub = new TapHub(2);
    const got: string[] = [];
    let ended = 0;
    hub.subscribe({ pathPrefix: '/api/', max: 2 }, { write: (e) => (got.push(e.path), true), end: () => ended++ });
    hub.publish('r', '/other', () => ev('r', '/other'));
    hub.publish('r', '/api/1', () => ev('r', '/api/1'));
    hub.publish('r', '/api/2', () => ev('r', '/api/2'));
    hub.publish('r', '/api/3', () => ev('r', '/api/3'));
    expect(got).to.deep.equal(['/api/1', '/api/2']);
    expect(ended).to.equal(1);
    expect(hub.subscribers).to.equal(0);

    const slow: string[] = [];
    const sub = hub.subscribe({}, { write: (e) => (slow.push(e.path), false), end: () => {} });
    for (const p of ['/1', '/2', '/3', '/4', '/5']) hub.publish('r', p, () => ev('r', p));
    expect(slow).to.deep.equal(['/1']);
    expect(sub.dropped, 'buffer of 2 full: /4 and /5 dropped').to.equal(2);
    sub.drain();
    expect(slow).to.deep.equal(['/1', '/2']);
  });
});
