import { expect } from 'chai';
import http2 from 'node:http2';
import type net from 'node:net';
import v8 from 'node:v8';
import vm from 'node:vm';
import { sessionIdleTimeout } from '../../../src/proxy/http/h2-session-timeout.js';
import { goawayAndDestroy } from '../../../src/proxy/listener/stream-limit.js';

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

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
 * A closed HTTP/2 session must not be held by its idle timer: Node's own
 * clear of the timer is a no-op on a destroyed session, so without
 * sessionIdleTimeout the session stays reachable from the timer list for the
 * whole idle timeout (300 s by default).
 */
describe('sessionIdleTimeout', () => {
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
  async function closedSession(end: (server: http2.ServerHttp2Session, client: http2.ClientHttp2Session) => void, withHelper: boolean): Promise<WeakRef<object>> {
    const client = http2.connect(`http://127.0.0.1:${port}`);
    client.on('error', () => {});
    const ref = await new Promise<WeakRef<object>>((resolve) => {
      onSession = (s) => {
        s.on('error', () => {});
        if (withHelper) sessionIdleTimeout(s, 300_000, () => s.close());
        else s.setTimeout(300_000, () => s.close());
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

  it('(the Node behaviour it works around) with the plain setTimeout the closed session is still held', async () => {
    expect(await collected(await closedSession((_s, c) => c.destroy(), false))).to.equal(false);
  });
});
