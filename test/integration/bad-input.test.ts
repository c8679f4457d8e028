import { expect } from 'chai';
import type http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { request } from 'undici';
import { startH1Echo, startH2Echo, type Started } from '../support/backends.js';
import { cluster, listener, prefixRoute, routes } from '../support/config-docs.js';
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

function frame(type: number, flags: number, id: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(id, 5);
  return Buffer.concat([h, payload]);
}

interface Frame {
  type: number;
  flags: number;
  id: number;
  payload: Buffer;
}

/** A raw HTTP/2 connection (preface + empty SETTINGS sent) with a frame reader. */
function rawH2(port: number) {
  const sock = net.connect(port, '127.0.0.1');
  sock.on('error', () => {});
  let buf = Buffer.alloc(0);
  const seen: Frame[] = [];
  const waiters: (() => void)[] = [];
  sock.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c]);
    while (buf.length >= 9 && buf.length >= 9 + buf.readUIntBE(0, 3)) {
      const len = buf.readUIntBE(0, 3);
      seen.push({ type: buf[3]!, flags: buf[4]!, id: buf.readUInt32BE(5) & 0x7fffffff, payload: buf.subarray(9, 9 + len) });
      buf = buf.subarray(9 + len);
    }
    waiters.splice(0).forEach((w) => w());
  });
  sock.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
  return {
    sock,
    all: () => seen,
    settings(): Map<number, number> {
      const m = new Map<number, number>();
      for (const f of seen.filter((x) => x.type === 4 && x.flags === 0))
        for (let i = 0; i + 6 <= f.payload.length; i += 6) m.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
      return m;
    },
    async frames(pred: (f: Frame) => boolean, timeoutMs = 3000): Promise<Frame> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const f = seen.find(pred);
        if (f) return f;
        if (Date.now() > deadline) throw new Error('frame not received');
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 50);
        });
      }
    },
  };
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

  it('enforces maxConcurrentStreams: a client that ignores it gets no extra stream and loses only its own connection', async () => {
    // A raw client that ignores the advertised limit: 5 HEADERS frames, no END_STREAM.
    // HPACK: :method POST (0x83), :scheme http (0x86), :path / (0x84), :authority "x" (literal, indexed name 1).
    const block = Buffer.from([0x83, 0x86, 0x84, 0x01, 0x01, 0x78]);
    const r = rawH2(sc.port());
    await r.frames((f) => f.type === 4 && f.flags === 0); // server SETTINGS
    expect(r.settings().get(3)).to.equal(4); // SETTINGS_MAX_CONCURRENT_STREAMS
    r.sock.write(frame(4, 1, 0, Buffer.alloc(0))); // SETTINGS ACK
    for (const id of [1, 3, 5, 7, 9]) r.sock.write(frame(1, 0x4, id, block));
    // nghttp2 treats the 5th stream as a protocol violation of the connection: GOAWAY, nothing queued.
    const goaway = await r.frames((f) => f.type === 7);
    // PROTOCOL_ERROR from nghttp2, or INTERNAL_ERROR when node tears the session down.
    expect(goaway.payload.readUInt32BE(4)).to.be.oneOf([1, 2]);
    expect(r.all().some((f) => f.type === 1 && f.id === 9)).to.equal(false);
    r.sock.destroy();
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });

  it('an h2 protocol error on one connection does not affect others', async () => {
    const r = rawH2(sc.port());
    // DATA on stream 0 is a connection error (RFC 9113 §6.1).
    r.sock.write(frame(0, 0, 0, Buffer.from([1, 2, 3, 4])));
    const goaway = await r.frames((f) => f.type === 7);
    expect(goaway.payload.readUInt32BE(4)).to.equal(1);
    r.sock.destroy();
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
    expect(await sc.metrics()).to.match(/outrigger_downstream_protocol_errors_total\{listener="main",kind="h2_session"\} [1-9]/);
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
