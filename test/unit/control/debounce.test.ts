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

  it('pushes once, after 100 ms of quiet', async () => {
    const { cp, clock, stream } = await plane();
    await change(cp);
    clock.advance(60);
    await change(cp);
    clock.advance(99);
    expect(stream.refreshes).to.equal(0);
    clock.advance(1);
    expect(stream.refreshes).to.equal(1);
    clock.advance(1000);
    expect(stream.refreshes).to.equal(1);
    await cp.close();
  });

  it('pushes no later than the maximum delay after the first change of a burst', async () => {
    const { cp, clock, stream } = await plane();
    const pushedAt: number[] = [];
    const refresh = stream.refresh.bind(stream);
    stream.refresh = (v) => {
      pushedAt.push(clock.monotonicMs());
      refresh(v);
    };
    // A change every 80 ms: never 100 ms of quiet.
    for (let i = 0; i < 6; i++) {
      await change(cp);
      clock.advance(80);
    }
    expect(pushedAt).to.deep.equal([300]);
    clock.advance(100);
    expect(pushedAt).to.deep.equal([300, 500]);
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
