import { expect } from 'chai';
import pino from 'pino';
import { Registry } from 'prom-client';
import { ControlPlane } from '../../../src/control/server/control-plane.js';
import type { HostedStream } from '../../../src/control/server/stream-host.js';
import type { StateStore } from '../../../src/control/store/state-store.js';
import { EMPTY_STATE, type StoreState } from '../../../src/control/store/store-state.js';
import { cluster } from '../../support/config-docs.js';
import { FakeClock } from '../../support/fake-clock.js';

class MemoryStore implements StateStore {
  state: StoreState = EMPTY_STATE;
  readonly description = 'memory';
  async load(): Promise<StoreState> {
    return this.state;
  }
  async commit(next: StoreState, expected: number): Promise<boolean> {
    if (this.state.revision !== expected) return false;
    this.state = next;
    return true;
  }
  onExternalChange(): void {}
  async close(): Promise<void> {}
}

function fakeStream(id: number): HostedStream & { refreshes: number } {
  return {
    id,
    kind: 'sotw',
    node: undefined,
    identity: undefined,
    connectedAtMs: 0,
    synced: true,
    refreshes: 0,
    refresh() {
      this.refreshes++;
    },
    status: () => [],
    close() {},
  };
}

describe('control: push debounce on the injected clock', () => {
  async function plane(): Promise<{ cp: ControlPlane; clock: FakeClock; stream: ReturnType<typeof fakeStream> }> {
    const clock = new FakeClock();
    const cp = await ControlPlane.start({
      store: new MemoryStore(),
      clock,
      logger: pino({ level: 'silent' }),
      registry: new Registry(),
      debounceMs: 100,
      maxDelayMs: 300,
    });
    const stream = fakeStream(1);
    cp.register(stream);
    return { cp, clock, stream };
  }
  let n = 0;
  const change = (cp: ControlPlane): Promise<unknown> => cp.apply([cluster('web', [1000 + ++n])], {}, 'test');

  it('a change that finds the plane idle is pushed at once; changes within the quiet period after it are coalesced into one push after 100 ms of quiet', async () => {
    const { cp, clock, stream } = await plane();
    await change(cp);
    clock.advance(0);
    expect(stream.refreshes, 'idle: pushed at once').to.equal(1);
    clock.advance(40);
    await change(cp); // 40 ms after the push: a burst begins
    clock.advance(60);
    await change(cp); // extends it
    clock.advance(99);
    expect(stream.refreshes).to.equal(1);
    clock.advance(1);
    expect(stream.refreshes, 'the burst, once, after 100 ms of quiet').to.equal(2);
    clock.advance(1000);
    expect(stream.refreshes).to.equal(2);
    // Idle again: the next change goes out at once.
    await change(cp);
    clock.advance(0);
    expect(stream.refreshes).to.equal(3);
    await cp.close();
  });

  it('changes in the same turn as an idle push go out together', async () => {
    const { cp, clock, stream } = await plane();
    await Promise.all([change(cp), change(cp), change(cp)]);
    clock.advance(0);
    expect(stream.refreshes).to.equal(1);
    clock.advance(1000);
    expect(stream.refreshes).to.equal(1);
    await cp.close();
  });

  it('a burst is pushed no later than the maximum delay after its first change', async () => {
    const { cp, clock, stream } = await plane();
    const pushedAt: number[] = [];
    const refresh = stream.refresh.bind(stream);
    stream.refresh = (v) => {
      pushedAt.push(clock.monotonicMs());
      refresh(v);
    };
    // A change every 80 ms: never 100 ms of quiet. The first is pushed at once (idle); the burst
    // starts with the second (80) and is pushed at 80 + 300.
    for (let i = 0; i < 6; i++) {
      await change(cp);
      clock.advance(80);
    }
    expect(pushedAt).to.deep.equal([0, 380]);
    clock.advance(100);
    expect(pushedAt).to.deep.equal([0, 380, 500]);
    await cp.close();
  });

  it('an apply that changes nothing schedules no push', async () => {
    const { cp, clock, stream } = await plane();
    await cp.apply([cluster('same', [1])], {}, 'test');
    clock.advance(200);
    expect(stream.refreshes).to.equal(1);
    await cp.apply([cluster('same', [1])], {}, 'test');
    clock.advance(200);
    expect(stream.refreshes).to.equal(1);
    await cp.close();
  });
});
