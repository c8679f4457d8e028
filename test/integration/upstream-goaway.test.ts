import { expect } from 'chai';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';
import { waitFor } from '../support/wait.js';

type Reply = { status: number; headers: http2.IncomingHttpHeaders; body: string };

/**
 * A raw h2c backend that ends every session after answering `goawayEvery`
 * requests on it, and can be killed abruptly (every session destroyed,
 * listener closed) and restarted on the same port. /hang never answers.
 *
 * Modes of ending a session:
 *   'close'     – GOAWAY(NO_ERROR, last processed id) by session.close(), then
 *                 RST_STREAM REFUSED_STREAM for the streams after the last
 *                 answered one that were already on the wire (the rest of the
 *                 same read), as Node's own session.close() in the 'stream'
 *                 handler did: both are sent once the read is processed.
 *                 Why not session.close() in the handler, as this did: on
 *                 Node 20, a GOAWAY submitted while a read is being processed,
 *                 followed by a RST_STREAM of a stream opened later in the
 *                 same read (what Node itself does to new streams of a closed
 *                 session), writes to nghttp2 stream memory already freed;
 *                 about half of the full test runs then died with a glibc
 *                 "corrupted size vs. prev_size" abort. Node 22 and 24 do not
 *                 (docs/development.md, "Node 20 and HTTP/2").
 *   'two-phase' – RFC 9113 §6.8 graceful shutdown: GOAWAY(NO_ERROR, 2^31-1) as
 *                 a notice, keep serving streams in flight, close after a PING round trip.
 */
class GoawayBackend {
  sessionsOpened = 0;
  answered = 0;
  readonly hanging: http2.ServerHttp2Stream[] = [];
  goawayEvery = 5;
  mode: 'close' | 'two-phase' = 'close';
  port = 0;
  private server: http2.Http2Server | undefined;
  private readonly live = new Set<http2.ServerHttp2Session>();

  async start(port = 0): Promise<void> {
    const server = http2.createServer();
    server.on('session', (session) => {
      const id = ++this.sessionsOpened;
      let n = 0;
      let closing = false;
      const held: http2.ServerHttp2Stream[] = [];
      this.live.add(session);
      session.on('close', () => this.live.delete(session));
      session.on('error', () => {});
      session.on('stream', (stream, headers) => {
        stream.on('error', () => {});
        if (closing) return void held.push(stream);
        if (headers[':path'] === '/hang') return void this.hanging.push(stream);
        stream.respond({ ':status': 200, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ session: id, n: ++n }));
        this.answered++;
        if (this.goawayEvery === 0 || n % this.goawayEvery !== 0) return;
        if (this.mode === 'close') {
          closing = true;
          // After the read that delivered this stream: see 'close' above.
          return void setImmediate(() => {
            session.close();
            for (const s of held.splice(0)) s.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          });
        }
        session.goaway(http2.constants.NGHTTP2_NO_ERROR, 2 ** 31 - 1);
        // §6.8: wait a round trip (a PING) so streams the client opened before it saw the notice arrive, then close.
        session.ping((err) => (err ? session.destroy() : session.close()));
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', () => r()));
    this.port = (server.address() as net.AddressInfo).port;
    this.server = server;
  }

  /** Like a crashed process: sockets cut without GOAWAY, port closed. */
  async kill(): Promise<void> {
    for (const s of this.live) s.destroy();
    this.hanging.length = 0;
    await new Promise<void>((r) => this.server!.close(() => r()));
  }
}

function h2Call(session: http2.ClientHttp2Session, path: string, headers: http2.OutgoingHttpHeaders = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': 'GET', ':path': path, ...headers });
    let h: http2.IncomingHttpHeaders = {};
    let body = '';
    req.on('response', (x) => (h = x));
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => resolve({ status: Number(h[':status']), headers: h, body }));
    req.on('error', reject);
    req.end();
  });
}

function h1Get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers as http2.IncomingHttpHeaders, body }));
    });
    req.on('error', reject);
  });
}

