import { expect } from 'chai';
import pino from 'pino';
import { HeapOverload } from '../../../src/proxy/overload/heap-overload.js';
import { FakeClock } from '../../support/fake-clock.js';

describe('HeapOverload', () => {
  const GiB = 2 ** 30;
  let used: number;
  let clock: FakeClock;
  let transitions: [boolean, number][];
  let o: HeapOverload;

  beforeEach(() => {
    used = 0.5 * GiB;
    clock = new FakeClock();
    transitions = [];
    o = new HeapOverload({
      clock,
      logger: pino({ level: 'silent' }),
      events: { onTransition: (on, f) => transitions.push([on, f]) },
      maxHeapFraction: 0.9,
      sampleMs: 250,
      readHeap: () => ({ used, limit: GiB }),
    });
    o.start();
  });
  afterEach(() => o.stop());

  it('enters overload above the watermark and leaves it only below the resume watermark (0.05 lower), sampled on the clock', () => {
    expect(o.overloaded).to.equal(false);
    expect(o.watermarks.resume).to.be.closeTo(0.85, 1e-9);
    used = 0.95 * GiB;
    expect(o.overloaded).to.equal(false); // not sampled yet
    clock.advance(249);
    expect(o.overloaded).to.equal(false);
    clock.advance(1);
    expect(o.overloaded).to.equal(true);
    used = 0.87 * GiB; // below the watermark, above the resume one: still overloaded
    clock.advance(250);
    expect(o.overloaded).to.equal(true);
    used = 0.84 * GiB;
    clock.advance(250);
    expect(o.overloaded).to.equal(false);
    used = 0.89 * GiB; // under the watermark: stays normal
    clock.advance(1000);
    expect(o.overloaded).to.equal(false);
    expect(transitions.map(([on]) => on)).to.deep.equal([true, false]);
    expect(transitions[0]![1]).to.be.closeTo(0.95, 1e-9);
  });

  it('stops sampling on stop()', () => {
    o.stop();
    used = 0.99 * GiB;
    clock.advance(10_000);
    expect(o.overloaded).to.equal(false);
    expect(clock.pending).to.equal(0);
  });

  it('rejects watermarks out of range', () => {
    const mk = (max: number, resume?: number) => () =>
      new HeapOverload({ clock, logger: pino({ level: 'silent' }), events: { onTransition: () => {} }, maxHeapFraction: max, resumeHeapFraction: resume });
    expect(mk(0)).to.throw(RangeError);
    expect(mk(1.5)).to.throw(RangeError);
    expect(mk(0.8, 0.9)).to.throw(RangeError);
    expect(mk(0.9, 0.5)).not.to.throw();
  });
});
