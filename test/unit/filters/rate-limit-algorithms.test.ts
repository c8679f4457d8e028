import { expect } from 'chai';
import { FakeClock } from '../../support/fake-clock.js';
import { fixedWindow, slidingWindow, tokenBucket, type Algorithm } from '../../../src/proxy/filters/rate-limit/algorithms.js';

/** The limiter algorithms on the fake clock. */
describe('filters: rate-limit algorithms', () => {
  function run<S>(algo: Algorithm<S>, clock: FakeClock) {
    const s = algo.init(clock.monotonicMs());
    return () => algo.take(s, clock.monotonicMs());
  }

  it('token bucket: starts full, refills tokensPerFill per interval, never above maxTokens', () => {
    const clock = new FakeClock();
    const take = run(tokenBucket(3, 2, 1000), clock);
    expect([take(), take(), take(), take()].map((d) => d.allowed)).to.deep.equal([true, true, true, false]);
    const refused = take();
    expect(refused).to.include({ allowed: false, limit: 3, remaining: 0, resetMs: 1000 });
    clock.advance(999);
    expect(take().allowed).to.equal(false);
    clock.advance(1);
    expect([take(), take(), take()].map((d) => d.allowed)).to.deep.equal([true, true, false]);
    clock.advance(10_000);
    expect([take(), take(), take(), take()].map((d) => d.allowed)).to.deep.equal([true, true, true, false]);
  });

  it('fixed window: requests per aligned window, remaining and reset', () => {
    const clock = new FakeClock();
    clock.advance(500);
    const take = run(fixedWindow(2, 1000), clock);
    expect(take()).to.include({ allowed: true, remaining: 1, resetMs: 500 });
    expect(take()).to.include({ allowed: true, remaining: 0 });
    expect(take()).to.include({ allowed: false, resetMs: 500 });
    clock.advance(500);
    expect(take()).to.include({ allowed: true, remaining: 1, resetMs: 1000 });
  });

  it('sliding window: the previous window counts by the share still covered', () => {
    const clock = new FakeClock();
    const take = run(slidingWindow(4, 1000), clock);
    for (let i = 0; i < 4; i++) expect(take().allowed).to.equal(true);
    expect(take().allowed).to.equal(false);
    clock.advance(1000); // previous = 4, weight 1: still full
    expect(take().allowed).to.equal(false);
    clock.advance(500); // weight 0.5: 2 of the previous count, room for 2
    expect([take(), take(), take()].map((d) => d.allowed)).to.deep.equal([true, true, false]);
    clock.advance(2000); // two windows later: nothing carried over
    for (let i = 0; i < 4; i++) expect(take().allowed).to.equal(true);
  });
});
