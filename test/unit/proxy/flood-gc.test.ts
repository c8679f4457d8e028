import { expect } from 'chai';
import { FloodGc, fullGcFunction } from '../../../src/proxy/overload/flood-gc.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('FloodGc (a full GC after HTTP/2 floods)', () => {
  it('collects at most once a second while floods last, once more after the last, and never without one', () => {
    const clock = new FakeClock();
    let collections = 0;
    const gc = new FloodGc({ clock, collect: () => collections++ });
    clock.advance(5000);
    expect(collections, 'no flood: nothing').to.equal(0);
    gc.noteFlood();
    clock.advance(100);
    gc.noteFlood();
    clock.advance(400);
    gc.noteFlood();
    expect(collections).to.equal(0);
    clock.advance(500); // 1 s after the first flood
    expect(collections).to.equal(1);
    clock.advance(1000); // floods came after it was scheduled: one more, which sees none since
    expect(collections).to.equal(2);
    clock.advance(10_000);
    expect(collections, 'the flood is over').to.equal(2);
    gc.noteFlood();
    gc.stop();
    clock.advance(5000);
    expect(collections, 'stopped').to.equal(2);
  });

  it('fullGcFunction returns a working full collection without --expose-gc at start', async () => {
    const collect = fullGcFunction();
    expect(collect).to.be.a('function');
    // An object old enough to be in the old generation, reachable only weakly: only a full GC frees it.
    const ref = new WeakRef({ payload: new Array(1000).fill('x') });
    for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
    collect!();
    expect(ref.deref()).to.equal(undefined);
  });
});
