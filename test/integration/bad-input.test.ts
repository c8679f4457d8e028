import { expect } from 'chai';
import type http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { request } from 'undici';
import { startH1Echo, startH2Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
import { endStreamFrame, FRAME, h2Frame, headersFrame, rawH2 } from '../support/h2-raw.js';
import { startTestSidecar, type TestSidecar } from '../support/sidecar-harness.js';

function rawHttp(port: number, text: string): Promise<string> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    let out = '';
    s.on('data', (c) => (out += c.toString()));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.write(text);
  });
}

describe('bad input and limits', function () {
  let h1: Started<http.Server>;
  let h2: Started<unknown>;
  let sc: TestSidecar;

  before(async () => {
    h1 = await startH1Echo();
    h2 = await startH2Echo();
    sc = await startTestSidecar([
      listener('main', { limits: { maxConcurrentStreams: 4, maxHeaderBytes: 8192, maxRequestBodyBytes: '1000' } }),
      routes('main', [prefixRoute('/h2/', 'h2c'), prefixRoute('/', 'h1c')]),
      cluster('h1c', [h1.port], 'UPSTREAM_PROTOCOL_HTTP1'),
      cluster('h2c', [h2.port], 'UPSTREAM_PROTOCOL_HTTP2'),
    ]);
  });
  after(async () => {
    await sc.close();
    await h1.close();
    await h2.close();
  });

  it('rejects request smuggling (Content-Length with Transfer-Encoding) with 400 and keeps serving', async () => {
    const res = await rawHttp(
      sc.port(),
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    );
    expect(res).to.match(/^HTTP\/1\.1 400/);
    expect(res).to.not.include('/smuggled');
    const ok = await request(`http://127.0.0.1:${sc.port()}/after`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
    expect(await sc.metrics()).to.match(/outrigger_downstream_protocol_errors_total\{listener="main",kind="h1_malformed"\} [1-9]/);
  });

  it('rejects bad chunking with 400', async () => {
    const res = await rawHttp(sc.port(), 'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n');
    expect(res).to.match(/^HTTP\/1\.1 400/);
  });

  it('answers 431 to oversized headers', async () => {
    const res = await rawHttp(sc.port(), `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(10000)}\r\n\r\n`);
    expect(res).to.match(/^HTTP\/1\.1 431/);
  });

  it('answers 413 when a request body exceeds the listener limit', async () => {
    const res = await request(`http://127.0.0.1:${sc.port()}/upload`, { method: 'POST', body: Buffer.alloc(5000) });
    expect(res.statusCode).to.equal(413);
    await res.body.text();
  });

  it('enforces maxConcurrentStreams per stream: a client that ignores it gets the extra stream refused and keeps its connection', async () => {
    // A raw client that ignores the advertised limit: 5 HEADERS frames, no END_STREAM.
    const r = rawH2(sc.port());
    await r.frame((f) => f.type === FRAME.SETTINGS && f.flags === 0);
    expect(r.settings().get(3)).to.equal(4); // SETTINGS_MAX_CONCURRENT_STREAMS
    r.sock.write(Buffer.concat([1, 3, 5, 7, 9].map((id) => headersFrame(id))));
    const rst = await r.frame((f) => f.type === FRAME.RST_STREAM);
    expect(rst.id).to.equal(9);
    expect(rst.payload.readUInt32BE(0)).to.equal(7); // REFUSED_STREAM
    // The four admitted streams are served on the same connection.
    r.sock.write(Buffer.concat([1, 3, 5, 7].map(endStreamFrame)));
    for (const id of [1, 3, 5, 7]) await r.frame((f) => f.type === FRAME.HEADERS && f.id === id);
    expect(r.all().some((f) => f.type === FRAME.GOAWAY)).to.equal(false);
    expect(r.all().some((f) => f.id === 9 && f.type !== FRAME.RST_STREAM)).to.equal(false);
    r.sock.destroy();
  });

  it('an h2 protocol error on one connection does not affect others', async () => {
    const r = rawH2(sc.port());
    // DATA on stream 0 is a connection error (RFC 9113 §6.1).
    r.sock.write(h2Frame(FRAME.DATA, 0, 0, Buffer.from([1, 2, 3, 4])));
    const goaway = await r.frame((f) => f.type === FRAME.GOAWAY);
    expect(goaway.payload.readUInt32BE(4)).to.equal(1);
    r.sock.destroy();
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });

  it('a peer that disappears mid-request does not disturb other traffic', async () => {
    // Gone once the request is mid-way upstream: the backend has its headers, 97 body bytes still to come.
    const upstream = new Promise<void>((r) => {
      const seen = (req: http.IncomingMessage): void => {
        if (req.url !== '/slow') return;
        h1.server.off('request', seen);
        r();
      };
      h1.server.on('request', seen);
    });
    const s = net.connect(sc.port(), '127.0.0.1');
    s.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
    await upstream;
    s.destroy();
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });
});
