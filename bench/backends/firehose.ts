/**
 * Server-streaming backend for bench/streaming.ts: a grpc-js server whose one
 * method, /outrigger.bench.v1.Firehose/Stream, answers a request of two
 * big-endian uint32s (count, size) with `count` messages of `size` bytes,
 * written as fast as flow control lets it (write() false → wait for
 * 'drain'), then OK. Messages are opaque bytes (gRPC does not care; a proxy
 * passes them through), so the backend spends as little as grpc-js allows
 * per message and what the proxy adds shows the more.
 */
import * as grpc from '@grpc/grpc-js';
import type { AddressInfo } from 'node:net';
import { announce, backendArgs, onTerminate } from './common.js';

export const FIREHOSE_PATH = '/outrigger.bench.v1.Firehose/Stream';

const raw = (b: Buffer): Buffer => b;
const definition: grpc.ServiceDefinition = {
  Stream: { path: FIREHOSE_PATH, requestStream: false, responseStream: true, requestSerialize: raw, requestDeserialize: raw, responseSerialize: raw, responseDeserialize: raw },
};

const { host, port } = backendArgs();
const server = new grpc.Server();
/** One payload per size, shared by every write (grpc-js frames it into a new buffer anyway). */
const payloads = new Map<number, Buffer>();

server.addService(definition, {
  Stream: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
    const req = call.request;
    if (req.length < 8) return call.destroy(Object.assign(new Error('want 8 bytes: count, size'), { code: grpc.status.INVALID_ARGUMENT }));
    const count = req.readUInt32BE(0);
    const size = Math.min(req.readUInt32BE(4), 1 << 20);
    let msg = payloads.get(size);
    if (msg === undefined) payloads.set(size, (msg = Buffer.alloc(size, 0x61)));
    let sent = 0;
    let gone = false;
    call.on('cancelled', () => (gone = true));
    const pump = (): void => {
      while (!gone && sent < count) {
        sent++;
        if (!call.write(msg)) return void call.once('drain', pump);
      }
      if (!gone) call.end();
    };
    pump();
  },
});

server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, p) => {
  if (err) throw err;
  announce(p);
});
onTerminate(() => server.forceShutdown());
export type { AddressInfo };
