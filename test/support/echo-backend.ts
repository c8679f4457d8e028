import { HttpBodySchema } from '../../src/gen/google/api/httpbody_pb.js';
import * as grpc from '@grpc/grpc-js';
import { create, toBinary, type DescFile } from '@bufbuild/protobuf';
import { FileDescriptorSetSchema } from '@bufbuild/protobuf/wkt';
import { systemClock } from '../../src/core/clock.js';
import {
  EchoService,
  SampleSchema,
  file_outrigger_examples_transcoding_v1_echo,
  type Sample,
  type UploadRequest,
} from '../../src/gen/outrigger/examples/transcoding/v1/echo_pb.js';
import { serviceDefinitionFor } from '../../examples/bookstore/grpc-service.js';
import { rpcError, resourceInfo } from '../../examples/bookstore/rpc-status.js';
import { withTestHooks } from '../../examples/bookstore/test-hooks.js';

/**
 * The transcoder's test backend (proto/outrigger/examples/transcoding): every
 * unary method echoes its request so a test sees exactly what the transcoder
 * built; Repeat streams copies and can fail midway; Collect counts a client
 * stream. The bookstore's test hooks (x-fail-with, x-echo-metadata,
 * x-delay-ms) apply too.
 */
export interface EchoBackend {
  readonly port: number;
  /** Names of the Collect elements received so far, in order, as they arrive. */
  readonly collected: readonly string[];
  close(): Promise<void>;
}

export async function startEchoBackend(): Promise<EchoBackend> {
  const server = new grpc.Server();
  const def = serviceDefinitionFor(EchoService);
  const impl: grpc.UntypedServiceImplementation = {};
  const collected: string[] = [];
  for (const m of EchoService.methods) {
    if (m.methodKind === 'unary') {
      impl[m.localName] = (call: grpc.ServerUnaryCall<Sample, unknown>, cb: grpc.sendUnaryData<unknown>) => {
        if (m.name === 'Upload') return cb(null, (call.request as unknown as UploadRequest).body);
        const r = call.request;
        if (r.failCode) return cb(rpcError(r.failCode, `failed as asked (${r.failCode})`, [resourceInfo('sample', String(r.id), 'asked')]));
        cb(null, r);
      };
    }
  }
  impl['download'] = (call: grpc.ServerWritableStream<Sample, unknown>) => {
    const r = call.request;
    const count = r.count ?? 3;
    for (let i = 0; i < count; i++) {
      call.write(create(HttpBodySchema, { contentType: 'text/plain', data: Buffer.from(`${r.name}-${i};`) }));
    }
    call.end();
  };
  impl['repeat'] = (call: grpc.ServerWritableStream<Sample, Sample>) => {
    const r = call.request;
    const count = r.count ?? 3;
    for (let i = 0; i < count; i++) {
      if (r.failCode && i === r.failAfter) {
        call.emit('error', rpcError(r.failCode, `stream failed after ${i}`, [resourceInfo('sample', r.name, 'asked')]));
        return;
      }
      call.write(create(SampleSchema, { ...r, id: BigInt(i) }));
    }
    if (r.failCode && r.failAfter >= count) {
      call.emit('error', rpcError(r.failCode, `stream failed after ${count}`));
      return;
    }
    call.end();
  };
  impl['collect'] = (call: grpc.ServerReadableStream<Sample, Sample>, cb: grpc.sendUnaryData<Sample>) => {
    const names: string[] = [];
    call.on('data', (s: Sample) => {
      names.push(s.name);
      collected.push(s.name);
    });
    call.on('end', () => cb(null, create(SampleSchema, { id: BigInt(names.length), name: names.join(',') })));
  };
  server.addService(def, withTestHooks(def, impl, { clock: systemClock() }));
  const port = await new Promise<number>((res, rej) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? rej(e) : res(p))),
  );
  return {
    port,
    collected,
    close: () => new Promise<void>((r) => server.tryShutdown(() => r())),
  };
}

/** A FileDescriptorSet (with every dependency, dependencies first) for embedding in config as descriptorBin. */
export function descriptorSetOf(...files: DescFile[]): Uint8Array {
  const seen = new Set<string>();
  const ordered: DescFile[] = [];
  const visit = (f: DescFile): void => {
    if (seen.has(f.name)) return;
    seen.add(f.name);
    for (const d of f.dependencies) visit(d);
    ordered.push(f);
  };
  files.forEach(visit);
  return toBinary(FileDescriptorSetSchema, create(FileDescriptorSetSchema, { file: ordered.map((f) => f.proto) }));
}

export const ECHO_FILE = file_outrigger_examples_transcoding_v1_echo;
