import { expect } from 'chai';
import http2 from 'node:http2';
import type net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { systemClock } from '../../../src/core/clock.js';
import { IdleTimeout } from '../../../src/proxy/http/idle-timeout.js';
import { goawayAndDestroy } from '../../../src/proxy/listener/stream-limit.js';
import { FakeClock } from '../../support/fake-clock.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

describe('IdleTimeout (no active stream for idleTimeout)', () => {
  let clock: FakeClock;
  let fired: number;
  const make = (ms: number): IdleTimeout => new IdleTimeout(clock, ms, () => fired++);
  beforeEach(() => {
    clock = new FakeClock();
    fired = 0;
  });

  it('fires once, `ms` after it was made, when no stream ever opened', () => {
    make(1000);
    clock.advance(999);
    expect(fired).to.equal(0);
    clock.advance(1);
    expect(fired).to.equal(1);
    clock.advance(10_000);
    expect(fired).to.equal(1);
    expect(clock.pending).to.equal(0);
  });

  it('never fires while a stream is open, however long; fires `ms` after the last one closed', () => {
    const t = make(1000);
    clock.advance(500);
    t.opened();
    t.opened();
    clock.advance(60_000);
    expect(fired).to.equal(0);
    t.closed();
    clock.advance(5_000);
    expect(fired, 'one stream still open').to.equal(0);
    t.closed();
    expect(t.activeStreams).to.equal(0);
    clock.advance(999);
    expect(fired).to.equal(0);
    clock.advance(1);
    expect(fired).to.equal(1);
  });

  it('a stream that opened and closed inside the window moves the deadline to `ms` after its close', () => {
    const t = make(1000);
    clock.advance(900);
    t.opened();
    clock.advance(50);
    t.closed(); // idle since 950
    clock.advance(50); // 1000: the first check finds 50 ms of idleness
    expect(fired).to.equal(0);
    clock.advance(949);
    expect(fired).to.equal(0);
    clock.advance(1); // 1950
    expect(fired).to.equal(1);
  });

  it('0 turns it off: no timer, streams still counted', () => {
    const t = make(0);
    expect(clock.pending).to.equal(0);
    t.opened();
    expect(t.activeStreams).to.equal(1);
    t.closed();
    clock.advance(1e9);
    expect(fired).to.equal(0);
  });

  it('cancel() stops it for good', () => {
    const t = make(1000);
    t.cancel();
    t.cancel();
    clock.advance(5000);
    expect(fired).to.equal(0);
    expect(clock.pending).to.equal(0);
  });
});

/** Whether the object behind `ref` is collected by full GCs, a macrotask apart (a WeakRef keeps its target for the current job). */
async function collected(ref: WeakRef<object>): Promise<boolean> {
  for (let i = 0; i < 5; i++) {
    await new Promise<void>((r) => setImmediate(r));
    gc();
    if (ref.deref() === undefined) return true;
  }
  return false;
}

/**
 * A closed HTTP/2 session must not be held by its idle timer until the timer
 * fires (300 s by default): bindTo() cancels it on 'close', however the
 * session ended. (Node's own session.setTimeout, which this replaced, leaves
 * its timer armed on a destroyed session.)
 */
describe('IdleTimeout: a closed session is not held by its timer', () => {
  let server: http2.Http2Server;
  let port: number;
  let onSession: (s: http2.ServerHttp2Session) => void;

  beforeEach(async () => {
    server = http2.createServer();
    server.on('session', (s) => onSession(s));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as net.AddressInfo).port;
  });
  afterEach(() => new Promise<void>((r) => server.close(() => r())));

  /** Opens a client session; resolves with a WeakRef to the server's session once it closed, `end` being how it ends. */
  async function closedSession(end: (server: http2.ServerHttp2Session, client: http2.ClientHttp2Session) => void, bind: boolean): Promise<WeakRef<object>> {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
    const ref = await new Promise<WeakRef<object>>((resolve) => {
      onSession = (s) => {
        s.on('error', () => {});
        const idle = new IdleTimeout(systemClock(), 300_000, () => s.close());
        if (bind) idle.bindTo(s);
        s.once('close', () => resolve(new WeakRef(s)));
        client.once('remoteSettings', () => end(s, client));
      };
    });
    client.destroy();
    return ref;
  }

  it('a session the client closed is collectable at once', async () => {
    expect(await collected(await closedSession((_s, c) => c.destroy(), true))).to.equal(true);
  });

  it('a session we ended with GOAWAY is collectable at once', async () => {
    expect(await collected(await closedSession((s) => goawayAndDestroy(s, http2.constants.NGHTTP2_ENHANCE_YOUR_CALM), true))).to.equal(true);
  });

  it('(what bindTo prevents) an unbound timer holds the closed session', async () => {
    expect(await collected(await closedSession((_s, c) => c.destroy(), false))).to.equal(false);
  });
});
