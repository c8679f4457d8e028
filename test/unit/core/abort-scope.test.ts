import { expect } from 'chai';
import { AbortScope } from '../../../src/core/abort-scope.js';
import { FakeClock } from '../../support/fake-clock.js';

type R = 'a' | 'b' | 'c';

describe('AbortScope', () => {
  it('aborts once: a second abort is ignored and the first reason is kept', () => {
    const s = new AbortScope<R>();
    const heard: R[] = [];
    s.onAbort((r) => heard.push(r));
    expect(s.open).to.equal(true);
    expect(s.aborted).to.equal(false);
    s.abort('a');
    s.abort('b');
    expect(s.aborted).to.equal(true);
    expect(s.open).to.equal(false);
    expect(s.reason).to.equal('a');
    expect(heard).to.deep.equal(['a']);
  });

  it('calls listeners in the order they were added, once, and at once when added after the abort', () => {
    const s = new AbortScope<R>();
    const heard: string[] = [];
    s.onAbort((r) => heard.push(`1:${r}`));
    s.onAbort((r) => heard.push(`2:${r}`));
    s.onAbort((r) => heard.push(`3:${r}`));
    s.abort('b');
    expect(heard).to.deep.equal(['1:b', '2:b', '3:b']);
    s.onAbort((r) => heard.push(`late:${r}`));
    expect(heard).to.deep.equal(['1:b', '2:b', '3:b', 'late:b']);
    s.abort('c');
    expect(heard).to.have.length(4);
  });

  it('aborts with the deadline reason when its deadline passes, not before', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    const heard: R[] = [];
    s.onAbort((r) => heard.push(r));
    s.deadline(clock, 100, 'a');
    clock.advance(99);
    expect(s.open).to.equal(true);
    clock.advance(1);
    expect(heard).to.deep.equal(['a']);
    expect(s.reason).to.equal('a');
    expect(clock.pending).to.equal(0);
  });

  it('keeps the shortest deadline whichever is set first', () => {
    // Longer first, then shorter: the shorter replaces it.
    const c1 = new FakeClock();
    const s1 = new AbortScope<R>();
    s1.deadline(c1, 500, 'a');
    s1.deadline(c1, 100, 'b');
    expect(c1.pending).to.equal(1);
    c1.advance(100);
    expect(s1.reason).to.equal('b');
    c1.advance(1000);
    expect(s1.reason).to.equal('b');

    // Shorter first, then longer: the longer is ignored.
    const c2 = new FakeClock();
    const s2 = new AbortScope<R>();
    s2.deadline(c2, 100, 'b');
    s2.deadline(c2, 500, 'a');
    expect(c2.pending).to.equal(1);
    c2.advance(100);
    expect(s2.reason).to.equal('b');
  });

  it('of two deadlines ending at the same time, the first set keeps its reason', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    s.deadline(clock, 100, 'a');
    s.deadline(clock, 100, 'b');
    clock.advance(100);
    expect(s.reason).to.equal('a');
  });

  it('measures a later deadline from when it is set', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    s.deadline(clock, 100, 'a');
    clock.advance(60);
    // 50 ms from now ends at 110: later than the armed 100, so it is ignored.
    s.deadline(clock, 50, 'b');
    clock.advance(40);
    expect(s.reason).to.equal('a');

    const s2 = new AbortScope<R>();
    s2.deadline(clock, 100, 'a');
    clock.advance(60);
    // 30 ms from now ends at 90 (relative to s2's start): earlier, so it wins.
    s2.deadline(clock, 30, 'b');
    clock.advance(30);
    expect(s2.reason).to.equal('b');
  });

  it('ignores deadlines that are not positive, and deadlines set after the end', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    s.deadline(clock, 0, 'a');
    s.deadline(clock, -5, 'a');
    s.deadline(clock, Number.NaN, 'a');
    expect(clock.pending).to.equal(0);
    s.abort('c');
    s.deadline(clock, 10, 'b');
    expect(clock.pending).to.equal(0);
    const d = new AbortScope<R>();
    d.dispose();
    d.deadline(clock, 10, 'b');
    expect(clock.pending).to.equal(0);
  });

  it('cancels its deadline timer when aborted by hand', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    s.deadline(clock, 100, 'a');
    s.abort('c');
    expect(clock.pending).to.equal(0);
    clock.advance(200);
    expect(s.reason).to.equal('c');
  });

  it('dispose cancels the deadline and drops listeners without calling them', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    const heard: R[] = [];
    s.onAbort((r) => heard.push(r));
    s.onAbort((r) => heard.push(r));
    s.deadline(clock, 100, 'a');
    s.dispose();
    expect(clock.pending).to.equal(0);
    clock.advance(1000);
    s.abort('b');
    s.onAbort((r) => heard.push(r));
    expect(heard).to.deep.equal([]);
    expect(s.open).to.equal(false);
    expect(s.aborted).to.equal(false);
    expect(s.reason).to.equal(undefined);
  });

  it('dispose after an abort changes nothing', () => {
    const s = new AbortScope<R>();
    s.abort('a');
    s.dispose();
    expect(s.aborted).to.equal(true);
    const heard: R[] = [];
    s.onAbort((r) => heard.push(r));
    expect(heard).to.deep.equal(['a']);
  });

  it('signal built before the abort aborts with the scope, with its reason', () => {
    const s = new AbortScope<R>();
    const signal = s.signal;
    expect(s.signal).to.equal(signal);
    let events = 0;
    signal.addEventListener('abort', () => events++);
    expect(signal.aborted).to.equal(false);
    s.abort('b');
    expect(signal.aborted).to.equal(true);
    expect(signal.reason).to.equal('b');
    expect(events).to.equal(1);
  });

  it('signal built after the abort is already aborted, with its reason', () => {
    const s = new AbortScope<R>();
    s.abort('c');
    expect(s.signal.aborted).to.equal(true);
    expect(s.signal.reason).to.equal('c');
  });

  it('signal follows a deadline abort', () => {
    const clock = new FakeClock();
    const s = new AbortScope<R>();
    const signal = s.signal;
    s.deadline(clock, 10, 'a');
    clock.advance(10);
    expect(signal.aborted).to.equal(true);
    expect(signal.reason).to.equal('a');
  });

  it('signal of a disposed scope never aborts', () => {
    const s = new AbortScope<R>();
    const signal = s.signal;
    s.dispose();
    s.abort('a');
    expect(signal.aborted).to.equal(false);
  });
});
