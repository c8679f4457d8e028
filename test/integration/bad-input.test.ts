import { expect } from 'chai';
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

describe('bad input and limits', function () {
  let h1: Started<unknown>;
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

  it('refuses h2 streams beyond maxConcurrentStreams with RST_STREAM REFUSED_STREAM (no queue)', async () => {
    // A raw client that ignores the advertised limit: 5 HEADERS frames, no END_STREAM.
    const frame = (type: number, flags: number, id: number, payload: Buffer): Buffer => {
      const h = Buffer.alloc(9);
      h.writeUIntBE(payload.length, 0, 3);
      h[3] = type;
      h[4] = flags;
      h.writeUInt32BE(id, 5);
      return Buffer.concat([h, payload]);
    };
    // HPACK: :method POST (0x83), :scheme http (0x86), :path / (0x84), :authority "x" (literal, indexed name 1).
    const block = Buffer.from([0x83, 0x86, 0x84, 0x01, 0x01, 0x78]);
    const s = net.connect(sc.port(), '127.0.0.1');
    s.on('error', () => {});
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), frame(4, 0, 0, Buffer.alloc(0))]));
    await new Promise((r) => setTimeout(r, 50));
    s.write(frame(4, 1, 0, Buffer.alloc(0))); // SETTINGS ACK
    for (const id of [1, 3, 5, 7, 9]) s.write(frame(1, 0x4, id, block));
    const rst = await new Promise<{ id: number; code: number } | undefined>((resolve) => {
      const check = (): void => {
        const buf = Buffer.concat(chunks);
        for (let off = 0; off + 9 <= buf.length; ) {
          const len = buf.readUIntBE(off, 3);
          const type = buf[off + 3];
          const id = buf.readUInt32BE(off + 5) & 0x7fffffff;
          if (type === 3 && off + 9 + 4 <= buf.length) return resolve({ id, code: buf.readUInt32BE(off + 9) });
          off += 9 + len;
        }
      };
      s.on('data', check);
      setTimeout(() => resolve(undefined), 2000);
      check();
    });
    s.destroy();
    expect(rst).to.deep.equal({ id: 9, code: http2.constants.NGHTTP2_REFUSED_STREAM });
  });

  it('an h2 protocol error on one connection does not affect others', async () => {
    const s = net.connect(sc.port(), '127.0.0.1');
    s.on('error', () => {});
    // Valid preface, then a garbage frame.
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.from([0, 0, 4, 0xff, 0, 0, 0, 0, 1, 1, 2, 3, 4]), Buffer.from([0, 0, 8, 7, 0, 0, 0, 0, 0])]));
    await new Promise((r) => s.once('close', r));
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });

  it('a peer that disappears mid-request does not disturb other traffic', async () => {
    const s = net.connect(sc.port(), '127.0.0.1');
    s.write('POST /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc');
    await new Promise((r) => setTimeout(r, 50));
    s.destroy();
    const ok = await request(`http://127.0.0.1:${sc.port()}/still-fine`);
    expect(ok.statusCode).to.equal(200);
    await ok.body.text();
  });
});