/** A loopback port nothing listens on (bound, then released). */
async function deadPort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('upstream HTTP/2 GOAWAY, abrupt close and connect failure', function () {
  this.timeout(8000);
  let backend: GoawayBackend;
  let sc: TestSidecar;
  let client: http2.ClientHttp2Session;

  before(async () => {
    backend = new GoawayBackend();
    await backend.start();
    const dead = await deadPort();
    sc = await startTestSidecar([
      listener('main'),
      routes('main', [prefixRoute('/dead/', 'dead'), prefixRoute('/', 'up')]),
      cluster('up', [backend.port], 'UPSTREAM_PROTOCOL_HTTP2'),
      cluster('dead', [dead], 'UPSTREAM_PROTOCOL_HTTP2', { connectTimeout: '0.5s' }),
    ]);
    client = http2.connect(`http://127.0.0.1:${sc.port()}`);
    client.on('error', () => {});
  });
  after(async () => {
    client?.close();
    await sc?.close();
    await backend?.kill().catch(() => {});
  });

  it('50 sequential requests all succeed while the backend sends GOAWAY every 5; new sessions are opened', async () => {
    const sessionsBefore = backend.sessionsOpened;
    const seen = new Set<number>();
    for (let i = 0; i < 50; i++) {
      // Alternate h2 and h1 downstream: both share the upstream h2 pool.
      const r = i % 2 === 0 ? await h2Call(client, `/seq/${i}`) : await h1Get(sc.port(), `/seq/${i}`);
      expect(r.status, `request ${i}: ${r.body}`).to.equal(200);
      seen.add((JSON.parse(r.body) as { session: number }).session);
    }
    // 50 answers at 5 per session: at least 10 upstream sessions, each one used.
    expect(backend.sessionsOpened - sessionsBefore).to.be.at.least(10);
    expect(seen.size).to.be.at.least(10);
  });

  it('20 concurrent requests, repeated, all succeed across graceful (two-phase) GOAWAYs', async () => {
    backend.mode = 'two-phase';
    const sessionsBefore = backend.sessionsOpened;
    for (let round = 0; round < 3; round++) {
      const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => h2Call(client, `/conc/${round}/${i}`)));
      const failed = replies.filter((r) => r.status !== 200);
      expect(failed.map((r) => `${r.status} ${r.body.trim()}`), `round ${round}`).to.deep.equal([]);
    }
    expect(backend.sessionsOpened - sessionsBefore).to.be.at.least(2);
  });

  // A stream the upstream refused (RST_STREAM REFUSED_STREAM, or above a
  // GOAWAY's last stream id) was not processed (RFC 9113 §8.7): the sidecar
  // replays it on a new session (calls/h2-call.ts, retry/attempt-runner.ts). The backend
  // refuses everything past the 5th stream here.
  it('20 concurrent requests all succeed when the backend refuses streams after GOAWAY (refused streams are retried)', async () => {
    backend.mode = 'close';
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => h2Call(client, `/refused/${i}`)));
    expect(replies.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body.trim()}`)).to.deep.equal([]);
  });

  it('the same holds for HTTP/1.1 clients reaching the HTTP/2 upstream', async () => {
    backend.mode = 'close';
    const replies = await Promise.all(Array.from({ length: 20 }, (_, i) => h1Get(sc.port(), `/refused-h1/${i}`)));
    expect(replies.filter((r) => r.status !== 200).map((r) => `${r.status} ${r.body.trim()}`)).to.deep.equal([]);
  });

  it('an abrupt backend close fails the in-flight request cleanly (HTTP 502/503, gRPC UNAVAILABLE); the next one succeeds after restart', async () => {
    backend.goawayEvery = 0;
    const plain = h2Call(client, '/hang');
    const grpc = h2Call(client, '/hang', { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
    const viaH1 = h1Get(sc.port(), '/hang');
    await waitFor(() => backend.hanging.length === 3, 'three hanging requests at the backend', 2000);
    await backend.kill();

    const [p, g, h] = await Promise.all([plain, grpc, viaH1]);
    expect([502, 503]).to.include(p.status);
    expect(p.headers['x-outrigger-local-reply']).to.be.a('string');
    expect([502, 503]).to.include(h.status);
    expect(g.status).to.equal(200);
    expect(g.headers['grpc-status']).to.equal('14'); // UNAVAILABLE

    // Down: a clean 503 at once, not a hang.
    const down = await h2Call(client, '/while-down');
    expect(down.status).to.equal(503);
    expect(down.body).to.include('upstream connect error');

    await backend.start(backend.port);
    const back = await h2Call(client, '/after-restart');
    expect(back.status).to.equal(200);
    expect((await h1Get(sc.port(), '/after-restart-h1')).status).to.equal(200);
  });

  it('a cluster whose endpoint refuses connections answers 503 "upstream connect error" quickly', async () => {
    for (const call of [() => h2Call(client, '/dead/x'), () => h1Get(sc.port(), '/dead/y')]) {
      const t0 = Date.now();
      const r = await call();
      expect(Date.now() - t0).to.be.below(2000);
      expect(r.status).to.equal(503);
      expect(r.body).to.include('upstream connect error');
      expect(r.headers['x-outrigger-local-reply']).to.equal('UF');
    }
    const g = await h2Call(client, '/dead/grpc', { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers' });
    expect(g.headers['grpc-status']).to.equal('14');
    expect(decodeURIComponent(String(g.headers['grpc-message']))).to.include('upstream connect error');
  });

  it('counts the failures as local replies by flag', async () => {
    const text = await sc.metrics();
    expect(text).to.match(/outrigger_local_replies_total\{listener="main",flag="UF"\} [1-9]/);
  });
});
