import { expect } from 'chai';
import http2, { type ClientHttp2Stream, type ServerHttp2Stream } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { releaseClosedStream } from '../../../src/proxy/http/release-stream.js';

/**
 * releaseClosedStream on real node:http2 streams (a server and a client on
 * loopback): after 'close' the streams keep no listeners of ours and no sent
 * headers or trailers. Run on every Node the product supports
 * (scripts/node-matrix.sh): if a Node version renamed node:http2's private
 * symbols, the sent headers would stay and this test fails.
 */
describe('releaseClosedStream', () => {
  it('drops listeners and the sent headers and trailers of both ends of an exchange, and leaves an error listener', async () => {
    let serverStream: ServerHttp2Stream | undefined;
    const serverClosed = new Promise<void>((resolve) => {
      const srv = http2.createServer();
      srv.on('stream', (s) => {
        serverStream = s;
        s.on('close', () => {
          releaseClosedStream(s);
          resolve();
        });
        s.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        s.on('wantTrailers', () => s.sendTrailers({ 'grpc-status': '0' }));
        s.end(Buffer.alloc(5));
      });
      srv.listen(0, '127.0.0.1', () => void start((srv.address() as AddressInfo).port, srv));
    });
    let clientStream: ClientHttp2Stream | undefined;
    let start!: (port: number, srv: http2.Http2Server) => void;
    const clientClosed = new Promise<{ srv: http2.Http2Server; session: http2.ClientHttp2Session }>((resolve) => {
      start = (port, srv) => {
        const session = http2.connect(`http://127.0.0.1:${port}`);
        const s = session.request({ ':method': 'POST', ':path': '/p.S/M', 'content-type': 'application/grpc', te: 'trailers', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00' });
        clientStream = s;
        s.on('data', () => {});
        s.on('close', () => {
          expect(s.sentHeaders, 'sent headers while the close listeners run').to.not.equal(undefined);
          releaseClosedStream(s);
          resolve({ srv, session });
        });
        s.end(Buffer.alloc(5));
      };
    });
    const [{ srv, session }] = await Promise.all([clientClosed, serverClosed]);
    session.close();
    srv.close();
    for (const s of [clientStream!, serverStream!]) {
      expect(s.sentHeaders, 'sent headers after release').to.equal(undefined);
      expect(s.listenerCount('data') + s.listenerCount('close') + s.listenerCount('removeListener')).to.equal(0);
      expect(s.listenerCount('error')).to.equal(1);
      // A late error on a released stream does not throw.
      s.emit('error', new Error('late'));
    }
    expect(serverStream!.sentTrailers, 'sent trailers after release').to.equal(undefined);
  });
});
