import { expect } from 'chai';
import net from 'node:net';
import WebSocket from 'ws';
import { startTcpEcho, startWsEcho, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

/** Reads lines from a socket, keeping whatever arrives after the first newline for the next call. */
function lineReader(sock: net.Socket): () => Promise<string> {
  let buf = '';
  const waiting: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    buf += c.toString('latin1');
    waiting.splice(0).forEach((w) => w());
  });
  return async () => {
    for (;;) {
      const i = buf.indexOf('\n');
      if (i >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        return line;
      }
      await new Promise<void>((r) => waiting.push(r));
    }
  };
}

describe('WebSocket pass-through and opaque TCP', function () {
  let ws: Started<unknown>;
  let tcp: Started<unknown>;
  let sc: TestSidecar;

  before(async () => {
    ws = await startWsEcho();
    tcp = await startTcpEcho();
    sc = await startTestSidecar([
      listener('main', { defaultCluster: 'tcp' }),
      listener('plain', { routeConfig: 'main', detectTimeout: '0.1s', limits: { requestHeadersTimeout: '0.5s' } }),
      listener('opaque', { routeConfig: '', defaultCluster: 'tcp', opaque: true }),
      routes('main', [prefixRoute('/ws', 'ws'), prefixRoute('/', 'ws')]),
      cluster('ws', [ws.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('tcp', [tcp.port]),
    ]);
  });
  after(async () => {
    await sc.close();
    await ws.close();
    await tcp.close();
  });

  it('relays text and binary frames both ways and preserves the close code', async () => {
    const c = new WebSocket(`ws://127.0.0.1:${sc.port()}/ws/chat?room=1`);
    const got: (string | Buffer)[] = [];
    c.on('message', (d, isBinary) => got.push(isBinary ? (d as Buffer) : d.toString()));
    await new Promise((r, j) => (c.once('open', r), c.once('error', j)));
    c.send('hello');
    c.send(Buffer.from([1, 2, 3]));
    c.send('whoami');
    await waitFor(() => got.length === 3, 'echoes');
    expect(got[0]).to.equal('hello');
    expect(got[1]).to.deep.equal(Buffer.from([1, 2, 3]));
    const who = JSON.parse(got[2] as string) as { url: string; headers: Record<string, string> };
    expect(who.url).to.equal('/ws/chat?room=1');
    expect(who.headers['x-forwarded-for']).to.equal('127.0.0.1');
    const closed = new Promise<[number, string]>((r) => c.once('close', (code, reason) => r([code, reason.toString()])));
    c.send('close-me');
    expect(await closed).to.deep.equal([4001, 'bye']);
    await waitFor(() => sc.access.some((l) => l.protocol === 'websocket' && l.status === 101), 'ws access log');
  });

  it('opaque TCP: a peer that sends nothing goes to the default cluster after the detection timeout (server speaks first)', async () => {
    const s = net.connect(sc.port(), '127.0.0.1');
    const readLine = lineReader(s);
    expect(await readLine()).to.equal('hello');
    s.write('ping\n');
    expect(await readLine()).to.equal('ping');
    s.destroy();
    expect(await sc.metrics()).to.match(/outrigger_protocol_detection_total\{listener="main",outcome="timeout"\} [1-9]/);
  });

  it('opaque TCP: non-HTTP bytes are proxied, detection bytes replayed', async () => {
    const s = net.connect(sc.port(), '127.0.0.1');
    const readLine = lineReader(s);
    s.write('\x00\x01binary-protocol\n');
    expect(await readLine()).to.equal('hello');
    expect(await readLine()).to.equal('\x00\x01binary-protocol');
    s.destroy();
    expect(await sc.metrics()).to.match(/outrigger_protocol_detection_total\{listener="main",outcome="opaque"\} [1-9]/);
  });

  it('declared opaque ports skip detection entirely', async () => {
    const t0 = Date.now();
    const s = net.connect(sc.port('opaque'), '127.0.0.1');
    expect(await lineReader(s)()).to.equal('hello');
    // No detection wait: the greeting arrives well before the 100 ms default timeout.
    expect(Date.now() - t0).to.be.lessThan(90);
    s.destroy();
  });

  it('a silent peer on a listener without a default cluster is closed after requestHeadersTimeout (not the detection timeout) and counted', async () => {
    const s = net.connect(sc.port('plain'), '127.0.0.1');
    s.on('error', () => {});
    const t0 = Date.now();
    await new Promise((r) => s.once('close', r));
    // Without a default cluster a silent client may be one that connected ahead of its request (issue 19 point 3).
    expect(Date.now() - t0).to.be.within(450, 3000);
    expect(await sc.metrics()).to.match(/outrigger_downstream_protocol_errors_total\{listener="plain",kind="silent_peer"\} [1-9]/);
  });
});
