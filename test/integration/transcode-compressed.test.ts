import { expect } from 'chai';
import { create, toBinary } from '@bufbuild/protobuf';
import { request } from 'undici';
import { GetShelfRequestSchema } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { encodeFrame, FrameReader } from '../../src/core/grpc-framing.js';
import { BOOKSTORE_DESCRIPTOR, BOOKSTORE_SVC, baseUrl, grpcCluster, hosts, startTranscodeSidecar, transcodeHost } from '../support/transcode-harness.js';
import { h2Request } from '../support/traffic-backend.js';
import { THEME, compressingServer } from '../support/compressing-grpc.js';
import type { TestSidecar } from '../support/sidecar-harness.js';

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
