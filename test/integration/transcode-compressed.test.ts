import { expect } from 'chai';
import http2 from 'node:http2';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { request } from 'undici';
import { GetShelfRequestSchema, ShelfSchema } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { encodeFrame, FrameReader } from '../../src/core/grpc-framing.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, startTranscodeSidecar, transcodeHost } from '../support/transcode-harness.js';
import { h2Request } from '../support/traffic-backend.js';
import type { TestSidecar } from '../support/sidecar-harness.js';

const THEME = 'compressible '.repeat(200);

/**
 * A Bookstore GetShelf backend on node:http2 that compresses its answer with
 * `encoding` when the caller's grpc-accept-encoding lists it. Not grpc-js:
 * its server (1.x, server-interceptors.ts) never compresses responses — its
 * `grpc.default_compression_algorithm` applies to what a client sends — so
 * this is the faithful stand-in for backends that do (grpc-go, grpc-java, C++).
 */
async function compressingServer(encoding: 'gzip' | 'deflate'): Promise<{ port: number; server: http2.Http2Server; accepted: string[] }> {
  const accepted: string[] = [];
  const server = http2.createServer();
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      const frames = new FrameReader();
      let shelf = 0n;
      frames.each(Buffer.concat(chunks), (f) => ((shelf = fromBinary(GetShelfRequestSchema, f.data).shelf), true));
      const acc = String(headers['grpc-accept-encoding'] ?? '');
      accepted.push(acc);
      const msg = Buffer.from(toBinary(ShelfSchema, create(ShelfSchema, { id: shelf, theme: THEME })));
      const use = acc.split(',').map((s) => s.trim()).includes(encoding);
      stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-encoding': use ? encoding : 'identity' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(use ? encodeFrame(1, encoding === 'gzip' ? zlib.gzipSync(msg) : zlib.deflateSync(msg)) : encodeFrame(0, msg));
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { port: (server.address() as AddressInfo).port, server, accepted };
}

/**
 * Issue 16 point 3: a backend answering with `grpc-encoding: gzip` (or
 * deflate) and compressed-flag messages is decoded by the transcoder (REST,
 * Connect, gRPC-Web), where it used to be refused as a protocol error; the
 * sidecar advertises `grpc-accept-encoding: gzip, deflate` upstream.
 */
describe('transcoding: compressed gRPC messages from the backend', function () {
  this.timeout(15000);
  let gz: Awaited<ReturnType<typeof compressingServer>>;
  let df: Awaited<ReturnType<typeof compressingServer>>;
  let sc: TestSidecar;
  let base: string;

  before(async () => {
    gz = await compressingServer('gzip');
    df = await compressingServer('deflate');
    sc = await startTranscodeSidecar(
      hosts('main', [
        transcodeHost('gz', ['gz.test'], 'gz', { descriptorBin: BOOKSTORE_DESCRIPTOR }),
        transcodeHost('df', ['df.test'], 'df', { descriptorBin: BOOKSTORE_DESCRIPTOR }),
      ]),
      grpcCluster('gz', gz.port),
      grpcCluster('df', df.port),
    );
    base = baseUrl(sc);
  });
  after(async () => {
    await sc?.close();
    gz?.server.close();
    df?.server.close();
  });

  it('the backends compress only when asked (the frames have the compressed flag)', async () => {
    const req = encodeFrame(0, toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: 1n })));
    for (const [port, enc] of [[gz.port, 'gzip'], [df.port, 'deflate']] as const) {
      const r = await h2Request(
        port,
        { ':method': 'POST', ':path': `${BOOKSTORE_SVC}/GetShelf`, 'content-type': 'application/grpc', te: 'trailers', 'grpc-accept-encoding': 'gzip, deflate' },
        req,
      );
      expect(r.headers['grpc-encoding']).to.equal(enc);
      const flags: number[] = [];
      new FrameReader().each(r.body, (f) => (flags.push(f.flags), true));
      expect(flags).to.deep.equal([1]);
    }
  });

  for (const host of ['gz.test', 'df.test']) {
    it(`REST, Connect and gRPC-Web answers from a ${host === 'gz.test' ? 'gzip' : 'deflate'} backend are decoded`, async () => {
      const rest = await request(`${base}/v1/shelves/5`, { headers: { host } });
      expect(rest.statusCode).to.equal(200);
      expect(await rest.body.json()).to.deep.equal({ id: '5', theme: THEME });

      const connect = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, { method: 'POST', headers: { host, 'content-type': 'application/json' }, body: '{"shelf":"6"}' });
      expect(connect.statusCode).to.equal(200);
      expect(await connect.body.json()).to.deep.equal({ id: '6', theme: THEME });

      const web = await request(`${base}${BOOKSTORE_SVC}/GetShelf`, {
        method: 'POST',
        headers: { host, 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
        body: encodeFrame(0, toBinary(GetShelfRequestSchema, create(GetShelfRequestSchema, { shelf: 7n }))),
      });
      expect(web.statusCode).to.equal(200);
      const body = Buffer.from(await web.body.arrayBuffer());
      const frames: { flags: number; len: number }[] = [];
      new FrameReader().each(body, (f) => (frames.push({ flags: f.flags, len: f.data.length }), true));
      // The message re-framed uncompressed for the browser, then the trailers frame.
      expect(frames[0]!.flags).to.equal(0);
      expect(frames[0]!.len).to.be.greaterThan(THEME.length);
      expect(frames[1]!.flags).to.equal(0x80);
      expect(body.subarray(body.length - frames[1]!.len).toString()).to.match(/grpc-status: ?0/);
      // The sidecar asked for compression on each of the three calls.
      const srv = host === 'gz.test' ? gz : df;
      expect(srv.accepted.slice(-3)).to.deep.equal(['gzip, deflate', 'gzip, deflate', 'gzip, deflate']);
    });
  }
});
