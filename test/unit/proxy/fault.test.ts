import { expect } from 'chai';
import { AbortScope } from '../../../src/core/abort-scope.js';
import { seededRandom, type Random } from '../../../src/core/random.js';
import type { AbortReason, Downstream } from '../../../src/proxy/downstream/downstream.js';
import { injectFault } from '../../../src/proxy/pipeline/fault.js';
import type { FaultPlan } from '../../../src/proxy/router/types.js';
import { FakeClock } from '../../support/fake-clock.js';

/** The parts of a Downstream the fault stage touches before it answers or moves on (the answers are covered through sockets). */
function exchange(): { ds: Downstream; scope: AbortScope<AbortReason> } {
  const scope = new AbortScope<AbortReason>();
  const ds = { ex: { injectedFlags: undefined, flags: undefined }, scope, kind: 'h1' } as unknown as Downstream;
  return { ds, scope };
}

const fixed = (v: number): Random => ({ next: () => v, int: () => 0 });

describe('fault injection: the delay on the injected clock', () => {
  const plan: FaultPlan = { delay: { ms: 2000, fraction: 1 } };

  it('holds the request for fixedDelay, then goes on, flagged DI', () => {
    const clock = new FakeClock();
    const { ds } = exchange();
    let went = 0;
    injectFault(clock, fixed(0.5), ds, plan, () => void went++, () => expect.fail('no abort'));
    expect(ds.ex.injectedFlags).to.equal('DI');
    clock.advance(1999);
    expect(went).to.equal(0);
    clock.advance(1);
    expect(went).to.equal(1);
  });

  it('a client that leaves during the delay cancels the timer: nothing goes on, the abort is reported once', () => {
    const clock = new FakeClock();
    const { ds, scope } = exchange();
    let went = 0;
    const reasons: string[] = [];
    injectFault(clock, fixed(0.5), ds, plan, () => void went++, (_d, r) => void reasons.push(r));
    expect(clock.pending).to.equal(1);
    scope.abort('downstream_reset');
    expect(clock.pending).to.equal(0);
    clock.advance(5000);
    expect(went).to.equal(0);
    expect(reasons).to.deep.equal(['downstream_reset']);
  });

  it('percent draws with the injected random: 10 % of 10 000 requests delayed (±2 %)', () => {
    const clock = new FakeClock();
    const random = seededRandom(11);
    let delayed = 0;
    for (let i = 0; i < 10_000; i++) {
      const { ds } = exchange();
      injectFault(clock, random, ds, { delay: { ms: 1, fraction: 0.1 } }, () => undefined, () => undefined);
      if (ds.ex.injectedFlags === 'DI') delayed++;
    }
    expect(Math.abs(delayed / 10_000 - 0.1)).to.be.at.most(0.02);
  });

  it('no delay drawn: no flag, no timer, straight on', () => {
    const clock = new FakeClock();
    const { ds } = exchange();
    let went = 0;
    injectFault(clock, fixed(0.99), ds, { delay: { ms: 10, fraction: 0.5 } }, () => void went++, () => undefined);
    expect([went, clock.pending, ds.ex.injectedFlags]).to.deep.equal([1, 0, undefined]);
  });
});
