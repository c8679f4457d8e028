import { expect } from 'chai';
import net from 'node:net';
import { systemClock } from '../../../src/core/clock.js';
import { connectDeadline } from '../../../src/core/connect-deadline.js';
import { FakeClock } from '../../support/fake-clock.js';

/** Blocks the event loop for `ms` (a stalled, overloaded process). */
function stall(ms: number): void {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    /* busy */
  }
}

describe('connectDeadline: a connect timeout an event-loop stall cannot fake', () => {
  let server: net.Server;
  let port: number;
  before(async () => {
    server = net.createServer((s) => s.on('error', () => undefined));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('a connect the kernel completed during a stall longer than the timeout is not failed; a plain timer would have failed it', async () => {
    const clock = systemClock();
    const sock = net.connect(port, '127.0.0.1');
    let plainSawConnecting: boolean | undefined;
    const plain = setTimeout(() => (plainSawConnecting = sock.connecting), 20);
    let timedOut = false;
    const t = connectDeadline(clock, 20, () => !sock.connecting, () => (timedOut = true));
    stall(120); // the connect completes in the kernel meanwhile; both timers are due when the loop resumes
    await new Promise<void>((r) => sock.once('connect', () => r()));
    await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    clearTimeout(plain);
    t.cancel();
    sock.destroy();
    expect(plainSawConnecting, 'the plain timer ran before the connect was delivered').to.equal(true);
    expect(timedOut).to.equal(false);
  });

  it('still times out a connect that does not complete (judged on the turn after the timer)', async () => {
    const clock = new FakeClock();
    let timedOut = false;
    connectDeadline(clock, 1000, () => false, () => (timedOut = true));
    clock.advance(999);
    await new Promise((r) => setImmediate(r));
    expect(timedOut).to.equal(false);
    clock.advance(1);
    expect(timedOut, 'not in the timers phase itself').to.equal(false);
    await new Promise((r) => setImmediate(r));
    expect(timedOut).to.equal(true);
  });

  it('a connect delivered between the timer and its judgement, or a cancel, stops it', async () => {
    const clock = new FakeClock();
    let connected = false;
    let timedOut = 0;
    connectDeadline(clock, 1000, () => connected, () => timedOut++);
    const t = connectDeadline(clock, 1000, () => false, () => timedOut++);
    clock.advance(1000);
    connected = true; // the poll phase delivered the connect
    t.cancel();
    await new Promise((r) => setImmediate(r));
    expect(timedOut).to.equal(0);
  });
});
