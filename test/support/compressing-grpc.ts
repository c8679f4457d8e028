import http2 from 'node:http2';
import zlib from 'node:zlib';
import type { AddressInfo } from 'node:net';
import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import { GetShelfRequestSchema, ShelfSchema } from '../../src/gen/outrigger/examples/bookstore/v1/bookstore_pb.js';
import { encodeFrame, FrameReader } from '../../src/core/grpc-framing.js';

export const THEME = 'compressible '.repeat(200);

/**
 * A Bookstore GetShelf backend on node:http2 that compresses its answer with
 * `encoding` when the caller's grpc-accept-encoding lists it. Not grpc-js:
 * its server (1.x, server-interceptors.ts) never compresses responses — its
 * `grpc.default_compression_algorithm` applies to what a client sends — so
 * this is the faithful stand-in for backends that do (grpc-go, grpc-java, C++).
 */
export async function compressingServer(encoding: 'gzip' | 'deflate'): Promise<{ port: number; server: http2.Http2Server; accepted: string[] }> {
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

